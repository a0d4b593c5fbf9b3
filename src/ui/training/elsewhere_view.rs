//! The training view's *GPUs and clusters* section: *Run elsewhere…* writes
//! the form's run as a Trainer kit, *Watch a run…* follows a Trainer output
//! folder (typed, chosen or dropped), and each watched run is drawn as a
//! local run is: progress, loss curve, dev metrics, *Open* / *Compare*.

use egui::RichText;

use crate::ui::training::form::TrainForm;
use crate::ui::training::run::RunStatus;
use crate::ui::training::view::{loss_plot, metrics_plot, text_field, TrainAction, TrainViewState};
use crate::ui::training::watched::WatchedRun;

pub fn show(
    ui: &mut egui::Ui,
    form: &mut TrainForm,
    state: &TrainViewState,
    actions: &mut Vec<TrainAction>,
) {
    ui.label(RichText::new("GPUs and clusters").strong());
    ui.horizontal(|ui| {
        let ready = state.model_ready && !form.data_path.trim().is_empty();
        if ui
            .add_enabled(ready, egui::Button::new("Run elsewhere…"))
            .on_hover_text(
                "write this form's run as a PyTorch Trainer kit (train.py, requirements.txt, \
                 accelerate.yaml, README) for torchrun or accelerate on GPUs and clusters",
            )
            .on_disabled_hover_text("load a model and a training file first")
            .clicked()
        {
            actions.push(TrainAction::ExportKit);
        }
        ui.label("or follow a Trainer run's output folder:");
    });
    ui.horizontal(|ui| {
        let field = text_field(
            ui,
            &mut form.watch_path,
            "Run folder",
            "a Trainer output folder (or drop one on the window)",
        );
        let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        if ui.button("Browse…").clicked() {
            actions.push(TrainAction::BrowseWatch);
        }
        if ui.button("Watch a run…").clicked() || entered {
            actions.push(TrainAction::WatchRun);
        }
    });
    let watched = state.message.as_ref().map_or(&[][..], |m| m.watched);
    for run in watched {
        watched_run(ui, run, form, actions);
    }
}

fn watched_run(
    ui: &mut egui::Ui,
    run: &WatchedRun,
    form: &TrainForm,
    actions: &mut Vec<TrainAction>,
) {
    let id = run.dir.display().to_string();
    egui::CollapsingHeader::new(format!("Watching {}", run.name()))
        .id_salt(("watched", &id))
        .default_open(true)
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                let status = match (&run.error, &run.state.status) {
                    (Some(_), _) => "waiting",
                    (None, RunStatus::Done(_)) => "finished",
                    _ => "running",
                };
                ui.strong(status);
                ui.label(RichText::new(run.dir.display().to_string()).weak());
                if let Some(dir) = run.openable() {
                    let what = if run.finished() {
                        "the final model"
                    } else {
                        "the newest checkpoint"
                    };
                    if ui
                        .button("Open this run")
                        .on_hover_text(format!("open {what} as the tuned model"))
                        .clicked()
                    {
                        actions.push(TrainAction::OpenRun {
                            dir: dir.clone(),
                            compare: false,
                        });
                    }
                    if ui
                        .button("Compare this run")
                        .on_hover_text(format!("{what} against the base, epoch by epoch"))
                        .clicked()
                    {
                        actions.push(TrainAction::OpenRun { dir, compare: true });
                    }
                }
                if ui.button("Stop watching").clicked() {
                    actions.push(TrainAction::StopWatching(run.dir.clone()));
                }
            });
            let fraction = run.state.progress();
            ui.add(egui::ProgressBar::new(fraction).text(run.status_line()));
            for warning in &run.state.warnings {
                ui.colored_label(ui.visuals().warn_fg_color, format!("Warning: {warning}"));
            }
            if let Some(s) = &run.snapshot {
                let gone: Vec<String> = s
                    .checkpoints
                    .iter()
                    .filter(|c| c.gone)
                    .map(|c| {
                        c.path
                            .file_name()
                            .map_or(String::new(), |n| n.to_string_lossy().to_string())
                    })
                    .collect();
                if !gone.is_empty() {
                    ui.label(format!(
                        "Checkpoints deleted since they were written: {}",
                        gone.join(", ")
                    ));
                }
            }
            if !run.state.losses.is_empty() || !run.state.epochs.is_empty() {
                ui.columns(2, |cols| {
                    loss_plot(&mut cols[0], &run.state, &format!("watched-loss-{id}"));
                    metrics_plot(
                        &mut cols[1],
                        &run.state,
                        form.task,
                        &format!("watched-metrics-{id}"),
                    );
                });
            }
        });
}
