//! A plain Trainer run's `trainer_state.json`: the Trainer writes it into each
//! `checkpoint-N` it saves (and into the output folder when asked to), with
//! every log entry so far in `log_history`.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};

use super::{CheckpointInfo, EvalPoint, LogPoint, RunSnapshot, Source, STATE_FILE};

#[derive(Debug, Clone, Deserialize)]
pub(super) struct State {
    #[serde(default)]
    pub global_step: usize,
    #[serde(default)]
    max_steps: Option<usize>,
    #[serde(default)]
    epoch: Option<f64>,
    #[serde(default)]
    log_history: Vec<Map<String, Value>>,
    #[serde(default)]
    best_model_checkpoint: Option<String>,
    #[serde(default)]
    save_steps: Option<usize>,
}

/// `checkpoint-N` folders of `dir`, by step.
pub(super) fn checkpoint_dirs(dir: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(entries) = dir.read_dir() else {
        return Vec::new();
    };
    let mut found: Vec<(usize, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let step = name.strip_prefix("checkpoint-")?.parse().ok()?;
            e.path().is_dir().then(|| (step, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// The state files to read, the newest first: the newest checkpoint's, and
/// the folder's own when it was written later.
pub(super) fn candidates(dir: &Path) -> Vec<PathBuf> {
    let modified = |p: &Path| p.metadata().and_then(|m| m.modified()).ok();
    let mut files: Vec<PathBuf> = checkpoint_dirs(dir)
        .into_iter()
        .rev()
        .map(|(_, d)| d.join(STATE_FILE))
        .filter(|f| f.is_file())
        .collect();
    let own = dir.join(STATE_FILE);
    if own.is_file() {
        let newer = files.first().is_none_or(|f| modified(&own) >= modified(f));
        if newer {
            files.insert(0, own);
        } else {
            files.push(own);
        }
    }
    files
}

/// Read one state file; why not, in words, when it is incomplete or not UTF-8.
pub(super) fn read(path: &Path) -> Result<State, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| format!("not valid UTF-8 ({e})"))?;
    serde_json::from_str(text).map_err(|e| format!("truncated or not JSON ({e})"))
}

impl State {
    pub(super) fn snapshot(&self, dir: &Path) -> RunSnapshot {
        let number = |entry: &Map<String, Value>, key: &str| entry.get(key).and_then(Value::as_f64);
        let mut log = Vec::new();
        let mut eval = Vec::new();
        for entry in &self.log_history {
            let step = number(entry, "step").map_or(0, |s| s as usize);
            let epoch = number(entry, "epoch").unwrap_or(0.0);
            if entry.keys().any(|k| k.starts_with("eval_")) {
                let metrics = entry
                    .iter()
                    .filter(|(k, _)| k.starts_with("eval_"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                eval.push(EvalPoint {
                    step,
                    epoch,
                    metrics,
                });
            } else if let Some(loss) = number(entry, "loss") {
                log.push(LogPoint {
                    step,
                    epoch,
                    loss,
                    learning_rate: number(entry, "learning_rate").unwrap_or(0.0),
                    grad_norm: number(entry, "grad_norm"),
                });
            }
        }
        let epoch_at = |step: usize| {
            self.log_history
                .iter()
                .filter(|e| number(e, "step") == Some(step as f64))
                .find_map(|e| number(e, "epoch"))
                .unwrap_or(0.0)
        };
        let mut checkpoints: Vec<CheckpointInfo> = checkpoint_dirs(dir)
            .into_iter()
            .map(|(step, path)| CheckpointInfo {
                step,
                epoch: epoch_at(step),
                path,
                gone: false,
            })
            .collect();
        // Saving every `save_steps` steps: the checkpoints before the oldest
        // one left were deleted (save_total_limit).
        let every = self.save_steps.filter(|&n| n > 0);
        let first = checkpoints.first().map(|c| c.step);
        if let (Some(every), Some(first)) = (every, first) {
            if checkpoints.iter().all(|c| c.step % every == 0) {
                for step in (every..first).step_by(every) {
                    checkpoints.push(CheckpointInfo {
                        step,
                        epoch: epoch_at(step),
                        path: dir.join(format!("checkpoint-{step}")),
                        gone: true,
                    });
                }
            }
        }
        if let Some(best) = &self.best_model_checkpoint {
            let name = Path::new(best).file_name().map(|n| dir.join(n));
            let step = name.as_ref().and_then(|n| {
                n.file_name()?
                    .to_str()?
                    .strip_prefix("checkpoint-")?
                    .parse()
                    .ok()
            });
            if let (Some(path), Some(step)) = (name, step) {
                if !checkpoints.iter().any(|c| c.path == path) {
                    checkpoints.push(CheckpointInfo {
                        step,
                        epoch: epoch_at(step),
                        path,
                        gone: true,
                    });
                }
            }
        }
        checkpoints.sort_by_key(|c| c.step);
        RunSnapshot {
            global_step: self.global_step,
            max_steps: self.max_steps.filter(|&m| m > 0),
            epoch: self.epoch.unwrap_or(0.0),
            finished: false,
            log,
            eval,
            checkpoints,
            source: Source::Trainer,
            idle_s: None,
            eta_s: None,
            problems: Vec::new(),
        }
    }
}
