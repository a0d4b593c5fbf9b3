//! A layers × heads map of one number per head (the compare view's change
//! map, the Explain view's head importance): white → dark red cells, head
//! numbers along the top, layers down the side, the selected head outlined.

use egui::{Color32, Sense, Vec2};

const CELL: f32 = 22.0;

/// What one map shows.
pub struct HeadMap<'a> {
    pub layers: usize,
    pub heads: usize,
    /// A cell's shade in [0, 1].
    pub shade: &'a dyn Fn(usize, usize) -> f32,
    /// A cell's hover text.
    pub hover: &'a dyn Fn(usize, usize) -> String,
    /// The (layer, head) outlined.
    pub selected: Option<(usize, usize)>,
    /// The map's accessible name.
    pub label: &'a str,
}

/// Draw the map; the (layer, head) clicked, if any.
pub fn show(ui: &mut egui::Ui, map: &HeadMap) -> Option<(usize, usize)> {
    let size = Vec2::new(
        30.0 + CELL * map.heads as f32,
        18.0 + CELL * map.layers as f32,
    );
    // In a justified layout the space allocated is wider than the map: only
    // the map itself answers the pointer (and is the accessible node).
    let (area, _) = ui.allocate_exact_size(size, Sense::hover());
    let response = ui.interact(area, ui.make_persistent_id(map.label), Sense::click());
    let label = map.label.to_string();
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, &label));
    let painter = ui.painter_at(area);
    let origin = area.min + Vec2::new(30.0, 18.0);
    let font = egui::FontId::proportional(11.0);
    let text = ui.visuals().text_color();
    for h in 0..map.heads {
        painter.text(
            origin + Vec2::new((h as f32 + 0.5) * CELL, -9.0),
            egui::Align2::CENTER_CENTER,
            h.to_string(),
            font.clone(),
            text,
        );
    }
    for l in 0..map.layers {
        painter.text(
            origin + Vec2::new(-6.0, (l as f32 + 0.5) * CELL),
            egui::Align2::RIGHT_CENTER,
            format!("L{l}"),
            font.clone(),
            text,
        );
        for h in 0..map.heads {
            let r = egui::Rect::from_min_size(
                origin + Vec2::new(h as f32 * CELL, l as f32 * CELL),
                Vec2::splat(CELL - 2.0),
            );
            painter.rect_filled(r, 2.0, change_color((map.shade)(l, h)));
            if map.selected == Some((l, h)) {
                painter.rect_stroke(
                    r,
                    2.0,
                    egui::Stroke::new(2.0, super::palette::RED),
                    egui::StrokeKind::Outside,
                );
            }
        }
    }
    let cell_at = |pos: egui::Pos2| {
        let rel = pos - origin;
        let (h, l) = ((rel.x / CELL).floor(), (rel.y / CELL).floor());
        (h >= 0.0 && l >= 0.0 && (h as usize) < map.heads && (l as usize) < map.layers)
            .then_some((l as usize, h as usize))
    };
    if let Some((l, h)) = response.hover_pos().and_then(cell_at) {
        response.clone().on_hover_text_at_pointer((map.hover)(l, h));
    }
    if response.clicked() {
        return response.interact_pointer_pos().and_then(cell_at);
    }
    None
}

/// White → dark red.
pub fn change_color(t: f32) -> Color32 {
    let t = t.clamp(0.0, 1.0);
    let lerp = |a: f32, b: f32| (a + (b - a) * t).round() as u8;
    Color32::from_rgb(lerp(255.0, 165.0), lerp(255.0, 15.0), lerp(255.0, 21.0))
}
