//! Colours: one per head (as BertViz), and the heatmap scales.

use egui::Color32;

/// A distinct colour for each head (a 12-colour qualitative palette, cycled).
pub fn head_color(head: usize) -> Color32 {
    const COLORS: [(u8, u8, u8); 12] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
        (57, 59, 121),
        (173, 73, 74),
    ];
    let (r, g, b) = COLORS[head % COLORS.len()];
    Color32::from_rgb(r, g, b)
}

/// `color` with opacity proportional to an attention weight.
pub fn with_weight(color: Color32, weight: f32) -> Color32 {
    let alpha = (weight.clamp(0.0, 1.0) * 255.0).round() as u8;
    Color32::from_rgba_unmultiplied(color.r(), color.g(), color.b(), alpha)
}

/// Sequential scale for a weight in [0, 1]: white → deep blue.
pub fn heat(weight: f32) -> Color32 {
    let t = weight.clamp(0.0, 1.0).sqrt();
    let lerp = |a: f32, b: f32| (a + (b - a) * t).round() as u8;
    Color32::from_rgb(lerp(255.0, 8.0), lerp(255.0, 48.0), lerp(255.0, 107.0))
}
