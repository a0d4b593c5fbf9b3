//! The model view: every layer × head as a thumbnail of its head view, with the
//! same filters; click one to open it in the head view, right-click (or click
//! in ablate mode) to switch the head off; switched-off heads are crossed out.

mod cache;

use egui::emath::GuiRounding;
use egui::{Color32, Pos2, RichText, Sense, Stroke, TextureId, Vec2};

use crate::engine::AttentionResult;
use crate::ui::intent::{Intent, TokenFocus};
use crate::ui::selection::{token_infos, visible_tokens, Selection};
use crate::ui::support::figure;
use crate::ui::support::head_links::Link;
use crate::ui::support::lines::LineBatch;
use crate::ui::support::palette::{head_color, with_weight};
use crate::ui::support::thumbnails::{line_ends, DESIGN_SIDE};
use crate::HeadSet;

pub use cache::ThumbnailCache;
use cache::{line_cap, Shown};

/// Thumbnails are at most this big (points a side), …
const THUMB: f32 = DESIGN_SIDE;
/// … and shrink down to this to fit the window's width; below it, the grid scrolls.
pub const MIN_THUMB: f32 = 48.0;
/// Between thumbnails.
const SPACING: f32 = 6.0;

/// How big the thumbnails are for the width at hand.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    /// Points a side.
    pub side: f32,
    /// Head columns wholly inside the width.
    pub columns: usize,
}

/// The thumbnails' size when `heads` columns share `width` points with a
/// label column `label_w` wide: as large as fits, at most [`THUMB`], at least
/// `min_side` (then fewer columns fit and the grid scrolls).
pub fn fit(width: f32, heads: usize, label_w: f32, min_side: f32) -> Fit {
    let n = heads.max(1) as f32;
    let side = ((width - label_w - SPACING * n) / n)
        .floor()
        .clamp(min_side.min(THUMB), THUMB);
    let columns = ((width - label_w) / (side + SPACING)).floor().max(0.0) as usize;
    Fit {
        side,
        columns: columns.min(heads),
    }
}

/// The model view's ablation: which heads are off, and whether a click
/// switches heads off instead of opening them.
#[derive(Debug, Clone, Copy)]
pub struct Ablation<'a> {
    pub ablated: &'a HeadSet,
    pub mode: bool,
}

pub fn show(
    ui: &mut egui::Ui,
    result: &AttentionResult,
    sel: &Selection,
    focus: Option<TokenFocus>,
    cache: &mut ThumbnailCache,
    ablation: Ablation,
) -> Vec<Intent> {
    let mut intents = Vec::new();
    let maps = &result.attentions;
    let infos = token_infos(&result.tokens, &result.token_type_ids);
    let visible = visible_tokens(&infos, sel.filter, sel.hide_special);
    let rows = visible.queries.len().max(visible.keys.len()).max(1);
    let shown = Shown {
        maps,
        visible: &visible,
        sel,
        focus,
        rows,
        // Fewer, stronger lines when there are many tokens keep thumbnails readable.
        min_opacity: if rows > 128 { 0.1 } else { 0.02 },
    };
    let figure_only = figure::only(ui.ctx());
    ui.horizontal_wrapped(|ui| {
        if figure_only {
            return;
        }
        ui.label(caption(result, sel, focus, ablation.mode));
        if let Some(TokenFocus::Query(t) | TokenFocus::Key(t)) = focus {
            let token = result.tokens.get(t).map(String::as_str).unwrap_or("?");
            if !crate::tokenize::is_special(token)
                && ui
                    .button(format!("Find similar in data: “{token}”"))
                    .clicked()
            {
                intents.push(Intent::FindSimilar(t));
            }
        }
    });
    let grid = GridLayout::new(ui, maps.layers, maps.heads);
    let ppp = ui.ctx().pixels_per_point();
    let side_px = (grid.fit.side * ppp).round().max(1.0) as usize;
    cache.prepare(ui.ctx(), &shown, side_px, ppp);
    if !figure_only {
        ui.label(RichText::new(grid.note(cache, &shown)).weak());
    }
    let tint_off = Color32::GRAY.gamma_multiply(0.5);
    let side = grid.fit.side;
    egui::ScrollArea::both()
        .id_salt("model-view-scroll")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            let (area, _) = ui.allocate_exact_size(grid.size(), Sense::hover());
            figure::mark(ui.ctx(), area.intersect(ui.clip_rect()));
            let painter = ui.painter().clone();
            let font = egui::TextStyle::Body.resolve(ui.style());
            let text_color = ui.visuals().text_color();
            for head in 0..maps.heads {
                let at = grid.cell(area, 0, head).left_top() - Vec2::new(0.0, grid.header);
                let text = format!("head {head}");
                painter.text(
                    at,
                    egui::Align2::LEFT_TOP,
                    text,
                    font.clone(),
                    head_color(head),
                );
            }
            for layer in 0..maps.layers {
                let at = egui::pos2(area.left(), grid.cell(area, layer, 0).center().y);
                let text = format!("layer {layer}");
                painter.text(
                    at,
                    egui::Align2::LEFT_CENTER,
                    text,
                    font.clone(),
                    text_color,
                );
                for head in 0..maps.heads {
                    let i = layer * maps.heads + head;
                    let drawing = if cache.is_vector() {
                        Drawing::Lines(cache.links(i).unwrap_or(&[]), rows)
                    } else {
                        Drawing::Picture(cache.texture(i), tint_off)
                    };
                    let thumb = Thumbnail {
                        layer,
                        head,
                        side,
                        drawing,
                        off: ablation.ablated.contains(layer, head),
                    };
                    let rect = grid.cell(area, layer, head);
                    intents.extend(thumb.show(ui, rect, sel, ablation.mode));
                }
            }
        });
    intents
}

/// The grid's size for the space at hand.
struct GridLayout {
    fit: Fit,
    /// The layer labels' column.
    label_w: f32,
    /// The head labels' row.
    header: f32,
    heads: usize,
    layers: usize,
    /// Layer rows wholly inside the height.
    rows_shown: usize,
}

impl GridLayout {
    fn new(ui: &egui::Ui, layers: usize, heads: usize) -> GridLayout {
        let width_of = |text: String| {
            let font = egui::TextStyle::Body.resolve(ui.style());
            ui.painter()
                .layout_no_wrap(text, font, Color32::WHITE)
                .size()
                .x
        };
        let label_w = width_of(format!("layer {}", layers.saturating_sub(1)));
        let head_w = width_of(format!("head {}", heads.saturating_sub(1)));
        // Below the note line and the head labels.
        let line = ui.text_style_height(&egui::TextStyle::Body) + ui.spacing().item_spacing.y;
        let available = ui.available_size() - Vec2::new(0.0, 2.0 * line);
        let fit = fit(available.x, heads, label_w, MIN_THUMB.max(head_w));
        let rows_shown = (available.y / (fit.side + SPACING)).floor().max(0.0) as usize;
        GridLayout {
            fit,
            label_w,
            header: line,
            heads,
            layers,
            rows_shown: rows_shown.min(layers),
        }
    }

    /// The whole grid's size.
    fn size(&self) -> Vec2 {
        let step = self.fit.side + SPACING;
        Vec2::new(
            self.label_w + self.heads as f32 * step,
            self.header + self.layers as f32 * step,
        )
    }

    /// Where the thumbnail of `layer`, `head` goes in the grid at `area`.
    fn cell(&self, area: egui::Rect, layer: usize, head: usize) -> egui::Rect {
        let step = self.fit.side + SPACING;
        let min = area.min
            + Vec2::new(
                self.label_w + SPACING + head as f32 * step,
                self.header + layer as f32 * step,
            );
        egui::Rect::from_min_size(min, Vec2::splat(self.fit.side))
    }

    /// The line under the caption: the thumbnails' size, what scrolls,
    /// what is left out, and progress.
    fn note(&self, cache: &ThumbnailCache, shown: &Shown) -> String {
        let mut parts = Vec::new();
        if self.fit.columns < self.heads {
            parts.push(format!(
                "thumbnails at their smallest ({:.0} pt): scroll sideways for {}",
                self.fit.side,
                span("head", self.fit.columns, self.heads - 1)
            ));
        } else if self.fit.side < THUMB {
            parts.push(format!(
                "thumbnails scaled to {:.0} pt to fit all {} heads",
                self.fit.side, self.heads
            ));
        }
        if self.rows_shown < self.layers {
            let hidden = span("layer", self.rows_shown, self.layers - 1);
            parts.push(format!("scroll down for {hidden}"));
        }
        parts.push(format!(
            "lines below {:.0}% opacity left out",
            shown.min_opacity * 100.0
        ));
        if cache.any_capped() {
            parts.push(format!(
                "some heads show only their {} strongest lines",
                line_cap(shown.rows)
            ));
        }
        let (done, total) = cache.progress();
        if done < total {
            parts.push(format!("drawing thumbnails: {done} of {total}"));
        }
        let mut note = parts.join("; ");
        if let Some(first) = note.get(..1) {
            note = first.to_uppercase() + &note[1..];
        }
        note + "."
    }
}

/// "layer 5", or "layers 5–11".
fn span(what: &str, first: usize, last: usize) -> String {
    if first == last {
        format!("{what} {first}")
    } else {
        format!("{what}s {first}–{last}")
    }
}

/// The line above the grid.
fn caption(
    result: &AttentionResult,
    sel: &Selection,
    focus: Option<TokenFocus>,
    mode: bool,
) -> String {
    let click = if mode {
        "Ablate mode: click a thumbnail to switch that head off (or on again)"
    } else {
        "Click a thumbnail to open it in the head view, right-click to switch the head off"
    };
    match focus {
        Some(TokenFocus::Query(t)) | Some(TokenFocus::Key(t)) => format!(
            "Showing only the lines of \"{}\" (pinned or hovered in the head view); the frame marks layer {}, head {}.",
            result.tokens.get(t).map(String::as_str).unwrap_or("?"),
            sel.layer,
            sel.focus_head
        ),
        None => format!(
            "{click}; the frame marks layer {}, head {}; heads shown in the head view are outlined.",
            sel.layer, sel.focus_head
        ),
    }
}

/// How a thumbnail's lines are drawn.
enum Drawing<'a> {
    /// As shapes: (query row, key row, opacity) over `rows` rows.
    Lines(&'a [Link], usize),
    /// As a picture (none yet: an empty thumbnail), tinted with the head's
    /// colour, or with the second colour when switched off.
    Picture(Option<TextureId>, Color32),
}

/// One layer × head thumbnail.
struct Thumbnail<'a> {
    layer: usize,
    head: usize,
    /// Points a side.
    side: f32,
    drawing: Drawing<'a>,
    /// Switched off (ablated).
    off: bool,
}

impl Thumbnail<'_> {
    fn show(
        &self,
        ui: &mut egui::Ui,
        rect: egui::Rect,
        sel: &Selection,
        ablate_mode: bool,
    ) -> Option<Intent> {
        let (layer, head) = (self.layer, self.head);
        let id = ui.scope_id().with(("model-view-thumbnail", layer, head));
        let response = ui.interact(rect, id, Sense::click());
        let label = if self.off {
            format!("Layer {layer} head {head}, switched off")
        } else {
            format!("Layer {layer} head {head}")
        };
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
        let toggle = Intent::ToggleAblation { layer, head };
        let intent = if response.secondary_clicked() || (ablate_mode && response.clicked()) {
            Some(toggle)
        } else if response.clicked() {
            Some(Intent::OpenHead { layer, head })
        } else {
            None
        };
        if ui.is_rect_visible(rect) {
            self.paint(ui, rect, sel, response.hovered());
        }
        let action = if ablate_mode {
            "click or right-click to switch it"
        } else {
            "click to open in the head view, right-click to switch it"
        };
        let state = if self.off { "off (ablated)" } else { "on" };
        response.on_hover_text(format!(
            "layer {layer}, head {head}: {state}; {action} {}",
            if self.off { "on again" } else { "off" }
        ));
        intent
    }

    fn paint(&self, ui: &egui::Ui, rect: egui::Rect, sel: &Selection, hovered: bool) {
        let (layer, head) = (self.layer, self.head);
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
        let color = if self.off {
            Color32::GRAY
        } else {
            head_color(head)
        };
        match self.drawing {
            Drawing::Lines(links, rows) => {
                let mut lines = LineBatch::new(rect);
                let at = |(x, y): (f32, f32)| Pos2::new(rect.left() + x, rect.top() + y);
                for &(qi, ki, opacity) in links {
                    let [a, b] = line_ends(self.side, rows, qi, ki);
                    let opacity = if self.off { opacity * 0.5 } else { opacity };
                    lines.add(at(a), at(b), 1.0, with_weight(color, opacity));
                }
                painter.add(lines.into_shape());
            }
            Drawing::Picture(Some(texture), tint_off) => {
                let uv = egui::Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0));
                let tint = if self.off { tint_off } else { color };
                let at = rect.round_to_pixels(ui.ctx().pixels_per_point());
                painter.image(texture, at, uv, tint);
            }
            Drawing::Picture(None, _) => {}
        }
        if self.off {
            mark_off(&painter, rect, ui.visuals().extreme_bg_color);
        }
        let current = layer == sel.layer && head == sel.focus_head;
        let shown = layer == sel.layer && sel.head_on(head);
        let frame = if current {
            Some(Stroke::new(3.0, ui.visuals().strong_text_color()))
        } else if shown {
            Some(Stroke::new(1.5, color))
        } else if hovered {
            Some(Stroke::new(1.0, Color32::GRAY))
        } else {
            None
        };
        if let Some(stroke) = frame {
            ui.painter()
                .rect_stroke(rect, 2.0, stroke, egui::StrokeKind::Inside);
        }
    }
}

/// An ablated thumbnail: greyed, crossed out, and labelled "off".
fn mark_off(painter: &egui::Painter, rect: egui::Rect, background: Color32) {
    painter.rect_filled(rect, 2.0, background.gamma_multiply(0.6));
    cross_out(painter, rect.shrink(6.0), 2.0);
    let font = egui::FontId::proportional(14.0);
    let text = painter.layout_no_wrap("off".into(), font, Color32::WHITE);
    let badge = egui::Rect::from_center_size(rect.center(), text.size() + Vec2::new(8.0, 2.0));
    painter.rect_filled(badge, 3.0, OFF_RED);
    painter.galley(badge.min + Vec2::new(4.0, 1.0), text, Color32::WHITE);
}

/// The red of "switched off" marks.
const OFF_RED: Color32 = Color32::from_rgb(200, 40, 40);

/// Two red diagonals across `rect`: this head is switched off.
pub fn cross_out(painter: &egui::Painter, rect: egui::Rect, width: f32) {
    let stroke = Stroke::new(width, OFF_RED);
    painter.line_segment([rect.left_top(), rect.right_bottom()], stroke);
    painter.line_segment([rect.right_top(), rect.left_bottom()], stroke);
}

#[cfg(test)]
mod tests;
