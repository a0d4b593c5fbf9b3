//! Pictures of the views without a window: egui runs headless, its shapes
//! become SVG (`svg`), its tessellated meshes a PNG (`raster`).

pub mod raster;
pub mod svg;
