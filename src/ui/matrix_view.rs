//! The matrix view: the focused head as a heatmap, query tokens down the side,
//! key tokens along the top; hovering a cell shows the exact weight.

use egui::{Align2, FontId, Pos2, Rect, Sense, Stroke, Vec2};

use crate::engine::AttentionResult;
use crate::ui::intent::Intent;
use crate::ui::selection::{
    for_each_link, token_infos, visible_tokens, Links, Selection, VisibleTokens,
};
use crate::ui::support::figure;
use crate::ui::support::palette::{head_color, heat};

const LABEL_SPACE: f32 = 110.0;

pub fn show(ui: &mut egui::Ui, result: &AttentionResult, sel: &Selection) -> Vec<Intent> {
    let mut intents = Vec::new();
    let maps = &result.attentions;
    let head = sel.focus_head.min(maps.heads.saturating_sub(1));
    if figure::only(ui.ctx()) {
        let legend = ui.horizontal(|ui| {
            let (swatch, _) = ui.allocate_exact_size(Vec2::splat(14.0), Sense::hover());
            ui.painter().rect_filled(swatch, 2.0, head_color(head));
            ui.label(format!(
                "Layer {}, head {head}: rows are query tokens, columns key tokens; darker is more weight",
                sel.layer
            ));
        });
        figure::mark(ui.ctx(), legend.response.rect);
    } else {
        controls_row(ui, sel, head, maps.heads, &mut intents);
    }
    grid_of(ui, result, sel, head);
    intents
}

/// The head picker above the matrix.
fn controls_row(
    ui: &mut egui::Ui,
    sel: &Selection,
    head: usize,
    heads: usize,
    intents: &mut Vec<Intent>,
) {
    let maps_heads = heads;
    ui.horizontal(|ui| {
        ui.label(format!("Layer {}, head", sel.layer));
        let mut h = head;
        egui::ComboBox::from_label("Matrix head")
            .selected_text(format!("{h}"))
            .show_ui(ui, |ui| {
                for i in 0..maps_heads {
                    ui.selectable_value(&mut h, i, format!("Matrix head {i}"));
                }
            });
        if h != head {
            intents.push(Intent::FocusHead(h));
        }
        let (swatch, _) = ui.allocate_exact_size(Vec2::splat(14.0), Sense::hover());
        ui.painter().rect_filled(swatch, 2.0, head_color(head));
        ui.label("rows: query tokens, columns: key tokens; hover a cell for its weight");
    });
}

/// The selected head's matrix over the visible tokens.
fn grid_of(ui: &mut egui::Ui, result: &AttentionResult, sel: &Selection, head: usize) {
    let maps = &result.attentions;
    let infos = token_infos(&result.tokens, &result.token_type_ids);
    let visible = visible_tokens(&infos, sel.filter, sel.hide_special);
    let (nq, nk) = (visible.queries.len(), visible.keys.len());
    if nq == 0 || nk == 0 {
        ui.label("No tokens pass the current filter.");
        return;
    }
    let renorm = sel.hide_special && sel.renormalize;
    let mut weights = vec![0f32; nq * nk];
    let links = Links {
        layer: sel.layer,
        head,
        renormalize: renorm,
        focus: None,
        min_weight: f32::NEG_INFINITY,
    };
    for_each_link(maps, &visible, links, |qi, ki, w| weights[qi * nk + ki] = w);
    let size = ui.available_size();
    grid(
        ui,
        "matrix-view-scroll",
        &result.tokens,
        &visible,
        &weights,
        &heat,
        size,
    );
}

/// A `[query][key]` grid of `values` (visible tokens only) coloured by `color`,
/// labelled with tokens, hover showing the exact value; fits `size` when it can.
pub fn grid(
    ui: &mut egui::Ui,
    id: &str,
    tokens: &[String],
    visible: &VisibleTokens,
    values: &[f32],
    color: &dyn Fn(f32) -> egui::Color32,
    size: Vec2,
) {
    let (nq, nk) = (visible.queries.len(), visible.keys.len());
    let cell = ((size.x - LABEL_SPACE - 20.0) / nk.max(1) as f32)
        .min((size.y - LABEL_SPACE - 20.0) / nq.max(1) as f32)
        .clamp(6.0, 36.0);
    egui::ScrollArea::both()
        .id_salt(id)
        .auto_shrink([false, false])
        .max_height(size.y)
        .show(ui, |ui| {
            let size = Vec2::new(
                LABEL_SPACE + cell * nk as f32 + 10.0,
                LABEL_SPACE + cell * nq as f32 + 10.0,
            );
            let (area, response) = ui.allocate_exact_size(size, Sense::hover());
            figure::mark(ui.ctx(), area.intersect(ui.clip_rect()));
            let origin = area.min + Vec2::splat(LABEL_SPACE);
            let painter = ui.painter_at(ui.clip_rect());
            let font = FontId::proportional(if cell >= 14.0 { 13.0 } else { 10.0 });
            let text_color = ui.visuals().text_color();
            let label_every = (12.0 / cell).ceil().max(1.0) as usize;
            // One mesh of cells: thousands of rectangles at 512 tokens.
            let mut cells = egui::epaint::Mesh::default();
            for (i, &w) in values.iter().enumerate() {
                let (qi, ki) = (i / nk, i % nk);
                let r = Rect::from_min_size(
                    origin + Vec2::new(ki as f32 * cell, qi as f32 * cell),
                    Vec2::splat(cell),
                );
                if painter.clip_rect().intersects(r) {
                    cells.add_colored_rect(r, color(w));
                }
            }
            painter.add(egui::Shape::mesh(cells));
            for (qi, &q) in visible.queries.iter().enumerate() {
                if qi % label_every == 0 {
                    painter.text(
                        Pos2::new(origin.x - 4.0, origin.y + (qi as f32 + 0.5) * cell),
                        Align2::RIGHT_CENTER,
                        &tokens[q],
                        font.clone(),
                        text_color,
                    );
                }
            }
            for (ki, &k) in visible.keys.iter().enumerate() {
                if ki % label_every != 0 {
                    continue;
                }
                let galley = painter.layout_no_wrap(tokens[k].clone(), font.clone(), text_color);
                let pos = Pos2::new(
                    origin.x + (ki as f32 + 0.5) * cell - galley.size().y / 2.0,
                    origin.y - 4.0,
                );
                painter.add(
                    egui::epaint::TextShape::new(pos, galley, text_color)
                        .with_angle(-std::f32::consts::FRAC_PI_2),
                );
            }
            painter.rect_stroke(
                Rect::from_min_size(origin, Vec2::new(cell * nk as f32, cell * nq as f32)),
                0.0,
                Stroke::new(1.0, ui.visuals().weak_text_color()),
                egui::StrokeKind::Outside,
            );
            if let Some(pointer) = response.hover_pos() {
                let rel = pointer - origin;
                if rel.x >= 0.0 && rel.y >= 0.0 {
                    let (ki, qi) = ((rel.x / cell) as usize, (rel.y / cell) as usize);
                    if qi < nq && ki < nk {
                        let r = Rect::from_min_size(
                            origin + Vec2::new(ki as f32 * cell, qi as f32 * cell),
                            Vec2::splat(cell),
                        );
                        painter.rect_stroke(
                            r,
                            0.0,
                            Stroke::new(2.0, egui::Color32::RED),
                            egui::StrokeKind::Outside,
                        );
                        response.on_hover_text_at_pointer(format!(
                            "{} → {}: {:.4}",
                            tokens[visible.queries[qi]],
                            tokens[visible.keys[ki]],
                            values[qi * nk + ki]
                        ));
                    }
                }
            }
        });
}
