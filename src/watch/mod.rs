//! Following a training run that writes a Hugging Face Trainer output folder:
//! a run of bertscope's Trainer kit (its `bertscope-log.jsonl`, one line per
//! step) or any plain Trainer run (`trainer_state.json` in the newest
//! `checkpoint-*`, or in the folder itself). Reading never fails on a file
//! that is still being written: a half-written line or file is read again
//! once it is complete.

pub mod follow;
mod kit_log;
mod trainer_state;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;
use serde_json::Value;

/// The kit's progress log, in the run's output folder.
pub const KIT_LOG: &str = "bertscope-log.jsonl";
const STATE_FILE: &str = "trainer_state.json";
const WEIGHT_FILES: [&str; 3] = [
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
];

/// Why a folder cannot be watched.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("{0}: no such folder")]
    NotFound(PathBuf),
    #[error("{path}: not a Trainer output folder ({missing})")]
    NotTrainerOutput { path: PathBuf, missing: String },
    #[error("{path}: cannot read: {message}")]
    Io { path: PathBuf, message: String },
}

/// Which files the run is read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// bertscope's Trainer kit: `bertscope-log.jsonl`.
    #[default]
    Kit,
    /// A plain Trainer run: `trainer_state.json`.
    Trainer,
}

/// One optimiser step's log.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LogPoint {
    pub step: usize,
    pub epoch: f64,
    pub loss: f64,
    pub learning_rate: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grad_norm: Option<f64>,
}

/// One evaluation: its step, epoch and metrics (`eval_loss`, `eval_accuracy`, …).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalPoint {
    pub step: usize,
    pub epoch: f64,
    #[serde(flatten)]
    pub metrics: BTreeMap<String, Value>,
}

impl EvalPoint {
    pub fn metric(&self, name: &str) -> Option<f64> {
        self.metrics.get(name).and_then(Value::as_f64)
    }
}

/// A checkpoint the run wrote, and whether it is still there.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckpointInfo {
    pub step: usize,
    pub epoch: f64,
    pub path: PathBuf,
    /// Deleted since it was written (`save_total_limit`, or by hand).
    pub gone: bool,
}

/// Everything known about a run at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct RunSnapshot {
    pub global_step: usize,
    pub max_steps: Option<usize>,
    pub epoch: f64,
    pub finished: bool,
    pub log: Vec<LogPoint>,
    pub eval: Vec<EvalPoint>,
    pub checkpoints: Vec<CheckpointInfo>,
    pub source: Source,
    /// Seconds since the run's log last changed.
    pub idle_s: Option<f64>,
    /// Estimated seconds to the last step, from the recent steps' pace.
    pub eta_s: Option<f64>,
    /// What is wrong but does not stop the watching (a truncated file, a
    /// line that is not JSON, a run that stopped logging).
    pub problems: Vec<String>,
}

impl RunSnapshot {
    /// The one-line progress summary at the newest step.
    pub fn progress_line(&self) -> String {
        self.progress_line_at(self.log.last())
    }

    /// The progress line at one logged step: step / max, epoch, loss, lr,
    /// the dev metrics evaluated by then, and the ETA.
    pub fn progress_line_at(&self, point: Option<&LogPoint>) -> String {
        let step = point.map_or(self.global_step, |p| p.step);
        let mut parts = vec![match self.max_steps {
            Some(max) => format!("step {step}/{max}"),
            None => format!("step {step}"),
        }];
        parts.push(format!(
            "epoch {:.2}",
            point.map_or(self.epoch, |p| p.epoch)
        ));
        if let Some(p) = point {
            parts.push(format!("loss {:.4}", p.loss));
            parts.push(format!("lr {:.2e}", p.learning_rate));
        }
        if let Some(eval) = self.eval.iter().rev().find(|e| e.step <= step) {
            for (name, shown) in [
                ("eval_loss", "dev loss"),
                ("eval_accuracy", "dev accuracy"),
                ("eval_macro_f1", "macro-F1"),
                ("eval_perplexity", "perplexity"),
            ] {
                if let Some(v) = eval.metric(name) {
                    parts.push(match name {
                        "eval_accuracy" => format!("{shown} {:.2}%", v * 100.0),
                        _ => format!("{shown} {v:.4}"),
                    });
                }
            }
        }
        if self.finished && step == self.global_step {
            parts.push("finished".into());
        } else if let Some(eta) = self.eta_s {
            parts.push(format!("eta {}", human_duration(eta)));
        }
        parts.join("  ")
    }
}

/// `1h 02m`, `3m 05s`, `12s`.
pub fn human_duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        _ => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
    }
}

/// A run folder read again and again: each [`Watcher::refresh`] reads only
/// what is new, and remembers the checkpoints it has seen so that a deleted
/// one is listed as gone.
pub struct Watcher {
    dir: PathBuf,
    kit: kit_log::KitLog,
    seen: BTreeMap<PathBuf, (usize, f64)>,
    snapshot: RunSnapshot,
    /// The last complete trainer_state.json read, and from where.
    last_state: Option<(PathBuf, trainer_state::State)>,
    /// Reads of trainer_state.json that found it incomplete, in a row.
    incomplete_reads: usize,
    /// When this watcher first saw the run, and at which step (a plain
    /// run's pace, for its ETA).
    first_seen: Option<(std::time::Instant, usize)>,
}

impl Watcher {
    pub fn new(dir: &Path) -> Watcher {
        Watcher {
            dir: dir.to_path_buf(),
            kit: kit_log::KitLog::default(),
            seen: BTreeMap::new(),
            snapshot: RunSnapshot::default(),
            last_state: None,
            incomplete_reads: 0,
            first_seen: None,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Read what is new and return the run as it stands.
    pub fn refresh(&mut self) -> Result<RunSnapshot, WatchError> {
        if !self.dir.is_dir() {
            return Err(WatchError::NotFound(self.dir.clone()));
        }
        let log = self.dir.join(KIT_LOG);
        let mut snapshot = if log.is_file() {
            self.kit.read_new(&log)?;
            self.kit.snapshot(&self.dir)
        } else {
            self.read_trainer_state()?
        };
        self.mark_checkpoints(&mut snapshot);
        if snapshot.eta_s.is_none() && !snapshot.finished {
            snapshot.eta_s = self.pace_eta(&snapshot);
        }
        snapshot.idle_s = last_change(&self.dir, snapshot.source)
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .map(|d| d.as_secs_f64());
        if let (Some(idle), false) = (snapshot.idle_s, snapshot.finished) {
            let usual = self.kit.usual_step_s().unwrap_or(60.0);
            if idle > (usual * 20.0).max(300.0) {
                snapshot.problems.push(format!(
                    "no new log entry for {}: the run may have stopped",
                    human_duration(idle)
                ));
            }
        }
        self.snapshot = snapshot.clone();
        Ok(snapshot)
    }

    fn read_trainer_state(&mut self) -> Result<RunSnapshot, WatchError> {
        let candidates = trainer_state::candidates(&self.dir);
        if candidates.is_empty() {
            return Err(WatchError::NotTrainerOutput {
                path: self.dir.clone(),
                missing: missing_files(&self.dir),
            });
        }
        let mut problems = Vec::new();
        let mut state = None;
        for file in &candidates {
            match trainer_state::read(file) {
                Ok(s) => {
                    state = Some((file.clone(), s));
                    break;
                }
                Err(why) => problems.push(format!("{}: {why}", file.display())),
            }
        }
        // A state file caught half written is read again next time; only one
        // that stays bad is reported.
        let incomplete = !problems.is_empty();
        self.incomplete_reads = if incomplete {
            self.incomplete_reads + 1
        } else {
            0
        };
        if self.incomplete_reads < 3 {
            problems.clear();
        }
        let newest_complete = match (&state, &self.last_state) {
            (Some((_, s)), Some((_, old))) if old.global_step > s.global_step => {
                self.last_state.clone()
            }
            (Some(found), _) => Some(found.clone()),
            (None, old) => old.clone(),
        };
        self.last_state = newest_complete.clone();
        let mut snapshot = match newest_complete {
            Some((_, s)) => s.snapshot(&self.dir),
            None => RunSnapshot {
                source: Source::Trainer,
                ..RunSnapshot::default()
            },
        };
        snapshot.finished = has_final_model(&self.dir);
        snapshot.problems.extend(problems);
        Ok(snapshot)
    }

    /// Remaining steps at the pace seen since this watcher started.
    fn pace_eta(&mut self, snapshot: &RunSnapshot) -> Option<f64> {
        let (since, first_step) = *self
            .first_seen
            .get_or_insert((std::time::Instant::now(), snapshot.global_step));
        let done = snapshot
            .global_step
            .checked_sub(first_step)
            .filter(|&d| d > 0)?;
        let per_step = since.elapsed().as_secs_f64() / done as f64;
        Some(snapshot.max_steps?.saturating_sub(snapshot.global_step) as f64 * per_step)
    }

    /// Checkpoints seen earlier and missing now are kept, marked gone.
    fn mark_checkpoints(&mut self, snapshot: &mut RunSnapshot) {
        for c in &mut snapshot.checkpoints {
            c.gone = !c.path.is_dir();
            self.seen.insert(c.path.clone(), (c.step, c.epoch));
        }
        for (path, &(step, epoch)) in &self.seen {
            if !snapshot.checkpoints.iter().any(|c| &c.path == path) {
                snapshot.checkpoints.push(CheckpointInfo {
                    step,
                    epoch,
                    path: path.clone(),
                    gone: true,
                });
            }
        }
        snapshot
            .checkpoints
            .sort_by(|a, b| (a.step, &a.path).cmp(&(b.step, &b.path)));
    }
}

/// Whether `dir` holds a Trainer run's logs (the kit's log, a
/// `trainer_state.json`, or a checkpoint with one).
pub fn looks_like_run(dir: &Path) -> bool {
    dir.join(KIT_LOG).is_file() || !trainer_state::candidates(dir).is_empty()
}

/// The final model is in place: config and weights in the folder itself.
fn has_final_model(dir: &Path) -> bool {
    dir.join("config.json").is_file() && WEIGHT_FILES.iter().any(|f| dir.join(f).is_file())
}

/// When the run's log last changed.
fn last_change(dir: &Path, source: Source) -> Option<SystemTime> {
    let modified = |p: PathBuf| p.metadata().and_then(|m| m.modified()).ok();
    match source {
        Source::Kit => modified(dir.join(KIT_LOG)),
        Source::Trainer => {
            let mut files = vec![dir.join(STATE_FILE)];
            files.extend(
                trainer_state::checkpoint_dirs(dir)
                    .into_iter()
                    .map(|(_, d)| d.join(STATE_FILE)),
            );
            files.into_iter().filter_map(modified).max()
        }
    }
}

/// What a Trainer output folder lacks, in words.
fn missing_files(dir: &Path) -> String {
    let checkpoints = trainer_state::checkpoint_dirs(dir);
    if checkpoints.is_empty() {
        format!("no {KIT_LOG}, no {STATE_FILE} and no checkpoint-N folders")
    } else {
        format!(
            "no {KIT_LOG}, and none of its {} checkpoint-N folders holds a {STATE_FILE}",
            checkpoints.len()
        )
    }
}

#[cfg(test)]
mod tests;
