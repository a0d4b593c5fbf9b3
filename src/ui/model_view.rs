//! The model view: every layer × head as a thumbnail of its head view, with the
//! same filters; click one to open it in the head view.

use egui::{Color32, Pos2, Sense, Stroke, Vec2};

use crate::engine::AttentionResult;
use crate::ui::intent::{Intent, TokenFocus};
use crate::ui::selection::{for_each_link, token_infos, visible_tokens, Links, Selection};
use crate::ui::support::lines::LineBatch;
use crate::ui::support::palette::{head_color, with_weight};

const THUMB: f32 = 84.0;

/// What the thumbnails were computed for.
#[derive(Debug, Clone, PartialEq)]
struct CacheKey {
    /// The cache's data generation (see [`ThumbnailCache::data_changed`]).
    generation: u64,
    filter: crate::ui::selection::SentenceFilter,
    hide_special: bool,
    renormalize: bool,
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

pub fn show(
    ui: &mut egui::Ui,
    result: &AttentionResult,
    sel: &Selection,
    focus: Option<TokenFocus>,
    cache: &mut ThumbnailCache,
) -> Vec<Intent> {
    let mut intents = Vec::new();
    let maps = &result.attentions;
    let infos = token_infos(&result.tokens, &result.token_type_ids);
    let visible = visible_tokens(&infos, sel.filter, sel.hide_special);
    let rows = visible.queries.len().max(visible.keys.len()).max(1);
    // Fewer, stronger lines when there are many tokens keep thumbnails readable and fast.
    let min_weight = if rows > 128 { 0.1 } else { 0.02 };
    let all_links = cache.links(maps, &visible, sel, focus, min_weight);
    ui.label(match focus {
        Some(TokenFocus::Query(t)) | Some(TokenFocus::Key(t)) => format!(
            "Showing only the lines of \"{}\" (pinned or hovered in the head view); the frame marks layer {}, head {}.",
            result.tokens.get(t).map(String::as_str).unwrap_or("?"),
            sel.layer,
            sel.focus_head
        ),
        None => format!(
            "Click a thumbnail to open it in the head view; the frame marks layer {}, head {}; heads shown in the head view are outlined.",
            sel.layer, sel.focus_head
        ),
    });
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
                            let (rect, response) =
                                ui.allocate_exact_size(Vec2::splat(THUMB), Sense::click());
                            let label = format!("Layer {layer} head {head}");
                            response.widget_info(|| {
                                egui::WidgetInfo::labeled(egui::Role::Button, true, &label)
                            });
                            if response.clicked() {
                                intents.push(Intent::OpenHead { layer, head });
                            }
                            if !ui.is_rect_visible(rect) {
                                continue;
                            }
                            let painter = ui.painter_at(rect);
                            painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
                            let row_h = (THUMB - 8.0) / rows as f32;
                            let (lx, rx) = (rect.left() + 10.0, rect.right() - 10.0);
                            let y = |i: usize| rect.top() + 4.0 + (i as f32 + 0.5) * row_h;
                            let color = head_color(head);
                            let mut lines = LineBatch::new(rect);
                            let links = all_links.get(layer * maps.heads + head);
                            for &(qi, ki, w) in links.into_iter().flatten() {
                                lines.add(
                                    Pos2::new(lx, y(qi as usize)),
                                    Pos2::new(rx, y(ki as usize)),
                                    1.0,
                                    with_weight(color, w),
                                );
                            }
                            painter.add(lines.into_shape());
                            let current = layer == sel.layer && head == sel.focus_head;
                            let shown = layer == sel.layer && sel.head_on(head);
                            let frame = if current {
                                Some(Stroke::new(3.0, ui.visuals().strong_text_color()))
                            } else if shown {
                                Some(Stroke::new(1.5, color))
                            } else if response.hovered() {
                                Some(Stroke::new(1.0, Color32::GRAY))
                            } else {
                                None
                            };
                            if let Some(stroke) = frame {
                                ui.painter().rect_stroke(
                                    rect,
                                    2.0,
                                    stroke,
                                    egui::StrokeKind::Inside,
                                );
                            }
                            response.on_hover_text(format!(
                                "layer {layer}, head {head}: open in the head view"
                            ));
                        }
                        ui.end_row();
                    }
                });
        });
    intents
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
