//! The Explain view's "head importance over a data file" section: a labelled
//! file (the training view's by default), a row limit, a cancellable run on
//! the model worker, and the layers × heads map, shaded per layer.

use std::path::PathBuf;
use std::sync::atomic::Ordering;

use egui::RichText;

use crate::data::Columns;
use crate::explain::HeadImportance;
use crate::ui::intent::Intent;
use crate::ui::support::head_map::{self, HeadMap};
use crate::ui::support::job::Job;
use crate::ui::support::progress;
use crate::ui::training::form::TrainForm;
use crate::ui::worker::{CancelFlag, ImportanceRequest, Request, WorkerHandle};

/// Rows read by default (the compare view's average uses as many).
pub const DEFAULT_ROWS: usize = 64;

/// What the section asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum ImportanceAction {
    Compute,
    Cancel,
    Browse,
    SelectHead { layer: usize, head: usize },
}

/// A run on the worker.
struct Running {
    cancel: CancelFlag,
    /// Rows done, of all.
    progress: Option<(usize, usize)>,
}

pub struct ImportanceState {
    pub path: String,
    pub max_rows: usize,
    /// Compute as soon as the view is shown (`gui --view explain --train-data`).
    pub compute_on_open: bool,
    /// The path field was filled from the training view once.
    seeded: bool,
    running: Option<Running>,
    /// The last run's data file and outcome.
    pub result: Option<(String, Result<HeadImportance, String>)>,
    dialog: Option<Job<Option<PathBuf>>>,
}

impl Default for ImportanceState {
    fn default() -> Self {
        ImportanceState {
            path: String::new(),
            max_rows: DEFAULT_ROWS,
            compute_on_open: false,
            seeded: false,
            running: None,
            result: None,
            dialog: None,
        }
    }
}

impl ImportanceState {
    /// Computing, or about to.
    pub fn running(&self) -> bool {
        self.running.is_some() || self.compute_on_open
    }

    /// The training view's data file fills an empty path once; a chosen file
    /// replaces the path. Computes once if asked to at start-up.
    pub fn poll_dialog(&mut self, train: &TrainForm) {
        if !self.seeded && self.path.is_empty() {
            self.path = train.data_path.trim().to_string();
        }
        self.seeded = true;
        let chosen = self.dialog.as_ref().and_then(Job::poll);
        if let Some(choice) = chosen {
            self.dialog = None;
            match choice {
                Ok(Some(path)) => self.path = path.display().to_string(),
                Ok(None) => {}
                Err(e) => self.result = Some((String::new(), Err(e))),
            }
        }
    }

    pub fn progress(&mut self, done: usize, total: usize) {
        if let Some(r) = &mut self.running {
            r.progress = Some((done, total));
        }
    }

    pub fn finished(&mut self, source: String, result: Result<HeadImportance, String>) {
        self.running = None;
        self.result = Some((source, result));
    }

    pub fn model_changed(&mut self) {
        self.running = None;
        self.result = None;
    }

    /// Carry out an action; a head picked on the map becomes the app's intent.
    pub fn act(
        &mut self,
        action: ImportanceAction,
        worker: &mut WorkerHandle,
        train: &TrainForm,
        ctx: &egui::Context,
    ) -> Option<Intent> {
        match action {
            ImportanceAction::Compute => self.compute(worker, train),
            ImportanceAction::Cancel => {
                if let Some(r) = &self.running {
                    r.cancel.0.store(true, Ordering::Relaxed);
                }
            }
            ImportanceAction::Browse => {
                if self.dialog.is_none() {
                    let title = "Choose a labelled data file";
                    self.dialog = Some(crate::ui::support::job::pick_data_file(title, ctx));
                }
            }
            ImportanceAction::SelectHead { layer, head } => {
                return Some(Intent::CompareHead { layer, head })
            }
        }
        None
    }

    fn compute(&mut self, worker: &mut WorkerHandle, train: &TrainForm) {
        match request(&self.path, self.max_rows, train) {
            Ok(req) => {
                let cancel = req.cancel.clone();
                worker.send(Request::HeadImportance(req));
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

/// A request for head importance over the first `max_rows` rows of `path`,
/// with a fresh cancel flag; the training view's column mapping applies to
/// its own file only.
pub fn request(
    path: &str,
    max_rows: usize,
    train: &TrainForm,
) -> Result<ImportanceRequest, String> {
    let path = path.trim();
    if path.is_empty() {
        return Err("choose a labelled data file first".to_string());
    }
    let columns = if path == train.data_path.trim() {
        train.columns()
    } else {
        Columns::default()
    };
    Ok(ImportanceRequest {
        path: PathBuf::from(path),
        columns,
        max_rows: max_rows.max(1),
        cancel: CancelFlag::default(),
    })
}

/// Draw the section.
pub fn show(
    ui: &mut egui::Ui,
    state: &mut ImportanceState,
    selected: (usize, usize),
) -> Vec<ImportanceAction> {
    let mut actions = Vec::new();
    ui.label(RichText::new("Head importance over a data file").strong());
    ui.label(
        "Michel et al. 2019: how much the loss on the gold labels moves when a head is \
         scaled, |∂loss/∂gate| averaged over the rows.",
    );
    if !crate::ui::support::figure::only(ui.ctx()) {
        controls(ui, state, &mut actions);
    }
    match &state.result {
        None => {}
        Some((_, Err(e))) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        Some((source, Ok(importance))) => {
            if let Some((layer, head)) = map(ui, source, importance, selected) {
                actions.push(ImportanceAction::SelectHead { layer, head });
            }
        }
    }
    actions
}

/// The file, the rows and Compute / Cancel.
fn controls(ui: &mut egui::Ui, state: &mut ImportanceState, actions: &mut Vec<ImportanceAction>) {
    ui.horizontal(|ui| {
        ui.label("Data file");
        let field = ui.add(
            egui::TextEdit::singleline(&mut state.path)
                .desired_width(240.0)
                .hint_text("labelled TSV/CSV (text_a, text_b, label)"),
        );
        field.widget_info(|| {
            egui::WidgetInfo::labeled(egui::Role::TextInput, true, "Importance data file")
        });
        if ui.button("Browse…").clicked() {
            actions.push(ImportanceAction::Browse);
        }
    });
    ui.horizontal(|ui| {
        let name = "Rows";
        ui.label(name);
        let rows = ui.add(egui::DragValue::new(&mut state.max_rows).range(1..=100_000));
        rows.widget_info(|| egui::WidgetInfo::labeled(egui::Role::SpinButton, true, name));
        match &state.running {
            None => {
                if ui.button("Compute importance").clicked() {
                    actions.push(ImportanceAction::Compute);
                }
            }
            Some(running) => {
                if ui.button("Cancel importance").clicked() {
                    actions.push(ImportanceAction::Cancel);
                }
                progress(ui, running);
            }
        }
    });
}

fn progress(ui: &mut egui::Ui, running: &Running) {
    progress::rows(ui, running.progress, "", 160.0);
}

/// The map; the head clicked, if any.
fn map(
    ui: &mut egui::Ui,
    source: &str,
    importance: &HeadImportance,
    selected: (usize, usize),
) -> Option<(usize, usize)> {
    let shown = importance.normalised_per_layer();
    ui.label(format!("Over {} rows of {source}.", importance.rows));
    ui.label(
        "Shaded per layer: each layer's most important head is darkest. Hover a head \
         for its raw value; click it to show it in the other views.",
    );
    let shade = |l: usize, h: usize| shown.get(l, h);
    let hover = |l: usize, h: usize| {
        format!(
            "layer {l}, head {h}: importance {:.4} ({:.0}% of the layer's most important) — click to select",
            importance.get(l, h),
            shown.get(l, h) * 100.0
        )
    };
    head_map::show(
        ui,
        &HeadMap {
            layers: importance.layers,
            heads: importance.heads,
            shade: &shade,
            hover: &hover,
            selected: Some(selected),
            label: "Head importance map",
        },
    )
}
