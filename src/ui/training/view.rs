//! The training view: the data (`data_view.rs`: preview, columns, labels,
//! lengths, problems), the hyperparameters (an opened run's, with *Train again with these*), and
//! a run's live progress, warnings, curves, confusion matrix and log (a run
//! that could not be saved offers *Resume*); then the tuned model's
//! save/open/compare actions and the runs panel (`runs_view.rs`).

use std::path::{Path, PathBuf};

use egui::{Color32, RichText};
use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

use crate::train::preview::DataPreview;
use crate::train::{Outcome, Task};
use crate::ui::support::palette::{self, heat};
use crate::ui::training::data_view;
use crate::ui::training::disk::fmt_bytes;
use crate::ui::training::elsewhere_view;
use crate::ui::training::form::TrainForm;
use crate::ui::training::opened::OpenedRun;
use crate::ui::training::run::{RunState, RunStatus};
use crate::ui::training::runs::RunsPanel;
use crate::ui::training::runs_view;
use crate::ui::training::watched::WatchedRun;
use crate::ui::worker::TunedInfo;

/// What the training view asks the app to do.
#[derive(Debug, Clone, PartialEq)]
pub enum TrainAction {
    /// Read the data file (columns guessed again when `guess`).
    LoadData {
        guess: bool,
    },
    BrowseData,
    BrowseDev,
    Start,
    Cancel,
    SaveAs,
    BrowseSave,
    OpenTuned,
    BrowseTuned,
    Compare,
    /// Continue the run kept in this `NAME.partial` directory, and save it.
    Resume(PathBuf),
    /// Open a saved run as the tuned model (and show the compare view).
    OpenRun {
        dir: PathBuf,
        compare: bool,
    },
    /// Ask before deleting this run (its checkpoint, or its `.partial`).
    AskDelete(PathBuf),
    ConfirmDelete,
    /// Do not delete it after all.
    KeepRun,
    RefreshRuns,
    /// Start a run with the opened run's hyperparameters.
    TrainAgain,
    /// Give the form back the hyperparameters the opened run's replaced.
    RestoreForm,
    /// *Run elsewhere…*: write the form's run as a Trainer kit (a folder dialog).
    ExportKit,
    /// *Watch a run…*: follow the Trainer output folder typed in the form.
    WatchRun,
    /// Choose the folder to watch in a dialog.
    BrowseWatch,
    /// Stop following this folder.
    StopWatching(PathBuf),
}

/// Everything the view draws.
pub struct TrainViewState<'a> {
    pub preview: Option<&'a DataPreview>,
    pub preview_error: Option<&'a str>,
    pub run: &'a RunState,
    pub tuned: Option<&'a TunedInfo>,
    /// The rest of the fine-tuning state the view shows (`None`: nothing of it).
    pub message: Option<TuningView<'a>>,
    pub model_ready: bool,
}

/// What the view shows of the fine-tuning state besides the run.
pub struct TuningView<'a> {
    /// Under the tuned model's buttons.
    pub note: Option<Note<'a>>,
    pub runs: &'a RunsPanel,
    /// The run whose hyperparameters are in the form.
    pub opened: Option<&'a OpenedRun>,
    /// The run directory being trained in (neither resumed nor deleted).
    pub active_run: Option<&'a Path>,
    pub tuned_dir: Option<&'a Path>,
    /// Runs followed elsewhere (*Watch a run…*).
    pub watched: &'a [WatchedRun],
}

/// What the tuned-model section says under its buttons.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Note<'a> {
    /// The last save/open outcome.
    Message(&'a str),
    /// *Save as…* is copying on its own thread.
    Saving {
        target: &'a str,
        /// Bytes copied so far, of `total` (0 while unknown).
        copied: u64,
        total: u64,
        elapsed: std::time::Duration,
    },
}

pub fn show(ui: &mut egui::Ui, form: &mut TrainForm, state: &TrainViewState) -> Vec<TrainAction> {
    let mut actions = Vec::new();
    egui::ScrollArea::vertical()
        .id_salt("train-view-scroll")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            data_view::data_section(ui, form, state, &mut actions);
            ui.separator();
            ui.horizontal_top(|ui| {
                ui.vertical(|ui| hyperparameters(ui, form, state, &mut actions));
                ui.add_space(24.0);
                ui.vertical(|ui| confusion(ui, state.run, state));
                ui.add_space(24.0);
                ui.vertical(|ui| {
                    ui.label(RichText::new("Log").strong());
                    egui::ScrollArea::vertical()
                        .id_salt("train-log")
                        .max_height(150.0)
                        .stick_to_bottom(true)
                        .show(ui, |ui| {
                            for line in &state.run.log {
                                ui.add(
                                    egui::Label::new(RichText::new(line).monospace().small())
                                        .wrap(),
                                );
                            }
                        });
                });
            });
            ui.separator();
            run_section(ui, form, state, &mut actions);
            ui.separator();
            elsewhere_view::show(ui, form, state, &mut actions);
            ui.separator();
            tuned_section(ui, form, state, &mut actions);
            if let Some(view) = &state.message {
                ui.separator();
                runs_view::show(ui, form, view, &mut actions);
            }
        });
    actions
}

/// The hyperparameter form, headed by the opened run's name when they are its.
fn hyperparameters(
    ui: &mut egui::Ui,
    form: &mut TrainForm,
    state: &TrainViewState,
    actions: &mut Vec<TrainAction>,
) {
    ui.heading("Hyperparameters");
    let opened = state.message.as_ref().and_then(|m| m.opened);
    if let Some(run) = opened {
        ui.label(if form.has_hyperparameters(&run.config) {
            format!("The hyperparameters of {}", run.name)
        } else {
            format!("Edited: {} was trained with others", run.name)
        });
        ui.horizontal(|ui| {
            let can_start =
                state.model_ready && !state.run.is_active() && !form.data_path.trim().is_empty();
            if ui
                .add_enabled(can_start, egui::Button::new("Train again with these"))
                .on_hover_text("a new run with these hyperparameters on the training file above")
                .on_disabled_hover_text("choose a training file above first")
                .clicked()
            {
                actions.push(TrainAction::TrainAgain);
            }
            if run.stashed.is_some() && ui.button("Restore my settings").clicked() {
                actions.push(TrainAction::RestoreForm);
            }
        });
    }
    ui.add_enabled_ui(!state.run.is_active(), |ui| form.show_hyperparameters(ui));
}

pub(super) fn text_field(
    ui: &mut egui::Ui,
    value: &mut String,
    label: &str,
    hint: &str,
) -> egui::Response {
    let label = label.to_string();
    let response = ui.add(
        egui::TextEdit::singleline(value)
            .desired_width(360.0)
            .hint_text(hint),
    );
    response.widget_info(move || egui::WidgetInfo::labeled(egui::Role::TextInput, true, &label));
    response
}

/// The run's status line and its colour (the theme's for warnings and errors).
fn status_text(run: &RunState, visuals: &egui::Visuals) -> (String, Color32) {
    let (warn, error) = (visuals.warn_fg_color, visuals.error_fg_color);
    match &run.status {
        RunStatus::Idle => ("Not started".into(), Color32::GRAY),
        RunStatus::Running => ("Training…".into(), Color32::from_rgb(40, 120, 200)),
        RunStatus::Cancelling => ("Cancelling…".into(), warn),
        RunStatus::Done(Outcome::Finished) => ("Finished".into(), Color32::from_rgb(40, 150, 60)),
        RunStatus::Done(Outcome::Cancelled) if run.output.is_none() => (
            "Cancelled before the first epoch ended: nothing kept".into(),
            warn,
        ),
        RunStatus::Done(Outcome::Cancelled) => ("Cancelled".into(), warn),
        RunStatus::Done(Outcome::Diverged { step }) => (format!("Diverged at step {step}"), error),
        RunStatus::NotSaved(e) => (format!("not saved: {e}"), error),
        RunStatus::Failed(e) => (format!("Failed: {e}"), error),
    }
}

fn run_section(
    ui: &mut egui::Ui,
    form: &TrainForm,
    state: &TrainViewState,
    actions: &mut Vec<TrainAction>,
) {
    let run = state.run;
    ui.horizontal(|ui| {
        let can_start = state.model_ready && !run.is_active() && !form.data_path.trim().is_empty();
        if ui
            .add_enabled(can_start, egui::Button::new("Start training"))
            .on_disabled_hover_text("load a model and a training file first")
            .clicked()
        {
            actions.push(TrainAction::Start);
        }
        if ui
            .add_enabled(
                run.status == RunStatus::Running,
                egui::Button::new("Cancel"),
            )
            .clicked()
        {
            actions.push(TrainAction::Cancel);
        }
        let (text, color) = status_text(run, ui.visuals());
        ui.colored_label(color, RichText::new(text).strong());
    });
    kept_state(ui, run, actions);
    for warning in &run.warnings {
        ui.colored_label(ui.visuals().warn_fg_color, format!("Warning: {warning}"));
    }
    let planned = run.planned_epochs.unwrap_or(form.epochs);
    if let Some((fraction, text)) = run.progress_line(planned) {
        ui.add(egui::ProgressBar::new(fraction).text(text));
    }
    if !run.losses.is_empty() || !run.epochs.is_empty() {
        ui.columns(2, |cols| {
            loss_plot(&mut cols[0], run, "loss-curve");
            metrics_plot(&mut cols[1], run, form.task, "dev-metrics");
        });
    }
}

/// A run that stopped without being saved: where its state is, and *Resume*.
fn kept_state(ui: &mut egui::Ui, run: &RunState, actions: &mut Vec<TrainAction>) {
    let Some(partial) = run.partial.as_ref().filter(|_| !run.is_active()) else {
        return;
    };
    ui.horizontal(|ui| {
        ui.label(format!(
            "The run's last finished epoch is kept in {}.",
            partial.display()
        ));
        if ui
            .button("Resume")
            .on_hover_text("continue from the last finished epoch, then save")
            .clicked()
        {
            actions.push(TrainAction::Resume(partial.clone()));
        }
        ui.label("or Save as… below copies its best epoch.");
    });
}

pub(super) fn loss_plot(ui: &mut egui::Ui, run: &RunState, id: &str) {
    ui.label(RichText::new("Training loss (raw and smoothed)").strong());
    let raw = run.losses.clone();
    let smooth = run.smoothed_losses();
    Plot::new(id)
        .height(200.0)
        .legend(Legend::default())
        .x_axis_label("step")
        .include_y(0.0)
        .show(ui, |plot| {
            plot.line(
                Line::new("raw", PlotPoints::from(raw))
                    .stroke(egui::Stroke::new(1.0, palette::BLUE.gamma_multiply(0.35))),
            );
            plot.line(
                Line::new("smoothed", PlotPoints::from(smooth))
                    .stroke(egui::Stroke::new(2.0, palette::BLUE)),
            );
        });
}

pub(super) fn metrics_plot(ui: &mut egui::Ui, run: &RunState, task: Task, id: &str) {
    let mlm = task == Task::Mlm
        || run
            .epochs
            .iter()
            .any(|e| e.dev.as_ref().is_some_and(|d| d.perplexity.is_some()));
    ui.label(
        RichText::new(if mlm {
            "Dev masked-token accuracy per epoch"
        } else {
            "Dev accuracy and macro-F1 per epoch"
        })
        .strong(),
    );
    let acc: Vec<[f64; 2]> = run
        .epochs
        .iter()
        .filter_map(|e| e.dev.as_ref().map(|d| [e.epoch as f64, d.accuracy]))
        .collect();
    let f1: Vec<[f64; 2]> = run
        .epochs
        .iter()
        .filter_map(|e| e.dev.as_ref().map(|d| [e.epoch as f64, d.macro_f1]))
        .collect();
    let baseline = run.summary.as_ref().map(|s| s.majority_baseline);
    Plot::new(id)
        .height(200.0)
        .legend(Legend::default().position(egui_plot::Corner::RightBottom))
        .x_axis_label("epoch")
        .include_y(0.0)
        .include_y(1.0)
        .show(ui, |plot| {
            let green = palette::GREEN;
            plot.line(
                Line::new("accuracy", PlotPoints::from(acc.clone()))
                    .stroke(egui::Stroke::new(2.0, green)),
            );
            plot.points(
                Points::new("accuracy", PlotPoints::from(acc))
                    .radius(4.0)
                    .color(green),
            );
            if !mlm {
                let orange = palette::ORANGE;
                plot.line(
                    Line::new("macro-F1", PlotPoints::from(f1.clone()))
                        .stroke(egui::Stroke::new(2.0, orange)),
                );
                plot.points(
                    Points::new("macro-F1", PlotPoints::from(f1))
                        .radius(4.0)
                        .color(orange),
                );
                if let Some(b) = baseline.filter(|b| *b > 0.0) {
                    let end = run.epochs.len().max(1) as f64;
                    plot.line(
                        Line::new(
                            "majority baseline",
                            PlotPoints::from(vec![[0.0, b], [end, b]]),
                        )
                        .stroke(egui::Stroke::new(1.0, Color32::GRAY)),
                    );
                }
            }
        });
}

fn confusion(ui: &mut egui::Ui, run: &RunState, state: &TrainViewState) {
    let Some((epoch, dev)) = run
        .epochs
        .iter()
        .rev()
        .find_map(|e| e.dev.as_ref().map(|d| (e.epoch, d)))
    else {
        ui.label("The confusion matrix appears after the first epoch with dev data.");
        return;
    };
    if dev.confusion.is_empty() {
        return;
    }
    let labels: Vec<String> = match state.tuned.map(|t| t.labels.clone()) {
        Some(l) if l.len() == dev.confusion.len() => l,
        _ => run
            .summary
            .as_ref()
            .map(|s| s.label_counts.keys().cloned().collect::<Vec<_>>())
            .filter(|l| l.len() == dev.confusion.len())
            .unwrap_or_else(|| (0..dev.confusion.len()).map(|i| i.to_string()).collect()),
    };
    ui.label(
        RichText::new(format!(
            "Confusion matrix, epoch {epoch} (rows: gold, columns: predicted)"
        ))
        .strong(),
    );
    egui::Grid::new("confusion")
        .num_columns(labels.len() + 1)
        .show(ui, |ui| {
            ui.label("");
            for l in &labels {
                ui.strong(l);
            }
            ui.end_row();
            for (gold, row) in dev.confusion.iter().enumerate() {
                ui.strong(labels.get(gold).map_or("?", String::as_str));
                let total: usize = row.iter().sum::<usize>().max(1);
                for &n in row {
                    let share = n as f32 / total as f32;
                    let fill = heat(share);
                    let text = if share > 0.5 {
                        Color32::WHITE
                    } else {
                        Color32::BLACK
                    };
                    egui::Frame::new()
                        .fill(fill)
                        .inner_margin(egui::Margin::symmetric(8, 2))
                        .show(ui, |ui| ui.label(RichText::new(n.to_string()).color(text)));
                }
                ui.end_row();
            }
        });
}

fn tuned_section(
    ui: &mut egui::Ui,
    form: &mut TrainForm,
    state: &TrainViewState,
    actions: &mut Vec<TrainAction>,
) {
    ui.heading("Tuned model");
    match state.tuned {
        Some(t) => {
            ui.horizontal(|ui| {
                ui.label(format!("Tuned: {}", t.dir.display()));
                if ui.button("Compare with base").clicked() {
                    actions.push(TrainAction::Compare);
                }
            });
        }
        None => {
            ui.label("No tuned model yet: train one, or open a fine-tuned directory.");
        }
    }
    let note = state.message.as_ref().and_then(|m| m.note);
    ui.horizontal(|ui| {
        text_field(
            ui,
            &mut form.save_path,
            "Save path",
            "a new directory for the tuned model",
        );
        if ui
            .button("Browse…")
            .on_hover_text("choose where to save")
            .clicked()
        {
            actions.push(TrainAction::BrowseSave);
        }
        let saving = matches!(note, Some(Note::Saving { .. }));
        let run = state.run;
        let unsaved = run.partial.is_some()
            && matches!(run.status, RunStatus::NotSaved(_) | RunStatus::Failed(_));
        if ui
            .add_enabled(
                (state.tuned.is_some() || unsaved) && !saving,
                egui::Button::new("Save as…"),
            )
            .on_hover_text(if unsaved {
                "copy the unsaved run's best epoch"
            } else {
                "copy the tuned model"
            })
            .clicked()
        {
            actions.push(TrainAction::SaveAs);
        }
    });
    ui.horizontal(|ui| {
        text_field(
            ui,
            &mut form.tuned_path,
            "Tuned path",
            "a fine-tuned model directory",
        );
        if ui
            .button("Browse…")
            .on_hover_text("choose a fine-tuned directory")
            .clicked()
        {
            actions.push(TrainAction::BrowseTuned);
        }
        if ui.button("Open tuned…").clicked() {
            actions.push(TrainAction::OpenTuned);
        }
    });
    show_note(ui, note);
}

/// The last save/open outcome, or the copy under way with its progress.
fn show_note(ui: &mut egui::Ui, note: Option<Note>) {
    match note {
        Some(Note::Message(m)) => {
            ui.label(m);
        }
        Some(Note::Saving {
            target,
            copied,
            total,
            elapsed,
        }) => {
            let fraction = if total == 0 {
                0.0
            } else {
                (copied as f64 / total as f64).min(1.0) as f32
            };
            let text = format!(
                "saving to {target}… {} of {} · {}",
                fmt_bytes(copied),
                if total == 0 {
                    "?".to_string()
                } else {
                    fmt_bytes(total)
                },
                super::run::format_eta(elapsed.as_secs_f64())
            );
            ui.add(egui::ProgressBar::new(fraction).text(text));
        }
        None => {}
    }
}
