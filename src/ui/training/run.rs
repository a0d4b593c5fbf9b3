//! What the training view shows about a run, built from the training
//! worker's messages (or from a finished run's `metrics.json`): plain data.

use std::path::PathBuf;

use crate::train::{DataSummary, EpochSummary, Event, Outcome, Report};
use crate::ui::training::worker::TrainMsg;

/// Where a run stands.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum RunStatus {
    #[default]
    Idle,
    Running,
    Cancelling,
    Done(Outcome),
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
    pub epoch: usize,
    pub lr: f64,
    pub examples_per_s: f64,
    pub eta_s: f64,
    pub best_epoch: Option<usize>,
    /// Epochs the run was set up for (the progress bar's denominator).
    pub planned_epochs: Option<usize>,
    /// Where the finished run's checkpoint is.
    pub output: Option<PathBuf>,
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

    pub fn is_active(&self) -> bool {
        matches!(self.status, RunStatus::Running | RunStatus::Cancelling)
    }

    pub fn apply(&mut self, msg: TrainMsg) {
        match msg {
            TrainMsg::Skipped(lines) => {
                self.log.push(format!("skipped {} bad rows:", lines.len()));
                self.log.extend(lines.into_iter().map(|l| format!("  {l}")));
            }
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
            TrainMsg::Event(Event::Warning(message)) => {
                self.log.push(format!("warning: {message}"))
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
            TrainMsg::Finished { dir, report } => {
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
            }
            TrainMsg::NothingKept { report } => {
                self.log.push(format!(
                    "cancelled before the first epoch ended: nothing kept (at step {})",
                    report.steps
                ));
                self.best_epoch = None;
                self.status = RunStatus::Done(report.outcome.clone());
                self.output = None;
            }
            TrainMsg::Failed(error) => {
                self.log.push(format!("failed: {error}"));
                self.status = RunStatus::Failed(error);
            }
        }
    }

    /// Fraction of the steps done.
    pub fn progress(&self) -> f32 {
        if self.total_steps == 0 {
            0.0
        } else {
            self.step as f32 / self.total_steps as f32
        }
    }

    /// The loss curve smoothed with a bias-corrected exponential moving average.
    pub fn smoothed_losses(&self) -> Vec<[f64; 2]> {
        smooth(&self.losses, SMOOTHING)
    }
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
        run.apply(TrainMsg::Failed("boom".into()));
        assert_eq!(run.status, RunStatus::Failed("boom".into()));
        assert!(!run.is_active());
        assert!(run.log.last().is_some_and(|l| l.contains("boom")));
    }
}
