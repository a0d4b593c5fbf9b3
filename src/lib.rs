//! bertscope: a faithful BERT on candle that shows its attention, predicts masked
//! tokens and classifies — the engine behind the `bertscope` CLI and app.

pub mod attention_maps;
pub mod catalog;
pub mod checkpoint;
pub mod compare;
pub mod config;
pub mod data;
pub mod dataset;
pub mod device;
pub mod engine;
pub mod error;
pub mod explain;
pub mod export;
pub mod hub;
pub mod index;
pub mod lesson;
pub mod model;
pub mod predict;
pub mod project;
pub mod runtime;
pub mod tokenize;
pub mod train;
pub mod ui;
pub mod watch;
pub mod write_guard;

pub use attention_maps::AttentionMaps;
pub use engine::LoadedModel;
pub use error::{BertError, Result};
pub use model::head_mask::{HeadSet, Inspect};
