//! Helpers the views share: line meshes, colours, the layers × heads map,
//! fonts, screenshots, and one-off background jobs.

pub mod fonts;
pub mod head_map;
pub mod job;
pub mod lines;
pub mod palette;
pub mod screenshot;
