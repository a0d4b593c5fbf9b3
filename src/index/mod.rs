//! The embedding index of a data file: the hidden state of every
//! non-special token of every row at chosen layers, stored as f16 in a
//! self-describing folder, and exact cosine search over it (as exBERT's
//! corpus search, for any BERT and language, base or fine-tuned).
//!
//! - `format.rs`: the folder's files and the manifest;
//! - `fingerprint.rs`: which model filled it;
//! - `build.rs`: filling it in resumable chunks over the dataset pass;
//! - `search.rs`: loading a layer and the exact top-K.

pub mod build;
pub mod fingerprint;
pub mod format;
pub mod search;
pub mod store;

pub use build::{build, BuildOptions, Built};
pub use format::{DataSource, Manifest};
pub use search::{Hit, Index, LayerVectors, Query, SearchResult};
