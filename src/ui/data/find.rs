//! *Find similar in data*: the index build's progress, the layer switch,
//! and the hits of the base model and the tuned one side by side, each a
//! row of text with the match highlighted, with a histogram of the hit
//! rows' labels.

use std::collections::BTreeMap;
use std::sync::Arc;

use egui::text::{LayoutJob, TextFormat};
use egui::{Color32, RichText};

use super::jobs::{self, Cache, Found};
use super::{FindState, Running};
use crate::index::{Hit, SearchResult};

/// What the panel asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum FindAction {
    /// Search another layer.
    Layer(usize),
    /// Open a hit's row in the head view.
    OpenRow {
        text_a: String,
        text_b: Option<String>,
    },
    Close,
    CancelBuild,
}

impl FindState {
    pub(super) fn poll(&mut self, cache: &Arc<Cache>, ctx: &egui::Context) {
        if let Some(done) = self.building.as_ref().and_then(Running::poll) {
            self.building = None;
            match (done, self.pending.take()) {
                (Ok(indexes), Some((models, source))) => {
                    self.indexes = Some((models, source, indexes));
                    self.search(cache, ctx);
                }
                (Ok(_), None) => {}
                (Err(e), _) => self.found = Some(Err(e)),
            }
        }
        if let Some(done) = self.searching.as_ref().and_then(Running::poll) {
            self.searching = None;
            self.found = Some(done);
        }
    }

    pub(super) fn search(&mut self, cache: &Arc<Cache>, ctx: &egui::Context) {
        let Some((models, _, indexes)) = &self.indexes else {
            return;
        };
        let (cache, models, indexes, query) = (
            cache.clone(),
            models.clone(),
            indexes.clone(),
            self.query.clone(),
        );
        self.searching = Some(Running::spawn("search", ctx, move |_, _| {
            jobs::search(
                &cache,
                (&models.base, models.tuned.as_deref()),
                &indexes,
                &query,
            )
        }));
    }

    /// Search the same token at another layer.
    pub(super) fn set_layer(&mut self, layer: usize, cache: &Arc<Cache>, ctx: &egui::Context) {
        self.query.layer = layer;
        self.found = None;
        self.search(cache, ctx);
    }

    pub(super) fn cancel_build(&mut self) {
        if let Some(b) = &self.building {
            b.cancel();
        }
    }

    pub(super) fn show(&self, ui: &mut egui::Ui) -> Vec<FindAction> {
        let mut actions = Vec::new();
        ui.horizontal(|ui| {
            ui.heading(format!("Find similar in data: “{}”", self.token));
            if ui.button("Close").clicked() {
                actions.push(FindAction::Close);
            }
        });
        ui.horizontal(|ui| {
            ui.label("Layer");
            let mut layer = self.query.layer;
            let slider = egui::Slider::new(&mut layer, 0..=self.layers).text("(0: the embeddings)");
            if ui.add(slider).changed() {
                actions.push(FindAction::Layer(layer));
            }
        });
        if let Some(building) = &self.building {
            ui.horizontal(|ui| {
                ui.spinner();
                let text = match building.progress.get() {
                    Some((done, total)) => format!("Indexing the data: {done} of {total} rows…"),
                    None => "Indexing the data…".to_string(),
                };
                ui.label(text);
                if ui.button("Cancel").clicked() {
                    actions.push(FindAction::CancelBuild);
                }
            });
            if let Some((done, total)) = building.progress.get() {
                ui.add(egui::ProgressBar::new(done as f32 / total.max(1) as f32));
            }
            return actions;
        }
        if self.searching.is_some() {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("Searching…");
            });
        }
        match &self.found {
            None => {}
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            Some(Ok(found)) => actions.extend(results(ui, found)),
        }
        actions
    }
}

fn results(ui: &mut egui::Ui, found: &Found) -> Vec<FindAction> {
    let mut actions = Vec::new();
    let sides: Vec<(&str, &SearchResult)> = std::iter::once(("Base model", &found.base))
        .chain(found.tuned.iter().map(|t| ("Tuned model", t)))
        .collect();
    ui.columns(sides.len(), |columns| {
        for (ui, (name, result)) in columns.iter_mut().zip(&sides) {
            ui.label(
                RichText::new(format!(
                    "{name}: top {} at layer {} ({:.1} ms{})",
                    result.hits.len(),
                    result.layer,
                    result.search_ms,
                    result.query.precision.caption()
                ))
                .strong(),
            );
            histogram(ui, &result.hits);
            egui::ScrollArea::vertical()
                .id_salt(("find-hits", *name))
                .max_height(360.0)
                .show(ui, |ui| {
                    for (rank, hit) in result.hits.iter().enumerate() {
                        if hit_row(ui, rank, hit).clicked() {
                            actions.push(FindAction::OpenRow {
                                text_a: hit.row_text.0.clone(),
                                text_b: hit.row_text.1.clone(),
                            });
                        }
                    }
                });
        }
    });
    actions
}

/// Counts of the hit rows' labels as bars.
fn histogram(ui: &mut egui::Ui, hits: &[Hit]) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for hit in hits {
        *counts
            .entry(hit.label.as_deref().unwrap_or("(no label)"))
            .or_default() += 1;
    }
    let most = counts.values().copied().max().unwrap_or(1).max(1);
    for (label, n) in counts {
        ui.horizontal(|ui| {
            ui.add_sized([110.0, 16.0], egui::Label::new(label).truncate());
            let width = 160.0 * n as f32 / most as f32;
            let (rect, _) =
                ui.allocate_exact_size(egui::vec2(width.max(2.0), 12.0), egui::Sense::hover());
            ui.painter()
                .rect_filled(rect, 2.0, ui.visuals().selection.bg_fill);
            ui.label(n.to_string());
        })
        .response
        .on_hover_text(format!("{n} of the hits are in rows labelled {label}"));
    }
}

/// One hit: score, row and the sentence with the matched token highlighted.
fn hit_row(ui: &mut egui::Ui, rank: usize, hit: &Hit) -> egui::Response {
    let mut job = LayoutJob::default();
    let plain = TextFormat {
        color: ui.visuals().text_color(),
        ..Default::default()
    };
    let marked = TextFormat {
        color: Color32::BLACK,
        background: Color32::from_rgb(255, 210, 90),
        ..Default::default()
    };
    job.append(
        &format!("{:>2}. {:.3}  row {}  ", rank + 1, hit.score, hit.row),
        0.0,
        plain.clone(),
    );
    let (start, end) = (hit.chars[0] as usize, hit.chars[1] as usize);
    let chars: Vec<char> = hit.text.chars().collect();
    let piece = |a: usize, b: usize| {
        chars[a.min(chars.len())..b.min(chars.len())]
            .iter()
            .collect::<String>()
    };
    job.append(&piece(0, start), 0.0, plain.clone());
    job.append(&piece(start, end), 0.0, marked);
    job.append(&piece(end, chars.len()), 0.0, plain);
    job.wrap.max_width = ui.available_width();
    let label = ui.add(egui::Label::new(job).sense(egui::Sense::click()));
    let tip = match &hit.label {
        Some(l) => format!(
            "“{}” in the word “{}”; labelled {l}. Click to open the row.",
            hit.token, hit.word
        ),
        None => format!(
            "“{}” in the word “{}”. Click to open the row.",
            hit.token, hit.word
        ),
    };
    label.on_hover_text(tip)
}
