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
use crate::ui::training::partial;
use crate::ui::training::run_info::RunInfo;
use crate::write_guard;

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

/// Which scan is wanted next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Wanted {
    Nothing,
    Look,
    Prune,
}

/// What a scan must leave alone.
#[derive(Debug, Clone, Default)]
pub struct ScanRules {
    /// Bytes the saved runs' epoch checkpoints may take (`None`: only look).
    pub budget: Option<u64>,
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
    /// The scan asked for, started once nothing else runs.
    wanted: Wanted,
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
            wanted: Wanted::Look,
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

    /// Ask for a scan (now, or after the job under way); `prune`: also
    /// prune the epoch checkpoints to the budget (after a run, or when the
    /// user changes the budget or refreshes; never merely by opening the app).
    pub fn request_scan(&mut self, prune: bool) {
        let asked = if prune { Wanted::Prune } else { Wanted::Look };
        self.wanted = self.wanted.max(asked);
    }

    /// Ask before deleting `path` (the last outcome is cleared).
    pub fn ask_delete(&mut self, path: PathBuf) {
        self.message = None;
        self.confirm_delete = Some(path);
    }

    /// Start the scan asked for, if nothing else runs.
    pub fn start_scan(&mut self, mut rules: ScanRules, notify: impl Fn() + Send + 'static) {
        if self.wanted == Wanted::Nothing || self.busy() {
            return;
        }
        if self.wanted != Wanted::Prune {
            rules.budget = None;
        }
        self.wanted = Wanted::Nothing;
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
                self.request_scan(false);
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
/// only when it is plainly bertscope's. It is first moved aside to a hidden
/// staging name (`.NAME.bertscope-old-PID-N`): stopped midway, what is left
/// is a staging folder the next scan removes, never half a run.
pub fn remove_run(path: &Path) -> Result<(), String> {
    let interrupted = path.join(run_dir::RUN_FILE).is_file();
    if interrupted {
        partial::make_whole(path).map_err(|e| format!("not deleted: {e}"))?;
    } else {
        write_guard::ours(path).map_err(|why| {
            format!(
                "{}: not deleted: not a checkpoint bertscope wrote ({why})",
                path.display()
            )
        })?;
    }
    let aside = write_guard::staging_dir(path, "old").map_err(|e| e.to_string())?;
    if let Err(e) = std::fs::rename(path, &aside) {
        let _ = std::fs::remove_dir(&aside);
        return Err(format!(
            "{}: not deleted: cannot move it: {e}",
            path.display()
        ));
    }
    let removed = if interrupted {
        run_dir::remove(&aside)
    } else {
        write_guard::remove_ours(&aside)
    };
    removed.map_err(|e| {
        let _ = std::fs::rename(&aside, path);
        e.to_string()
    })
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
    let tidied = tidy(dir, &folders, rules.active.as_deref());
    let saved: Vec<(PathBuf, Option<SystemTime>)> = folders
        .iter()
        .filter(|f| !is_partial(f) && write_guard::ours(f).is_ok())
        .map(|f| (f.clone(), modified(f)))
        .collect();
    let pruned = match rules.budget {
        Some(budget) => disk::prune(&saved, budget, &rules.keep),
        None => Pruned::default(),
    };
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

/// Remove the staging directories (`.NAME.bertscope-KIND-PID-N`) that
/// stopped processes left in the runs folder — also those of a run deleted
/// since — and in the interrupted runs' `last/`; only when their process is
/// gone and they hold nothing but checkpoint files. Returns how many.
fn tidy(dir: &Path, folders: &[PathBuf], active: Option<&Path>) -> usize {
    let mut names: Vec<String> = dir
        .read_dir()
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let cut = name.find(".bertscope-")?;
                    name.starts_with('.').then(|| name[1..cut].to_string())
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names.dedup();
    let staged: usize = names
        .iter()
        .filter(|name| !name.is_empty())
        .map(|name| write_guard::remove_stale_staging(&dir.join(name)))
        .sum();
    let in_runs: usize = folders
        .iter()
        .filter(|f| is_partial(f) && active != Some(f.as_path()))
        .map(|f| write_guard::remove_stale_staging(&f.join(run_dir::LAST)))
        .sum();
    staged + in_runs
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
        match partial::check(folder) {
            Ok(_) => describe_interrupted(folder, &mut entry),
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
    use crate::write_guard::MARKER_KEY;

    fn marked_run_json(dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        let run = format!(r#"{{"{MARKER_KEY}": "bertscope test"}}"#);
        std::fs::write(dir.join(run_dir::RUN_FILE), run).unwrap();
    }

    #[test]
    fn a_run_stopped_mid_write_is_listed_and_deleted_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let partial = tmp.path().join("m-1.partial");
        marked_run_json(&partial);
        // Stopped while writing epoch 2's checkpoint; and a staging
        // directory of a process that is gone.
        let half = partial.join("epochs/epoch-2");
        std::fs::create_dir_all(&half).unwrap();
        std::fs::write(half.join("model.safetensors"), "cut short").unwrap();
        let stale = tmp.path().join(".m-1.partial.bertscope-run-999999999-0");
        std::fs::create_dir(&stale).unwrap();

        let found = scan(tmp.path(), &ScanRules::default()).unwrap();
        assert_eq!(found.tidied, 1);
        assert!(!stale.exists());
        assert!(half.is_dir(), "a scan only looks at a run directory");
        let entry = &found.entries[0];
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
        // Nothing else left, and a deleted run's leftover staging goes at the next scan.
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
        let orphan = tmp.path().join(".gone.bertscope-old-999999999-0");
        std::fs::create_dir_all(orphan.join("last")).unwrap();
        std::fs::write(orphan.join("last/model.safetensors"), "x").unwrap();
        assert_eq!(scan(tmp.path(), &ScanRules::default()).unwrap().tidied, 1);
        assert!(!orphan.exists());
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

    fn settle(panel: &mut RunsPanel, rules: &ScanRules) {
        panel.start_scan(rules.clone(), || {});
        let start = std::time::Instant::now();
        while panel.busy() {
            assert!(start.elapsed() < std::time::Duration::from_secs(10));
            std::thread::sleep(std::time::Duration::from_millis(2));
            panel.poll();
        }
    }

    #[test]
    fn opening_the_panel_only_looks_and_pruning_waits_to_be_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("r");
        for dir in [
            run.clone(),
            run.join("epochs/epoch-0"),
            run.join("epochs/epoch-1"),
        ] {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("config.json"), "{}").unwrap();
            let args = format!(r#"{{"task": "classification", "{MARKER_KEY}": "test"}}"#);
            std::fs::write(dir.join("training_args.json"), args).unwrap();
        }
        let rules = ScanRules {
            budget: Some(0),
            ..ScanRules::default()
        };
        let mut panel = RunsPanel::new(tmp.path().to_path_buf());
        settle(&mut panel, &rules);
        assert_eq!(panel.entries.len(), 1);
        assert!(
            run.join("epochs/epoch-0").is_dir(),
            "the first scan only looks"
        );
        panel.request_scan(true);
        settle(&mut panel, &rules);
        assert!(!run.join("epochs/epoch-0").exists());
        assert!(run.join("epochs/epoch-1").is_dir(), "the last epoch stays");
    }
}
