//! The model view: every layer × head as a thumbnail of its head view, with the
//! same filters; click one to open it in the head view, right-click (or click
//! in ablate mode) to switch the head off; switched-off heads are crossed out.

use egui::{Color32, Pos2, Sense, Stroke, Vec2};

use crate::engine::AttentionResult;
use crate::ui::intent::{Intent, TokenFocus};
use crate::ui::selection::{for_each_link, token_infos, visible_tokens, Links, Selection};
use crate::ui::support::lines::LineBatch;
use crate::ui::support::palette::{head_color, with_weight};
use crate::HeadSet;

const THUMB: f32 = 84.0;

/// What the thumbnails were computed for.
#[derive(Debug, Clone, PartialEq)]
struct CacheKey {
    /// The cache's data generation (see [`ThumbnailCache::data_changed`]).
    generation: u64,
    filter: crate::ui::selection::SentenceFilter,
    hide_special: bool,
    renormalize: bool,
    /// Word-level maps are other data than the token-level ones.
    words: bool,
    focus: Option<TokenFocus>,
}

/// The links of every thumbnail (query row, key row, weight), kept between
/// frames: walking 144 heads × 512² weights every frame would cost ~35 ms.
/// Keyed by a generation number its owner bumps with every new analysis (an
/// allocation's address can be reused by the next analysis).
#[derive(Default)]
pub struct ThumbnailCache {
    generation: u64,
    key: Option<CacheKey>,
    links: Vec<Vec<(u16, u16, f32)>>,
}

impl ThumbnailCache {
    /// The attention maps drawn from now on are new: recompute the links.
    pub fn data_changed(&mut self) {
        self.generation += 1;
    }

    /// The links of every head for these maps and filters, computed when the
    /// data or the filters changed since the last call.
    fn links(
        &mut self,
        maps: &crate::AttentionMaps,
        visible: &crate::ui::selection::VisibleTokens,
        sel: &Selection,
        focus: Option<TokenFocus>,
        min_weight: f32,
    ) -> &[Vec<(u16, u16, f32)>] {
        let key = CacheKey {
            generation: self.generation,
            filter: sel.filter,
            hide_special: sel.hide_special,
            renormalize: sel.renormalize,
            words: sel.words,
            focus,
        };
        if self.key.as_ref() == Some(&key) {
            return &self.links;
        }
        let renorm = sel.hide_special && sel.renormalize;
        self.links = (0..maps.layers * maps.heads)
            .map(|i| {
                let mut links = Vec::new();
                let which = Links {
                    layer: i / maps.heads,
                    head: i % maps.heads,
                    renormalize: renorm,
                    focus,
                    min_weight,
                };
                for_each_link(maps, visible, which, |qi, ki, w| {
                    links.push((qi as u16, ki as u16, w))
                });
                links
            })
            .collect();
        self.key = Some(key);
        &self.links
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
    // Fewer, stronger lines when there are many tokens keep thumbnails readable and fast.
    let min_weight = if rows > 128 { 0.1 } else { 0.02 };
    let all_links = cache.links(maps, &visible, sel, focus, min_weight);
    ui.label(caption(result, sel, focus, ablation.mode));
    egui::ScrollArea::both()
        .id_salt("model-view-scroll")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            egui::Grid::new("model-view-grid")
                .spacing([6.0, 6.0])
                .show(ui, |ui| {
                    ui.label("");
                    for h in 0..maps.heads {
                        ui.colored_label(head_color(h), format!("head {h}"));
                    }
                    ui.end_row();
                    for layer in 0..maps.layers {
                        ui.label(format!("layer {layer}"));
                        for head in 0..maps.heads {
                            let thumb = Thumbnail {
                                layer,
                                head,
                                rows,
                                links: all_links
                                    .get(layer * maps.heads + head)
                                    .map_or(&[], Vec::as_slice),
                                off: ablation.ablated.contains(layer, head),
                            };
                            intents.extend(thumb.show(ui, sel, ablation.mode));
                        }
                        ui.end_row();
                    }
                });
        });
    intents
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

/// One layer × head thumbnail.
struct Thumbnail<'a> {
    layer: usize,
    head: usize,
    /// Rows of tokens (the taller column).
    rows: usize,
    links: &'a [(u16, u16, f32)],
    /// Switched off (ablated).
    off: bool,
}

impl Thumbnail<'_> {
    fn show(&self, ui: &mut egui::Ui, sel: &Selection, ablate_mode: bool) -> Option<Intent> {
        let (layer, head) = (self.layer, self.head);
        let (rect, response) = ui.allocate_exact_size(Vec2::splat(THUMB), Sense::click());
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
        let row_h = (THUMB - 8.0) / self.rows as f32;
        let (lx, rx) = (rect.left() + 10.0, rect.right() - 10.0);
        let y = |i: usize| rect.top() + 4.0 + (i as f32 + 0.5) * row_h;
        let color = if self.off {
            Color32::GRAY
        } else {
            head_color(head)
        };
        let mut lines = LineBatch::new(rect);
        for &(qi, ki, w) in self.links {
            lines.add(
                Pos2::new(lx, y(qi as usize)),
                Pos2::new(rx, y(ki as usize)),
                1.0,
                with_weight(color, if self.off { w * 0.5 } else { w }),
            );
        }
        painter.add(lines.into_shape());
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
mod tests {
    use super::*;
    use crate::ui::selection::{token_infos, visible_tokens};
    use crate::AttentionMaps;

    #[test]
    fn new_weights_in_the_same_allocation_are_not_served_from_the_cache() {
        let tokens: Vec<String> = vec!["a".into(), "b".into()];
        let sel = Selection::default();
        let visible = visible_tokens(&token_infos(&tokens, &[0, 0]), sel.filter, false);
        let mut maps = AttentionMaps::new(1, 1, 2, vec![1.0, 0.0, 0.0, 1.0]);
        let mut cache = ThumbnailCache::default();
        let before = cache.links(&maps, &visible, &sel, None, 0.02).to_vec();
        assert_eq!(before, vec![vec![(0, 0, 1.0), (1, 1, 1.0)]]);

        // The next analysis lands in the same allocation (same address and length).
        maps.data.copy_from_slice(&[0.0, 1.0, 1.0, 0.0]);
        cache.data_changed();
        let after = cache.links(&maps, &visible, &sel, None, 0.02).to_vec();
        assert_eq!(after, vec![vec![(0, 1, 1.0), (1, 0, 1.0)]]);

        // Same generation and filters: the cached links, not a new walk.
        maps.data.copy_from_slice(&[1.0, 0.0, 0.0, 1.0]);
        assert_eq!(cache.links(&maps, &visible, &sel, None, 0.02), &after[..]);
    }
}
