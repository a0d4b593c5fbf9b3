//! The runs panel's data: every folder in the runs folder — a saved run, an
//! interrupted one (`NAME.partial/`), or a folder that is not bertscope's —
//! with its model, task, date, size and best metric. Scanning, tidying what
//! killed runs left, pruning epoch checkpoints to the budget and deleting all
//! run on background threads; the panel keeps the answers.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::Value;

use crate::train::{run_dir, EpochSummary, Report, Task, TrainConfig};
use crate::ui::support::job::Job;
use crate::ui::training::disk::{self, Pruned};
use crate::ui::training::run_info::RunInfo;
use crate::write_guard::{self, CHECKPOINT_FILES, EPOCHS_DIR, MARKER_KEY};

/// One folder of the runs folder.
#[derive(Debug, Clone, PartialEq)]
pub struct RunEntry {
    /// The folder's name.
    pub name: String,
    /// The checkpoint (saved) or the `.partial` directory (interrupted).
    pub path: PathBuf,
    pub kind: RunKind,
    /// The base model's folder name.
    pub model: String,
    pub task: Option<Task>,
    /// When it was last written.
    pub modified: Option<SystemTime>,
    pub size: u64,
    /// The best epoch's dev metric, e.g. `accuracy 91.2% (epoch 7)`.
    pub metric: Option<String>,
    /// Its hyperparameters.
    pub config: Option<TrainConfig>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum RunKind {
    /// A checkpoint bertscope wrote: open it, compare it, delete it.
    Saved,
    /// Stopped before it was saved (app killed, crashed, quit, or a failed
    /// save): resume it (`Ok`) or say why not, and delete it.
    Interrupted {
        epochs_done: usize,
        epochs: usize,
        resumable: Result<(), String>,
    },
    /// Not bertscope's (or no longer only bertscope's): listed, never deleted.
    NotOurs(String),
}

/// A scan's answer.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Newest first.
    pub entries: Vec<RunEntry>,
    pub pruned: Pruned,
    /// Scratch that killed runs left behind and the scan removed.
    pub tidied: usize,
}

/// What the panel is doing in the background.
enum Activity {
    Idle,
    Scanning(Job<Result<Scan, String>>),
    Deleting {
        path: PathBuf,
        job: Job<Result<(), String>>,
    },
}

/// What a scan must leave alone.
#[derive(Debug, Clone, Default)]
pub struct ScanRules {
    /// Bytes the saved runs' epoch checkpoints may take.
    pub budget: u64,
    /// Runs whose epochs are never pruned (the tuned model being shown).
    pub keep: Vec<PathBuf>,
    /// The run directory being trained in: not tidied.
    pub active: Option<PathBuf>,
}

/// The runs panel's state.
pub struct RunsPanel {
    pub dir: PathBuf,
    pub entries: Vec<RunEntry>,
    activity: Activity,
    /// Scan again once the current job is done.
    rescan: bool,
    /// A scan has finished at least once.
    pub scanned: bool,
    /// Delete this run? (asked in the panel)
    pub confirm_delete: Option<PathBuf>,
    /// The last scan's pruning, delete or error, shown in the panel.
    pub message: Option<String>,
}

/// What finished in the background since the last poll.
#[derive(Debug, Clone, PartialEq)]
pub enum RunsEvent {
    Scanned,
    Deleted(PathBuf),
}

impl RunsPanel {
    pub fn new(dir: PathBuf) -> Self {
        RunsPanel {
            dir,
            entries: Vec::new(),
            activity: Activity::Idle,
            rescan: true,
            scanned: false,
            confirm_delete: None,
            message: None,
        }
    }

    /// Whether a scan or a delete is under way.
    pub fn busy(&self) -> bool {
        !matches!(self.activity, Activity::Idle)
    }

    /// The run being deleted.
    pub fn deleting(&self) -> Option<&Path> {
        match &self.activity {
            Activity::Deleting { path, .. } => Some(path),
            _ => None,
        }
    }

    /// Ask for a scan (now, or after the job under way).
    pub fn request_scan(&mut self) {
        self.rescan = true;
    }

    /// Ask before deleting `path` (the last outcome is cleared).
    pub fn ask_delete(&mut self, path: PathBuf) {
        self.message = None;
        self.confirm_delete = Some(path);
    }

    /// Start the scan asked for, if nothing else runs.
    pub fn start_scan(&mut self, rules: ScanRules, notify: impl Fn() + Send + 'static) {
        if !self.rescan || self.busy() {
            return;
        }
        self.rescan = false;
        let dir = self.dir.clone();
        let work = move || scan(&dir, &rules);
        self.activity = Activity::Scanning(Job::spawn("runs scan", work, notify));
    }

    /// Delete the run asked about, on a background thread; only a run
    /// bertscope wrote, checked again right before.
    pub fn delete(&mut self, notify: impl Fn() + Send + 'static) {
        let Some(path) = self.confirm_delete.take() else {
            return;
        };
        if self.busy() {
            self.message = Some("wait for the runs folder to be read, then delete again".into());
            return;
        }
        let target = path.clone();
        let work = move || remove_run(&target);
        self.activity = Activity::Deleting {
            path,
            job: Job::spawn("delete", work, notify),
        };
    }

    /// Take a finished job's answer.
    pub fn poll(&mut self) -> Option<RunsEvent> {
        let event = match &self.activity {
            Activity::Idle => return None,
            Activity::Scanning(job) => {
                let result = job.poll()?.and_then(|r| r);
                self.scanned = true;
                match result {
                    Ok(scan) => {
                        // A delete's outcome stays until there is news.
                        if let Some(news) = scan_message(&scan) {
                            self.message = Some(news);
                        }
                        self.entries = scan.entries;
                    }
                    Err(e) => self.message = Some(e),
                }
                RunsEvent::Scanned
            }
            Activity::Deleting { path, job } => {
                let result = job.poll()?.and_then(|r| r);
                let path = path.clone();
                self.rescan = true;
                match result {
                    Ok(()) => {
                        self.message = Some(format!("deleted {}", path.display()));
                        self.entries.retain(|e| e.path != path);
                    }
                    Err(e) => self.message = Some(e),
                }
                RunsEvent::Deleted(path)
            }
        };
        self.activity = Activity::Idle;
        Some(event)
    }

    /// Bytes the listed runs take.
    pub fn total_size(&self) -> u64 {
        self.entries.iter().map(|e| e.size).sum()
    }
}

fn scan_message(scan: &Scan) -> Option<String> {
    let p = &scan.pruned;
    let mut parts = Vec::new();
    if !p.removed.is_empty() {
        parts.push(format!(
            "removed {} old epoch checkpoints ({}) to stay within the budget",
            p.removed.len(),
            disk::fmt_bytes(p.freed)
        ));
    }
    parts.extend(p.errors.iter().cloned());
    if scan.tidied > 0 {
        parts.push(format!(
            "removed {} unfinished writes that stopped runs left",
            scan.tidied
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Delete a saved run's checkpoint or an interrupted run's directory, each
/// only when it is plainly bertscope's.
pub fn remove_run(path: &Path) -> Result<(), String> {
    let removed = if path.join(run_dir::RUN_FILE).is_file() {
        run_dir::remove(path)
    } else {
        write_guard::remove_ours(path)
    };
    removed.map_err(|e| e.to_string())
}

/// Read the runs folder: tidy what killed runs left, prune the saved runs'
/// epoch checkpoints to the budget, and describe every folder.
pub fn scan(dir: &Path, rules: &ScanRules) -> Result<Scan, String> {
    let listing = match dir.read_dir() {
        Ok(listing) => listing,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Scan::default()),
        Err(e) => return Err(format!("{}: cannot list: {e}", dir.display())),
    };
    let folders: Vec<PathBuf> = listing
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    let tidied = folders
        .iter()
        .filter(|f| rules.active.as_deref() != Some(f.as_path()))
        .map(|f| tidy(f))
        .sum();
    let saved: Vec<(PathBuf, Option<SystemTime>)> = folders
        .iter()
        .filter(|f| !is_partial(f) && write_guard::ours(f).is_ok())
        .map(|f| (f.clone(), modified(f)))
        .collect();
    let pruned = disk::prune(&saved, rules.budget, &rules.keep);
    let mut entries: Vec<RunEntry> = folders.iter().map(|f| describe(f)).collect();
    entries.sort_by(|a, b| b.modified.cmp(&a.modified).then(a.name.cmp(&b.name)));
    Ok(Scan {
        entries,
        pruned,
        tidied,
    })
}

fn is_partial(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "partial")
}

fn modified(path: &Path) -> Option<SystemTime> {
    let file = [run_dir::RUN_FILE, "training_args.json"]
        .iter()
        .map(|f| path.join(f))
        .find(|f| f.is_file())
        .unwrap_or_else(|| path.to_path_buf());
    file.metadata().and_then(|m| m.modified()).ok()
}

/// Remove the scratch a killed run left with `folder`: staging directories of
/// processes that are gone, and in an interrupted run the epoch checkpoints
/// it was writing. Returns how many were removed.
fn tidy(folder: &Path) -> usize {
    let mut removed = write_guard::remove_stale_staging(folder);
    if is_partial(folder) {
        removed += write_guard::remove_stale_staging(&folder.join(run_dir::LAST));
        removed += remove_half_written_epochs(folder);
    }
    removed
}

/// In a run directory carrying bertscope's mark, the `epochs/epoch-N` a kill
/// interrupted while it was written: only checkpoint files, and no
/// `training_args.json` (written last). Removed, so that the run can be
/// resumed or deleted; anything else there is left alone.
fn remove_half_written_epochs(partial: &Path) -> usize {
    let marked = std::fs::read_to_string(partial.join(run_dir::RUN_FILE))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .is_some_and(|v| v.get(MARKER_KEY).is_some());
    let Ok(epochs) = partial.join(EPOCHS_DIR).read_dir() else {
        return 0;
    };
    if !marked {
        return 0;
    }
    let mut removed = 0;
    for epoch in epochs.flatten().map(|e| e.path()) {
        let numbered = epoch
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("epoch-"))
            .is_some_and(|n| n.parse::<usize>().is_ok());
        if numbered && write_guard::ours(&epoch).is_err() && half_written(&epoch) {
            let files = epoch.read_dir().map(|d| d.flatten().map(|e| e.path()));
            let cleared = files.is_ok_and(|mut f| f.all(|p| std::fs::remove_file(p).is_ok()));
            if cleared && std::fs::remove_dir(&epoch).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

/// Only regular files with the names a checkpoint holds, without the file
/// written last.
fn half_written(dir: &Path) -> bool {
    let Ok(entries) = dir.read_dir() else {
        return false;
    };
    entries.flatten().all(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        e.file_type().is_ok_and(|t| t.is_file())
            && CHECKPOINT_FILES.contains(&name.as_str())
            && name != "training_args.json"
    })
}

/// What the panel shows about one folder.
fn describe(folder: &Path) -> RunEntry {
    let name = folder
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut entry = RunEntry {
        name,
        path: folder.to_path_buf(),
        kind: RunKind::Saved,
        model: String::new(),
        task: None,
        modified: modified(folder),
        size: disk::dir_size(folder),
        metric: None,
        config: None,
    };
    if is_partial(folder) {
        match run_dir::ours(folder) {
            Ok(()) => describe_interrupted(folder, &mut entry),
            Err(why) => entry.kind = RunKind::NotOurs(why),
        }
    } else {
        match write_guard::ours(folder) {
            Ok(()) => describe_saved(folder, &mut entry),
            Err(why) => entry.kind = RunKind::NotOurs(why),
        }
    }
    entry
}

fn describe_saved(folder: &Path, entry: &mut RunEntry) {
    let args: Option<Value> = std::fs::read_to_string(folder.join("training_args.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    if let Some(args) = &args {
        entry.model = args
            .get("base_model")
            .and_then(Value::as_str)
            .map(folder_name)
            .unwrap_or_default();
        entry.config = serde_json::from_value(args.clone()).ok();
        entry.task = args
            .get("task")
            .and_then(|t| serde_json::from_value(t.clone()).ok());
    }
    if let Ok(Some(report)) = Report::load(folder) {
        entry.metric = best_metric(&report.epochs, report.best_epoch);
    }
}

fn describe_interrupted(folder: &Path, entry: &mut RunEntry) {
    let info = RunInfo::read(folder);
    let progress = run_dir::latest_state(folder).and_then(|s| run_dir::read_progress(&s).ok());
    let (done, metric) = progress.as_ref().map_or((0, None), |p| {
        (p.epoch, best_metric(&p.epochs, p.best_epoch))
    });
    entry.metric = metric;
    let resumable = match (&info, &progress) {
        (Err(e), _) => Err(e.clone()),
        (Ok(_), None) => Err("stopped before its first epoch ended: nothing to resume".into()),
        (Ok(_), Some(_)) => Ok(()),
    };
    let epochs = info.as_ref().map_or(0, |i| i.config.epochs);
    if let Ok(info) = info {
        entry.model = folder_name(&info.base_model.display().to_string());
        entry.task = Some(info.config.task);
        entry.config = Some(info.config);
    }
    entry.kind = RunKind::Interrupted {
        epochs_done: done,
        epochs,
        resumable,
    };
}

fn folder_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string())
}

/// The best epoch's dev metric: accuracy (classification), perplexity
/// (masked-LM), or the training loss without dev data.
pub fn best_metric(epochs: &[EpochSummary], best: Option<usize>) -> Option<String> {
    let best = best?;
    let e = epochs.iter().find(|e| e.epoch == best)?;
    Some(match &e.dev {
        Some(d) => match d.perplexity {
            Some(p) => format!("perplexity {p:.2} (epoch {best})"),
            None => format!("accuracy {:.1}% (epoch {best})", d.accuracy * 100.0),
        },
        None => format!("train loss {:.4} (epoch {best})", e.train_loss),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked_run_json(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        let run = format!(r#"{{"{MARKER_KEY}": "bertscope test"}}"#);
        std::fs::write(dir.join(run_dir::RUN_FILE), run).unwrap();
    }

    #[test]
    fn a_half_written_epoch_is_removed_so_the_run_can_be_deleted() {
        let tmp = tempfile::tempdir().unwrap();
        let partial = tmp.path().join("m-1.partial");
        marked_run_json(&partial);
        // Killed while writing epoch 2: its weights and config, not yet its args.
        let half = partial.join("epochs/epoch-2");
        std::fs::create_dir_all(&half).unwrap();
        std::fs::write(half.join("config.json"), "{}").unwrap();
        std::fs::write(half.join("model.safetensors"), "partial").unwrap();
        // And killed before its first write into a fresh epoch directory.
        std::fs::create_dir_all(partial.join("epochs/epoch-3")).unwrap();
        assert!(run_dir::ours(&partial).is_err());

        let scan = scan(tmp.path(), &ScanRules::default()).unwrap();
        assert_eq!(scan.tidied, 2);
        assert!(!half.exists());
        assert!(run_dir::ours(&partial).is_ok());
        let entry = &scan.entries[0];
        assert!(
            matches!(
                &entry.kind,
                RunKind::Interrupted {
                    resumable: Err(_),
                    ..
                }
            ),
            "{:?}",
            entry.kind
        );
        remove_run(&partial).unwrap();
        assert!(!partial.exists());
    }

    #[test]
    fn a_users_folder_is_listed_and_never_touched() {
        let tmp = tempfile::tempdir().unwrap();
        // An unmarked run.json: not bertscope's, however it looks.
        let fake = tmp.path().join("x.partial");
        std::fs::create_dir_all(fake.join("epochs/epoch-1")).unwrap();
        std::fs::write(fake.join("run.json"), "{}").unwrap();
        std::fs::write(fake.join("epochs/epoch-1/config.json"), "{}").unwrap();
        let mine = tmp.path().join("notes");
        std::fs::create_dir(&mine).unwrap();
        std::fs::write(mine.join("todo.txt"), "x").unwrap();

        let scan = scan(tmp.path(), &ScanRules::default()).unwrap();
        assert_eq!(scan.tidied, 0);
        assert!(fake.join("epochs/epoch-1/config.json").is_file());
        assert_eq!(scan.entries.len(), 2);
        assert!(scan
            .entries
            .iter()
            .all(|e| matches!(e.kind, RunKind::NotOurs(_))));
        assert!(remove_run(&mine).unwrap_err().contains("not deleted"));
        assert!(remove_run(&fake).unwrap_err().contains("not deleted"));
        assert!(mine.join("todo.txt").is_file() && fake.is_dir());
    }
}
