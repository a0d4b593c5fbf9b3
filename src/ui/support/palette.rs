//! Colours: one per head (as BertViz), and the heatmap scales.

use egui::Color32;

/// Series colours of the plots and signed values (matplotlib's tab10, the
/// palette BertViz and most papers' figures use).
pub const BLUE: Color32 = Color32::from_rgb(31, 119, 180);
pub const ORANGE: Color32 = Color32::from_rgb(255, 127, 14);
pub const GREEN: Color32 = Color32::from_rgb(44, 160, 44);
pub const RED: Color32 = Color32::from_rgb(214, 39, 40);

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

/// Diverging scale for a signed value in [-1, 1]: blue (−) → white (0) → red (+).
pub fn diverging(t: f32) -> Color32 {
    let t = t.clamp(-1.0, 1.0);
    let (r, g, b) = if t >= 0.0 {
        (178.0, 24.0, 43.0)
    } else {
        (33.0, 102.0, 172.0)
    };
    let a = t.abs().sqrt();
    let lerp = |end: f32| (255.0 + (end - 255.0) * a).round() as u8;
    Color32::from_rgb(lerp(r), lerp(g), lerp(b))
}
