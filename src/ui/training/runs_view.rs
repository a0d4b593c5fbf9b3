//! The runs panel in the training view: every run in the runs folder with
//! its model, task, date, size and best metric; *Open*, *Compare*, *Resume*
//! and *Delete* (asked first), and the budget for epoch checkpoints.

use std::time::SystemTime;

use egui::{Color32, RichText};

use crate::train::Task;
use crate::ui::training::disk::fmt_bytes;
use crate::ui::training::form::TrainForm;
use crate::ui::training::runs::{RunEntry, RunKind};
use crate::ui::training::view::{TrainAction, TuningView};

const MUTED: Color32 = Color32::GRAY;

pub fn show(
    ui: &mut egui::Ui,
    form: &mut TrainForm,
    view: &TuningView,
    actions: &mut Vec<TrainAction>,
) {
    let runs = view.runs;
    ui.heading("Runs");
    ui.horizontal(|ui| {
        ui.label(format!(
            "{} · {} runs, {} on disk",
            runs.dir.display(),
            runs.entries.len(),
            fmt_bytes(runs.total_size())
        ));
        if ui.button("Refresh").clicked() {
            actions.push(TrainAction::RefreshRuns);
        }
        if runs.busy() {
            ui.add(egui::Spinner::new());
        }
    });
    budget(ui, form, actions);
    if let Some(message) = &runs.message {
        ui.label(message);
    }
    watched(ui, view, actions);
    if !runs.scanned {
        ui.label("Reading the runs folder…");
        return;
    }
    if runs.entries.is_empty() {
        ui.label("No runs yet: runs started here are kept in this folder.");
        return;
    }
    egui::Grid::new("runs")
        .striped(true)
        .num_columns(7)
        .show(ui, |ui| {
            for h in ["run", "model", "task", "written", "size", "best", ""] {
                ui.strong(h);
            }
            ui.end_row();
            for entry in &runs.entries {
                row(ui, entry, view, actions);
                if runs.confirm_delete.as_ref() == Some(&entry.path) {
                    confirm(ui, entry, actions);
                }
            }
        });
}

/// The budget for the saved runs' per-epoch checkpoints.
/// Runs trained elsewhere and followed here, beside the local ones.
fn watched(ui: &mut egui::Ui, view: &TuningView, actions: &mut Vec<TrainAction>) {
    if view.watched.is_empty() {
        return;
    }
    egui::Grid::new("watched-runs")
        .striped(true)
        .num_columns(3)
        .show(ui, |ui| {
            for run in view.watched {
                ui.label(format!("{} (watched)", run.name()))
                    .on_hover_text(run.dir.display().to_string());
                ui.label(RichText::new(run.status_line()).color(MUTED));
                ui.horizontal(|ui| {
                    if let Some(dir) = run.openable() {
                        if ui.button("Open").clicked() {
                            actions.push(TrainAction::OpenRun {
                                dir: dir.clone(),
                                compare: false,
                            });
                        }
                        if ui.button("Compare").clicked() {
                            actions.push(TrainAction::OpenRun { dir, compare: true });
                        }
                    }
                });
                ui.end_row();
            }
        });
}

fn budget(ui: &mut egui::Ui, form: &mut TrainForm, actions: &mut Vec<TrainAction>) {
    ui.horizontal(|ui| {
        let name = "Epoch checkpoints budget (GB)";
        ui.label(name);
        let response = ui
            .add(
                egui::DragValue::new(&mut form.epochs_budget_gb)
                    .speed(0.1)
                    .range(0.0..=100_000.0),
            )
            .on_hover_text(
                "the runs' per-epoch checkpoints (the compare view's slider) may take this much; beyond it the oldest runs' are deleted (never a run's best or last checkpoint)",
            );
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::SpinButton, true, name));
        if response.drag_stopped() || (response.changed() && !response.dragged()) {
            actions.push(TrainAction::RefreshRuns);
        }
    });
}

fn row(ui: &mut egui::Ui, entry: &RunEntry, view: &TuningView, actions: &mut Vec<TrainAction>) {
    ui.label(&entry.name);
    ui.label(&entry.model);
    ui.label(match entry.task {
        Some(Task::Classification) => "classification",
        Some(Task::Mlm) => "masked-LM",
        None => "",
    });
    ui.label(age(entry.modified));
    ui.label(fmt_bytes(entry.size));
    ui.label(entry.metric.as_deref().unwrap_or("—"));
    let active = view.active_run == Some(entry.path.as_path());
    let deleting = view.runs.deleting() == Some(entry.path.as_path());
    ui.horizontal(|ui| match &entry.kind {
        RunKind::Saved => {
            let shown = view.tuned_dir == Some(entry.path.as_path());
            let open = |compare| TrainAction::OpenRun {
                dir: entry.path.clone(),
                compare,
            };
            if named_button(ui, "Open", &entry.name, !shown) {
                actions.push(open(false));
            }
            if named_button(ui, "Compare", &entry.name, true) {
                actions.push(open(true));
            }
            delete_button(ui, entry, !deleting, actions);
        }
        RunKind::Interrupted {
            epochs_done,
            epochs,
            resumable,
        } => {
            if active {
                ui.label("training now");
                return;
            }
            ui.label(format!("interrupted after epoch {epochs_done} of {epochs}"));
            match resumable {
                Ok(()) => {
                    if named_button(ui, "Resume", &entry.name, view.active_run.is_none()) {
                        actions.push(TrainAction::Resume(entry.path.clone()));
                    }
                }
                Err(why) => {
                    ui.colored_label(MUTED, why);
                }
            }
            delete_button(ui, entry, !deleting, actions);
        }
        RunKind::NotOurs(why) => {
            ui.colored_label(MUTED, format!("not a bertscope run ({why}): left alone"));
        }
    });
    ui.end_row();
}

fn delete_button(
    ui: &mut egui::Ui,
    entry: &RunEntry,
    enabled: bool,
    actions: &mut Vec<TrainAction>,
) {
    if named_button(ui, "Delete", &entry.name, enabled) {
        actions.push(TrainAction::AskDelete(entry.path.clone()));
    }
}

/// The question under a run about to be deleted.
fn confirm(ui: &mut egui::Ui, entry: &RunEntry, actions: &mut Vec<TrainAction>) {
    ui.label("");
    ui.colored_label(
        ui.visuals().error_fg_color,
        RichText::new(format!(
            "Delete {} ({})? This cannot be undone.",
            entry.name,
            fmt_bytes(entry.size)
        ))
        .strong(),
    );
    ui.horizontal(|ui| {
        if ui.button("Delete for good").clicked() {
            actions.push(TrainAction::ConfirmDelete);
        }
        if ui.button("Keep it").clicked() {
            actions.push(TrainAction::KeepRun);
        }
    });
    ui.end_row();
}

/// A button showing `text`, named `text name` for assistive technology (and
/// tests): every row has its own *Open*, *Delete*….
fn named_button(ui: &mut egui::Ui, text: &str, name: &str, enabled: bool) -> bool {
    let label = format!("{text} {name}");
    let response = ui.add_enabled(enabled, egui::Button::new(text));
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, enabled, &label));
    response.clicked()
}

/// How long ago: `just now`, `5 min ago`, `3 h ago`, `2 days ago`.
fn age(when: Option<SystemTime>) -> String {
    let Some(secs) = when
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|d| d.as_secs())
    else {
        return "—".into();
    };
    match secs {
        0..60 => "just now".into(),
        60..3600 => format!("{} min ago", secs / 60),
        3600..86_400 => format!("{} h ago", secs / 3600),
        _ => format!("{} days ago", secs / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ages_read_as_people_say_them() {
        let ago = |s| age(Some(SystemTime::now() - Duration::from_secs(s)));
        assert_eq!(ago(5), "just now");
        assert_eq!(ago(300), "5 min ago");
        assert_eq!(ago(3 * 3600 + 5), "3 h ago");
        assert_eq!(ago(2 * 86_400 + 5), "2 days ago");
        assert_eq!(age(None), "—");
    }
}
