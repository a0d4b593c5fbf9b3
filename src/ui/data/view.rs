//! The Data view's layout: the rows and the projection's settings, the
//! colouring, the stage slider with Play, the scatter beside its legend,
//! and the rows under the pointer or in the box drawn.

use egui::{Color32, RichText};

use super::find::FindAction;
use super::scatter;
use super::{ColourBy, DataChoice, DataState};
use crate::dataset::pooled::Pool;
use crate::project::{Point, Projection};
use crate::ui::support::palette;

/// Stages a second while playing.
const PLAY_SPEED: f32 = 0.6;
/// Rows of a box selection listed.
const LISTED: usize = 200;

/// What the view asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum DataAction {
    Run,
    Cancel,
    Browse,
    /// A point or a listed row clicked: make it the input.
    OpenRow {
        text_a: String,
        text_b: Option<String>,
    },
    Find(FindAction),
}

/// Draw the view; `layers` is the model's layer count (the slider's end).
pub fn show(ui: &mut egui::Ui, state: &mut DataState, layers: usize) -> Vec<DataAction> {
    // The hits above and the scatter below can be taller than the window.
    egui::ScrollArea::vertical()
        .id_salt("data-view-scroll")
        .auto_shrink([false, true])
        .show(ui, |ui| contents(ui, state, layers))
        .inner
}

fn contents(ui: &mut egui::Ui, state: &mut DataState, layers: usize) -> Vec<DataAction> {
    let mut actions = Vec::new();
    if let Some(find) = &state.find {
        egui::Frame::group(ui.style()).show(ui, |ui| {
            actions.extend(find.show(ui).into_iter().map(DataAction::Find));
        });
        ui.add_space(6.0);
    }
    let figure_only = crate::ui::support::figure::only(ui.ctx());
    if !figure_only {
        settings(ui, state, layers, &mut actions);
    }
    match &state.result {
        None if state.running() => {}
        None => {
            ui.label("Project the rows to see them: each row's pooled hidden state at the chosen layer, laid out by its first two principal components (with a tuned model open, also each kept epoch, on the tuned model's axes).");
        }
        Some(Err(e)) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        Some(Ok(_)) => actions.extend(projection(ui, state)),
    }
    actions
}

fn settings(
    ui: &mut egui::Ui,
    state: &mut DataState,
    layers: usize,
    actions: &mut Vec<DataAction>,
) {
    ui.horizontal(|ui| {
        ui.label("Rows:");
        ui.radio_value(
            &mut state.data,
            DataChoice::Training,
            "the training view's data file",
        );
        ui.radio_value(&mut state.data, DataChoice::Other, "another file");
        if state.data == DataChoice::Other {
            ui.add(
                egui::TextEdit::singleline(&mut state.path)
                    .hint_text("data file (.tsv, .csv, .txt)")
                    .desired_width(260.0),
            );
            if ui.button("Browse…").clicked() {
                actions.push(DataAction::Browse);
            }
        }
    });
    ui.horizontal(|ui| {
        state.layer = state.layer.min(layers);
        ui.label("Layer");
        ui.add(egui::Slider::new(&mut state.layer, 0..=layers));
        ui.label("Pool");
        egui::ComboBox::from_id_salt("data-pool")
            .selected_text(pool_label(state.pool))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut state.pool, Pool::Cls, pool_label(Pool::Cls));
                ui.selectable_value(&mut state.pool, Pool::Mean, pool_label(Pool::Mean));
            });
        ui.label("Max rows");
        ui.add(
            egui::DragValue::new(&mut state.max_rows)
                .range(2..=100_000)
                .speed(50),
        );
        ui.label("Precision");
        crate::ui::support::precision::combo(ui, "Data precision", &mut state.precision);
        match &state.running {
            Some(running) => {
                ui.spinner();
                if let Some((done, total)) = running.progress.get() {
                    ui.label(format!("{done} of {total} rows"));
                }
                if ui.button("Cancel").clicked() {
                    actions.push(DataAction::Cancel);
                }
            }
            None => {
                if ui.button("Project").clicked() {
                    actions.push(DataAction::Run);
                }
            }
        }
    });
}

fn pool_label(pool: Pool) -> &'static str {
    match pool {
        Pool::Cls => "[CLS]",
        Pool::Mean => "mean of the tokens",
    }
}

/// The stages' layouts and their own variance ratios (one stage when no
/// tuned run was open).
fn stages(p: &Projection) -> Vec<(&[Point], String, [f64; 2])> {
    match &p.checkpoints {
        Some(stages) => stages
            .iter()
            .map(|s| {
                let name = match (s.tuned, s.epoch) {
                    (true, _) => "tuned".to_string(),
                    (false, Some(0)) => "base".to_string(),
                    (false, Some(e)) => format!("epoch {e}"),
                    (false, None) => "checkpoint".to_string(),
                };
                (s.points.as_slice(), name, s.explained_variance_ratio)
            })
            .collect(),
        None => vec![(
            p.points.as_slice(),
            "base".to_string(),
            p.explained_variance_ratio,
        )],
    }
}

fn projection(ui: &mut egui::Ui, state: &mut DataState) -> Vec<DataAction> {
    let mut actions = Vec::new();
    let Some(Ok(projected)) = &state.result else {
        return actions;
    };
    let p = &projected.projection;
    let stages = stages(p);
    let last = stages.len() - 1;
    let has_predictions = p.points.first().is_some_and(|pt| pt.predicted.is_some());
    let figure_only = crate::ui::support::figure::only(ui.ctx());
    ui.horizontal(|ui| {
        if figure_only {
            return;
        }
        ui.label("Colour by");
        for c in ColourBy::ALL {
            let enabled = c == ColourBy::Gold || has_predictions;
            ui.add_enabled_ui(enabled, |ui| {
                ui.radio_value(&mut state.colour, c, c.label())
            })
            .response
            .on_disabled_hover_text("needs a model with a classifier (open a tuned run)");
        }
    });
    if !has_predictions {
        state.colour = ColourBy::Gold;
    }
    if last > 0 && !figure_only {
        ui.horizontal(|ui| {
            let play = if state.playing { "Pause" } else { "Play" };
            if ui.button(play).clicked() {
                if !state.playing && state.stage >= last as f32 {
                    state.stage = 0.0;
                }
                state.playing = !state.playing;
            }
            let shown = &stages[state.stage.round() as usize].1;
            let slider = egui::Slider::new(&mut state.stage, 0.0..=last as f32)
                .show_value(false)
                .text(format!("stage: {shown}"));
            ui.add(slider);
            let names: Vec<&str> = stages.iter().map(|s| s.1.as_str()).collect();
            ui.label(RichText::new(names.join(" → ")).weak());
        });
        if state.playing {
            let dt = ui.input(|i| i.stable_dt).min(0.1);
            state.stage = (state.stage + dt * PLAY_SPEED).min(last as f32);
            if state.stage >= last as f32 {
                state.playing = false;
            }
            ui.ctx().request_repaint();
        }
    }
    let shown = &stages[state.stage.round() as usize];
    let [a, b] = shown.2;
    let products = projected.precision.caption();
    ui.label(format!(
        "{} rows at layer {} ({}{products}); {}: its own PCA axes hold {:.1}% and {:.1}% of the variance{}.",
        p.points.len(),
        p.layer,
        pool_label(p.pool),
        shown.1,
        a * 100.0,
        b * 100.0,
        if last > 0 {
            ", turned onto the tuned model's"
        } else {
            ""
        }
    ));
    let lo = (state.stage.floor() as usize).min(last);
    let hi = (lo + 1).min(last);
    let t = state.stage - lo as f32;
    let at = |pts: &[Point], i: usize| [pts[i].x as f32, pts[i].y as f32];
    let points: Vec<[f32; 2]> = (0..p.points.len())
        .map(|i| {
            let (u, v) = (at(stages[lo].0, i), at(stages[hi].0, i));
            [u[0] + t * (v[0] - u[0]), u[1] + t * (v[1] - u[1])]
        })
        .collect();
    let all: Vec<Vec<[f32; 2]>> = stages
        .iter()
        .map(|(pts, ..)| (0..pts.len()).map(|i| at(pts, i)).collect())
        .collect();
    let bounds = scatter::bounds(&all);
    let shown_stage = stages[state.stage.round() as usize].0;
    let (colours, legend) = colouring(p, shown_stage, state.colour);
    let mut events = scatter::ScatterEvents::default();
    ui.horizontal_top(|ui| {
        let width = (ui.available_width() - 240.0).max(240.0);
        let size = egui::vec2(width, (width * 0.62).clamp(240.0, 560.0));
        events = scatter::show(
            ui,
            state.still,
            size,
            bounds,
            &points,
            &colours,
            &state.selected,
        );
        ui.vertical(|ui| {
            ui.label(RichText::new(state.colour.label()).strong());
            for (name, colour, n) in &legend {
                ui.horizontal(|ui| {
                    let (r, _) =
                        ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
                    ui.painter().rect_filled(r, 2.0, *colour);
                    ui.label(format!("{name} ({n})"));
                });
            }
            ui.add_space(8.0);
            if !figure_only {
                ui.label(
                    RichText::new("Drag a box to list its rows; click a point to open its row.")
                        .weak(),
                );
            }
        });
    });
    let row_text = |i: usize| -> String {
        let (a, b) = &projected.rows[i];
        match b {
            Some(b) => format!("{a}  [SEP]  {b}"),
            None => a.clone(),
        }
    };
    let describe = |i: usize| -> String {
        let pt = &shown_stage[i];
        let gold = pt
            .label
            .as_deref()
            .map(|l| format!(" · gold {l}"))
            .unwrap_or_default();
        let predicted = pt
            .predicted
            .as_deref()
            .map(|l| format!(" · predicted {l}"))
            .unwrap_or_default();
        format!("Row {}{gold}{predicted}: {}", pt.row, row_text(i))
    };
    match events.hovered {
        Some(i) => {
            ui.label(describe(i));
        }
        None if !figure_only => {
            ui.label(RichText::new("Point at a row to read it.").weak());
        }
        None => {}
    }
    if let Some(i) = events.clicked {
        let (a, b) = projected.rows[i].clone();
        actions.push(DataAction::OpenRow {
            text_a: a,
            text_b: b,
        });
    }
    if let Some(boxed) = events.boxed {
        state.selected = boxed;
    }
    if !state.selected.is_empty() {
        ui.separator();
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("{} rows selected", state.selected.len())).strong());
            if ui.button("Clear").clicked() {
                state.selected.clear();
            }
        });
        egui::ScrollArea::vertical()
            .id_salt("data-selected")
            .max_height(220.0)
            .show(ui, |ui| {
                for &i in state.selected.iter().take(LISTED) {
                    if ui
                        .add(
                            egui::Label::new(describe(i))
                                .sense(egui::Sense::click())
                                .truncate(),
                        )
                        .clicked()
                    {
                        let (a, b) = projected.rows[i].clone();
                        actions.push(DataAction::OpenRow {
                            text_a: a,
                            text_b: b,
                        });
                    }
                }
                if state.selected.len() > LISTED {
                    ui.label(format!("… and {} more", state.selected.len() - LISTED));
                }
            });
    }
    actions
}

/// Each point's colour and the legend (name, colour, count).
fn colouring(
    p: &Projection,
    stage: &[Point],
    by: ColourBy,
) -> (Vec<Color32>, Vec<(String, Color32, usize)>) {
    let grey = Color32::from_gray(140);
    match by {
        ColourBy::RightWrong => {
            let mut counts = [0usize; 3];
            let colours = stage
                .iter()
                .map(|pt| match (&pt.label, &pt.predicted) {
                    (Some(g), Some(q)) if g == q => {
                        counts[0] += 1;
                        palette::GREEN
                    }
                    (Some(_), Some(_)) => {
                        counts[1] += 1;
                        palette::RED
                    }
                    _ => {
                        counts[2] += 1;
                        grey
                    }
                })
                .collect();
            let mut legend = vec![
                ("right".to_string(), palette::GREEN, counts[0]),
                ("wrong".to_string(), palette::RED, counts[1]),
            ];
            if counts[2] > 0 {
                legend.push(("no label".to_string(), grey, counts[2]));
            }
            (colours, legend)
        }
        ColourBy::Gold | ColourBy::Predicted => {
            let of = |pt: &Point| -> Option<String> {
                match by {
                    ColourBy::Gold => pt.label.clone(),
                    _ => pt.predicted.clone(),
                }
            };
            // One colour a label for every stage: the labels in sorted order.
            let mut names: Vec<String> = p
                .points
                .iter()
                .filter_map(|pt| pt.label.clone().or_else(|| pt.predicted.clone()))
                .chain(stage.iter().filter_map(of))
                .collect();
            names.sort();
            names.dedup();
            let colour_of = |name: &Option<String>| match name {
                Some(n) => names
                    .iter()
                    .position(|x| x == n)
                    .map_or(grey, palette::head_color),
                None => grey,
            };
            let labels: Vec<Option<String>> = stage.iter().map(of).collect();
            let colours = labels.iter().map(colour_of).collect();
            let mut legend: Vec<(String, Color32, usize)> = names
                .iter()
                .map(|n| {
                    let count = labels.iter().filter(|l| l.as_deref() == Some(n)).count();
                    (n.clone(), colour_of(&Some(n.clone())), count)
                })
                .collect();
            let none = labels.iter().filter(|l| l.is_none()).count();
            if none > 0 {
                legend.push(("no label".to_string(), grey, none));
            }
            (colours, legend)
        }
    }
}
