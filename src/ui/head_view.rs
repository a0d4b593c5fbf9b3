//! The head view (BertViz's, natively): tokens in two columns and a line from
//! each query token (left) to each key token (right), one colour per head,
//! opacity by attention weight.

use egui::{Align2, Color32, FontId, Pos2, Rect, Sense, Stroke, Vec2};

use crate::engine::AttentionResult;
use crate::ui::intent::{Intent, TokenFocus};
use crate::ui::selection::{for_each_link, token_infos, visible_tokens, Selection};
use crate::ui::support::lines::LineBatch;
use crate::ui::support::palette::{head_color, with_weight};

pub const ROW_HEIGHT: f32 = 22.0;
const COLUMN_WIDTH: f32 = 150.0;
const GAP: f32 = 260.0;
const MIN_GAP: f32 = 120.0;
/// Lines fainter than this are not drawn (invisible anyway, and costly at 512 tokens).
pub const MIN_VISIBLE_WEIGHT: f32 = 0.01;

/// Which head view this is: the compare view draws two side by side.
#[derive(Debug, Clone, Copy)]
pub struct Panel<'a> {
    /// Scroll-area id.
    pub id: &'a str,
    /// Prefix of the tokens' accessible labels ("" for the main view).
    pub label_prefix: &'a str,
}

impl Panel<'static> {
    pub const MAIN: Panel<'static> = Panel {
        id: "head-view-scroll",
        label_prefix: "",
    };
}

/// Draw the head view for the selection; `focus` is the hovered or pinned token.
pub fn show(
    ui: &mut egui::Ui,
    result: &AttentionResult,
    sel: &Selection,
    focus: Option<TokenFocus>,
    panel: Panel,
) -> Vec<Intent> {
    let mut intents = Vec::new();
    let maps = &result.attentions;
    if maps.layers == 0 || sel.layer >= maps.layers {
        return intents;
    }
    let infos = token_infos(&result.tokens, &result.token_type_ids);
    let visible = visible_tokens(&infos, sel.filter, sel.hide_special);
    let rows = visible.queries.len().max(visible.keys.len());
    let heads: Vec<usize> = (0..maps.heads).filter(|&h| sel.head_on(h)).collect();
    let mut hovered = None;
    egui::ScrollArea::both()
        .id_salt(panel.id)
        .auto_shrink([false, false])
        .show(ui, |ui| {
            // The lines' span shrinks (to a point) when the view is narrow.
            let gap = (ui.available_width() - 2.0 * COLUMN_WIDTH - 40.0).clamp(MIN_GAP, GAP);
            let size = Vec2::new(
                2.0 * COLUMN_WIDTH + gap + 40.0,
                rows as f32 * ROW_HEIGHT + 20.0,
            );
            let (area, _) = ui.allocate_exact_size(size, Sense::hover());
            let left_x = area.left() + COLUMN_WIDTH;
            let right_x = left_x + gap;
            let y_of = |row: usize| area.top() + 10.0 + (row as f32 + 0.5) * ROW_HEIGHT;
            let painter = ui.painter_at(ui.clip_rect());
            let sep = sel.hide_special && sel.renormalize;
            let clip = ui.clip_rect();
            // Rows whose label is on screen: lines need one visible end to be drawn,
            // which keeps 512-token inputs smooth while scrolling.
            let first_row = (((clip.top() - area.top() - 10.0) / ROW_HEIGHT)
                .floor()
                .max(0.0)) as usize;
            let last_row = (((clip.bottom() - area.top() - 10.0) / ROW_HEIGHT)
                .ceil()
                .max(0.0)) as usize;
            let on_screen = |row: usize| row >= first_row && row <= last_row;
            let mut lines = LineBatch::new(clip);

            // Lines, one colour per head; only those with an end on screen.
            for &h in &heads {
                let color = head_color(h);
                for_each_link(
                    maps,
                    sel.layer,
                    h,
                    &visible,
                    sep,
                    focus,
                    MIN_VISIBLE_WEIGHT,
                    |qi, ki, w| {
                        if on_screen(qi) || on_screen(ki) {
                            lines.add(
                                Pos2::new(left_x + 6.0, y_of(qi)),
                                Pos2::new(right_x - 6.0, y_of(ki)),
                                2.0,
                                with_weight(color, w),
                            );
                        }
                    },
                );
            }
            painter.add(lines.into_shape());

            // Token labels (interactive), with the focused token's weights as blocks.
            let font = FontId::proportional(14.0);
            let text_color = ui.visuals().text_color();
            for (side, list, x, align) in [
                (0, &visible.queries, left_x, Align2::RIGHT_CENTER),
                (1, &visible.keys, right_x, Align2::LEFT_CENTER),
            ] {
                for (row, &t) in list.iter().enumerate() {
                    let y = y_of(row);
                    let rect = if side == 0 {
                        Rect::from_min_max(
                            Pos2::new(area.left(), y - ROW_HEIGHT / 2.0),
                            Pos2::new(left_x, y + ROW_HEIGHT / 2.0),
                        )
                    } else {
                        Rect::from_min_max(
                            Pos2::new(right_x, y - ROW_HEIGHT / 2.0),
                            Pos2::new(right_x + COLUMN_WIDTH, y + ROW_HEIGHT / 2.0),
                        )
                    };
                    let this = if side == 0 {
                        TokenFocus::Query(t)
                    } else {
                        TokenFocus::Key(t)
                    };
                    let id = ui.scope_id().with((panel.id, "head-token", side, t));
                    let response = ui.interact(rect, id, Sense::click());
                    let label = format!(
                        "{}{} token {t}: {}",
                        panel.label_prefix,
                        if side == 0 { "query" } else { "key" },
                        result.tokens[t]
                    );
                    response.widget_info(|| {
                        egui::WidgetInfo::labeled(egui::Role::Button, true, &label)
                    });
                    if response.hovered() {
                        hovered = Some(this);
                    }
                    if response.clicked() {
                        intents.push(Intent::Pin((focus != Some(this)).then_some(this)));
                    }
                    // Weight blocks on the opposite side of the focus.
                    if let Some(f) = focus {
                        let weights: Vec<(usize, f32)> = heads
                            .iter()
                            .map(|&h| {
                                let w = match (f, side) {
                                    (TokenFocus::Query(q), 1) => maps.get(sel.layer, h, q, t),
                                    (TokenFocus::Key(k), 0) => maps.get(sel.layer, h, t, k),
                                    _ => 0.0,
                                };
                                (h, w)
                            })
                            .collect();
                        draw_blocks(&painter, rect, side == 0, &weights);
                    }
                    let strong = focus == Some(this);
                    let color = if strong {
                        ui.visuals().strong_text_color()
                    } else {
                        text_color
                    };
                    let pos = if side == 0 {
                        Pos2::new(x - 6.0, y)
                    } else {
                        Pos2::new(x + 6.0, y)
                    };
                    painter.text(pos, align, &result.tokens[t], font.clone(), color);
                }
            }
        });
    intents.push(Intent::Hover(hovered));
    intents
}

/// Small per-head squares behind a token showing its weight to/from the focus.
fn draw_blocks(painter: &egui::Painter, rect: Rect, left: bool, weights: &[(usize, f32)]) {
    let size = (rect.height() - 6.0).min(8.0);
    for (i, &(h, w)) in weights.iter().enumerate() {
        let offset = 2.0 + i as f32 * (size + 1.0);
        let x = if left {
            rect.left() + offset
        } else {
            rect.right() - offset - size
        };
        let block = Rect::from_min_size(
            Pos2::new(x, rect.center().y - size / 2.0),
            Vec2::splat(size),
        );
        painter.rect_filled(block, 1.0, with_weight(head_color(h), w.max(0.03)));
        if w >= 0.5 {
            painter.rect_stroke(
                block,
                1.0,
                Stroke::new(1.0, Color32::BLACK),
                egui::StrokeKind::Outside,
            );
        }
    }
}
