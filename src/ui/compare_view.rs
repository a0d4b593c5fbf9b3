//! The compare view: base and tuned model on the same input. A layers × heads
//! map of how much each head changed, the most-changed heads, linked head
//! views side by side, the attention difference, the predictions before
//! and after fine-tuning, and (`explain.rs`, `importance.rs`) explanations
//! and head importance before and after.

pub mod explain;
pub mod importance;

use egui::{RichText, Sense, Vec2};

use crate::compare::{self, Comparison, HeadChanges};
use crate::engine::{AttentionResult, ClassifyResult, MaskResult};
use crate::ui::head_view::{self, Panel};
use crate::ui::intent::{Intent, TokenFocus};
use crate::ui::matrix_view;
use crate::ui::selection::{token_infos, visible_tokens, Selection};
use crate::ui::support::head_map::{self, HeadMap};
use crate::ui::support::palette::{diverging, head_color};
use crate::ui::worker::{TunedInfo, WorkerHandle};
use explain::{ExplainSides, SidesInput};
use importance::{DataSource, ImportanceSides};

/// The compare view's explanations and head importance, before and after.
#[derive(Default)]
pub struct BeforeAfterState {
    pub explain: ExplainSides,
    pub importance: ImportanceSides,
}

impl BeforeAfterState {
    /// A new base or tuned model (or epoch): what was computed is out of date.
    pub fn models_changed(&mut self) {
        self.explain.clear();
        self.importance.clear();
    }

    /// Nothing is being computed (screenshots wait for it).
    pub fn settled(&self) -> bool {
        self.explain.settled() && !self.importance.running()
    }
}

/// What the before/after sections draw from and send with.
pub struct BeforeAfterInput<'a> {
    pub state: &'a mut BeforeAfterState,
    pub sides: SidesInput<'a>,
    pub data: DataSource<'a>,
    pub worker: &'a mut WorkerHandle,
}

/// What the change map shows.
pub struct Changes<'a> {
    /// Averaged over a data file: `(description, result)`, when computed.
    pub mean: Option<(&'a str, &'a Result<HeadChanges, String>)>,
    pub use_mean: bool,
}

pub struct CompareInput<'a> {
    pub base_name: &'a str,
    pub base: &'a AttentionResult,
    pub base_masks: Option<&'a [MaskResult]>,
    pub tuned: Option<&'a TunedInfo>,
    pub comparison: Option<&'a Comparison>,
    pub changes: Changes<'a>,
    pub sel: &'a Selection,
    pub focus: Option<TokenFocus>,
    /// Explanations and head importance before and after (absent: not drawn).
    pub before_after: Option<BeforeAfterInput<'a>>,
}

pub fn show(ui: &mut egui::Ui, mut input: CompareInput) -> Vec<Intent> {
    let mut intents = Vec::new();
    let Some(tuned) = input.tuned else {
        ui.heading("No tuned model to compare with");
        ui.label("Fine-tune one in the Training view, or open a fine-tuned directory there (“Open tuned…”).");
        return intents;
    };
    let figure_only = crate::ui::support::figure::only(ui.ctx());
    ui.horizontal(|ui| {
        if figure_only {
            // A picture names models, never their paths; no slider.
            let (base, tuned_name) = (
                crate::export::model_name(input.base_name),
                crate::export::model_name(&tuned.dir.display().to_string()),
            );
            let epoch = tuned
                .shown_epoch
                .map(|e| format!(", epoch {e}"))
                .unwrap_or_default();
            ui.label(RichText::new(format!("Base: {base} · tuned: {tuned_name}{epoch}")).strong());
            return;
        }
        ui.label(RichText::new(format!("Base: {}", input.base_name)).strong());
        ui.separator();
        ui.label(RichText::new(format!("Tuned: {}", tuned.dir.display())).strong());
        epoch_slider(ui, tuned, &mut intents);
    });
    let Some(cmp) = input.comparison else {
        ui.label("Running both models…");
        return intents;
    };
    let sel = input.sel;
    egui::ScrollArea::vertical()
        .id_salt("compare-scroll")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            ui.columns(3, |cols| {
                change_map(&mut cols[0], cmp, &input.changes, sel, &mut intents);
                ranking(&mut cols[1], cmp, &input.changes, &mut intents);
                predictions(&mut cols[2], cmp, input.base_masks);
            });
            if let Some(extra) = input.before_after.as_mut() {
                ui.separator();
                let state = &mut *extra.state;
                explain::show(ui, &mut state.explain, &mut extra.sides, tuned, extra.worker);
                ui.separator();
                let selected = (sel.layer, sel.focus_head);
                let picked =
                    importance::show(ui, &mut state.importance, &extra.data, selected, extra.worker);
                intents.extend(picked);
            }
            ui.separator();
            let head = sel.focus_head;
            ui.label(
                RichText::new(format!(
                    "Layer {}, head {head}: base (left) and tuned (right); hover or click a token to follow it in both",
                    sel.layer
                ))
                .strong(),
            );
            let rows = input.base.tokens.len() as f32 * head_view::ROW_HEIGHT + 40.0;
            let height = rows.min(460.0);
            let mut hovers = Vec::new();
            ui.columns(2, |cols| {
                for (col, (result, panel)) in cols.iter_mut().zip([
                    (input.base, Panel { id: "compare-base", label_prefix: "base " }),
                    (&cmp.tuned.attention, Panel { id: "compare-tuned", label_prefix: "tuned " }),
                ]) {
                    col.allocate_ui(Vec2::new(col.available_width(), height), |ui| {
                        for intent in head_view::show(ui, result, sel, input.focus, panel) {
                            match intent {
                                Intent::Hover(h) => hovers.push(h),
                                other => intents.push(other),
                            }
                        }
                    });
                }
            });
            // The two views are linked: a hover in either is the hover.
            intents.push(Intent::Hover(hovers.into_iter().flatten().next()));
            ui.separator();
            difference(ui, input.base, &cmp.tuned.attention, sel);
        });
    intents
}

fn epoch_slider(ui: &mut egui::Ui, tuned: &TunedInfo, intents: &mut Vec<Intent>) {
    if tuned.epochs.len() < 2 {
        return;
    }
    ui.separator();
    let last = *tuned.epochs.last().unwrap_or(&0);
    let best = tuned.report.as_ref().and_then(|r| r.best_epoch);
    let mut epoch = tuned.shown_epoch.or(best).unwrap_or(last);
    let slider = egui::Slider::new(&mut epoch, 0..=last).text("Checkpoint epoch");
    if ui.add(slider).changed() {
        intents.push(Intent::ShowEpoch(Some(epoch)));
    }
    let label = match (tuned.shown_epoch, best) {
        (Some(e), _) => format!("showing epoch {e} (0: before training)"),
        (None, Some(b)) => format!("showing the saved checkpoint (best epoch {b})"),
        (None, None) => "showing the saved checkpoint".into(),
    };
    ui.label(label);
    if tuned.shown_epoch.is_some() && ui.button("Saved checkpoint").clicked() {
        intents.push(Intent::ShowEpoch(None));
    }
}

/// The changes the map shows: averaged over data when asked and available.
fn current<'a>(cmp: &'a Comparison, changes: &'a Changes) -> Result<&'a HeadChanges, &'a str> {
    if changes.use_mean {
        return match changes.mean {
            Some((_, Ok(c))) => Ok(c),
            Some((_, Err(e))) => Err(e.as_str()),
            None => Err("averaging over the data…"),
        };
    }
    cmp.changes.as_ref().map_err(String::as_str)
}

fn change_map(
    ui: &mut egui::Ui,
    cmp: &Comparison,
    changes: &Changes,
    sel: &Selection,
    intents: &mut Vec<Intent>,
) {
    ui.label(RichText::new("How much each head changed").strong());
    ui.label(
        "Mean Jensen–Shannon divergence between the base's and the tuned model's attention rows (bits: 0 same, 1 disjoint).",
    );
    let mut use_mean = changes.use_mean;
    let source = match changes.mean {
        Some((what, _)) => format!("Average over {what}"),
        None => "Average over the training data (first 64 rows)".into(),
    };
    if crate::ui::support::figure::only(ui.ctx()) {
        if use_mean {
            ui.label(source);
        }
    } else if ui.checkbox(&mut use_mean, source).changed() {
        intents.push(Intent::UseMeanChanges(use_mean));
    }
    let map = match current(cmp, changes) {
        Ok(map) => map,
        Err(e) => {
            ui.label(e);
            return;
        }
    };
    let max = map.max().max(1e-6);
    ui.label(format!(
        "{}; darkest = {max:.3}",
        if changes.use_mean {
            format!("over {} inputs", map.inputs)
        } else {
            "this input".to_string()
        }
    ));
    let shade = |l: usize, h: usize| map.get(l, h) / max;
    let hover = |l: usize, h: usize| {
        format!(
            "layer {l}, head {h}: {:.4} bits — click to open",
            map.get(l, h)
        )
    };
    let clicked = head_map::show(
        ui,
        &HeadMap {
            layers: map.layers,
            heads: map.heads,
            shade: &shade,
            hover: &hover,
            selected: Some((sel.layer, sel.focus_head)),
            label: "Head change map",
        },
    );
    if let Some((layer, head)) = clicked {
        intents.push(Intent::CompareHead { layer, head });
    }
}

fn ranking(ui: &mut egui::Ui, cmp: &Comparison, changes: &Changes, intents: &mut Vec<Intent>) {
    ui.label(RichText::new("Most changed heads").strong());
    let Ok(map) = current(cmp, changes) else {
        return;
    };
    for (rank, (layer, head, v)) in map.ranked().into_iter().take(10).enumerate() {
        let label = format!("{}. layer {layer}, head {head}: {v:.3}", rank + 1);
        ui.horizontal(|ui| {
            let (swatch, _) = ui.allocate_exact_size(Vec2::splat(12.0), Sense::hover());
            ui.painter().rect_filled(swatch, 2.0, head_color(head));
            if ui.link(label).clicked() {
                intents.push(Intent::CompareHead { layer, head });
            }
        });
    }
}

fn class_bars(ui: &mut egui::Ui, title: &str, result: &ClassifyResult) {
    ui.label(title);
    let mut sorted = result.predictions.clone();
    sorted.sort_by(|a, b| a.label.cmp(&b.label));
    for p in sorted {
        ui.add(
            egui::ProgressBar::new(p.score)
                .desired_width(200.0)
                .text(format!("{} {:.1}%", p.label, p.score * 100.0)),
        );
    }
}

fn predictions(ui: &mut egui::Ui, cmp: &Comparison, base_masks: Option<&[MaskResult]>) {
    ui.label(RichText::new("Predictions before and after").strong());
    match &cmp.before {
        Some(b) => class_bars(ui, &format!("Before ({})", cmp.before_source), b),
        None => {
            ui.label(format!("Before: {}", cmp.before_source));
        }
    }
    match &cmp.after {
        Some(a) => class_bars(ui, "After (tuned)", a),
        None => {
            ui.label("After: the tuned model has no classifier");
        }
    }
    let (Some(before), Some(after)) = (base_masks, cmp.tuned.masks.as_deref()) else {
        if base_masks.is_some() || cmp.tuned.masks.is_some() {
            ui.label("Masked-LM before/after needs an MLM head in both models.");
        }
        return;
    };
    if before.is_empty() {
        ui.label("Mask a token (Masked LM view) to compare predictions.");
        return;
    }
    for (b, a) in before.iter().zip(after) {
        ui.label(format!("Masked position {}:", b.index));
        let top = |m: &MaskResult| {
            m.predictions
                .iter()
                .take(3)
                .map(|p| format!("{} {:.0}%", p.token_str, p.score * 100.0))
                .collect::<Vec<_>>()
                .join(", ")
        };
        ui.label(format!("  before: {}", top(b)));
        ui.label(format!("  after:  {}", top(a)));
    }
}

fn difference(ui: &mut egui::Ui, base: &AttentionResult, tuned: &AttentionResult, sel: &Selection) {
    let head = sel.focus_head;
    let diff = compare::head_difference(&base.attentions, &tuned.attentions, sel.layer, head);
    if diff.is_empty() {
        return;
    }
    let infos = token_infos(&base.tokens, &base.token_type_ids);
    let visible = visible_tokens(&infos, sel.filter, sel.hide_special);
    let seq = base.attentions.seq;
    let values: Vec<f32> = visible
        .queries
        .iter()
        .flat_map(|&q| visible.keys.iter().map(move |&k| (q, k)))
        .map(|(q, k)| diff[q * seq + k])
        .collect();
    let scale = values.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    ui.label(
        RichText::new(format!(
            "Attention difference, tuned − base, layer {}, head {head} (red: more attention after fine-tuning, blue: less; full colour = ±{scale:.3})",
            sel.layer
        ))
        .strong(),
    );
    let size = Vec2::new(ui.available_width(), 520.0);
    matrix_view::grid(
        ui,
        "compare-diff",
        &base.tokens,
        &visible,
        &values,
        &|v| diverging(v / scale),
        size,
    );
}
