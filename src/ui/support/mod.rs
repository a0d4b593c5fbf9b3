//! Helpers the views share: line meshes, line contrast, links walked fast,
//! thumbnails as textures, colours, the layers × heads map,
//! fonts, screenshots, progress over data rows, one-off background jobs, and
//! the Precision choice.

pub mod contrast;
pub mod figure;
pub mod fonts;
pub mod head_links;
pub mod head_map;
pub mod job;
pub mod lines;
pub mod palette;
pub mod precision;
pub mod progress;
pub mod screenshot;
pub mod thumbnails;
