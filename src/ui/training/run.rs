//! What the training view shows about a run, built from the training
//! worker's messages (or from a finished run's `metrics.json`): plain data,
//! with the warnings it raised and, when it was not saved, where its state
//! is kept for *Resume*.

use std::path::PathBuf;

use crate::train::metrics::DevMetrics;
use crate::train::run_dir::Progress;
use crate::train::{DataSummary, EpochSummary, Event, Outcome, Report};
use crate::ui::training::worker::TrainMsg;
use crate::watch::RunSnapshot;

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum RunStatus {
    #[default]
    Idle,
    Running,
    Cancelling,
    Done(Outcome),
    /// Trained, but the checkpoint could not be written (the reason, naming
    /// the file); the state is kept for *Resume* (`RunState::partial`).
    NotSaved(String),
    Failed(String),
}

/// Weight of the running average in the smoothed loss curve.
pub const SMOOTHING: f64 = 0.9;

#[derive(Debug, Clone, Default)]
pub struct RunState {
    pub status: RunStatus,
    pub summary: Option<DataSummary>,
    /// `[step, loss]` of every optimiser step.
    pub losses: Vec<[f64; 2]>,
    pub epochs: Vec<EpochSummary>,
    pub step: usize,
    pub total_steps: usize,
    /// `(rows tokenised, rows)` while the data is prepared.
    pub tokenized: (usize, usize),
    pub epoch: usize,
    pub lr: f64,
    pub examples_per_s: f64,
    pub eta_s: f64,
    /// What the run trains on, as the worker chose it.
    pub device: Option<String>,
    pub best_epoch: Option<usize>,
    /// Epochs the run was set up for (the progress bar's denominator).
    pub planned_epochs: Option<usize>,
    /// Where the finished run's checkpoint is.
    pub output: Option<PathBuf>,
    /// Where an unsaved or failed run's state is kept (`NAME.partial/`), for *Resume*.
    pub partial: Option<PathBuf>,
    /// What went wrong without stopping the run (a checkpoint not written):
    /// shown in the window, not only in the log.
    pub warnings: Vec<String>,
    pub log: Vec<String>,
}

impl RunState {
    pub fn running(epochs: usize) -> Self {
        RunState {
            status: RunStatus::Running,
            planned_epochs: Some(epochs),
            log: vec!["started".into()],
            ..Default::default()
        }
    }

    /// A run continued from its state in `partial` (its curves so far come
    /// with [`TrainMsg::Resumed`]).
    pub fn resuming(partial: &std::path::Path) -> Self {
        RunState {
            status: RunStatus::Running,
            log: vec![format!("resuming the run in {}", partial.display())],
            ..Default::default()
        }
    }

    /// The curves and metrics of a finished run, from its report.
    pub fn from_report(report: &Report, dir: PathBuf) -> Self {
        let mut state = RunState {
            status: RunStatus::Done(report.outcome.clone()),
            summary: Some(report.summary.clone()),
            losses: report
                .history
                .iter()
                .map(|r| [r.step as f64, r.loss])
                .collect(),
            epochs: report.epochs.clone(),
            step: report.steps,
            total_steps: report.steps,
            epoch: report.epochs.last().map_or(0, |e| e.epoch),
            lr: report.history.last().map_or(0.0, |r| r.lr),
            examples_per_s: report.train_examples_per_s,
            best_epoch: report.best_epoch,
            planned_epochs: Some(report.epochs.len()),
            output: Some(dir.clone()),
            ..Default::default()
        };
        state
            .log
            .push(format!("loaded the run in {}", dir.display()));
        for e in &report.epochs {
            state.log.push(e.describe());
        }
        state
    }

    /// A run followed elsewhere (*Watch a run…*), from its latest snapshot:
    /// each evaluation becomes an epoch's dev metrics, as a local run's.
    pub fn from_snapshot(s: &RunSnapshot, dir: &std::path::Path) -> Self {
        let epoch_of = |e: f64| (e - 1e-9).ceil().max(1.0) as usize;
        let epochs: Vec<EpochSummary> = s
            .eval
            .iter()
            .map(|e| {
                let epoch = epoch_of(e.epoch);
                let losses: Vec<f64> = s
                    .log
                    .iter()
                    .filter(|p| epoch_of(p.epoch) == epoch)
                    .map(|p| p.loss)
                    .collect();
                let confusion = e
                    .metrics
                    .get("eval_confusion")
                    .and_then(|v| serde_json::from_value(v.clone()).ok())
                    .unwrap_or_default();
                EpochSummary {
                    epoch,
                    train_loss: losses.iter().sum::<f64>() / losses.len().max(1) as f64,
                    dev: Some(DevMetrics {
                        accuracy: e.metric("eval_accuracy").unwrap_or(0.0),
                        macro_f1: e.metric("eval_macro_f1").unwrap_or(0.0),
                        confusion,
                        loss: e.metric("eval_loss").unwrap_or(f64::NAN),
                        perplexity: e.metric("eval_perplexity"),
                    }),
                }
            })
            .collect();
        let mut log = vec![format!("watching {}", dir.display())];
        log.extend(epochs.iter().map(EpochSummary::describe));
        log.extend(s.problems.iter().map(|p| format!("warning: {p}")));
        RunState {
            status: if s.finished {
                RunStatus::Done(Outcome::Finished)
            } else {
                RunStatus::Running
            },
            losses: s.log.iter().map(|p| [p.step as f64, p.loss]).collect(),
            epochs,
            step: s.global_step,
            total_steps: s.max_steps.unwrap_or(s.global_step),
            epoch: if s.epoch > 0.0 { epoch_of(s.epoch) } else { 0 },
            lr: s.log.last().map_or(0.0, |p| p.learning_rate),
            eta_s: s.eta_s.unwrap_or(0.0),
            output: Some(dir.to_path_buf()),
            warnings: s.problems.clone(),
            log,
            ..Default::default()
        }
    }

    pub fn is_active(&self) -> bool {
        matches!(self.status, RunStatus::Running | RunStatus::Cancelling)
    }

    pub fn apply(&mut self, msg: TrainMsg) {
        match msg {
            TrainMsg::Skipped(lines) => {
                self.log.push(format!("skipped {} bad rows:", lines.len()));
                self.log.extend(lines.into_iter().map(|l| format!("  {l}")));
            }
            TrainMsg::Event(Event::Tokenizing { done, total }) => self.tokenized = (done, total),
            TrainMsg::Event(Event::Summary(s)) => {
                self.log.push(format!(
                    "data: {} training rows, {} dev rows, majority baseline {:.1}%",
                    s.train_rows,
                    s.dev_rows,
                    s.majority_baseline * 100.0
                ));
                self.summary = Some(s);
            }
            TrainMsg::Event(Event::Step {
                step,
                total_steps,
                epoch,
                loss,
                lr,
                examples_per_s,
                eta_s,
            }) => {
                self.losses.push([step as f64, loss]);
                self.step = step;
                self.total_steps = total_steps;
                self.epoch = epoch;
                self.lr = lr;
                self.examples_per_s = examples_per_s;
                self.eta_s = eta_s;
            }
            TrainMsg::Note(line) => self.log.push(line),
            TrainMsg::Device(device) => {
                self.log.push(format!("training on {device}"));
                self.device = Some(device);
            }
            TrainMsg::Resumed {
                planned_epochs,
                so_far,
            } => self.resumed(planned_epochs, &so_far),
            TrainMsg::Event(Event::Warning(message)) => {
                self.log.push(format!("warning: {message}"));
                self.warnings.push(message);
            }
            TrainMsg::Event(Event::Epoch {
                epoch,
                train_loss,
                dev,
            }) => {
                let summary = EpochSummary {
                    epoch,
                    train_loss,
                    dev,
                };
                self.log.push(summary.describe());
                self.epochs.push(summary);
            }
            TrainMsg::Finished { dir, report } => self.finished(dir, &report),
            TrainMsg::NothingKept { report } => {
                self.log.push(format!(
                    "cancelled before the first epoch ended: nothing kept (at step {})",
                    report.steps
                ));
                self.best_epoch = None;
                self.status = RunStatus::Done(report.outcome.clone());
                self.output = None;
                self.partial = None;
            }
            TrainMsg::NotSaved {
                partial,
                error,
                report,
            } => self.not_saved(partial, error, &report),
            TrainMsg::Failed { error, resumable } => {
                self.log.push(format!("failed: {error}"));
                if let Some(partial) = &resumable {
                    self.log.push(format!(
                        "its last finished epoch is kept in {}: Resume continues it",
                        partial.display()
                    ));
                }
                self.status = RunStatus::Failed(error);
                self.partial = resumable;
            }
        }
    }

    fn finished(&mut self, dir: PathBuf, report: &Report) {
        self.log.push(match &report.outcome {
            Outcome::Finished => format!("finished; saved {}", dir.display()),
            Outcome::Cancelled => format!(
                "cancelled at step {}; saved the best checkpoint so far in {}",
                report.steps,
                dir.display()
            ),
            Outcome::Diverged { step } => format!(
                "the loss became NaN/inf at step {step}; saved the last good weights in {} (try a lower learning rate)",
                dir.display()
            ),
        });
        self.best_epoch = report.best_epoch;
        self.status = RunStatus::Done(report.outcome.clone());
        self.output = Some(dir);
        self.partial = None;
    }

    fn not_saved(&mut self, partial: PathBuf, error: String, report: &Report) {
        self.log.push(format!(
            "not saved: {error}; the run is kept in {}: Resume saves it once the problem is fixed, Save as… copies its best epoch elsewhere",
            partial.display()
        ));
        self.best_epoch = report.best_epoch;
        self.status = RunStatus::NotSaved(error);
        self.output = None;
        self.partial = Some(partial);
    }

    /// The curves and totals of the epochs a resumed run had finished.
    fn resumed(&mut self, planned_epochs: usize, so_far: &Progress) {
        self.planned_epochs = Some(planned_epochs);
        self.losses = so_far
            .history
            .iter()
            .map(|r| [r.step as f64, r.loss])
            .collect();
        self.epochs = so_far.epochs.clone();
        self.step = so_far.step;
        self.epoch = so_far.epoch;
        self.best_epoch = so_far.best_epoch;
        self.log.push(format!(
            "continuing after epoch {} of {planned_epochs}",
            so_far.epoch
        ));
    }

    /// Fraction of the steps done.
    pub fn progress(&self) -> f32 {
        if self.total_steps == 0 {
            0.0
        } else {
            self.step as f32 / self.total_steps as f32
        }
    }

    /// The progress bar's fraction and text: rows tokenised while the data is
    /// prepared, then the step, epoch, device, speed, learning rate and ETA;
    /// none before a run.
    pub fn progress_line(&self, planned_epochs: usize) -> Option<(f32, String)> {
        let (tokenized, rows) = self.tokenized;
        if self.total_steps == 0 && self.is_active() && rows > 0 {
            let text = format!("preparing the data: {tokenized}/{rows} rows tokenised");
            return Some((tokenized as f32 / rows as f32, text));
        }
        if self.total_steps == 0 && !self.is_active() {
            return None;
        }
        let device = self.device.as_deref().map(|d| format!("{d} · "));
        let eta = if self.is_active() {
            format_eta(self.eta_s)
        } else {
            "—".into()
        };
        let text = format!(
            "{}step {}/{} · epoch {}/{planned_epochs} · {:.1} examples/s · lr {:.2e} · ETA {eta}",
            device.unwrap_or_default(),
            self.step,
            self.total_steps,
            self.epoch,
            self.examples_per_s,
            self.lr,
        );
        Some((self.progress(), text))
    }

    /// The loss curve smoothed with a bias-corrected exponential moving average.
    pub fn smoothed_losses(&self) -> Vec<[f64; 2]> {
        smooth(&self.losses, SMOOTHING)
    }
}

/// Seconds as `m:ss`.
pub fn format_eta(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

/// Exponential moving average with bias correction (as TensorBoard smooths):
/// `m_t = w·m_{t-1} + (1−w)·x_t`, shown as `m_t / (1 − w^t)`.
pub fn smooth(points: &[[f64; 2]], weight: f64) -> Vec<[f64; 2]> {
    let mut m = 0.0;
    points
        .iter()
        .enumerate()
        .map(|(i, &[x, y])| {
            m = weight * m + (1.0 - weight) * y;
            [x, m / (1.0 - weight.powi(i as i32 + 1))]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_starts_at_the_first_value_and_follows_a_constant() {
        let flat = smooth(&[[1.0, 2.0], [2.0, 2.0], [3.0, 2.0]], 0.9);
        assert!(flat.iter().all(|p| (p[1] - 2.0).abs() < 1e-12));
        // Two points: (0.9·0.1·4 + 0.1·2) / (1 − 0.81) = (0.36 + 0.2) / 0.19.
        let two = smooth(&[[1.0, 4.0], [2.0, 2.0]], 0.9);
        assert!((two[0][1] - 4.0).abs() < 1e-12);
        assert!((two[1][1] - 0.56 / 0.19).abs() < 1e-12);
    }

    #[test]
    fn the_progress_line_shows_tokenising_then_steps_on_the_device() {
        let mut run = RunState::running(2);
        assert_eq!(run.progress_line(2).map(|(f, _)| f), Some(0.0));
        run.apply(TrainMsg::Device(
            "CPU (2 threads), auto: no usable GPU".into(),
        ));
        run.apply(TrainMsg::Event(Event::Tokenizing {
            done: 4_096,
            total: 16_384,
        }));
        let (fraction, text) = run.progress_line(2).unwrap();
        assert_eq!(fraction, 0.25);
        assert_eq!(text, "preparing the data: 4096/16384 rows tokenised");
        run.apply(TrainMsg::Event(Event::Step {
            step: 5,
            total_steps: 10,
            epoch: 1,
            loss: 0.7,
            lr: 2e-5,
            examples_per_s: 31.5,
            eta_s: 75.0,
        }));
        let (fraction, text) = run.progress_line(2).unwrap();
        assert_eq!(fraction, 0.5);
        assert_eq!(
            text,
            "CPU (2 threads), auto: no usable GPU · step 5/10 · epoch 1/2 · 31.5 examples/s · lr 2.00e-5 · ETA 1:15"
        );
        assert!(run.log.iter().any(|l| l.contains("training on CPU")));
        assert_eq!(RunState::default().progress_line(2), None);
    }

    #[test]
    fn events_update_progress_and_log() {
        let mut run = RunState::running(3);
        run.apply(TrainMsg::Event(Event::Step {
            step: 3,
            total_steps: 12,
            epoch: 1,
            loss: 1.1,
            lr: 1e-5,
            examples_per_s: 20.0,
            eta_s: 9.0,
        }));
        assert_eq!(run.progress(), 0.25);
        assert_eq!(run.losses, vec![[3.0, 1.1]]);
        run.apply(TrainMsg::failed("boom"));
        assert_eq!(run.status, RunStatus::Failed("boom".into()));
        assert!(!run.is_active());
        assert!(run.log.last().is_some_and(|l| l.contains("boom")));
        assert_eq!(run.partial, None);
    }

    #[test]
    fn warnings_are_kept_apart_and_an_unsaved_run_keeps_its_state() {
        let mut run = RunState::running(2);
        let warning = "epoch 1's checkpoint was not saved: /r/x: cannot write: No space left on device; training goes on";
        run.apply(TrainMsg::Event(Event::Warning(warning.into())));
        assert_eq!(run.warnings, vec![warning.to_string()]);
        assert!(run.is_active(), "a warning does not stop the run");
        let report = Report {
            outcome: Outcome::Finished,
            steps: 4,
            epochs: Vec::new(),
            best_epoch: Some(2),
            summary: DataSummary {
                train_rows: 8,
                dev_rows: 2,
                label_counts: Default::default(),
                majority_baseline: 0.5,
                length_percentiles: [0; 5],
                truncated: 0,
                skipped_rows: 0,
            },
            train_examples_per_s: 1.0,
            history: Vec::new(),
        };
        run.apply(TrainMsg::NotSaved {
            partial: "/r/x.partial".into(),
            error: "/r/x/model.safetensors: cannot write: File too large".into(),
            report: Box::new(report),
        });
        assert_eq!(
            run.status,
            RunStatus::NotSaved("/r/x/model.safetensors: cannot write: File too large".into())
        );
        assert!(!run.is_active());
        assert_eq!(run.partial, Some(PathBuf::from("/r/x.partial")));
        assert_eq!(run.output, None);
    }
}
