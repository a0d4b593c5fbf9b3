//! A run's working directory (`OUTPUT.partial/`): what an interrupted run
//! leaves behind so that `finetune --resume` can continue it exactly.
//!
//! ```text
//! run.json              bertscope's mark and what the caller needs to restart the run
//! last/                 the last finished epoch: checkpoint + optimizer.safetensors + trainer_state.json
//! best/                 the best epoch, when a later epoch was worse (same layout)
//! epochs/epoch-N/       per-epoch checkpoints, when kept
//! ```
//!
//! Every write goes through a staging directory and an atomic replace, so a
//! kill at any moment leaves a consistent state to resume from.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{read_to_string, BertError, Op, Result};
use crate::train::{EpochSummary, Outcome, StepRecord, TrainConfig};
use crate::write_guard::{self, MARKER_KEY};

pub const RUN_FILE: &str = "run.json";
pub const LAST: &str = "last";
pub const BEST: &str = "best";
pub const STATE_FILE: &str = "trainer_state.json";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// The loop's position after a finished epoch: everything besides the
/// weights and the optimiser moments that a resumed run restores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Progress {
    /// The last finished epoch (0: none yet).
    pub epoch: usize,
    /// Optimiser steps taken.
    pub step: usize,
    pub epochs: Vec<EpochSummary>,
    pub best_epoch: Option<usize>,
    /// The best epoch's score (higher is better); `None` before any epoch.
    pub best_score: Option<f64>,
    pub history: Vec<StepRecord>,
    pub examples_seen: usize,
    /// Training time so far, for examples/s across a resume.
    pub elapsed_s: f64,
    pub outcome: Outcome,
    /// Rows of training data (a resumed run must see the same data).
    pub train_rows: usize,
}

impl Default for Progress {
    fn default() -> Self {
        Progress {
            epoch: 0,
            step: 0,
            epochs: Vec::new(),
            best_epoch: None,
            best_score: None,
            history: Vec::new(),
            examples_seen: 0,
            elapsed_s: 0.0,
            outcome: Outcome::Finished,
            train_rows: 0,
        }
    }
}

/// Bytes of the base model's weight files (0 when they cannot be listed).
pub fn weights_size(base: &Path) -> u64 {
    crate::checkpoint::weight_files(base)
        .map(|files| {
            files
                .iter()
                .filter_map(|f| f.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Checkpoints a run keeps under `epochs/`: epoch 0 (the base with its new
/// head) and one per epoch it can reach (each epoch takes at least a step).
pub fn kept_epochs(config: &TrainConfig) -> usize {
    config
        .max_steps
        .map_or(config.epochs, |steps| steps.min(config.epochs))
        .saturating_add(1)
}

/// A run's peak on disk, as the CLI counts it: the last and best epochs'
/// states with AdamW's two moments and the next state being written (7 × the
/// weights), plus one checkpoint per kept epoch.
pub fn space_needed(weights: u64, kept: usize) -> u64 {
    weights.saturating_mul(7u64.saturating_add(kept as u64))
}

/// `NAME.partial` next to `output`: where a run to `output` keeps its state.
pub fn partial_path(output: &Path) -> PathBuf {
    let mut name = output
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "output".into());
    name.push(".partial");
    output.with_file_name(name)
}

/// Create a new run directory at `path` (which must not exist) holding
/// `run.json`: bertscope's mark plus `info`. Made complete in a staging
/// directory first, so that a kill never leaves an unmarked directory.
pub fn create(path: &Path, info: &Value) -> Result<()> {
    let mut run = info.clone();
    if let Value::Object(obj) = &mut run {
        obj.insert(MARKER_KEY.into(), Value::String(marker()));
    }
    let text =
        serde_json::to_string_pretty(&run).map_err(|e| BertError::file(path, e.to_string()))?;
    let staging = write_guard::staging_dir(path, "run")?;
    let file = staging.join(RUN_FILE);
    let written = std::fs::write(&file, text + "\n")
        .map_err(|e| BertError::io(Op::Write, &file, &e))
        .and_then(|()| {
            std::fs::rename(&staging, path).map_err(|e| BertError::io(Op::Create, path, &e))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&file);
        let _ = std::fs::remove_dir(&staging);
    }
    written
}

/// `bertscope VERSION`, the mark on everything bertscope writes.
pub fn marker() -> String {
    format!("bertscope {}", env!("CARGO_PKG_VERSION"))
}

/// The `run.json` of a run directory, once it is shown to be bertscope's.
pub fn read_info(path: &Path) -> Result<Value> {
    ours(path).map_err(|why| {
        BertError::file(path, format!("is not a bertscope run directory ({why})"))
    })?;
    let file = path.join(RUN_FILE);
    serde_json::from_str(&read_to_string(&file)?).map_err(|e| BertError::json(&file, &e))
}

/// `Ok` when `dir` holds only what a run directory holds, with bertscope's mark.
pub fn ours(dir: &Path) -> std::result::Result<(), String> {
    let entries = dir.read_dir().map_err(|e| format!("cannot list it: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list it: {e}"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        match name.as_str() {
            RUN_FILE => {}
            LAST | BEST => write_guard::ours(&path).map_err(|why| format!("{name}/: {why}"))?,
            write_guard::EPOCHS_DIR => {
                for sub in path.read_dir().map_err(|e| e.to_string())?.flatten() {
                    write_guard::ours(&sub.path()).map_err(|why| {
                        format!("{name}/{}: {why}", sub.file_name().to_string_lossy())
                    })?;
                }
            }
            // Staging directories a killed write left behind.
            other if other.starts_with('.') && other.contains(".bertscope-") => {}
            other => return Err(format!("it holds {other}")),
        }
    }
    let text = std::fs::read_to_string(dir.join(RUN_FILE)).map_err(|_| "it has no run.json")?;
    let value: Value = serde_json::from_str(&text).map_err(|_| "its run.json is not JSON")?;
    if value.get(MARKER_KEY).is_some() {
        Ok(())
    } else {
        Err("its run.json has no bertscope mark".into())
    }
}

/// Delete a run directory after checking that it is one. It is renamed to a
/// staging name first, so a kill midway never leaves a half-deleted run
/// (which, without its `run.json`, could be neither resumed nor replaced);
/// the leftover is cleared by the next run (`write_guard::remove_stale_staging`).
pub fn remove(path: &Path) -> Result<()> {
    ours(path).map_err(|why| {
        BertError::file(path, format!("not deleted: not a bertscope run ({why})"))
    })?;
    let doomed = write_guard::staging_dir(path, "old")?;
    std::fs::remove_dir(&doomed).map_err(|e| BertError::io(Op::Remove, &doomed, &e))?;
    std::fs::rename(path, &doomed).map_err(|e| BertError::io(Op::Rename, path, &e))?;
    std::fs::remove_dir_all(&doomed).map_err(|e| BertError::io(Op::Remove, path, &e))
}

/// The directory holding the latest resumable state: `last/`, else `best/`
/// (a kill between setting the best epoch aside and writing the next one).
pub fn latest_state(run: &Path) -> Option<PathBuf> {
    [LAST, BEST]
        .iter()
        .map(|name| run.join(name))
        .find(|dir| dir.join(STATE_FILE).is_file())
}

/// The progress recorded in a state directory.
pub fn read_progress(state: &Path) -> Result<Progress> {
    let file = state.join(STATE_FILE);
    serde_json::from_str(&read_to_string(&file)?).map_err(|e| BertError::json(&file, &e))
}

/// Write `progress` as the state directory's `trainer_state.json`.
pub fn write_progress(state: &Path, progress: &Progress) -> Result<()> {
    let file = state.join(STATE_FILE);
    let text = serde_json::to_string_pretty(progress)
        .map_err(|e| BertError::file(&file, e.to_string()))?;
    std::fs::write(&file, text + "\n").map_err(|e| BertError::io(Op::Write, &file, &e))
}

/// Where the best epoch's weights are on disk for a state whose best epoch is
/// `best_epoch`: `last/` when that is the last epoch, else `best/`.
pub fn best_dir(run: &Path, progress: &Progress) -> Option<PathBuf> {
    let best = progress.best_epoch?;
    [LAST, BEST]
        .iter()
        .map(|name| run.join(name))
        .find(|dir| read_progress(dir).is_ok_and(|p| p.epoch == best))
}
