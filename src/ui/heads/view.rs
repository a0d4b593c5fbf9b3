//! Drawing the Heads view: the run's controls, the maps (base, and tuned
//! beside it), the baselines, and the selected head's rows.

use egui::RichText;

use super::{DataChoice, HeadsAction, HeadsState, Measure};
use crate::ui::support::head_map::{self, HeadMap};
use crate::ui::support::progress;
use crate::ui::worker::{HeadsAnswer, HeadsOutcome};

/// Rows listed under a selected head.
const LISTED: usize = 200;

pub fn show(ui: &mut egui::Ui, state: &mut HeadsState) -> Vec<HeadsAction> {
    let mut actions = Vec::new();
    ui.label(RichText::new("What each head does, over a whole data file").strong());
    ui.label(
        "Clark et al. 2019: the share of each head's attention that goes to [CLS], [SEP], \
         punctuation, the token itself or its neighbours, its entropy; and how often a head's \
         pronoun attends most to the right antecedent.",
    );
    if !crate::ui::support::figure::only(ui.ctx()) {
        controls(ui, state, &mut actions);
    }
    egui::ScrollArea::vertical()
        .id_salt("heads-view-scroll")
        .auto_shrink([false, false])
        .show(ui, |ui| match &state.result {
            None => {}
            Some((_, _, Err(e))) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            Some((measure, source, Ok(answer))) => {
                results(ui, *measure, source, answer, state.selected, &mut actions)
            }
        });
    actions
}

fn controls(ui: &mut egui::Ui, state: &mut HeadsState, actions: &mut Vec<HeadsAction>) {
    ui.horizontal(|ui| {
        ui.label("Data");
        egui::ComboBox::from_id_salt("heads-data")
            .selected_text(state.data.label())
            .show_ui(ui, |ui| {
                for choice in DataChoice::ALL {
                    ui.selectable_value(&mut state.data, choice, choice.label());
                }
            });
        if state.data == DataChoice::Other {
            let field = ui.add(
                egui::TextEdit::singleline(&mut state.path)
                    .desired_width(260.0)
                    .hint_text("TSV/CSV (a text column for coreference), or .txt"),
            );
            field.widget_info(|| {
                egui::WidgetInfo::labeled(egui::Role::TextInput, true, "Heads data file")
            });
        }
        if ui.button("Browse…").clicked() {
            actions.push(HeadsAction::Browse);
        }
    });
    ui.horizontal(|ui| {
        ui.label("Show");
        egui::ComboBox::from_id_salt("heads-measure")
            .selected_text(state.measure.label())
            .show_ui(ui, |ui| {
                for m in Measure::ALL {
                    ui.selectable_value(&mut state.measure, m, m.label());
                }
            });
        let name = "Rows at most";
        ui.label(name);
        let rows = ui.add(egui::DragValue::new(&mut state.max_rows).range(1..=1_000_000));
        rows.widget_info(|| egui::WidgetInfo::labeled(egui::Role::SpinButton, true, name));
        ui.label("Precision");
        crate::ui::support::precision::combo(ui, "Heads precision", &mut state.precision);
        match &state.running {
            None => {
                if ui.button("Run over the rows").clicked() {
                    actions.push(HeadsAction::Run);
                }
            }
            Some(running) => {
                if ui.button("Cancel").clicked() {
                    actions.push(HeadsAction::Cancel);
                }
                let (prefix, progress) = match running.progress {
                    Some((tuned, done, total)) => (
                        if tuned { "tuned: " } else { "base: " },
                        Some((done, total)),
                    ),
                    None => ("", None),
                };
                progress::rows(ui, progress, prefix, 200.0);
            }
        }
    });
}

/// A map's `[layer][head]` values and the range it is shaded over.
type Shown<'a> = (&'a Vec<Vec<f64>>, (f64, f64));

/// The value a map shows for each head, and the range it is shaded over
/// (lightest at the lowest value, darkest at the highest).
fn values(outcome: &HeadsOutcome, measure: Measure) -> Option<Shown<'_>> {
    let matrix = match (outcome, measure) {
        (HeadsOutcome::Coreference(c), _) => &c.accuracy,
        (HeadsOutcome::Statistics(s), Measure::Statistic(i)) => {
            s.get(crate::dataset::stats::NAMES[i])?
        }
        (HeadsOutcome::Statistics(_), Measure::Coreference) => return None,
    };
    let all = || matrix.iter().flatten().copied();
    let (min, max) = (
        all().fold(f64::INFINITY, f64::min),
        all().fold(f64::NEG_INFINITY, f64::max),
    );
    Some((matrix, (min, max)))
}

fn results(
    ui: &mut egui::Ui,
    measure: Measure,
    source: &str,
    answer: &HeadsAnswer,
    selected: Option<(usize, usize)>,
    actions: &mut Vec<HeadsAction>,
) {
    let rows = match &answer.base {
        HeadsOutcome::Coreference(c) => c.rows,
        HeadsOutcome::Statistics(s) => s.rows,
    };
    let skipped = if answer.skipped > 0 {
        format!(" ({} bad rows left out)", answer.skipped)
    } else {
        String::new()
    };
    let products = answer.precision.caption();
    ui.label(format!(
        "{} over {rows} rows of {source}{skipped}{products}. Click a head to list its rows.",
        measure.label()
    ));
    if let HeadsOutcome::Coreference(c) = &answer.base {
        let best: Vec<String> = c
            .best
            .iter()
            .map(|b| format!("{}-{} {:.1}%", b.layer, b.head, b.accuracy * 100.0))
            .collect();
        ui.label(format!(
            "Best heads (layer-head): {}. Baselines: nearest candidate {:.1}%, chance {:.1}%.",
            best.join(", "),
            c.baselines.nearest * 100.0,
            c.baselines.chance * 100.0
        ));
    }
    ui.horizontal_top(|ui| {
        let sides = [
            ("Base model", Some(&answer.base)),
            ("Tuned model", answer.tuned.as_ref()),
        ];
        for (name, outcome) in sides {
            let Some((matrix, (min, max))) = outcome.and_then(|o| values(o, measure)) else {
                continue;
            };
            ui.vertical(|ui| {
                ui.strong(name);
                ui.label(format!("light {min:.3} → dark {max:.3}"));
                let shade =
                    |l: usize, h: usize| ((matrix[l][h] - min) / (max - min).max(1e-12)) as f32;
                let hover =
                    |l: usize, h: usize| format!("layer {l}, head {h}: {:.4}", matrix[l][h]);
                let label = format!("{name} heads map");
                let map = HeadMap {
                    layers: matrix.len(),
                    heads: matrix.first().map_or(0, Vec::len),
                    shade: &shade,
                    hover: &hover,
                    selected,
                    label: &label,
                };
                if let Some((layer, head)) = head_map::show(ui, &map) {
                    actions.push(HeadsAction::SelectHead { layer, head });
                }
            });
            ui.add_space(16.0);
        }
        if let (Some(tuned), Some((base, _))) = (&answer.tuned, values(&answer.base, measure)) {
            if let Some((after, _)) = values(tuned, measure) {
                changed(ui, base, after);
            }
        }
    });
    if let Some((layer, head)) = selected {
        ui.separator();
        rows_of(ui, answer, (layer, head), actions);
    }
}

/// The heads whose value moved most from base to tuned.
fn changed(ui: &mut egui::Ui, base: &[Vec<f64>], tuned: &[Vec<f64>]) {
    let mut moves: Vec<(usize, usize, f64)> = base
        .iter()
        .zip(tuned)
        .enumerate()
        .flat_map(|(l, (b, t))| {
            b.iter()
                .zip(t)
                .enumerate()
                .map(move |(h, (x, y))| (l, h, y - x))
        })
        .collect();
    moves.sort_by(|a, b| b.2.abs().total_cmp(&a.2.abs()));
    ui.vertical(|ui| {
        ui.strong("Changed most with fine-tuning");
        for (l, h, d) in moves.iter().take(8) {
            ui.label(format!("{l}-{h}: {d:+.3}"));
        }
    });
}

/// The selected head's rows: right or wrong and its choice, or its values per row.
fn rows_of(
    ui: &mut egui::Ui,
    answer: &HeadsAnswer,
    (layer, head): (usize, usize),
    actions: &mut Vec<HeadsAction>,
) {
    ui.horizontal(|ui| {
        ui.strong(format!(
            "Layer {layer}, head {head}: the rows (click one to see it in the head view)"
        ));
        if ui.button("Open this head in the head view").clicked() {
            actions.push(HeadsAction::OpenHead);
        }
    });
    match &answer.base {
        HeadsOutcome::Coreference(c) => {
            let lh = layer * c.heads + head;
            for (detail, choices) in c.details.iter().zip(&c.choices).take(LISTED) {
                let chosen = choices.get(lh).map_or(0, |&c| c as usize);
                let ok = chosen == detail.antecedent;
                // Words, not ✓/✗: the bundled fonts have no glyph for them.
                let mark = if ok { "right:" } else { "wrong:" };
                let text = format!(
                    "{mark} {} — chose \"{}\"{}",
                    detail.text,
                    detail.candidates.get(chosen).map_or("", String::as_str),
                    if ok {
                        String::new()
                    } else {
                        format!(", not \"{}\"", detail.candidates[detail.antecedent])
                    }
                );
                if ui.selectable_label(false, text).clicked() {
                    actions.push(HeadsAction::OpenRow {
                        text_a: detail.text.clone(),
                        text_b: None,
                    });
                }
            }
        }
        HeadsOutcome::Statistics(s) => {
            let lh = layer * s.heads + head;
            for (values, (a, b)) in s.per_row.iter().zip(&answer.rows).take(LISTED) {
                let shown: Vec<String> = crate::dataset::stats::NAMES
                    .iter()
                    .zip(values[lh])
                    .map(|(n, v)| format!("{n} {v:.2}"))
                    .collect();
                let text = format!(
                    "{} {}  ·  {}",
                    a,
                    b.as_deref().unwrap_or(""),
                    shown.join(", ")
                );
                if ui.selectable_label(false, text).clicked() {
                    actions.push(HeadsAction::OpenRow {
                        text_a: a.clone(),
                        text_b: b.clone(),
                    });
                }
            }
        }
    }
}
