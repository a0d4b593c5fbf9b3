//! Fine-tuning: a `BertForSequenceClassification` head on any checkpoint the
//! engine loads, trained with the BERT recipe on a worker-friendly loop that
//! reports progress events and stops within a step when cancelled.

pub mod bench;
mod data_prep;
pub mod fused_adamw;
pub mod masking;
pub mod metrics;
pub mod mlm;
pub mod optim;
pub mod preview;
pub mod save;
mod step;
pub mod weights;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, Weights};
use crate::config::BertConfig;
use crate::data::Dataset;
use crate::error::{BertError, Result};
use crate::model::dropout::TrainDropout;
use crate::model::BertModel;
use crate::tokenize::BertTokenizer;
pub use data_prep::{encode, split_dev, DataSummary, Encodings};
pub(crate) use data_prep::{percentile, summarize};
use metrics::DevMetrics;
pub use mlm::mlm_loss;
use optim::Optim;
pub(crate) use step::accumulate_step;
pub use step::{batch_loss, evaluate};
use weights::{NamedVar, TrainableWeights};

/// What the model learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// Sequence classification (`BertForSequenceClassification`).
    #[default]
    Classification,
    /// Further masked-LM pre-training (`BertForMaskedLM`): 15% masking, 80/10/10.
    Mlm,
}

/// Hyperparameters (defaults: the BERT paper's fine-tuning recipe).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainConfig {
    pub task: Task,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub warmup_ratio: f64,
    pub max_grad_norm: f64,
    pub max_length: usize,
    pub seed: u64,
    pub max_steps: Option<usize>,
    pub shuffle: bool,
    /// Overrides the config's dropout probabilities.
    pub dropout: Option<f64>,
    pub save_last: bool,
    /// The label set in class order; default: the training labels sorted.
    pub labels: Option<Vec<String>>,
    /// Write a checkpoint here before training (`epoch-0`: the base with its new
    /// head) and after every epoch (`epoch-N`); `save` moves them into the output.
    #[serde(skip)]
    pub epochs_dir: Option<PathBuf>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            task: Task::Classification,
            epochs: 3,
            batch_size: 32,
            lr: 2e-5,
            weight_decay: 0.01,
            warmup_ratio: 0.1,
            max_grad_norm: 1.0,
            max_length: 128,
            seed: 42,
            max_steps: None,
            shuffle: true,
            dropout: None,
            save_last: false,
            labels: None,
            epochs_dir: None,
        }
    }
}

/// Progress of a run, as the CLI and the app show it.
#[derive(Debug, Clone, Serialize)]
pub enum Event {
    Summary(DataSummary),
    Step {
        step: usize,
        total_steps: usize,
        epoch: usize,
        loss: f64,
        lr: f64,
        examples_per_s: f64,
        eta_s: f64,
    },
    Epoch {
        epoch: usize,
        train_loss: f64,
        dev: Option<DevMetrics>,
    },
}

/// Why the loop ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    Finished,
    Cancelled,
    /// The loss became NaN or infinite; the weights are the last good ones.
    Diverged {
        step: usize,
    },
}

/// The result of a run: the weights to save and the report.
pub struct Trained {
    pub config: BertConfig,
    pub labels: Vec<String>,
    /// Final variable values (the best dev epoch unless `save_last`).
    pub tensors: Vec<(String, Tensor)>,
    pub report: Report,
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub outcome: Outcome,
    pub steps: usize,
    pub epochs: Vec<EpochSummary>,
    pub best_epoch: Option<usize>,
    pub summary: DataSummary,
    pub train_examples_per_s: f64,
    /// Every optimiser step's loss and learning rate (the app's loss curve).
    #[serde(default)]
    pub history: Vec<StepRecord>,
}

impl Report {
    /// The report of a fine-tuned checkpoint (`metrics.json`), if it has one.
    pub fn load(dir: &Path) -> Result<Option<Report>> {
        let path = dir.join("metrics.json");
        if !path.is_file() {
            return Ok(None);
        }
        let text = crate::error::read_to_string(&path)?;
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| BertError::json(&path, &e))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepRecord {
    pub step: usize,
    pub epoch: usize,
    pub loss: f64,
    pub lr: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EpochSummary {
    pub epoch: usize,
    pub train_loss: f64,
    pub dev: Option<DevMetrics>,
}

impl EpochSummary {
    /// The one-line summary the CLI prints and the app logs.
    pub fn describe(&self) -> String {
        let (epoch, train_loss) = (self.epoch, self.train_loss);
        match &self.dev {
            Some(d) if d.perplexity.is_some() => format!(
                "epoch {epoch}: train loss {train_loss:.4}, dev loss {:.4}, masked-token accuracy {:.2}%, perplexity {:.2}",
                d.loss,
                d.accuracy * 100.0,
                d.perplexity.unwrap_or(f64::NAN)
            ),
            Some(d) => format!(
                "epoch {epoch}: train loss {train_loss:.4}, dev loss {:.4}, accuracy {:.2}%, macro-F1 {:.4}",
                d.loss,
                d.accuracy * 100.0,
                d.macro_f1
            ),
            None => format!("epoch {epoch}: train loss {train_loss:.4}"),
        }
    }
}

/// A classification model ready to train: the model built on variables.
pub struct Trainable {
    pub model: BertModel,
    /// What the optimiser updates (the MLM head gets no gradient from classification).
    pub vars: Vec<NamedVar>,
    /// Everything the model holds, saved with the result (MLM head included).
    pub all_vars: Vec<NamedVar>,
    pub labels: Vec<String>,
}

/// Build the trainable model: the base checkpoint plus a classifier (new, or
/// the checkpoint's own when its labels match).
pub fn build(
    base_dir: &Path,
    task: Task,
    labels: &[String],
    seed: u64,
    device: &Device,
) -> Result<Trainable> {
    if task == Task::Mlm {
        return mlm::build(base_dir, seed, device);
    }
    let mut config = BertConfig::load(&base_dir.join("config.json"))?;
    let ckpt = Checkpoint::open(base_dir, device)?;
    let h = config.hidden_size();
    let has_classifier = ckpt.contains("classifier.weight");
    if has_classifier && config.labels != labels {
        return Err(BertError::Input(format!(
            "{}: the checkpoint's classifier has labels [{}] but the data has [{}]; fine-tune from a checkpoint without a classifier or relabel the data",
            base_dir.display(),
            config.labels.join(", "),
            labels.join(", ")
        )));
    }
    let mut trainable = TrainableWeights::new(&ckpt);
    let mut rng = weights::seeded(seed);
    let std = config.raw.initializer_range;
    if !has_classifier {
        trainable.insert(
            "classifier.weight",
            weights::normal(&[labels.len(), h], std, &mut rng, device)?,
        );
        trainable.insert("classifier.bias", weights::zeros(&[labels.len()], device)?);
    }
    if !ckpt.contains("pooler.dense.weight") {
        trainable.insert(
            "pooler.dense.weight",
            weights::normal(&[h, h], std, &mut rng, device)?,
        );
        trainable.insert("pooler.dense.bias", weights::zeros(&[h], device)?);
    }
    config.labels = labels.to_vec();
    let model = BertModel::from_checkpoint(&trainable, config, device, false)?;
    let all_vars = trainable.into_vars();
    let vars = all_vars
        .iter()
        .filter(|v| !v.name.starts_with("cls."))
        .cloned()
        .collect();
    Ok(Trainable {
        model,
        vars,
        all_vars,
        labels: labels.to_vec(),
    })
}

fn snapshot(vars: &[NamedVar]) -> Result<Vec<(String, Tensor)>> {
    vars.iter()
        .map(|v| Ok((v.name.clone(), v.var.as_tensor().copy()?)))
        .collect()
}

/// Fine-tune a classifier. `dev` may be empty (no evaluation: the last epoch is kept).
pub fn train(
    base_dir: &Path,
    train_data: &Dataset,
    dev_data: Option<&Dataset>,
    cfg: &TrainConfig,
    device: &Device,
    on_event: &mut dyn FnMut(Event),
    cancel: &AtomicBool,
) -> Result<Trained> {
    if cfg.batch_size == 0 || cfg.epochs == 0 {
        return Err(BertError::Input(
            "--batch-size and --epochs must be at least 1".into(),
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
    let summary = summarize(&tokenizer, train_data, dev_data, max_length)?;
    on_event(Event::Summary(summary.clone()));
    let train_enc = encode(&tokenizer, train_data, &labels, max_length)?;
    let dev_enc = dev_data
        .map(|d| encode(&tokenizer, d, &labels, max_length))
        .transpose()?;

    let Trainable {
        model,
        vars,
        all_vars,
        labels,
    } = build(base_dir, cfg.task, &labels, cfg.seed, device)?;
    let raw = &model.config.raw;
    let dropout = TrainDropout::new(
        cfg.seed,
        cfg.dropout.unwrap_or(raw.hidden_dropout_prob),
        cfg.dropout.unwrap_or(raw.attention_probs_dropout_prob),
        cfg.dropout.unwrap_or(model.config.classifier_dropout()),
    );
    let steps_per_epoch = train_enc.rows.len().div_ceil(cfg.batch_size);
    let total = cfg
        .max_steps
        .unwrap_or(usize::MAX)
        .min(steps_per_epoch * cfg.epochs);
    let warmup = (total as f64 * cfg.warmup_ratio).ceil() as usize;
    let mut optim = Optim::new(
        vars.clone(),
        cfg.lr,
        cfg.weight_decay,
        warmup,
        total,
        cfg.max_grad_norm,
    )?;
    let pad = tokenizer.pad_id();
    let mut rng = weights::seeded(cfg.seed);
    let mut order: Vec<usize> = (0..train_enc.rows.len()).collect();
    let mut epochs = Vec::new();
    let (mut best, mut best_epoch, mut best_score) = (None, None, f64::NEG_INFINITY);
    let mut step = 0;
    let mut outcome = Outcome::Finished;
    let start = Instant::now();
    let mut examples_seen = 0usize;
    let mut history = Vec::new();
    if let Some(dir) = &cfg.epochs_dir {
        // Epoch 0: the base model with its freshly initialised head.
        let initial = Trained {
            config: model.config.clone(),
            labels: labels.clone(),
            tensors: snapshot(&all_vars)?,
            report: Report {
                outcome: Outcome::Finished,
                steps: 0,
                epochs: Vec::new(),
                best_epoch: None,
                summary: summary.clone(),
                train_examples_per_s: 0.0,
                history: Vec::new(),
            },
            base_dir: base_dir.to_path_buf(),
        };
        save::write_dir(&initial, cfg, &dir.join("epoch-0"))?;
    }
    'epochs: for epoch in 1..=cfg.epochs {
        if cfg.shuffle {
            order.shuffle(&mut rng);
        }
        let mut loss_sum = 0f64;
        let mut batches = 0usize;
        for chunk in order.chunks(cfg.batch_size) {
            if step >= total {
                break;
            }
            if cancel.load(Ordering::Relaxed) {
                outcome = Outcome::Cancelled;
                break 'epochs;
            }
            let Some(loss_value) = accumulate_step(
                &model,
                &train_enc,
                chunk,
                &cfg.task,
                (pad, mask_id),
                &dropout,
                &mut rng,
                &mut optim,
                cancel,
            )?
            else {
                if cancel.load(Ordering::Relaxed) {
                    optim.discard();
                    outcome = Outcome::Cancelled;
                    break 'epochs;
                }
                continue; // masked-LM: only special tokens, nothing to predict
            };
            if !loss_value.is_finite() {
                optim.discard();
                outcome = Outcome::Diverged { step };
                break 'epochs;
            }
            let info = optim.step()?;
            step += 1;
            batches += 1;
            loss_sum += loss_value;
            examples_seen += chunk.len();
            history.push(StepRecord {
                step,
                epoch,
                loss: loss_value,
                lr: info.lr,
            });
            let elapsed = start.elapsed().as_secs_f64();
            let rate = examples_seen as f64 / elapsed.max(1e-9);
            on_event(Event::Step {
                step,
                total_steps: total,
                epoch,
                loss: loss_value,
                lr: info.lr,
                examples_per_s: rate,
                eta_s: elapsed / step as f64 * (total - step) as f64,
            });
        }
        let train_loss = loss_sum / batches.max(1) as f64;
        let dev = match &dev_enc {
            Some(d) if !d.rows.is_empty() => Some(match cfg.task {
                Task::Classification => evaluate(&model, d, cfg.batch_size, pad, labels.len())?,
                Task::Mlm => mlm::evaluate(&model, d, cfg, pad, mask_id)?,
            }),
            _ => None,
        };
        // Best epoch: highest dev accuracy (classification), lowest dev loss (MLM).
        let score = dev.as_ref().map_or(epoch as f64, |d| match cfg.task {
            Task::Classification => d.accuracy,
            Task::Mlm => -d.loss,
        });
        let current = snapshot(&all_vars)?;
        epochs.push(EpochSummary {
            epoch,
            train_loss,
            dev: dev.clone(),
        });
        if let Some(dir) = &cfg.epochs_dir {
            let report = Report {
                outcome: Outcome::Finished,
                steps: step,
                epochs: epochs.clone(),
                best_epoch: Some(epoch),
                summary: summary.clone(),
                train_examples_per_s: examples_seen as f64 / start.elapsed().as_secs_f64(),
                history: history.clone(),
            };
            let done = Trained {
                config: model.config.clone(),
                labels: labels.clone(),
                tensors: current.clone(),
                report,
                base_dir: base_dir.to_path_buf(),
            };
            save::write_dir(&done, cfg, &dir.join(format!("epoch-{epoch}")))?;
        }
        if cfg.save_last || score > best_score {
            best_score = score;
            best_epoch = Some(epoch);
            best = Some(current);
        }
        on_event(Event::Epoch {
            epoch,
            train_loss,
            dev,
        });
        if step >= total {
            break;
        }
    }
    // Cancelled or diverged before any epoch ended: keep the current weights.
    let tensors = match best {
        Some(t) => t,
        None => snapshot(&all_vars)?,
    };
    Ok(Trained {
        config: model.config.clone(),
        labels,
        tensors,
        report: Report {
            outcome,
            steps: step,
            epochs,
            best_epoch,
            summary,
            train_examples_per_s: examples_seen as f64 / start.elapsed().as_secs_f64().max(1e-9),
            history,
        },
        base_dir: base_dir.to_path_buf(),
    })
}
