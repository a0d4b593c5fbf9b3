//! The training loop's moving parts: preparing the data, one epoch, the end
//! of an epoch (evaluation, best epoch, the resumable state), resuming, and
//! the result. `train::train` strings them together.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::Tensor;

use crate::config::BertConfig;
use crate::data::Dataset;
use crate::error::{BertError, Op, Result};
use crate::model::dropout::TrainDropout;
use crate::model::BertModel;
use crate::tokenize::BertTokenizer;
use crate::train::metrics;
use crate::train::metrics::DevMetrics;
use crate::train::optim::Optim;
use crate::train::run_dir::{self, Progress};
use crate::train::weights::{self, NamedVar};
use crate::train::{
    accumulate_step, batching::epoch_batches, encode_reporting, evaluate, mlm, save, summarize,
    DataSummary, Encodings, EpochSummary, Event, Outcome, Report, StepContext, StepRecord, Task,
    TrainConfig, Trainable, Trained,
};
use crate::write_guard;

pub(super) fn snapshot(vars: &[NamedVar]) -> Result<Vec<(String, Tensor)>> {
    vars.iter()
        .map(|v| Ok((v.name.clone(), v.var.as_tensor().copy()?)))
        .collect()
}

/// The seed of epoch `epoch`'s shuffle and dropout generators (splitmix64 of
/// the run's seed and the epoch): a resumed epoch draws what it would have.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    let mut z = seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Dropout draws from a stream of its own, apart from the shuffle's.
const DROPOUT_STREAM: u64 = 0xD50F;

/// The tokenised data, labels and special ids a run trains on.
pub(super) struct Prepared {
    pub(super) labels: Vec<String>,
    mask_id: u32,
    pad: u32,
    summary: DataSummary,
    train_enc: Encodings,
    dev_enc: Option<Encodings>,
}

pub(super) fn prepare(
    base_dir: &Path,
    (train_data, dev_data): (&Dataset, Option<&Dataset>),
    cfg: &TrainConfig,
    on_event: &mut dyn FnMut(Event),
    cancel: &AtomicBool,
) -> Result<Prepared> {
    if cfg.batch_size == 0 || cfg.epochs == 0 {
        return Err(BertError::Input(
            "the batch size and the number of epochs must be at least 1".into(),
        ));
    }
    if train_data.examples.is_empty() {
        return Err(BertError::file(&train_data.path, "no training rows"));
    }
    let tokenizer = BertTokenizer::load(base_dir)?;
    let labels: Vec<String> = match (cfg.task, &cfg.labels) {
        (Task::Mlm, _) => Vec::new(),
        (Task::Classification, Some(l)) => l.clone(),
        (Task::Classification, None) => train_data.label_counts().into_keys().collect(),
    };
    let mask_id = match cfg.task {
        Task::Mlm => tokenizer.mask_id().ok_or_else(|| {
            BertError::Unsupported(format!(
                "{}: the tokenizer has no mask token",
                tokenizer.source().display()
            ))
        })?,
        Task::Classification => 0,
    };
    let max_length = cfg
        .max_length
        .min(BertConfig::load(&base_dir.join("config.json"))?.max_length());
    let total = train_data.examples.len() + dev_data.map_or(0, |d| d.examples.len());
    let mut tokenized = |done| on_event(Event::Tokenizing { done, total });
    let train_enc = encode_reporting(
        &tokenizer,
        train_data,
        &labels,
        max_length,
        cancel,
        &mut tokenized,
    )?;
    let summary = summarize(&tokenizer, (train_data, &train_enc), dev_data, cancel)?;
    on_event(Event::Summary(summary.clone()));
    let n_train = train_enc.rows.len();
    let dev_enc = dev_data
        .map(|d| {
            let mut tokenized = |done| {
                on_event(Event::Tokenizing {
                    done: n_train + done,
                    total,
                })
            };
            encode_reporting(&tokenizer, d, &labels, max_length, cancel, &mut tokenized)
        })
        .transpose()?;
    Ok(Prepared {
        labels,
        mask_id,
        pad: tokenizer.pad_id(),
        summary,
        train_enc,
        dev_enc,
    })
}

/// A run in progress: the model, its optimiser and where the loop stands.
pub(super) struct Loop<'a> {
    cfg: &'a TrainConfig,
    base_dir: &'a Path,
    data: Prepared,
    model: BertModel,
    vars: Vec<NamedVar>,
    optim: Optim,
    dropout: TrainDropout,
    pub(super) total: usize,
    pub(super) progress: Progress,
    /// The best epoch's weights.
    best: Option<Vec<(String, Tensor)>>,
    /// When this process started training (elapsed time adds to the resumed one's).
    start: Instant,
    elapsed_before: f64,
}

impl<'a> Loop<'a> {
    pub(super) fn new(
        base_dir: &'a Path,
        cfg: &'a TrainConfig,
        data: Prepared,
        trainable: Trainable,
    ) -> Result<Self> {
        let Trainable {
            model,
            vars,
            all_vars,
            ..
        } = trainable;
        let raw = &model.config.raw;
        let dropout = TrainDropout::new(
            cfg.seed,
            cfg.dropout.unwrap_or(raw.hidden_dropout_prob),
            cfg.dropout.unwrap_or(raw.attention_probs_dropout_prob),
            cfg.dropout.unwrap_or(model.config.classifier_dropout()),
        );
        let steps_per_epoch = data.train_enc.rows.len().div_ceil(cfg.batch_size);
        let total = cfg
            .max_steps
            .unwrap_or(usize::MAX)
            .min(steps_per_epoch * cfg.epochs);
        let warmup = (total as f64 * cfg.warmup_ratio).ceil() as usize;
        let optim = Optim::new(
            vars,
            cfg.lr,
            cfg.weight_decay,
            warmup,
            total,
            cfg.max_grad_norm,
        )?;
        Ok(Loop {
            cfg,
            base_dir,
            model,
            vars: all_vars,
            optim,
            dropout,
            total,
            progress: Progress {
                train_rows: data.train_enc.rows.len(),
                ..Progress::default()
            },
            data,
            best: None,
            start: Instant::now(),
            elapsed_before: 0.0,
        })
    }

    fn elapsed(&self) -> f64 {
        self.elapsed_before + self.start.elapsed().as_secs_f64()
    }

    /// One pass over the shuffled data. `None` when the run stopped
    /// (cancelled or diverged: `progress.outcome` says which).
    pub(super) fn epoch(
        &mut self,
        epoch: usize,
        on_event: &mut dyn FnMut(Event),
        cancel: &AtomicBool,
    ) -> Result<Option<f64>> {
        let cfg = self.cfg;
        let seed = epoch_seed(cfg.seed, epoch);
        let mut rng = weights::seeded(seed);
        self.dropout.reseed(seed ^ DROPOUT_STREAM);
        let batches_of_epoch = epoch_batches(&self.data.train_enc, cfg, &mut rng);
        let (mut loss_sum, mut batches) = (0f64, 0usize);
        for chunk in &batches_of_epoch {
            if self.progress.step >= self.total {
                break;
            }
            if cancel.load(Ordering::Relaxed) {
                return Ok(self.stop(Outcome::Cancelled));
            }
            let ctx = StepContext {
                model: &self.model,
                data: &self.data.train_enc,
                task: cfg.task,
                pad: self.data.pad,
                mask_id: self.data.mask_id,
                dropout: &self.dropout,
                cancel,
                precision: cfg.precision,
            };
            let loss = accumulate_step(&ctx, chunk, &mut rng, &mut self.optim)?;
            let Some(loss) = loss else {
                if cancel.load(Ordering::Relaxed) {
                    return Ok(self.stop(Outcome::Cancelled));
                }
                continue; // masked-LM: only special tokens, nothing to predict
            };
            if !loss.is_finite() {
                let step = self.progress.step;
                return Ok(self.stop(Outcome::Diverged { step }));
            }
            let info = self.optim.step()?;
            (loss_sum, batches) = (loss_sum + loss, batches + 1);
            self.record_step(epoch, chunk.len(), loss, info.lr, on_event);
        }
        Ok(Some(loss_sum / batches.max(1) as f64))
    }

    fn stop(&mut self, outcome: Outcome) -> Option<f64> {
        self.optim.discard();
        self.progress.outcome = outcome;
        None
    }

    fn record_step(
        &mut self,
        epoch: usize,
        rows: usize,
        loss: f64,
        lr: f64,
        on_event: &mut dyn FnMut(Event),
    ) {
        let p = &mut self.progress;
        p.step += 1;
        p.examples_seen += rows;
        p.history.push(StepRecord {
            step: p.step,
            epoch,
            loss,
            lr,
        });
        let (step, seen) = (p.step, p.examples_seen);
        let elapsed = self.elapsed();
        let this_run = self.start.elapsed().as_secs_f64();
        on_event(Event::Step {
            step,
            total_steps: self.total,
            epoch,
            loss,
            lr,
            examples_per_s: seen as f64 / elapsed.max(1e-9),
            eta_s: this_run / step.max(1) as f64 * (self.total - step) as f64,
        });
    }

    /// Evaluate, keep the best epoch, save the epoch's checkpoints, report
    /// it. `false` when cancelled during the evaluation (the epoch is not kept).
    pub(super) fn end_epoch(
        &mut self,
        epoch: usize,
        train_loss: f64,
        on_event: &mut dyn FnMut(Event),
        cancel: &AtomicBool,
    ) -> Result<bool> {
        let dev = match self.evaluate(cancel) {
            Err(BertError::Cancelled) => {
                self.stop(Outcome::Cancelled);
                return Ok(false);
            }
            other => other?,
        };
        // Best epoch: highest dev accuracy (classification; a tie goes to the
        // lower dev loss), lowest dev loss (MLM).
        let score = dev.as_ref().map_or(epoch as f64, |d| match self.cfg.task {
            Task::Classification => d.accuracy,
            Task::Mlm => -d.loss,
        });
        let current = snapshot(&self.vars)?;
        let previous = self.progress.clone();
        let best_so_far = previous.best_score.map(|b| {
            let best_dev = previous
                .epochs
                .iter()
                .find(|e| Some(e.epoch) == previous.best_epoch);
            (b, best_dev.and_then(|e| e.dev.as_ref()).map(|d| d.loss))
        });
        let dev_loss = dev.as_ref().map(|d| d.loss);
        let is_best = self.cfg.save_last || metrics::improves(score, dev_loss, best_so_far);
        let p = &mut self.progress;
        p.epoch = epoch;
        p.elapsed_s = self.elapsed_before + self.start.elapsed().as_secs_f64();
        p.epochs.push(EpochSummary {
            epoch,
            train_loss,
            dev: dev.clone(),
        });
        if is_best {
            (p.best_epoch, p.best_score) = (Some(epoch), Some(score));
        }
        self.keep_epoch(&previous, &current, is_best, on_event, cancel);
        if is_best {
            self.best = Some(current);
        }
        on_event(Event::Epoch {
            epoch,
            train_loss,
            dev,
        });
        Ok(true)
    }

    /// Save the finished epoch's resumable state and its epoch checkpoint. A
    /// failed write is a warning and training goes on; a cancel stops the
    /// writes, leaving the previous state as it was, and the loop stops at
    /// its next look at the flag.
    fn keep_epoch(
        &self,
        previous: &Progress,
        current: &[(String, Tensor)],
        is_best: bool,
        on_event: &mut dyn FnMut(Event),
        cancel: &AtomicBool,
    ) {
        let epoch = self.progress.epoch;
        match self.save_state(previous, current, is_best, cancel) {
            Ok(()) => {}
            Err(BertError::Cancelled) => return,
            Err(e) => on_event(Event::Warning(format!(
                "epoch {epoch}'s checkpoint was not saved (a resume would start from an earlier epoch): {e}; training goes on"
            ))),
        }
        match self.save_epoch_copy(current, cancel) {
            Ok(()) | Err(BertError::Cancelled) => {}
            Err(e) => on_event(Event::Warning(format!(
                "epoch {epoch}'s checkpoint was not kept: {e}; training goes on"
            ))),
        }
    }

    fn evaluate(&self, cancel: &AtomicBool) -> Result<Option<DevMetrics>> {
        let Some(d) = self.data.dev_enc.as_ref().filter(|d| !d.rows.is_empty()) else {
            return Ok(None);
        };
        let (pad, classes) = (self.data.pad, self.data.labels.len());
        Ok(Some(match self.cfg.task {
            Task::Classification => {
                evaluate(&self.model, d, self.cfg.batch_size, pad, classes, cancel)?
            }
            Task::Mlm => mlm::evaluate(&self.model, d, self.cfg, pad, self.data.mask_id, cancel)?,
        }))
    }

    fn report(&self, best_epoch: Option<usize>) -> Report {
        let p = &self.progress;
        Report {
            outcome: p.outcome.clone(),
            steps: p.step,
            epochs: p.epochs.clone(),
            best_epoch,
            summary: self.data.summary.clone(),
            train_examples_per_s: p.examples_seen as f64 / self.elapsed().max(1e-9),
            history: p.history.clone(),
        }
    }

    fn trained(&self, tensors: Vec<(String, Tensor)>, best_epoch: Option<usize>) -> Trained {
        Trained {
            config: self.model.config.clone(),
            labels: self.data.labels.clone(),
            tensors,
            report: self.report(best_epoch),
            base_dir: self.base_dir.to_path_buf(),
        }
    }

    /// The best epoch's weights (or, stopped before any epoch ended, the current ones).
    pub(super) fn finish(mut self) -> Result<Trained> {
        let tensors = match self.best.take() {
            Some(t) => t,
            None => snapshot(&self.vars)?,
        };
        Ok(self.trained(tensors, self.progress.best_epoch))
    }

    /// Epoch 0 of the kept epochs: the base model with its freshly initialised
    /// head. Cancelled while it is written, nothing of it is kept (and the
    /// loop stops at its first look at the flag).
    pub(super) fn write_epoch_zero(&self, cancel: &AtomicBool) -> Result<()> {
        let Some(dir) = &self.cfg.epochs_dir else {
            return Ok(());
        };
        let initial = self.trained(snapshot(&self.vars)?, None);
        match save::write_dir(&initial, self.cfg, &dir.join("epoch-0"), cancel) {
            Err(BertError::Cancelled) => Ok(()),
            other => other,
        }
    }

    /// Save a finished epoch's resumable state: `last/`, with the best epoch
    /// set aside in `best/` when this one is worse. The new state is written
    /// beside `last/` first, so a cancel, a failed write or a kill while it is
    /// written leaves the previous state as it was.
    fn save_state(
        &self,
        previous: &Progress,
        current: &[(String, Tensor)],
        is_best: bool,
        cancel: &AtomicBool,
    ) -> Result<()> {
        let Some(run) = &self.cfg.run_dir else {
            return Ok(());
        };
        let done = self.trained(current.to_vec(), Some(self.progress.epoch));
        let (last, best) = (run.join(run_dir::LAST), run.join(run_dir::BEST));
        let staging = write_guard::staging_dir(&last, "new")?;
        let written = save::write_checkpoint(&done, self.cfg, &staging, cancel)
            .and_then(|()| {
                let moments = staging.join(run_dir::OPTIMIZER_FILE);
                self.optim.save_state(&moments, cancel)
            })
            .and_then(|()| run_dir::write_progress(&staging, &self.progress))
            .and_then(|()| set_best_aside(previous, is_best, &last, &best))
            .and_then(|()| write_guard::replace_dir(&staging, &last));
        if let Err(e) = written {
            let _ = write_guard::remove_staging(&staging);
            return Err(save::relabel(e, &staging, &last));
        }
        if is_best && best.exists() {
            write_guard::remove_ours(&best)?;
        } else if best.exists() {
            // best/ was last/ until now; only its weights are needed any more.
            let moments = best.join(run_dir::OPTIMIZER_FILE);
            if moments.exists() {
                std::fs::remove_file(&moments)
                    .map_err(|e| BertError::io(Op::Remove, &moments, &e))?;
            }
        }
        Ok(())
    }

    /// Keep this epoch as `epochs/epoch-N` when the run keeps epochs.
    fn save_epoch_copy(&self, current: &[(String, Tensor)], cancel: &AtomicBool) -> Result<()> {
        let Some(dir) = &self.cfg.epochs_dir else {
            return Ok(());
        };
        let epoch = self.progress.epoch;
        let done = self.trained(current.to_vec(), Some(epoch));
        save::write_dir(&done, self.cfg, &dir.join(format!("epoch-{epoch}")), cancel)
    }

    /// Continue from the state saved in the run directory `run`.
    pub(super) fn resume(&mut self, run: &Path) -> Result<()> {
        let state = run_dir::latest_state(run)
            .ok_or_else(|| BertError::file(run, "holds no finished epoch to resume from"))?;
        let progress = run_dir::read_progress(&state)?;
        if progress.train_rows != self.progress.train_rows {
            return Err(BertError::Input(format!(
                "the run in {} trained on {} rows, the data now has {}: resume with the same data",
                run.display(),
                progress.train_rows,
                self.progress.train_rows
            )));
        }
        let weights = state.join("model.safetensors");
        for (name, tensor) in save::read_weights(&weights, &self.vars)? {
            if let Some(v) = self.vars.iter().find(|v| v.name == name) {
                v.var.set(&tensor)?;
            }
        }
        self.optim
            .load_state(&state.join(run_dir::OPTIMIZER_FILE))?;
        if let Some(dir) = run_dir::best_dir(run, &progress) {
            self.best = Some(save::read_weights(
                &dir.join("model.safetensors"),
                &self.vars,
            )?);
        } else if progress.best_epoch.is_some() {
            return Err(BertError::file(run, "the best epoch's weights are missing"));
        }
        self.elapsed_before = progress.elapsed_s;
        self.progress = Progress {
            outcome: Outcome::Finished,
            ..progress
        };
        Ok(())
    }
}

/// Before the new state replaces `last/`: when `last/` held the best epoch
/// and this one is worse, `last/` becomes `best/` (a stale `best/` removed).
fn set_best_aside(previous: &Progress, is_best: bool, last: &Path, best: &Path) -> Result<()> {
    let best_is_last = previous.best_epoch.is_some() && previous.best_epoch == Some(previous.epoch);
    if is_best || !best_is_last || !last.is_dir() {
        return Ok(());
    }
    if best.exists() {
        write_guard::remove_ours(best)?;
    }
    std::fs::rename(last, best).map_err(|e| BertError::io(Op::Rename, best, &e))
}
