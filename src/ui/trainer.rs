//! The training worker: one thread per run owns the trainable model and the
//! device, runs the engine's loop and reports its events; the UI only sees
//! plain data and can cancel.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread;

use crate::data::{self, Columns, ReadOptions};
use crate::device::{self, DeviceChoice};
use crate::train::{self, Event, Report, TrainConfig};

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
    Failed(String),
}

/// The UI's end of a run.
pub struct TrainerHandle {
    cancel: Arc<AtomicBool>,
    messages: Receiver<TrainMsg>,
}

impl TrainerHandle {
    /// Start `job` on its own thread; `notify` is called after each message.
    pub fn start(job: TrainJob, notify: impl Fn() + Send + 'static) -> Self {
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
                let result = run(&job, &flag, &send);
                send(match result {
                    Ok((dir, report)) => TrainMsg::Finished {
                        dir,
                        report: Box::new(report),
                    },
                    Err(e) => TrainMsg::Failed(format!("{e:#}")),
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
        TrainerHandle { cancel, messages }
    }

    /// Ask the loop to stop; it keeps the best checkpoint so far.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    pub fn cancelling(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Every message received so far.
    pub fn poll(&self) -> Vec<TrainMsg> {
        self.messages.try_iter().collect()
    }
}

fn run(
    job: &TrainJob,
    cancel: &AtomicBool,
    send: &dyn Fn(TrainMsg),
) -> anyhow::Result<(PathBuf, Report)> {
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
    let scratch = job.output.with_extension("epochs-tmp");
    let config = TrainConfig {
        epochs_dir: Some(scratch.clone()),
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
    );
    let saved = trained.and_then(|t| {
        train::save::save(&t, &config, &job.output, false).map(|dir| (dir, t.report))
    });
    if scratch.exists() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    Ok(saved?)
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
