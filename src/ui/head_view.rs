//! The head view (BertViz's, natively): tokens in two columns and a line from
//! each query token (left) to each key token (right), one colour per head,
//! opacity by attention weight (or by the selection's contrast). Only what is
//! on screen is walked and drawn: the lines with an end in view and the token
//! labels in view, so a frame costs the same at 512 tokens as at 50.

use egui::{Align2, Color32, FontId, Pos2, Rect, Sense, Stroke, Vec2};

use crate::engine::AttentionResult;
use crate::ui::intent::{Intent, TokenFocus};
use crate::ui::selection::{token_infos, visible_tokens, Selection, VisibleTokens};
use crate::ui::support::figure;
use crate::ui::support::head_links::{self, HeadRows, KeyRuns, Link};
use crate::ui::support::lines::LineBatch;
use crate::ui::support::palette::{head_color, with_weight};

pub const ROW_HEIGHT: f32 = 22.0;
const COLUMN_WIDTH: f32 = 150.0;
const GAP: f32 = 260.0;
const MIN_GAP: f32 = 120.0;
/// Lines fainter than this are not drawn (invisible anyway, and costly at 512 tokens).
pub const MIN_VISIBLE_WEIGHT: f32 = 0.01;
/// A head draws at most this many lines a frame (its strongest): only a
/// contrast that lifts every weight of a long input reaches it.
const MAX_LINES_PER_HEAD: usize = 4000;

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
    show_with(ui, result, sel, focus, panel, None)
}

/// [`show`] with one link `(query, key)` drawn bold (the neuron panel's
/// hovered key row).
pub fn show_with(
    ui: &mut egui::Ui,
    result: &AttentionResult,
    sel: &Selection,
    focus: Option<TokenFocus>,
    panel: Panel,
    highlight: Option<(usize, usize)>,
) -> Vec<Intent> {
    let maps = &result.attentions;
    if maps.layers == 0 || sel.layer >= maps.layers {
        return Vec::new();
    }
    let infos = token_infos(&result.tokens, &result.token_type_ids);
    let view = HeadDrawing {
        result,
        sel,
        focus,
        panel,
        visible: visible_tokens(&infos, sel.filter, sel.hide_special),
        heads: (0..maps.heads).filter(|&h| sel.head_on(h)).collect(),
        highlight,
    };
    let rows = view.visible.queries.len().max(view.visible.keys.len());
    let mut intents = Vec::new();
    let mut hovered = None;
    if figure::only(ui.ctx()) {
        head_legend(ui, sel.layer, &view.heads);
    }
    egui::ScrollArea::both()
        .id_salt(panel.id)
        .auto_shrink([false, false])
        .show(ui, |ui| {
            let columns = Columns::allocate(ui, rows);
            let painter = ui.painter_at(ui.clip_rect());
            view.lines(&painter, &columns, ui.clip_rect());
            for side in [Side::Query, Side::Key] {
                view.tokens(ui, &painter, &columns, side, &mut intents, &mut hovered);
            }
        });
    intents.push(Intent::Hover(hovered));
    intents
}

/// The figure's legend when the controls are left out: the layer and each
/// shown head's colour.
fn head_legend(ui: &mut egui::Ui, layer: usize, heads: &[usize]) {
    let row = ui.horizontal(|ui| {
        ui.label(format!("Layer {layer}:"));
        for &h in heads {
            let (swatch, _) = ui.allocate_exact_size(Vec2::splat(12.0), Sense::hover());
            ui.painter().rect_filled(swatch, 2.0, head_color(h));
            ui.label(format!("head {h}"));
        }
    });
    figure::mark(ui.ctx(), row.response.rect);
}

/// The left (query) or right (key) column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Query,
    Key,
}

/// Where the two columns are on screen.
struct Columns {
    area: Rect,
    left_x: f32,
    right_x: f32,
}

impl Columns {
    fn allocate(ui: &mut egui::Ui, rows: usize) -> Columns {
        // The lines' span shrinks (to a point) when the view is narrow.
        let gap = (ui.available_width() - 2.0 * COLUMN_WIDTH - 40.0).clamp(MIN_GAP, GAP);
        let size = Vec2::new(
            2.0 * COLUMN_WIDTH + gap + 40.0,
            rows as f32 * ROW_HEIGHT + 20.0,
        );
        let (area, _) = ui.allocate_exact_size(size, Sense::hover());
        figure::mark(ui.ctx(), area.intersect(ui.clip_rect()));
        let left_x = area.left() + COLUMN_WIDTH;
        Columns {
            area,
            left_x,
            right_x: left_x + gap,
        }
    }

    fn y_of(&self, row: usize) -> f32 {
        self.area.top() + 10.0 + (row as f32 + 0.5) * ROW_HEIGHT
    }

    /// The rows whose label is inside `clip`.
    fn rows_in(&self, clip: Rect) -> std::ops::RangeInclusive<usize> {
        let row_at = |y: f32| ((y - self.area.top() - 10.0) / ROW_HEIGHT).max(0.0);
        (row_at(clip.top()).floor() as usize)..=(row_at(clip.bottom()).ceil() as usize)
    }

    /// Where a token's text goes: right-aligned left of the lines for
    /// queries, left-aligned right of them for keys.
    fn label_anchor(&self, side: Side, row: usize) -> (Pos2, Align2) {
        let y = self.y_of(row);
        match side {
            Side::Query => (Pos2::new(self.left_x - 6.0, y), Align2::RIGHT_CENTER),
            Side::Key => (Pos2::new(self.right_x + 6.0, y), Align2::LEFT_CENTER),
        }
    }

    /// A token label's clickable rectangle.
    fn token_rect(&self, side: Side, row: usize) -> Rect {
        let y = self.y_of(row);
        let (left, right) = match side {
            Side::Query => (self.area.left(), self.left_x),
            Side::Key => (self.right_x, self.right_x + COLUMN_WIDTH),
        };
        Rect::from_min_max(
            Pos2::new(left, y - ROW_HEIGHT / 2.0),
            Pos2::new(right, y + ROW_HEIGHT / 2.0),
        )
    }
}

/// One frame's head view: what to draw, computed once.
struct HeadDrawing<'a> {
    result: &'a AttentionResult,
    sel: &'a Selection,
    focus: Option<TokenFocus>,
    panel: Panel<'a>,
    visible: VisibleTokens,
    heads: Vec<usize>,
    highlight: Option<(usize, usize)>,
}

impl HeadDrawing<'_> {
    /// Lines, one colour per head; only those with an end on screen, which
    /// keeps 512-token inputs smooth while scrolling: the query rows on
    /// screen are walked whole, the others only across the key rows on screen.
    fn lines(&self, painter: &egui::Painter, columns: &Columns, clip: Rect) {
        let on_screen = columns.rows_in(clip);
        let (nq, nk) = (self.visible.queries.len(), self.visible.keys.len());
        let rows = *on_screen.start()..on_screen.end().saturating_add(1);
        let (q_rows, k_rows) = (
            rows.start.min(nq)..rows.end.min(nq),
            rows.start.min(nk)..rows.end.min(nk),
        );
        let runs = KeyRuns::new(&self.visible.keys);
        let renormalize = self.sel.hide_special && self.sel.renormalize;
        let contrast = self.sel.contrast;
        let mut lines = LineBatch::new(clip);
        let mut links: Vec<Link> = Vec::new();
        for &head in &self.heads {
            let layer_head = (self.sel.layer, head);
            let maps = &self.result.attentions;
            let rows = HeadRows::new(
                maps,
                layer_head,
                &self.visible,
                &runs,
                renormalize,
                self.focus,
            );
            let head_max = if contrast.per_head { rows.max() } else { 1.0 };
            if head_max <= 0.0 {
                continue;
            }
            let min_weight = contrast.min_weight(MIN_VISIBLE_WEIGHT, head_max);
            links.clear();
            rows.walk(q_rows.clone(), 0..nk, min_weight, &mut links);
            let off_screen = (0..q_rows.start).chain(q_rows.end..nq);
            rows.walk(off_screen, k_rows.clone(), min_weight, &mut links);
            head_links::shown(&mut links, contrast, head_max, MAX_LINES_PER_HEAD);
            let color = head_color(head);
            for &(qi, ki, opacity) in &links {
                lines.add(
                    Pos2::new(columns.left_x + 6.0, columns.y_of(qi as usize)),
                    Pos2::new(columns.right_x - 6.0, columns.y_of(ki as usize)),
                    2.0,
                    with_weight(color, opacity),
                );
            }
        }
        painter.add(lines.into_shape());
        self.highlighted(painter, columns);
    }

    /// The highlighted link, bold in the first shown head's colour.
    fn highlighted(&self, painter: &egui::Painter, columns: &Columns) {
        let Some((q, k)) = self.highlight else {
            return;
        };
        let row = |list: &[usize], t: usize| list.iter().position(|&x| x == t);
        let (Some(qi), Some(ki)) = (row(&self.visible.queries, q), row(&self.visible.keys, k))
        else {
            return;
        };
        let color = self.heads.first().map_or(Color32::GRAY, |&h| head_color(h));
        let ends = [
            Pos2::new(columns.left_x + 6.0, columns.y_of(qi)),
            Pos2::new(columns.right_x - 6.0, columns.y_of(ki)),
        ];
        painter.line_segment(ends, Stroke::new(6.0, Color32::from_black_alpha(90)));
        painter.line_segment(ends, Stroke::new(3.5, color));
    }

    /// One column's token labels on screen (interactive), with the focused
    /// token's weights as blocks.
    fn tokens(
        &self,
        ui: &mut egui::Ui,
        painter: &egui::Painter,
        columns: &Columns,
        side: Side,
        intents: &mut Vec<Intent>,
        hovered: &mut Option<TokenFocus>,
    ) {
        let list = match side {
            Side::Query => &self.visible.queries,
            Side::Key => &self.visible.keys,
        };
        // Only the labels on screen: they are what can be seen, hovered or clicked.
        let on_screen = columns.rows_in(ui.clip_rect());
        let (first, last) = (*on_screen.start(), *on_screen.end());
        let shown = list.iter().enumerate().skip(first).take(last + 1 - first);
        for (row, &t) in shown {
            let rect = columns.token_rect(side, row);
            let this = match side {
                Side::Query => TokenFocus::Query(t),
                Side::Key => TokenFocus::Key(t),
            };
            let response = self.token_response(ui, rect, side, t);
            if response.hovered() {
                *hovered = Some(this);
            }
            if response.clicked() {
                // The app unpins a token clicked again; comparing with
                // `focus` here would unpin the token the pointer hovers.
                intents.push(Intent::Pin(Some(this)));
            }
            response.context_menu(|ui| {
                if ui.button("Find similar in data").clicked() {
                    intents.push(Intent::FindSimilar(t));
                    ui.close();
                }
            });
            if let Some(focus) = self.focus {
                draw_blocks(
                    painter,
                    rect,
                    side == Side::Query,
                    &self.weights_to(focus, side, t),
                );
            }
            let color = if self.focus == Some(this) {
                ui.visuals().strong_text_color()
            } else {
                ui.visuals().text_color()
            };
            let (pos, align) = columns.label_anchor(side, row);
            let font = FontId::proportional(14.0);
            painter.text(pos, align, &self.result.tokens[t], font, color);
        }
    }

    /// The token's interaction, with its accessible label.
    fn token_response(&self, ui: &egui::Ui, rect: Rect, side: Side, t: usize) -> egui::Response {
        let side_name = match side {
            Side::Query => "query",
            Side::Key => "key",
        };
        let id = ui
            .scope_id()
            .with((self.panel.id, "head-token", side == Side::Key, t));
        let response = ui.interact(rect, id, Sense::click());
        let label = format!(
            "{}{side_name} token {t}: {}",
            self.panel.label_prefix, self.result.tokens[t]
        );
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
        response
    }

    /// Each shown head's weight between the focus and token `t` on `side`.
    fn weights_to(&self, focus: TokenFocus, side: Side, t: usize) -> Vec<(usize, f32)> {
        let maps = &self.result.attentions;
        let layer = self.sel.layer;
        self.heads
            .iter()
            .map(|&h| {
                let w = match (focus, side) {
                    (TokenFocus::Query(q), Side::Key) => maps.get(layer, h, q, t),
                    (TokenFocus::Key(k), Side::Query) => maps.get(layer, h, t, k),
                    _ => 0.0,
                };
                (h, w)
            })
            .collect()
    }
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
