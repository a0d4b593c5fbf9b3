//! The training worker: one thread per run owns the trainable model and the
//! device, runs the engine's loop and reports its events; the UI only sees
//! plain data and can cancel. A run lives in its run directory
//! (`OUTPUT.partial/`, see `train::run_dir`) until it is saved: a checkpoint
//! that cannot be written is a warning, a failed final save keeps that
//! directory for *Resume*, and a run killed with the app is resumed from it.
//! A panic in the run, or a thread gone without a word, ends the run as
//! failed; a run cancelled before its first epoch ended keeps nothing. A
//! cancel while training stops it and saves the best epoch; a cancel during
//! that final save stops the save and keeps the run for *Resume* / *Save as…*.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::sync::Arc;
use std::thread;

use anyhow::{anyhow, bail};

use crate::data::{self, Columns, ReadOptions};
use crate::device::{self, DeviceChoice};
use crate::train::{self, run_dir, save, Event, Outcome, Report, TrainConfig};
use crate::ui::support::job;
use crate::ui::training::run_info::RunInfo;
use crate::ui::training::{disk, partial, runs};
use crate::write_guard::{self, Protected, EPOCHS_DIR};

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
    /// The data files' field separator (`None`: by extension).
    pub delimiter: Option<u8>,
    pub config: TrainConfig,
    pub device: DeviceChoice,
    /// The run's checkpoint (best epoch, with every epoch under `epochs/`).
    /// Until it is saved, the run lives in `OUTPUT.partial/`.
    pub output: PathBuf,
    /// Keep a checkpoint per epoch (the compare view's slider).
    pub keep_epochs: bool,
    /// Continue the interrupted run in `OUTPUT.partial/` instead of starting one.
    pub resume: bool,
}

impl TrainJob {
    /// The run's working directory.
    pub fn partial(&self) -> PathBuf {
        run_dir::partial_path(&self.output)
    }

    /// What neither the output nor the run directory may be, hold or sit in.
    fn protected(&self) -> Protected {
        let mut p = Protected::new()
            .with("the base model", &self.base_dir)
            .with("the training data", &self.train_path);
        if let DevSource::File(dev) = &self.dev {
            p.add("the dev data", dev);
        }
        p
    }

    /// The same job with every path absolute, so that its `run.json` can be
    /// resumed from any directory.
    fn absolute(&self) -> TrainJob {
        let abs = |p: &Path| write_guard::absolute(p);
        TrainJob {
            base_dir: abs(&self.base_dir),
            train_path: abs(&self.train_path),
            dev: match &self.dev {
                DevSource::File(p) => DevSource::File(abs(p)),
                other => other.clone(),
            },
            output: abs(&self.output),
            ..self.clone()
        }
    }
}

/// A message from the training thread.
#[derive(Debug, Clone)]
pub enum TrainMsg {
    /// Rows dropped while reading, as `file:line: reason`.
    Skipped(Vec<String>),
    /// A line for the log (the disk the run needs, resuming).
    Note(String),
    /// What the run trains on (`CPU (2 threads), auto: no usable GPU`).
    Device(String),
    /// A resumed run's epochs so far, before it goes on.
    Resumed {
        planned_epochs: usize,
        so_far: Box<run_dir::Progress>,
    },
    Event(Event),
    Finished {
        dir: PathBuf,
        report: Box<Report>,
    },
    /// Cancelled before the first epoch ended: nothing was saved.
    NothingKept {
        report: Box<Report>,
    },
    /// Trained, but the checkpoint could not be written: the run's state
    /// stays in `partial` (*Resume* saves it, *Save as…* copies its best epoch).
    NotSaved {
        partial: PathBuf,
        error: String,
        report: Box<Report>,
    },
    /// The run stopped on an error; `resumable`: its state kept for *Resume*.
    Failed {
        error: String,
        resumable: Option<PathBuf>,
    },
}

impl TrainMsg {
    /// A failure with nothing to resume.
    pub fn failed(error: impl Into<String>) -> Self {
        TrainMsg::Failed {
            error: error.into(),
            resumable: None,
        }
    }

    /// The run's last message.
    fn is_final(&self) -> bool {
        matches!(
            self,
            TrainMsg::Finished { .. }
                | TrainMsg::NothingKept { .. }
                | TrainMsg::NotSaved { .. }
                | TrainMsg::Failed { .. }
        )
    }
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
        Self::spawn(move |cancel, send| run(&job, cancel, send), notify)
    }

    /// Continue the interrupted run kept in `partial` (its `run.json` says
    /// how), on `device`, and save it.
    pub fn resume(
        partial: PathBuf,
        device: DeviceChoice,
        notify: impl Fn() + Send + 'static,
    ) -> Self {
        Self::spawn(
            move |cancel, send| {
                let info = match RunInfo::read(&partial) {
                    Ok(info) => info,
                    Err(e) => return TrainMsg::failed(format!("cannot resume: {e}")),
                };
                let state = run_dir::latest_state(&partial);
                if let Some(progress) = state.and_then(|s| run_dir::read_progress(&s).ok()) {
                    send(TrainMsg::Resumed {
                        planned_epochs: info.config.epochs,
                        so_far: Box::new(progress),
                    });
                }
                run(&info.resume_job(device), cancel, send)
            },
            notify,
        )
    }

    /// Run `work` on the training thread and send its end as the final message.
    fn spawn(
        work: impl FnOnce(&AtomicBool, &dyn Fn(TrainMsg)) -> TrainMsg + Send + 'static,
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
                send(result.unwrap_or_else(|panic| {
                    TrainMsg::failed(format!("the training worker crashed: {panic}"))
                }));
            });
        let (failed_tx, failed_rx) = channel();
        let messages = match spawned {
            Ok(_) => rx,
            Err(e) => {
                let _ = failed_tx.send(TrainMsg::failed(format!(
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
                        messages.push(TrainMsg::failed(
                            "the training worker stopped without finishing the run",
                        ));
                    }
                    break;
                }
            }
        }
        messages
    }
}

/// The whole run: its directory, the loop, the save. Returns the final message.
fn run(job: &TrainJob, cancel: &AtomicBool, send: &dyn Fn(TrainMsg)) -> TrainMsg {
    let job = if job.resume {
        job.clone()
    } else {
        job.absolute()
    };
    let partial = job.partial();
    let protected = job.protected();
    let opened = if job.resume {
        check_resume(&job, &partial, &protected)
    } else {
        start_dir(&job, &partial, &protected, send)
    };
    if let Err(e) = opened {
        return TrainMsg::Failed {
            error: format!("not started: {e:#}"),
            resumable: (job.resume && run_dir::latest_state(&partial).is_some())
                .then(|| partial.clone()),
        };
    }
    match train_and_save(&job, &partial, &protected, cancel, send) {
        Ok(end) => end,
        Err(e) => {
            let resumable = run_dir::latest_state(&partial).map(|_| partial.clone());
            if resumable.is_none() && !job.resume {
                let _ = runs::remove_run(&partial);
            }
            TrainMsg::Failed {
                error: format!("{e:#}"),
                resumable,
            }
        }
    }
}

/// A new run: check the output and the disk, then make `OUTPUT.partial/`
/// with the `run.json` that *Resume* restarts it from.
fn start_dir(
    job: &TrainJob,
    partial: &Path,
    protected: &Protected,
    send: &dyn Fn(TrainMsg),
) -> anyhow::Result<()> {
    write_guard::remove_stale_staging(&job.output);
    write_guard::remove_stale_staging(partial);
    write_guard::check_output_dir(&job.output, protected, false)?;
    write_guard::check_output_dir(partial, protected, false)?;
    let kept = if job.keep_epochs {
        disk::kept_epochs(&job.config)
    } else {
        0
    };
    let space = disk::check_space(&job.base_dir, &job.output, kept).map_err(|e| anyhow!(e))?;
    send(TrainMsg::Note(space));
    run_dir::create(partial, &serde_json::to_value(RunInfo::of(job))?)?;
    Ok(())
}

/// An interrupted run: its directory must be bertscope's with a finished
/// epoch, and its output free to write (or bertscope's to replace).
fn check_resume(job: &TrainJob, partial: &Path, protected: &Protected) -> anyhow::Result<()> {
    write_guard::remove_stale_staging(&job.output);
    write_guard::remove_stale_staging(&partial.join(run_dir::LAST));
    // A checkpoint the stopped run was writing goes; the rest must be ours.
    partial::make_whole(partial).map_err(|e| anyhow!(e))?;
    if run_dir::latest_state(partial).is_none() {
        bail!(
            "{}: holds no finished epoch to resume from",
            partial.display()
        );
    }
    write_guard::check_output_dir(&job.output, protected, true)?;
    Ok(())
}

/// Read the data, train (or continue) in `partial`, save to the output.
fn train_and_save(
    job: &TrainJob,
    partial: &Path,
    protected: &Protected,
    cancel: &AtomicBool,
    send: &dyn Fn(TrainMsg),
) -> anyhow::Result<TrainMsg> {
    let (train_data, dev_data) = read_data(job, send)?;
    let device = device::select(job.device)?;
    let precision = job.config.precision;
    precision.check(&device)?;
    let described = device::describe(&device, job.device);
    send(TrainMsg::Device(format!(
        "{described}, {} products",
        precision.name()
    )));
    let config = TrainConfig {
        epochs_dir: job.keep_epochs.then(|| partial.join(EPOCHS_DIR)),
        run_dir: Some(partial.to_path_buf()),
        resume: job.resume,
        ..job.config.clone()
    };
    if job.resume {
        send(TrainMsg::Note(format!(
            "resuming the run in {}",
            partial.display()
        )));
    }
    let mut on_event = |event: Event| send(TrainMsg::Event(event));
    let trained = match train::train(
        &job.base_dir,
        &train_data,
        dev_data.as_ref(),
        &config,
        &device,
        &mut on_event,
        cancel,
    ) {
        Ok(trained) => trained,
        // Cancelled while the data was being prepared: nothing was trained,
        // and a resumed run keeps the epochs it had.
        Err(crate::error::BertError::Cancelled) => {
            let report = Box::new(train::Report::cancelled_before_training());
            if job.resume {
                return Ok(TrainMsg::NotSaved {
                    partial: partial.to_path_buf(),
                    error: "cancelled before resuming".into(),
                    report,
                });
            }
            runs::remove_run(partial).map_err(|e| anyhow!(e))?;
            return Ok(TrainMsg::NothingKept { report });
        }
        Err(e) => return Err(e.into()),
    };
    // Cancelled before any epoch ended: the weights are the base with a head
    // trained for a few steps, not a model worth keeping.
    let report = &trained.report;
    if report.outcome == Outcome::Cancelled && report.best_epoch.is_none() {
        runs::remove_run(partial).map_err(|e| anyhow!(e))?;
        let report = Box::new(report.clone());
        return Ok(TrainMsg::NothingKept { report });
    }
    // A cancel that stopped the training asked for the best epoch to be
    // saved: only a cancel after this point stops the save.
    let never = AtomicBool::new(false);
    let save_cancel = if cancel.load(Ordering::Relaxed) {
        &never
    } else {
        cancel
    };
    Ok(save_run(
        job,
        partial,
        protected,
        &trained,
        &config,
        save_cancel,
        send,
    ))
}

/// Save the trained run to its output and remove its directory; a failed or
/// cancelled save keeps the directory (`NotSaved`).
fn save_run(
    job: &TrainJob,
    partial: &Path,
    protected: &Protected,
    trained: &train::Trained,
    config: &TrainConfig,
    cancel: &AtomicBool,
    send: &dyn Fn(TrainMsg),
) -> TrainMsg {
    let report = Box::new(trained.report.clone());
    let saved =
        save::save_to_cancellable(trained, config, &job.output, protected, job.resume, cancel);
    match saved {
        Ok(dir) => {
            if let Err(e) = runs::remove_run(partial) {
                send(TrainMsg::Event(Event::Warning(format!(
                    "saved, but the run's working directory was not removed: {e}"
                ))));
            }
            TrainMsg::Finished { dir, report }
        }
        Err(e) => TrainMsg::NotSaved {
            partial: partial.to_path_buf(),
            error: match e {
                crate::error::BertError::Cancelled => "the save was cancelled".into(),
                e => e.to_string(),
            },
            report,
        },
    }
}

/// The training data and the dev data (a file, a held-out fraction, or none).
fn read_data(
    job: &TrainJob,
    send: &dyn Fn(TrainMsg),
) -> anyhow::Result<(data::Dataset, Option<data::Dataset>)> {
    let labelled = job.config.task == train::Task::Classification;
    let read = |path: &Path| -> anyhow::Result<data::Dataset> {
        let ds = if !labelled && path.extension().is_some_and(|e| e == "txt") {
            data::read_lines(path)?
        } else {
            data::read(
                path,
                &ReadOptions {
                    delimiter: job.delimiter,
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
    Ok((train_data, dev_data))
}

/// A fresh directory name for a run of `base` under `runs_dir` (neither it
/// nor its `.partial` exists).
pub fn run_dir(runs_dir: &Path, base: &Path) -> PathBuf {
    let name = base.file_name().and_then(|n| n.to_str()).unwrap_or("model");
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let taken = |dir: &Path| dir.exists() || run_dir::partial_path(dir).exists();
    let mut dir = runs_dir.join(format!("{name}-{stamp}"));
    let mut n = 1;
    while taken(&dir) {
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
mod tests;
