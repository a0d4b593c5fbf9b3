//! Helpers the views share: line meshes, colours, fonts, screenshots, and
//! one-off background jobs.

pub mod fonts;
pub mod job;
pub mod lines;
pub mod palette;
pub mod screenshot;
