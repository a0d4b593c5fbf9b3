//! The training worker: one thread per run owns the trainable model and the
//! device, runs the engine's loop and reports its events; the UI only sees
//! plain data and can cancel. A panic in the run, or a thread gone without a
//! word, ends the run as failed; a run cancelled before its first epoch ended
//! keeps nothing.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::sync::Arc;
use std::thread;

use crate::data::{self, Columns, ReadOptions};
use crate::device::{self, DeviceChoice};
use crate::train::{self, Event, Outcome, Report, TrainConfig};
use crate::ui::support::job;

/// Where the dev data comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum DevSource {
    None,
    File(PathBuf),
    /// Hold out this fraction of the training rows.
    Fraction(f64),
}

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct TrainJob {
    pub base_dir: PathBuf,
    pub train_path: PathBuf,
    pub dev: DevSource,
    pub columns: Columns,
    pub config: TrainConfig,
    pub device: DeviceChoice,
    /// The run's checkpoint (best epoch, with every epoch under `epochs/`).
    pub output: PathBuf,
}

/// A message from the training thread.
#[derive(Debug, Clone)]
pub enum TrainMsg {
    /// Rows dropped while reading, as `file:line: reason`.
    Skipped(Vec<String>),
    Event(Event),
    Finished {
        dir: PathBuf,
        report: Box<Report>,
    },
    /// Cancelled before the first epoch ended: nothing was saved.
    NothingKept {
        report: Box<Report>,
    },
    Failed(String),
}

impl TrainMsg {
    /// The run's last message.
    fn is_final(&self) -> bool {
        matches!(
            self,
            TrainMsg::Finished { .. } | TrainMsg::NothingKept { .. } | TrainMsg::Failed(_)
        )
    }
}

/// How a run that did not fail ended.
enum RunEnd {
    Saved(PathBuf, Report),
    NothingKept(Report),
}

/// The UI's end of a run.
pub struct TrainerHandle {
    cancel: Arc<AtomicBool>,
    messages: Receiver<TrainMsg>,
    /// The final message has been received.
    ended: bool,
}

impl TrainerHandle {
    /// Start `job` on its own thread; `notify` is called after each message.
    pub fn start(job: TrainJob, notify: impl Fn() + Send + 'static) -> Self {
        let scratch = scratch_dir(&job.output);
        Self::spawn(
            move |cancel, send| {
                let ended = run(&job, cancel, send);
                if scratch.exists() {
                    let _ = std::fs::remove_dir_all(&scratch);
                }
                ended
            },
            notify,
        )
    }

    /// Run `work` on the training thread and send its end as the final message.
    fn spawn(
        work: impl FnOnce(&AtomicBool, &dyn Fn(TrainMsg)) -> anyhow::Result<RunEnd> + Send + 'static,
        notify: impl Fn() + Send + 'static,
    ) -> Self {
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, rx) = channel();
        let flag = cancel.clone();
        let spawned = thread::Builder::new()
            .name("bertscope-trainer".into())
            .spawn(move || {
                let send = |msg: TrainMsg| {
                    let _ = tx.send(msg);
                    notify();
                };
                // After a panic nothing that `work` owned is used again and the
                // flag and the channel are safe to share across an unwind, so
                // asserting unwind safety is sound.
                let result = job::catch(AssertUnwindSafe(|| work(&flag, &send)));
                send(match result {
                    Ok(Ok(RunEnd::Saved(dir, report))) => TrainMsg::Finished {
                        dir,
                        report: Box::new(report),
                    },
                    Ok(Ok(RunEnd::NothingKept(report))) => TrainMsg::NothingKept {
                        report: Box::new(report),
                    },
                    Ok(Err(e)) => TrainMsg::Failed(format!("{e:#}")),
                    Err(panic) => TrainMsg::Failed(format!("the training worker crashed: {panic}")),
                });
            });
        let (failed_tx, failed_rx) = channel();
        let messages = match spawned {
            Ok(_) => rx,
            Err(e) => {
                let _ = failed_tx.send(TrainMsg::Failed(format!(
                    "cannot start the training thread: {e}"
                )));
                failed_rx
            }
        };
        TrainerHandle {
            cancel,
            messages,
            ended: false,
        }
    }

    /// Ask the loop to stop; it keeps the best checkpoint so far.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub fn cancelling(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Every message received so far; a thread gone before its final message
    /// ends the run as failed.
    pub fn poll(&mut self) -> Vec<TrainMsg> {
        let mut messages = Vec::new();
        loop {
            match self.messages.try_recv() {
                Ok(msg) => {
                    self.ended |= msg.is_final();
                    messages.push(msg);
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    if !self.ended {
                        self.ended = true;
                        messages.push(TrainMsg::Failed(
                            "the training worker stopped without finishing the run".into(),
                        ));
                    }
                    break;
                }
            }
        }
        messages
    }
}

/// Where the run keeps its epoch checkpoints until it is saved.
fn scratch_dir(output: &Path) -> PathBuf {
    output.with_extension("epochs-tmp")
}

fn run(job: &TrainJob, cancel: &AtomicBool, send: &dyn Fn(TrainMsg)) -> anyhow::Result<RunEnd> {
    let labelled = job.config.task == train::Task::Classification;
    let read = |path: &Path| -> anyhow::Result<data::Dataset> {
        let ds = if !labelled && path.extension().is_some_and(|e| e == "txt") {
            data::read_lines(path)?
        } else {
            data::read(
                path,
                &ReadOptions {
                    delimiter: None,
                    columns: job.columns.clone(),
                    require_label: labelled,
                    skip_bad_rows: true,
                },
            )?
        };
        if !ds.skipped.is_empty() {
            send(TrainMsg::Skipped(
                ds.skipped
                    .iter()
                    .map(|s| format!("{}:{}: {}", path.display(), s.line, s.reason))
                    .collect(),
            ));
        }
        Ok(ds)
    };
    let mut train_data = read(&job.train_path)?;
    let dev_data = match &job.dev {
        DevSource::None => None,
        DevSource::File(path) => Some(read(path)?),
        DevSource::Fraction(f) => Some(train::split_dev(&mut train_data, *f, job.config.seed)),
    };
    let device = device::select(job.device)?;
    let config = TrainConfig {
        epochs_dir: Some(scratch_dir(&job.output)),
        ..job.config.clone()
    };
    let mut on_event = |event: Event| send(TrainMsg::Event(event));
    let trained = train::train(
        &job.base_dir,
        &train_data,
        dev_data.as_ref(),
        &config,
        &device,
        &mut on_event,
        cancel,
    )?;
    // Cancelled before any epoch ended: the weights are the base with a head
    // trained for a few steps, not a model worth keeping.
    let report = &trained.report;
    if report.outcome == Outcome::Cancelled && report.best_epoch.is_none() {
        return Ok(RunEnd::NothingKept(trained.report));
    }
    let dir = train::save::save(&trained, &config, &job.output, false)?;
    Ok(RunEnd::Saved(dir, trained.report))
}

/// A fresh directory name for a run of `base` under `runs_dir`.
pub fn run_dir(runs_dir: &Path, base: &Path) -> PathBuf {
    let name = base.file_name().and_then(|n| n.to_str()).unwrap_or("model");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut dir = runs_dir.join(format!("{name}-{stamp}"));
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = runs_dir.join(format!("{name}-{stamp}-{n}"));
    }
    dir
}

/// Where the app keeps its runs: `$XDG_CACHE_HOME/bertscope/runs`, else
/// `~/.cache/bertscope/runs`, else the system's temporary directory.
pub fn default_runs_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("bertscope").join("runs")
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::ui::training::run::{RunState, RunStatus};

    /// Apply the handle's messages until the run is no longer active.
    fn finish(handle: &mut TrainerHandle, run: &mut RunState) {
        let start = Instant::now();
        while run.is_active() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the run never ended: {:?}",
                run.log
            );
            for msg in handle.poll() {
                run.apply(msg);
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn a_panic_in_the_run_fails_it_with_the_message() {
        let mut handle = TrainerHandle::spawn(|_, _| panic!("index out of bounds"), || {});
        let mut run = RunState::running(1);
        finish(&mut handle, &mut run);
        assert_eq!(
            run.status,
            RunStatus::Failed("the training worker crashed: index out of bounds".into())
        );
    }

    #[test]
    fn a_thread_gone_without_its_final_message_fails_the_run() {
        let (tx, rx) = channel();
        let _ = tx.send(TrainMsg::Skipped(vec!["a.tsv:3: no label".into()]));
        drop(tx);
        let mut handle = TrainerHandle {
            cancel: Arc::default(),
            messages: rx,
            ended: false,
        };
        let mut run = RunState::running(1);
        finish(&mut handle, &mut run);
        assert!(
            matches!(&run.status, RunStatus::Failed(e) if e.contains("stopped without finishing")),
            "{:?}",
            run.status
        );
        assert!(handle.poll().is_empty(), "said once");
    }
}
