//! The compare view's head importance before and after fine-tuning: over a
//! data file (the Explain view's importance file, else the training view's),
//! both classifiers' layers × heads maps side by side, shaded per layer, raw
//! values on hover, and the heads whose importance grew most. Computed on the
//! model worker, cancellable, with progress per side.

use std::sync::atomic::Ordering;

use egui::{RichText, Sense, Vec2};

use crate::compare::{importance_gains, BeforeAfter, Side};
use crate::explain::HeadImportance;
use crate::ui::explain::importance::request;
use crate::ui::intent::Intent;
use crate::ui::support::head_map::{self, HeadMap};
use crate::ui::support::palette::head_color;
use crate::ui::support::progress;
use crate::ui::training::form::TrainForm;
use crate::ui::worker::{CancelFlag, Request, WorkerHandle};

/// Heads listed as the ones the task came to rely on.
const GAINS_LISTED: usize = 5;

type Answer = Result<BeforeAfter<HeadImportance>, String>;

struct Running {
    cancel: CancelFlag,
    /// Rows done on a side, of all.
    progress: Option<(Side, usize, usize)>,
}

#[derive(Default)]
pub struct ImportanceSides {
    running: Option<Running>,
    /// The data file and the outcome of the last run.
    pub result: Option<(String, Answer)>,
    /// Compute as soon as the view is shown (`gui --view compare --train-data`).
    pub compute_on_open: bool,
}

impl ImportanceSides {
    /// Computing, or about to.
    pub fn running(&self) -> bool {
        self.running.is_some() || self.compute_on_open
    }

    pub fn progress(&mut self, side: Side, done: usize, total: usize) {
        if let Some(r) = &mut self.running {
            r.progress = Some((side, done, total));
        }
    }

    /// The worker's answer; dropped when the models changed since it was asked.
    pub fn finished(&mut self, source: String, result: Answer) {
        if self.running.take().is_some() {
            self.result = Some((source, result));
        }
    }

    /// A new base or tuned model: a run in progress is stopped, the maps go.
    pub fn clear(&mut self) {
        if let Some(r) = self.running.take() {
            r.cancel.0.store(true, Ordering::Relaxed);
        }
        self.result = None;
    }

    fn compute(&mut self, data: &DataSource, worker: &mut WorkerHandle) {
        match request(data.path, data.max_rows, data.train) {
            Ok(req) => {
                let cancel = req.cancel.clone();
                worker.send(Request::CompareImportance(req));
                self.running = Some(Running {
                    cancel,
                    progress: None,
                });
                self.result = None;
            }
            Err(why) => self.result = Some((String::new(), Err(why))),
        }
    }
}

/// The data file the maps are computed over.
pub struct DataSource<'a> {
    pub path: &'a str,
    pub max_rows: usize,
    /// Its column mapping, when it is the training view's file.
    pub train: &'a TrainForm,
}

/// Draw the section; a head picked on a map or in the list.
pub fn show(
    ui: &mut egui::Ui,
    state: &mut ImportanceSides,
    data: &DataSource,
    selected: (usize, usize),
    worker: &mut WorkerHandle,
) -> Vec<Intent> {
    let mut intents = Vec::new();
    if std::mem::take(&mut state.compute_on_open) {
        state.compute(data, worker);
    }
    ui.label(RichText::new("Head importance before and after fine-tuning").strong());
    let path = data.path.trim();
    let over = if path.is_empty() {
        "a labelled data file (choose one in the Training view or the Explain view)".to_string()
    } else {
        format!("the first {} rows of {path}", data.max_rows)
    };
    ui.label(format!(
        "Michel et al. 2019: |∂loss/∂gate| over {over}, for the classifier before \
         fine-tuning and the tuned one."
    ));
    let figure_only = crate::ui::support::figure::only(ui.ctx());
    ui.horizontal(|ui| match &state.running {
        _ if figure_only => {}
        None => {
            if ui.button("Compute importance before and after").clicked() {
                state.compute(data, worker);
            }
        }
        Some(running) => {
            if ui.button("Cancel importance").clicked() {
                running.cancel.0.store(true, Ordering::Relaxed);
            }
            progress(ui, running);
        }
    });
    match &state.result {
        None => {}
        Some((_, Err(e))) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        Some((source, Ok(sides))) => maps(ui, source, sides, selected, &mut intents),
    }
    intents
}

fn progress(ui: &mut egui::Ui, running: &Running) {
    match running.progress {
        Some((side, done, total)) => {
            let prefix = format!("{}: ", side.name());
            progress::rows(ui, Some((done, total)), &prefix, 220.0)
        }
        None => progress::rows(ui, None, "", 220.0),
    }
}

fn maps(
    ui: &mut egui::Ui,
    source: &str,
    sides: &BeforeAfter<HeadImportance>,
    selected: (usize, usize),
    intents: &mut Vec<Intent>,
) {
    let rows = [&sides.before, &sides.after]
        .into_iter()
        .flatten()
        .find_map(|r| r.as_ref().ok())
        .map_or(0, |r| r.rows);
    ui.label(format!("Over {rows} rows of {source}."));
    ui.label(
        "Each map is normalised per layer on screen: a layer's most important head is \
         darkest, so shades compare heads within a layer of one map. Hover a head for \
         its raw importance; click it to show it in the views below.",
    );
    ui.columns(2, |cols| {
        for (col, side) in cols.iter_mut().zip([Side::Before, Side::After]) {
            side_map(col, sides, side, selected, intents);
        }
    });
    if let (Some(Ok(before)), Some(Ok(after))) = (&sides.before, &sides.after) {
        gains(ui, before, after, intents);
    }
}

fn side_map(
    ui: &mut egui::Ui,
    sides: &BeforeAfter<HeadImportance>,
    side: Side,
    selected: (usize, usize),
    intents: &mut Vec<Intent>,
) {
    let title = match side {
        Side::Before => format!("Before ({})", sides.before_source),
        Side::After => "After (tuned)".to_string(),
    };
    ui.label(RichText::new(title).strong());
    let importance = match sides.side(side) {
        None => {
            ui.label(match side {
                Side::Before => "No classifier before fine-tuning.",
                Side::After => "The tuned model has no classifier.",
            });
            return;
        }
        Some(Err(e)) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
            return;
        }
        Some(Ok(importance)) => importance,
    };
    let shown = importance.normalised_per_layer();
    let shade = |l: usize, h: usize| shown.get(l, h);
    let name = side.name();
    let hover = |l: usize, h: usize| {
        format!(
            "{name}: layer {l}, head {h}: importance {:.4} ({:.0}% of the layer's most important) — click to select",
            importance.get(l, h),
            shown.get(l, h) * 100.0
        )
    };
    let label = format!("Head importance {name}");
    let clicked = head_map::show(
        ui,
        &HeadMap {
            layers: importance.layers,
            heads: importance.heads,
            shade: &shade,
            hover: &hover,
            selected: Some(selected),
            label: &label,
        },
    );
    if let Some((layer, head)) = clicked {
        intents.push(Intent::CompareHead { layer, head });
    }
}

/// The heads whose raw importance grew most.
fn gains(
    ui: &mut egui::Ui,
    before: &HeadImportance,
    after: &HeadImportance,
    intents: &mut Vec<Intent>,
) {
    ui.label(RichText::new("Heads the task came to rely on").strong());
    let grown: Vec<(usize, usize, f32)> = importance_gains(before, after)
        .into_iter()
        .filter(|g| g.2 > 0.0)
        .take(GAINS_LISTED)
        .collect();
    if grown.is_empty() {
        ui.label("No head's importance grew.");
        return;
    }
    ui.label("The largest increases in raw importance, after − before:");
    for (layer, head, gain) in grown {
        let text = format!(
            "layer {layer}, head {head}: {gain:+.4} ({:.4} → {:.4})",
            before.get(layer, head),
            after.get(layer, head)
        );
        ui.horizontal(|ui| {
            let (swatch, _) = ui.allocate_exact_size(Vec2::splat(12.0), Sense::hover());
            ui.painter().rect_filled(swatch, 2.0, head_color(head));
            if ui.link(text).clicked() {
                intents.push(Intent::CompareHead { layer, head });
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_after_the_models_changed_is_dropped() {
        let mut state = ImportanceSides {
            running: Some(Running {
                cancel: CancelFlag::default(),
                progress: None,
            }),
            ..Default::default()
        };
        let cancel = state.running.as_ref().map(|r| r.cancel.clone());
        state.progress(Side::Before, 2, 8);
        assert!(state.running());
        state.clear();
        assert!(
            cancel.is_some_and(|c| c.0.load(Ordering::Relaxed)),
            "cancelled"
        );
        state.finished("data.tsv".into(), Err("cancelled".into()));
        assert!(state.result.is_none(), "a stale answer is not shown");
        assert!(!state.running());
    }
}
