//! The app's fine-tuning side: the data preview, the run on the training
//! worker, the tuned model and what the compare view needs. Plain data and
//! handles; the views draw it.

use std::path::{Path, PathBuf};

use poll_promise::Promise;

use crate::compare::{Comparison, HeadChanges};
use crate::train::preview::DataPreview;
use crate::train::save;
use crate::ui::run_state::{RunState, RunStatus};
use crate::ui::state::View;
use crate::ui::train_form::TrainForm;
use crate::ui::train_view::TrainAction;
use crate::ui::trainer::{run_dir, TrainJob, TrainerHandle};
use crate::ui::worker::{Request, TunedInfo, WorkerHandle};

/// Rows of the data file the change map averages over.
pub const MEAN_CHANGE_ROWS: usize = 64;

/// Which path field a file dialog fills.
#[derive(Debug, Clone, Copy, PartialEq)]
enum DialogTarget {
    Data,
    Dev,
    Save,
    Tuned,
}

pub struct Tuning {
    pub preview: Option<DataPreview>,
    pub preview_error: Option<String>,
    pub run: RunState,
    trainer: Option<TrainerHandle>,
    pub tuned: Option<TunedInfo>,
    /// The tuned model on the current input (from the model worker).
    pub comparison: Option<Comparison>,
    pub mean_changes: Option<(String, Result<HeadChanges, String>)>,
    pub use_mean: bool,
    /// The last save/open outcome, shown under the buttons.
    pub message: Option<String>,
    dialog: Option<(DialogTarget, Promise<Option<PathBuf>>)>,
    runs_dir: PathBuf,
}

impl Tuning {
    pub fn new(runs_dir: PathBuf) -> Self {
        Tuning {
            preview: None,
            preview_error: None,
            run: RunState::default(),
            trainer: None,
            tuned: None,
            comparison: None,
            mean_changes: None,
            use_mean: false,
            message: None,
            dialog: None,
            runs_dir,
        }
    }

    pub fn training(&self) -> bool {
        self.run.is_active()
    }

    /// Take the training worker's messages and finished file dialogs.
    pub fn poll(&mut self, form: &mut TrainForm, worker: &WorkerHandle) {
        let messages = self.trainer.as_ref().map(TrainerHandle::poll);
        for msg in messages.into_iter().flatten() {
            {
                let finished = match &msg {
                    crate::ui::trainer::TrainMsg::Finished { dir, .. } => Some(dir.clone()),
                    _ => None,
                };
                self.run.apply(msg);
                if let Some(dir) = finished {
                    self.open_tuned(dir, worker);
                }
            }
        }
        if self.trainer.is_some() && !self.run.is_active() {
            self.trainer = None;
        }
        let done = self
            .dialog
            .as_ref()
            .and_then(|(target, p)| p.ready().map(|choice| (*target, choice.clone())));
        if let Some((target, choice)) = done {
            self.dialog = None;
            if let Some(path) = choice {
                let text = path.display().to_string();
                match target {
                    DialogTarget::Data => {
                        form.data_path = text;
                        self.load_data(form, worker, true);
                    }
                    DialogTarget::Dev => form.dev_path = text,
                    DialogTarget::Save => form.save_path = text,
                    DialogTarget::Tuned => {
                        form.tuned_path = text;
                        self.open_tuned(path, worker);
                    }
                }
            }
        }
    }

    fn open_tuned(&mut self, dir: PathBuf, worker: &WorkerHandle) {
        self.comparison = None;
        self.mean_changes = None;
        self.use_mean = false;
        worker.send(Request::LoadTuned { dir: Some(dir) });
    }

    /// A `.tsv`/`.csv`/`.txt` dropped on the window: the training data.
    pub fn is_data_file(path: &Path) -> bool {
        path.is_file()
            && path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                ["tsv", "csv", "txt", "tab"].contains(&e.to_ascii_lowercase().as_str())
            })
    }

    pub fn load_data(&mut self, form: &TrainForm, worker: &WorkerHandle, guess: bool) {
        let path = form.data_path.trim();
        if path.is_empty() {
            self.preview_error = Some("type or choose a training file first".into());
            return;
        }
        self.preview_error = None;
        worker.send(Request::Preview {
            path: PathBuf::from(path),
            columns: (!guess).then(|| form.columns()),
        });
    }

    /// Carry out a training-view action; returns a view to switch to.
    pub fn act(
        &mut self,
        action: TrainAction,
        form: &mut TrainForm,
        worker: &WorkerHandle,
        base_dir: Option<&Path>,
        notify: impl Fn() + Send + 'static,
    ) -> Option<View> {
        match action {
            TrainAction::LoadData { guess } => self.load_data(form, worker, guess),
            TrainAction::BrowseData => self.browse(DialogTarget::Data, false),
            TrainAction::BrowseDev => self.browse(DialogTarget::Dev, false),
            TrainAction::BrowseSave => self.browse(DialogTarget::Save, true),
            TrainAction::BrowseTuned => self.browse(DialogTarget::Tuned, true),
            TrainAction::Start => self.start(form, base_dir, notify),
            TrainAction::Cancel => {
                if let Some(t) = &self.trainer {
                    t.cancel();
                    self.run.status = RunStatus::Cancelling;
                    self.run.log.push("cancelling…".into());
                }
            }
            TrainAction::SaveAs => self.save_as(form, base_dir),
            TrainAction::OpenTuned => {
                let path = form.tuned_path.trim();
                if path.is_empty() {
                    self.message = Some("type or choose a fine-tuned directory first".into());
                } else {
                    let dir = PathBuf::from(path);
                    self.message = None;
                    self.open_tuned(dir, worker);
                }
            }
            TrainAction::Compare => return Some(View::Compare),
        }
        None
    }

    fn browse(&mut self, target: DialogTarget, folder: bool) {
        if self.dialog.is_some() {
            return;
        }
        let promise = Promise::spawn_thread("file-dialog", move || {
            let dialog = rfd::FileDialog::new();
            if folder {
                dialog.set_title("Choose a directory").pick_folder()
            } else {
                dialog
                    .set_title("Choose a data file")
                    .add_filter("TSV / CSV", &["tsv", "csv", "txt"])
                    .pick_file()
            }
        });
        self.dialog = Some((target, promise));
    }

    fn start(
        &mut self,
        form: &TrainForm,
        base_dir: Option<&Path>,
        notify: impl Fn() + Send + 'static,
    ) {
        let Some(base_dir) = base_dir else {
            self.run.status = RunStatus::Failed("load a base model first".into());
            return;
        };
        if self.run.is_active() {
            return;
        }
        let job = TrainJob {
            base_dir: base_dir.to_path_buf(),
            train_path: PathBuf::from(form.data_path.trim()),
            dev: form.dev(),
            columns: form.columns(),
            config: form.config(),
            device: form.device(),
            output: run_dir(&self.runs_dir, base_dir),
        };
        self.run = RunState::running(form.epochs);
        self.run
            .log
            .push(format!("writing the run to {}", job.output.display()));
        self.trainer = Some(TrainerHandle::start(job, notify));
    }

    fn save_as(&mut self, form: &TrainForm, base_dir: Option<&Path>) {
        let Some(tuned) = &self.tuned else {
            return;
        };
        let target = form.save_path.trim();
        if target.is_empty() {
            self.message = Some("type or choose where to save first".into());
            return;
        }
        let base = base_dir.map(Path::to_path_buf).unwrap_or_default();
        self.message = Some(
            match save::copy_checkpoint(&tuned.dir, Path::new(target), &base, false) {
                Ok(()) => format!("saved the tuned model to {target}"),
                Err(e) => format!("not saved: {e}"),
            },
        );
    }

    /// Ask the worker for the change map averaged over the data file.
    pub fn request_mean_changes(&mut self, form: &TrainForm, worker: &WorkerHandle) {
        let dev = form.dev_path.trim();
        let path = if dev.is_empty() {
            form.data_path.trim()
        } else {
            dev
        };
        if path.is_empty() {
            self.mean_changes = Some((
                "a data file".into(),
                Err("load a data file in the Training view first".into()),
            ));
            return;
        }
        worker.send(Request::MeanChanges {
            path: PathBuf::from(path),
            columns: form.columns(),
            limit: MEAN_CHANGE_ROWS,
        });
    }
}
