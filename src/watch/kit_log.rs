//! `bertscope-log.jsonl`, the kit's progress log, read a piece at a time:
//! only whole lines are taken, so a line still being written is read once it
//! is complete; a complete line that is not JSON is reported and skipped.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::{CheckpointInfo, EvalPoint, LogPoint, RunSnapshot, Source, WatchError, KIT_LOG};

#[derive(Default)]
pub(super) struct KitLog {
    /// Bytes of the file taken so far (whole lines and `pending`).
    offset: u64,
    /// The bytes after the last line end: a line still being written.
    pending: Vec<u8>,
    /// Complete lines read.
    lines: usize,
    max_steps: Option<usize>,
    /// The last record of each step (a resumed run repeats some).
    steps: BTreeMap<usize, (LogPoint, Option<f64>)>,
    evals: BTreeMap<usize, EvalPoint>,
    checkpoints: BTreeMap<PathBuf, (usize, f64)>,
    finished: bool,
    problems: Vec<String>,
}

impl KitLog {
    /// Read the lines added since the last call (from the start again when
    /// the file was replaced by a shorter one).
    pub(super) fn read_new(&mut self, path: &Path) -> Result<(), WatchError> {
        let io = |e: std::io::Error| WatchError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let mut file = std::fs::File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < self.offset {
            *self = KitLog::default();
        }
        file.seek(SeekFrom::Start(self.offset)).map_err(io)?;
        let mut fresh = Vec::new();
        file.take(len - self.offset)
            .read_to_end(&mut fresh)
            .map_err(io)?;
        self.offset += fresh.len() as u64;
        self.pending.extend_from_slice(&fresh);
        let Some(end) = self.pending.iter().rposition(|&b| b == b'\n') else {
            return Ok(());
        };
        let complete: Vec<u8> = self.pending.drain(..=end).collect();
        for line in complete[..end].split(|&b| b == b'\n') {
            self.lines += 1;
            if !line.iter().all(u8::is_ascii_whitespace) {
                self.take_line(line);
            }
        }
        Ok(())
    }

    fn take_line(&mut self, raw: &[u8]) {
        let line = self.lines;
        let Ok(text) = std::str::from_utf8(raw) else {
            self.problems
                .push(format!("{KIT_LOG}:{line}: not valid UTF-8; skipped"));
            return;
        };
        let record: Map<String, Value> = match serde_json::from_str(text.trim()) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                self.problems
                    .push(format!("{KIT_LOG}:{line}: not a JSON object; skipped"));
                return;
            }
            Err(e) => {
                self.problems
                    .push(format!("{KIT_LOG}:{line}: not JSON ({e}); skipped"));
                return;
            }
        };
        let number = |key: &str| record.get(key).and_then(Value::as_f64);
        let step = number("step").map(|s| s as usize);
        let epoch = number("epoch").unwrap_or(0.0);
        match record.get("event").and_then(Value::as_str) {
            Some("start") => {
                self.max_steps = number("max_steps").map(|s| s as usize);
                self.finished = false;
            }
            Some("finished") => self.finished = true,
            Some("checkpoint") => {
                if let (Some(step), Some(path)) = (step, record.get("path").and_then(Value::as_str))
                {
                    self.checkpoints.insert(PathBuf::from(path), (step, epoch));
                }
            }
            Some(_) => {}
            None if record.keys().any(|k| k.starts_with("eval_")) => {
                let metrics = record
                    .iter()
                    .filter(|(k, _)| k.starts_with("eval_"))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                let step = step.unwrap_or(0);
                self.evals.insert(
                    step,
                    EvalPoint {
                        step,
                        epoch,
                        metrics,
                    },
                );
            }
            None => match (step, number("loss"), number("learning_rate")) {
                (Some(step), Some(loss), Some(learning_rate)) => {
                    let point = LogPoint {
                        step,
                        epoch,
                        loss,
                        learning_rate,
                        grad_norm: number("grad_norm"),
                    };
                    self.steps.insert(step, (point, number("time")));
                }
                _ => self.problems.push(format!(
                    "{KIT_LOG}:{line}: a step line needs step, loss and learning_rate; skipped"
                )),
            },
        }
    }

    /// Seconds a step usually takes: the median of the recent steps' intervals.
    pub(super) fn usual_step_s(&self) -> Option<f64> {
        let times: Vec<f64> = self
            .steps
            .values()
            .rev()
            .take(21)
            .filter_map(|(_, t)| *t)
            .collect();
        let mut gaps: Vec<f64> = times
            .windows(2)
            .map(|w| w[0] - w[1])
            .filter(|g| *g >= 0.0)
            .collect();
        if gaps.is_empty() {
            return None;
        }
        gaps.sort_by(f64::total_cmp);
        Some(gaps[gaps.len() / 2])
    }

    pub(super) fn snapshot(&self, dir: &Path) -> RunSnapshot {
        let log: Vec<LogPoint> = self.steps.values().map(|(p, _)| p.clone()).collect();
        let eval: Vec<EvalPoint> = self.evals.values().cloned().collect();
        let global_step = log.last().map_or(0, |p| p.step);
        let epoch = log
            .last()
            .map(|p| p.epoch)
            .into_iter()
            .chain(eval.last().map(|e| e.epoch))
            .fold(0.0, f64::max);
        let mut checkpoints: Vec<CheckpointInfo> = self
            .checkpoints
            .iter()
            .map(|(path, &(step, epoch))| CheckpointInfo {
                step,
                epoch,
                path: dir.join(path),
                gone: false,
            })
            .collect();
        let zero = dir.join("epochs").join("epoch-0");
        if zero.join("config.json").is_file() {
            checkpoints.push(CheckpointInfo {
                step: 0,
                epoch: 0.0,
                path: zero,
                gone: false,
            });
        }
        let eta_s = match (self.max_steps, self.usual_step_s(), self.finished) {
            (Some(max), Some(per_step), false) => {
                Some(max.saturating_sub(global_step) as f64 * per_step)
            }
            _ => None,
        };
        RunSnapshot {
            global_step,
            max_steps: self.max_steps,
            epoch,
            finished: self.finished,
            log,
            eval,
            checkpoints,
            source: Source::Kit,
            idle_s: None,
            eta_s,
            problems: self.problems.clone(),
        }
    }
}
