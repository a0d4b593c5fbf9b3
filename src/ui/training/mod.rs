//! The app's fine-tuning side: the data preview, the run on the training
//! worker, the tuned model and what the compare view needs, and the runs
//! panel (saved and interrupted runs, the epoch-checkpoint budget). Plain data
//! and handles; the views draw it. File dialogs, *Save as…*, reading the runs
//! folder and reading a run's hyperparameters run on their own threads, so
//! the UI thread never waits on the disk.

mod data_view;
pub mod disk;
mod elsewhere_view;
pub mod form;
pub mod opened;
pub mod partial;
pub mod run;
pub mod run_info;
pub mod runs;
pub mod runs_view;
pub mod save_as;
pub mod view;
pub mod watched;
pub mod worker;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::compare::{Comparison, HeadChanges};
use crate::train::kit;
use crate::train::preview::DataPreview;
use crate::ui::compare_view::BeforeAfterState;
use crate::ui::state::View;
use crate::ui::support::job::Job;
use crate::ui::training::form::TrainForm;
use crate::ui::training::opened::Opened;
use crate::ui::training::run::{RunState, RunStatus};
use crate::ui::training::runs::{RunsEvent, RunsPanel, ScanRules};
use crate::ui::training::save_as::{SaveJob, SaveSource};
use crate::ui::training::view::{Note, TrainAction, TuningView};
use crate::ui::training::watched::WatchedRun;
use crate::ui::training::worker::{run_dir, TrainJob, TrainMsg, TrainerHandle};
use crate::ui::worker::{Request, TunedInfo, WorkerHandle};

/// Rows of the data file the change map averages over.
pub const MEAN_CHANGE_ROWS: usize = 64;

/// How often the UI looks at background jobs started without a waker.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// How often the UI redraws while a watched run goes on.
const WATCH_REPAINT: Duration = Duration::from_secs(1);

/// Which path field a file dialog fills.
#[derive(Debug, Clone, Copy, PartialEq)]
enum DialogTarget {
    Data,
    Dev,
    Save,
    Tuned,
    Watch,
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
    /// The compare view's explanations and head importance, before and after.
    pub before_after: BeforeAfterState,
    /// The last save/open outcome, shown under the buttons.
    pub message: Option<String>,
    dialog: Option<(DialogTarget, Job<Option<PathBuf>>)>,
    /// *Save as…* copying in the background.
    saving: Option<SaveJob>,
    /// The runs folder: saved and interrupted runs.
    pub runs: RunsPanel,
    /// The tuned model's hyperparameters, put in the form.
    pub opened: Opened,
    /// Runs trained elsewhere and followed here (*Watch a run…*).
    pub watched: Vec<WatchedRun>,
    /// *Run elsewhere…*: the folder dialog, then the kit written there.
    kit: Option<Job<Option<Result<PathBuf, String>>>>,
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
            before_after: BeforeAfterState::default(),
            message: None,
            dialog: None,
            saving: None,
            runs: RunsPanel::new(runs_dir),
            opened: Opened::default(),
            watched: Vec::new(),
            kit: None,
        }
    }

    pub fn training(&self) -> bool {
        self.run.is_active()
    }

    /// Take the training worker's messages and finished background jobs.
    pub fn poll(&mut self, form: &mut TrainForm, worker: &mut WorkerHandle) {
        let messages = self.trainer.as_mut().map(TrainerHandle::poll);
        for msg in messages.into_iter().flatten() {
            let finished = match &msg {
                TrainMsg::Finished { dir, .. } => Some(dir.clone()),
                _ => None,
            };
            self.run.apply(msg);
            if let Some(dir) = finished {
                self.open_tuned(dir, worker);
            }
        }
        if self.trainer.is_some() && !self.run.is_active() {
            self.trainer = None;
            self.runs.request_scan(true);
        }
        self.poll_save();
        self.poll_kit();
        for run in &mut self.watched {
            run.poll();
        }
        self.poll_dialog(form, worker);
        self.poll_runs(worker);
        self.opened
            .poll(self.tuned.as_ref().map(|t| t.dir.as_path()), form);
        self.runs.start_scan(self.scan_rules(form), || {});
    }

    fn poll_save(&mut self) {
        let Some(job) = &self.saving else {
            return;
        };
        let Some(result) = job.poll() else {
            return;
        };
        self.message = Some(match result {
            Ok(()) => format!("saved the tuned model to {}", job.target),
            Err(e) => format!("not saved: {e}"),
        });
        self.saving = None;
    }

    fn poll_dialog(&mut self, form: &mut TrainForm, worker: &mut WorkerHandle) {
        let Some(done) = self
            .dialog
            .as_ref()
            .and_then(|(t, job)| Some((*t, job.poll()?)))
        else {
            return;
        };
        self.dialog = None;
        let path = match done.1 {
            Ok(Some(path)) => path,
            Ok(None) => return,
            Err(e) => {
                self.message = Some(e);
                return;
            }
        };
        let text = path.display().to_string();
        match done.0 {
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
            DialogTarget::Watch => {
                form.watch_path = text;
                self.watched.retain(|w| !w.is(&path));
                self.watched.push(WatchedRun::start(path, || {}));
            }
        }
    }

    fn poll_kit(&mut self) {
        let Some(done) = self.kit.as_ref().and_then(Job::poll) else {
            return;
        };
        self.kit = None;
        self.message = match done {
            Ok(Some(Ok(dir))) => Some(format!(
                "wrote a Trainer kit to {0}: see its README.md, e.g. `torchrun --nproc_per_node N {0}/train.py`, then Watch a run… on its output",
                dir.display()
            )),
            Ok(Some(Err(e))) | Err(e) => Some(format!("no kit written: {e}")),
            Ok(None) => None,
        };
    }

    /// Follow the run folder typed in the form (again, if it was followed).
    pub fn watch(&mut self, form: &TrainForm, notify: impl Fn() + Send + 'static) {
        let path = form.watch_path.trim();
        if path.is_empty() {
            self.message = Some("type, choose or drop a Trainer output folder first".into());
            return;
        }
        let dir = crate::write_guard::absolute(Path::new(path));
        self.watched.retain(|w| !w.is(&dir));
        self.watched.push(WatchedRun::start(dir, notify));
    }

    /// *Run elsewhere…*: a folder dialog, then the form's run written there
    /// as a Trainer kit (into a new `NAME-trainer-kit` folder when the one
    /// chosen holds other files).
    fn export_kit(
        &mut self,
        form: &TrainForm,
        base_dir: Option<&Path>,
        notify: impl Fn() + Send + 'static,
    ) {
        if self.kit.is_some() {
            return;
        }
        let Some(base_dir) = base_dir else {
            self.message = Some("load a base model first".into());
            return;
        };
        let output = run_dir(&self.runs.dir, base_dir);
        let run = form.kit_run(base_dir, output.clone());
        let name = output
            .file_name()
            .map_or_else(|| "run".to_string(), |n| n.to_string_lossy().to_string());
        let work = move || {
            let picked = rfd::FileDialog::new()
                .set_title("Choose a folder for the Trainer kit")
                .pick_folder()?;
            let empty = picked.read_dir().map_or(true, |mut d| d.next().is_none());
            let dir = if empty {
                picked
            } else {
                picked.join(format!("{name}-trainer-kit"))
            };
            let protected = crate::write_guard::Protected::new()
                .with("the base model", Path::new(&run.model))
                .with("the training data", &run.train);
            Some(
                kit::write(
                    &dir,
                    &run,
                    "the run set up in bertscope's Training view",
                    &protected,
                    false,
                )
                .map(|_| dir)
                .map_err(|e| e.to_string()),
            )
        };
        self.kit = Some(Job::spawn("kit export", work, notify));
    }

    /// A deleted run that was the tuned model is forgotten.
    fn poll_runs(&mut self, worker: &mut WorkerHandle) {
        if let Some(RunsEvent::Deleted(path)) = self.runs.poll() {
            if self.tuned.as_ref().is_some_and(|t| t.dir == path) {
                worker.send(Request::LoadTuned { dir: None });
            }
            if self.run.partial.as_ref() == Some(&path) {
                self.run.partial = None;
            }
        }
    }

    /// What a scan of the runs folder must leave alone.
    fn scan_rules(&self, form: &TrainForm) -> ScanRules {
        let active = self.active_run().map(Path::to_path_buf);
        ScanRules {
            budget: Some(disk::gb(form.epochs_budget_gb)),
            keep: self.tuned.iter().map(|t| t.dir.clone()).collect(),
            active,
        }
    }

    /// The run directory being trained in.
    fn active_run(&self) -> Option<&Path> {
        self.run
            .partial
            .as_deref()
            .filter(|_| self.trainer.is_some())
    }

    /// Whether *Save as…* is copying.
    pub fn saving(&self) -> bool {
        self.saving.is_some()
    }

    /// What the view shows besides the run: the note under the tuned
    /// model's buttons, the runs panel, the opened run's hyperparameters.
    pub fn note(&self) -> Option<TuningView<'_>> {
        let note = match &self.saving {
            Some(job) => {
                let (copied, total) = job.progress();
                Some(Note::Saving {
                    target: &job.target,
                    copied,
                    total,
                    elapsed: job.elapsed(),
                })
            }
            None => self.message.as_deref().map(Note::Message),
        };
        Some(TuningView {
            note,
            runs: &self.runs,
            opened: self.opened.shown(),
            active_run: self.active_run(),
            tuned_dir: self.tuned.as_ref().map(|t| t.dir.as_path()),
            watched: &self.watched,
        })
    }

    /// How soon the UI must be drawn again for background jobs (and, once a
    /// second, for runs watched without a waker).
    pub fn repaint_after(&self) -> Option<Duration> {
        let polling = self.saving.is_some()
            || self.runs.busy()
            || self.opened.reading()
            || self.kit.is_some()
            || self.dialog.is_some();
        let watching = self.watched.iter().any(|w| !w.finished());
        match (polling, watching) {
            (true, _) => Some(POLL_EVERY),
            (false, true) => Some(WATCH_REPAINT),
            (false, false) => None,
        }
    }

    /// Stop the run; it keeps the best checkpoint so far.
    pub fn cancel_run(&mut self) {
        if let Some(t) = &self.trainer {
            if !t.cancelling() {
                t.cancel();
                self.run.status = RunStatus::Cancelling;
                self.run.log.push("cancelling…".into());
            }
        }
    }

    fn open_tuned(&mut self, dir: PathBuf, worker: &mut WorkerHandle) {
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

    pub fn load_data(&mut self, form: &TrainForm, worker: &mut WorkerHandle, guess: bool) {
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
    /// `notify` wakes the UI when the work started here is done.
    pub fn act(
        &mut self,
        action: TrainAction,
        form: &mut TrainForm,
        worker: &mut WorkerHandle,
        base_dir: Option<&Path>,
        notify: impl Fn() + Send + 'static,
    ) -> Option<View> {
        match action {
            TrainAction::LoadData { guess } => self.load_data(form, worker, guess),
            TrainAction::BrowseData => self.browse(DialogTarget::Data, false, notify),
            TrainAction::BrowseDev => self.browse(DialogTarget::Dev, false, notify),
            TrainAction::BrowseSave => self.browse(DialogTarget::Save, true, notify),
            TrainAction::BrowseTuned => self.browse(DialogTarget::Tuned, true, notify),
            TrainAction::Start => self.start(form, base_dir, notify),
            TrainAction::Cancel => self.cancel_run(),
            TrainAction::SaveAs => self.save_as(form, base_dir, notify),
            TrainAction::OpenTuned => self.open_typed(form, worker),
            TrainAction::Compare => return Some(View::Compare),
            TrainAction::ExportKit => self.export_kit(form, base_dir, notify),
            TrainAction::WatchRun => self.watch(form, notify),
            TrainAction::BrowseWatch => self.browse(DialogTarget::Watch, true, notify),
            TrainAction::StopWatching(dir) => self.watched.retain(|w| !w.is(&dir)),
            other => return self.act_on_runs(other, form, worker, base_dir, notify),
        }
        None
    }

    /// The runs panel's and the opened run's actions.
    fn act_on_runs(
        &mut self,
        action: TrainAction,
        form: &mut TrainForm,
        worker: &mut WorkerHandle,
        base_dir: Option<&Path>,
        notify: impl Fn() + Send + 'static,
    ) -> Option<View> {
        match action {
            TrainAction::Resume(partial) => self.resume(partial, form, notify),
            TrainAction::OpenRun { dir, compare } => {
                self.message = None;
                self.open_tuned(dir, worker);
                if compare {
                    return Some(View::Compare);
                }
            }
            TrainAction::AskDelete(path) => self.runs.ask_delete(path),
            TrainAction::KeepRun => self.runs.confirm_delete = None,
            TrainAction::ConfirmDelete => self.runs.delete(notify),
            TrainAction::RefreshRuns => {
                self.runs.message = None;
                self.runs.request_scan(true);
                self.runs.start_scan(self.scan_rules(form), notify);
            }
            TrainAction::TrainAgain => self.train_again(form, base_dir, notify),
            TrainAction::RestoreForm => self.opened.restore(form),
            _ => {}
        }
        None
    }

    fn open_typed(&mut self, form: &TrainForm, worker: &mut WorkerHandle) {
        let path = form.tuned_path.trim();
        if path.is_empty() {
            self.message = Some("type or choose a fine-tuned directory first".into());
        } else {
            let dir = PathBuf::from(path);
            self.message = None;
            self.open_tuned(dir, worker);
        }
    }

    fn browse(&mut self, target: DialogTarget, folder: bool, notify: impl Fn() + Send + 'static) {
        if self.dialog.is_some() {
            return;
        }
        let pick = move || {
            let dialog = rfd::FileDialog::new();
            if folder {
                dialog.set_title("Choose a directory").pick_folder()
            } else {
                dialog
                    .set_title("Choose a data file")
                    .add_filter("TSV / CSV", &["tsv", "csv", "txt"])
                    .pick_file()
            }
        };
        self.dialog = Some((target, Job::spawn("file dialog", pick, notify)));
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
            delimiter: None,
            config: form.config(),
            device: form.device,
            output: run_dir(&self.runs.dir, base_dir),
            keep_epochs: true,
            resume: false,
        };
        self.run = RunState::running(form.epochs);
        self.run.log.push(format!(
            "writing the run to {} (its state in {} until it is saved)",
            job.output.display(),
            job.partial().display()
        ));
        self.run.partial = Some(job.partial());
        self.trainer = Some(TrainerHandle::start(job, notify));
    }

    /// A new run with the opened run's hyperparameters.
    fn train_again(
        &mut self,
        form: &mut TrainForm,
        base_dir: Option<&Path>,
        notify: impl Fn() + Send + 'static,
    ) {
        if self.opened.apply_to(form) {
            self.start(form, base_dir, notify);
        }
    }

    /// Continue the run kept in `partial` and save it.
    fn resume(&mut self, partial: PathBuf, form: &TrainForm, notify: impl Fn() + Send + 'static) {
        if self.run.is_active() {
            return;
        }
        self.run = RunState::resuming(&partial);
        self.run.partial = Some(partial.clone());
        self.trainer = Some(TrainerHandle::resume(partial, form.device, notify));
    }

    /// Copy the tuned model (or the best epoch of a run that could not be
    /// saved) to the save path on a background thread.
    fn save_as(
        &mut self,
        form: &TrainForm,
        base_dir: Option<&Path>,
        notify: impl Fn() + Send + 'static,
    ) {
        if self.saving.is_some() {
            return;
        }
        let Some(source) = self.save_source() else {
            return;
        };
        let target = form.save_path.trim().to_string();
        if target.is_empty() {
            self.message = Some("type or choose where to save first".into());
            return;
        }
        let base = base_dir.map(Path::to_path_buf).unwrap_or_default();
        self.message = None;
        self.saving = Some(SaveJob::start(source, PathBuf::from(target), base, notify));
    }

    /// What *Save as…* copies: an unsaved run's best epoch, else the tuned model.
    pub fn save_source(&self) -> Option<SaveSource> {
        match (&self.run.partial, &self.run.status) {
            (Some(partial), RunStatus::NotSaved(_) | RunStatus::Failed(_)) => {
                Some(SaveSource::RunState(partial.clone()))
            }
            _ => self
                .tuned
                .as_ref()
                .map(|t| SaveSource::Checkpoint(t.dir.clone())),
        }
    }

    /// Ask the worker for the change map averaged over the data file.
    pub fn request_mean_changes(&mut self, form: &TrainForm, worker: &mut WorkerHandle) {
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
