//! The training view's form: data files, column mapping, hyperparameters
//! (the engine's defaults) and the budget for the runs' epoch checkpoints,
//! remembered across restarts.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::data::Columns;
use crate::device::DeviceChoice;
use crate::model::precision::Precision;
use crate::train::kit::KitRun;
use crate::train::{Task, TrainConfig};
use crate::ui::training::worker::DevSource;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainForm {
    /// Training data (TSV/CSV with a header).
    pub data_path: String,
    /// Dev data; empty: hold out `dev_fraction` of the training rows.
    pub dev_path: String,
    pub dev_fraction: f64,
    pub text_a_column: String,
    /// Empty: single-sentence task.
    pub text_b_column: String,
    pub label_column: String,
    pub task: Task,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub warmup_ratio: f64,
    pub max_grad_norm: f64,
    pub max_length: usize,
    pub seed: u64,
    /// 0: no limit.
    pub max_steps: usize,
    /// `auto`: CUDA when this build has it and a GPU works, else the CPU.
    pub device: DeviceChoice,
    /// fp32, or bf16 products on CPUs with AVX-512-BF16 or AMX-BF16.
    pub precision: Precision,
    /// "Save as…" / "Open tuned…" path fields.
    pub save_path: String,
    pub tuned_path: String,
    /// *Watch a run…*: a Trainer output folder.
    pub watch_path: String,
    /// Gigabytes the saved runs' per-epoch checkpoints may take; beyond it
    /// the oldest runs' are removed.
    pub epochs_budget_gb: f64,
}

impl Default for TrainForm {
    fn default() -> Self {
        let d = TrainConfig::default();
        TrainForm {
            data_path: String::new(),
            dev_path: String::new(),
            dev_fraction: 0.1,
            text_a_column: "text_a".into(),
            text_b_column: "text_b".into(),
            label_column: "label".into(),
            task: d.task,
            epochs: d.epochs,
            batch_size: d.batch_size,
            lr: d.lr,
            weight_decay: d.weight_decay,
            warmup_ratio: d.warmup_ratio,
            max_grad_norm: d.max_grad_norm,
            max_length: d.max_length,
            seed: d.seed,
            max_steps: 0,
            device: DeviceChoice::Auto,
            precision: d.precision,
            save_path: String::new(),
            tuned_path: String::new(),
            watch_path: String::new(),
            epochs_budget_gb: crate::ui::training::disk::DEFAULT_BUDGET_GB,
        }
    }
}

impl TrainForm {
    pub fn config(&self) -> TrainConfig {
        TrainConfig {
            task: self.task,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            weight_decay: self.weight_decay,
            warmup_ratio: self.warmup_ratio,
            max_grad_norm: self.max_grad_norm,
            max_length: self.max_length,
            seed: self.seed,
            max_steps: (self.max_steps > 0).then_some(self.max_steps),
            precision: self.precision,
            ..TrainConfig::default()
        }
    }

    /// Put a run's hyperparameters in the form (data, device and the
    /// settings the form has no field for are left as they are).
    pub fn set_hyperparameters(&mut self, c: &TrainConfig) {
        self.task = c.task;
        self.epochs = c.epochs;
        self.batch_size = c.batch_size;
        self.lr = c.lr;
        self.weight_decay = c.weight_decay;
        self.warmup_ratio = c.warmup_ratio;
        self.max_grad_norm = c.max_grad_norm;
        self.max_length = c.max_length;
        self.seed = c.seed;
        self.max_steps = c.max_steps.unwrap_or(0);
        self.precision = c.precision;
    }

    /// Whether the form's hyperparameters are `c`'s.
    pub fn has_hyperparameters(&self, c: &TrainConfig) -> bool {
        let mut same = self.clone();
        same.set_hyperparameters(c);
        same == *self
    }

    /// The form's run as a Trainer kit's settings (*Run elsewhere…*), on
    /// `base_dir`, writing to `output` unless overridden at launch.
    pub fn kit_run(&self, base_dir: &Path, output: PathBuf) -> KitRun {
        let (dev, dev_fraction) = match self.dev() {
            DevSource::File(path) => (Some(path), None),
            DevSource::Fraction(f) => (None, Some(f)),
            DevSource::None => (None, None),
        };
        KitRun {
            model: base_dir.display().to_string(),
            train: PathBuf::from(self.data_path.trim()),
            dev,
            dev_fraction,
            output,
            config: self.config(),
            columns: self.columns(),
            delimiter: None,
            skip_bad_rows: false,
        }
    }

    pub fn columns(&self) -> Columns {
        Columns {
            text_a: self.text_a_column.clone(),
            text_b: (!self.text_b_column.is_empty()).then(|| self.text_b_column.clone()),
            label: self.label_column.clone(),
            id: "id".into(),
        }
    }

    /// Take the mapping a data preview used (guessed or chosen).
    pub fn set_columns(&mut self, columns: &Columns) {
        self.text_a_column = columns.text_a.clone();
        self.text_b_column = columns.text_b.clone().unwrap_or_default();
        self.label_column = columns.label.clone();
    }

    pub fn dev(&self) -> DevSource {
        let path = self.dev_path.trim();
        if !path.is_empty() {
            DevSource::File(path.into())
        } else if self.dev_fraction > 0.0 {
            DevSource::Fraction(self.dev_fraction.min(0.9))
        } else {
            DevSource::None
        }
    }

    /// The hyperparameter grid; returns true when something changed.
    pub fn show_hyperparameters(&mut self, ui: &mut egui::Ui) -> bool {
        let before = self.clone();
        egui::Grid::new("hyperparameters")
            .num_columns(4)
            .spacing([12.0, 4.0])
            .show(ui, |ui| {
                ui.label("Task");
                combo(ui, "Task", task_label(self.task), |ui| {
                    for t in [Task::Classification, Task::Mlm] {
                        ui.selectable_value(&mut self.task, t, task_label(t));
                    }
                });
                ui.label("Device");
                let gpu = candle_core::utils::cuda_is_available();
                combo(ui, "Device", device_label(self.device, gpu), |ui| {
                    for d in [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Cuda] {
                        ui.add_enabled_ui(gpu || d != DeviceChoice::Cuda, |ui| {
                            ui.selectable_value(&mut self.device, d, device_label(d, gpu))
                        })
                        .response
                        .on_disabled_hover_text(
                            "this build has no CUDA support (build with --features cuda)",
                        );
                    }
                });
                ui.end_row();
                field(ui, "Epochs", &mut self.epochs, 1.0, 1..=10_000);
                field(ui, "Batch size", &mut self.batch_size, 1.0, 1..=1024);
                ui.end_row();
                ui.label("Learning rate");
                labelled_drag(
                    ui,
                    "Learning rate",
                    egui::DragValue::new(&mut self.lr)
                        .speed(1e-6)
                        .range(1e-7..=1e-2)
                        .custom_formatter(|v, _| format!("{v:.1e}")),
                );
                field(ui, "Weight decay", &mut self.weight_decay, 0.001, 0.0..=1.0);
                ui.end_row();
                field(ui, "Warm-up ratio", &mut self.warmup_ratio, 0.01, 0.0..=1.0);
                field(
                    ui,
                    "Max grad norm",
                    &mut self.max_grad_norm,
                    0.1,
                    0.0..=100.0,
                );
                ui.end_row();
                field(ui, "Max length", &mut self.max_length, 1.0, 8..=512);
                field(
                    ui,
                    "Max steps (0: all)",
                    &mut self.max_steps,
                    1.0,
                    0..=1_000_000,
                );
                ui.end_row();
                ui.label("Seed");
                labelled_drag(ui, "Seed", egui::DragValue::new(&mut self.seed));
                field(ui, "Dev fraction", &mut self.dev_fraction, 0.01, 0.0..=0.9);
                ui.end_row();
                ui.label("Precision");
                crate::ui::support::precision::combo(ui, "Precision", &mut self.precision);
                ui.end_row();
            });
        *self != before
    }
}

fn device_label(device: DeviceChoice, cuda_built: bool) -> &'static str {
    match (device, cuda_built) {
        (DeviceChoice::Auto, true) => "auto (GPU when one works)",
        (DeviceChoice::Auto, false) => "auto (CPU: no CUDA in this build)",
        (DeviceChoice::Cpu, _) => "CPU",
        (DeviceChoice::Cuda, _) => "GPU (CUDA)",
    }
}

fn task_label(task: Task) -> &'static str {
    match task {
        Task::Classification => "classification",
        Task::Mlm => "masked-LM",
    }
}

/// A combo box whose label sits to its left; `name` is also its accessible name.
pub fn combo(ui: &mut egui::Ui, name: &str, selected: &str, contents: impl FnOnce(&mut egui::Ui)) {
    let name = name.to_string();
    egui::ComboBox::from_id_salt(&name)
        .selected_text(selected.to_string())
        .show_ui(ui, contents)
        .response
        .widget_info(move || egui::WidgetInfo::labeled(egui::Role::ComboBox, true, &name));
}

fn labelled_drag(ui: &mut egui::Ui, name: &str, drag: egui::DragValue<'_>) {
    let name = name.to_string();
    ui.add(drag)
        .widget_info(move || egui::WidgetInfo::labeled(egui::Role::SpinButton, true, &name));
}

/// A labelled number field: the name on the left, also its accessible name.
fn field<N: egui::emath::Numeric>(
    ui: &mut egui::Ui,
    name: &str,
    value: &mut N,
    speed: f64,
    range: std::ops::RangeInclusive<N>,
) {
    ui.label(name);
    labelled_drag(
        ui,
        name,
        egui::DragValue::new(value).speed(speed).range(range),
    );
}
