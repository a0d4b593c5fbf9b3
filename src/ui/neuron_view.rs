//! The neuron view (BertViz's): for one head and one query token, the query
//! vector q, every key vector k, their elementwise product q×k, the dot
//! product q·k, q·k/√d and the softmax over the keys, which is the head's
//! attention row (shown beside it). Bars: blue positive, orange negative.

use egui::{Align2, Color32, FontId, Pos2, Rect, Sense, Stroke, Vec2};

use crate::engine::AttentionResult;
use crate::model::head_mask::Neurons;
use crate::ui::intent::Intent;
use crate::ui::support::palette::{self, head_color, with_weight};

const ROW: f32 = 22.0;
const LABEL: f32 = 110.0;
const NUMBER: f32 = 60.0;
const POSITIVE: Color32 = palette::BLUE;
const NEGATIVE: Color32 = palette::ORANGE;

/// One key's row: q×k, q·k, q·k/√d and the softmax over all keys.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRow {
    pub product: Vec<f32>,
    pub dot: f32,
    pub scaled: f32,
    pub softmax: f32,
}

/// The rows of every key for query token `query`, from the vectors alone.
pub fn key_rows(neurons: &Neurons, query: usize) -> Vec<KeyRow> {
    let q = neurons.query(query);
    let scale = 1.0 / (neurons.dim.max(1) as f64).sqrt();
    let mut rows: Vec<KeyRow> = (0..neurons.tokens)
        .map(|k| {
            let product: Vec<f32> = q.iter().zip(neurons.key(k)).map(|(a, b)| a * b).collect();
            let dot: f64 = product.iter().map(|&p| p as f64).sum();
            KeyRow {
                product,
                dot: dot as f32,
                scaled: (dot * scale) as f32,
                softmax: 0.0,
            }
        })
        .collect();
    let max = rows
        .iter()
        .map(|r| r.scaled as f64)
        .fold(f64::MIN, f64::max);
    let exps: Vec<f64> = rows.iter().map(|r| (r.scaled as f64 - max).exp()).collect();
    let total: f64 = exps.iter().sum();
    for (row, e) in rows.iter_mut().zip(exps) {
        row.softmax = (e / total) as f32;
    }
    rows
}

/// What the panel shows.
pub struct NeuronPanel<'a> {
    /// The token-level analysis (its `neurons`, its attention maps).
    pub result: &'a AttentionResult,
    /// The head the panel asked for.
    pub head: (usize, usize),
    /// The query token.
    pub query: usize,
    /// Key tokens to highlight (the key hovered or pinned in the head view).
    pub highlight: std::ops::Range<usize>,
}

/// Draw the panel; returns the key row under the pointer as an intent.
pub fn show(ui: &mut egui::Ui, panel: &NeuronPanel) -> Vec<Intent> {
    let (layer, head) = panel.head;
    let neurons = panel
        .result
        .neurons
        .as_ref()
        .filter(|n| (n.layer, n.head) == panel.head && n.tokens == panel.result.tokens.len());
    let Some(neurons) = neurons else {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(format!(
                "Reading the queries and keys of layer {layer}, head {head}…"
            ));
        });
        return Vec::new();
    };
    let query = panel.query.min(neurons.tokens.saturating_sub(1));
    let rows = key_rows(neurons, query);
    let attention: Vec<f32> = (0..neurons.tokens)
        .map(|k| panel.result.attentions.get(layer, head, query, k))
        .collect();
    header(ui, panel, neurons, query, &rows, &attention);
    let magnitude = |v: &mut dyn Iterator<Item = &f32>| v.map(|x| x.abs()).fold(1e-12, f32::max);
    let drawing = Drawing {
        panel,
        neurons,
        query,
        rows: &rows,
        attention: &attention,
        // One scale for q and every k, another for the products: bars compare.
        vector_scale: magnitude(&mut neurons.keys.iter().chain(neurons.query(query))),
        product_scale: magnitude(&mut rows.iter().flat_map(|r| r.product.iter())),
    };
    let mut hovered = None;
    egui::ScrollArea::both()
        .id_salt("neuron-view-scroll")
        .auto_shrink([false, false])
        .show(ui, |ui| hovered = drawing.table(ui));
    vec![Intent::NeuronKey(hovered)]
}

fn header(
    ui: &mut egui::Ui,
    panel: &NeuronPanel,
    neurons: &Neurons,
    query: usize,
    rows: &[KeyRow],
    attention: &[f32],
) {
    let token = &panel.result.tokens[query];
    ui.strong(format!(
        "Neuron view: layer {}, head {} (d = {})",
        neurons.layer, neurons.head, neurons.dim
    ));
    ui.label(format!("neuron query {query}: {token}"));
    let gap = rows
        .iter()
        .zip(attention)
        .map(|(r, a)| (r.softmax - a).abs())
        .fold(0.0f32, f32::max);
    ui.label(
        egui::RichText::new(format!(
            "softmax(q·k/√d) over the keys vs the head's attention row: largest difference {gap:.1e}. \
             Pick the query by hovering or clicking a token on the left of the head view."
        ))
        .weak(),
    );
}

/// One frame's table.
struct Drawing<'a> {
    panel: &'a NeuronPanel<'a>,
    neurons: &'a Neurons,
    query: usize,
    rows: &'a [KeyRow],
    attention: &'a [f32],
    vector_scale: f32,
    product_scale: f32,
}

/// Where the table's columns start.
struct Layout {
    origin: Pos2,
    vector: f32,
    dim_width: f32,
}

impl Layout {
    fn x_vector(&self) -> f32 {
        self.origin.x + LABEL
    }
    fn x_product(&self) -> f32 {
        self.x_vector() + self.vector + 12.0
    }
    fn x_number(&self, i: usize) -> f32 {
        self.x_product() + self.vector + 12.0 + i as f32 * NUMBER
    }
    fn width(&self) -> f32 {
        self.x_number(4) - self.origin.x
    }
    fn y_row(&self, row: usize) -> f32 {
        self.origin.y + (row as f32 + 0.5) * ROW
    }
}

impl Drawing<'_> {
    /// The table; returns the key row under the pointer.
    fn table(&self, ui: &mut egui::Ui) -> Option<usize> {
        let dim = self.neurons.dim.max(1);
        let dim_width = (128.0 / dim as f32).clamp(2.0, 10.0);
        let vector = dim_width * dim as f32;
        let probe = Layout {
            origin: Pos2::ZERO,
            vector,
            dim_width,
        };
        let size = Vec2::new(probe.width(), (self.rows.len() + 2) as f32 * ROW);
        let (area, _) = ui.allocate_exact_size(size, Sense::hover());
        let layout = Layout {
            origin: area.min,
            ..probe
        };
        let painter = ui.painter_at(ui.clip_rect());
        self.titles(&painter, &layout, ui.visuals().weak_text_color());
        let q_rect = self.vector_rect(&layout, layout.x_vector(), 1);
        let q = self.neurons.query(self.query);
        bars(&painter, q_rect, q, self.vector_scale, &layout);
        let text = ui.visuals().text_color();
        let font = FontId::proportional(13.0);
        let q_label = format!("q: {}", self.panel.result.tokens[self.query]);
        let q_pos = Pos2::new(layout.x_vector() - 6.0, layout.y_row(1));
        painter.text(q_pos, Align2::RIGHT_CENTER, q_label, font, text);
        let mut hovered = None;
        for k in 0..self.rows.len() {
            if self.key_row(ui, &painter, &layout, k) {
                hovered = Some(k);
            }
        }
        hovered
    }

    fn titles(&self, painter: &egui::Painter, layout: &Layout, color: Color32) {
        let font = FontId::proportional(12.0);
        let y = layout.y_row(0);
        let titles = [
            (layout.x_vector(), "q, k"),
            (layout.x_product(), "q×k"),
            (layout.x_number(0), "q·k"),
            (layout.x_number(1), "q·k/√d"),
            (layout.x_number(2), "softmax"),
            (layout.x_number(3), "attention"),
        ];
        for (x, title) in titles {
            painter.text(
                Pos2::new(x, y),
                Align2::LEFT_CENTER,
                title,
                font.clone(),
                color,
            );
        }
    }

    fn vector_rect(&self, layout: &Layout, x: f32, row: usize) -> Rect {
        Rect::from_center_size(
            Pos2::new(x + layout.vector / 2.0, layout.y_row(row)),
            Vec2::new(layout.vector, ROW - 4.0),
        )
    }

    /// Key `k`'s row (table row `k + 2`); true when the pointer is on it.
    fn key_row(
        &self,
        ui: &mut egui::Ui,
        painter: &egui::Painter,
        layout: &Layout,
        k: usize,
    ) -> bool {
        let row = k + 2;
        let y = layout.y_row(row);
        let rect = Rect::from_center_size(
            Pos2::new(layout.origin.x + layout.width() / 2.0, y),
            Vec2::new(layout.width(), ROW),
        );
        let response = self.row_response(ui, rect, k);
        if !ui.is_rect_visible(rect) {
            return response.hovered();
        }
        if response.hovered() || self.panel.highlight.contains(&k) {
            painter.rect_filled(
                rect,
                2.0,
                ui.visuals().selection.bg_fill.gamma_multiply(0.5),
            );
        }
        let r = &self.rows[k];
        let text = ui.visuals().text_color();
        let font = FontId::proportional(13.0);
        let token = &self.panel.result.tokens[k];
        let label_pos = Pos2::new(layout.x_vector() - 6.0, y);
        painter.text(label_pos, Align2::RIGHT_CENTER, token, font.clone(), text);
        let k_rect = self.vector_rect(layout, layout.x_vector(), row);
        bars(
            painter,
            k_rect,
            self.neurons.key(k),
            self.vector_scale,
            layout,
        );
        let p_rect = self.vector_rect(layout, layout.x_product(), row);
        bars(painter, p_rect, &r.product, self.product_scale, layout);
        // The softmax as a bar behind its number, in the head's colour.
        let bar = Rect::from_min_size(
            Pos2::new(layout.x_number(2) - 2.0, y - ROW / 2.0 + 3.0),
            Vec2::new((NUMBER - 6.0) * r.softmax.clamp(0.0, 1.0), ROW - 6.0),
        );
        let color = head_color(self.neurons.head);
        painter.rect_filled(bar, 1.0, with_weight(color, 0.25 + 0.5 * r.softmax));
        let numbers = [r.dot, r.scaled, r.softmax, self.attention[k]];
        for (i, value) in numbers.into_iter().enumerate() {
            let pos = Pos2::new(layout.x_number(i), y);
            let text = format!("{value:.4}");
            painter.text(
                pos,
                Align2::LEFT_CENTER,
                text,
                font.clone(),
                ui.visuals().text_color(),
            );
        }
        response.hovered()
    }

    /// The row's hover, with its numbers as its accessible label.
    fn row_response(&self, ui: &mut egui::Ui, rect: Rect, k: usize) -> egui::Response {
        let id = ui.scope_id().with(("neuron-row", k));
        let response = ui.interact(rect, id, Sense::hover());
        let r = &self.rows[k];
        let label = format!(
            "neuron row {k}: {}; q·k = {:.6}; q·k/√d = {:.6}; softmax = {:.6}; attention = {:.6}",
            self.panel.result.tokens[k], r.dot, r.scaled, r.softmax, self.attention[k]
        );
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Row, true, &label));
        response
    }
}

/// A vector as one bar per dimension from a mid line: up and blue when
/// positive, down and orange when negative; `scale` is the largest magnitude.
fn bars(painter: &egui::Painter, rect: Rect, values: &[f32], scale: f32, layout: &Layout) {
    let mid = rect.center().y;
    let half = rect.height() / 2.0;
    let mut mesh = egui::epaint::Mesh::default();
    for (i, &v) in values.iter().enumerate() {
        let x = rect.left() + i as f32 * layout.dim_width;
        let h = (v.abs() / scale).min(1.0) * half;
        let (top, bottom, color) = if v >= 0.0 {
            (mid - h, mid, POSITIVE)
        } else {
            (mid, mid + h, NEGATIVE)
        };
        let width = (layout.dim_width - 0.5).max(1.0);
        let bar = Rect::from_min_max(Pos2::new(x, top), Pos2::new(x + width, bottom));
        mesh.add_colored_rect(bar, color);
    }
    painter.add(egui::Shape::mesh(mesh));
    painter.line_segment(
        [Pos2::new(rect.left(), mid), Pos2::new(rect.right(), mid)],
        Stroke::new(0.5, Color32::GRAY),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_follow_the_definition_on_a_hand_computed_case() {
        // d = 4, two tokens: q0 = (1, 2, 0, -1), k0 = (1, 0, 0, 0), k1 = (0, 1, 3, 2).
        let neurons = Neurons {
            layer: 0,
            head: 0,
            tokens: 2,
            dim: 4,
            queries: vec![1.0, 2.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0],
            keys: vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 3.0, 2.0],
        };
        let rows = key_rows(&neurons, 0);
        assert_eq!(rows[1].product, vec![0.0, 2.0, 0.0, -2.0]);
        assert_eq!((rows[0].dot, rows[1].dot), (1.0, 0.0));
        assert_eq!((rows[0].scaled, rows[1].scaled), (0.5, 0.0));
        // softmax(0.5, 0) = (e^0.5, 1) / (e^0.5 + 1)
        let e = 0.5f64.exp();
        assert!((rows[0].softmax as f64 - e / (e + 1.0)).abs() < 1e-7);
        assert!((rows[1].softmax as f64 - 1.0 / (e + 1.0)).abs() < 1e-7);
    }
}
