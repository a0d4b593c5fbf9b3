//! Fine-tuning: a `BertForSequenceClassification` head on any checkpoint the
//! engine loads, trained with the BERT recipe on a worker-friendly loop that
//! reports progress events and stops within a step when cancelled.

mod batching;
pub mod bench;
mod data_prep;
pub mod fused_adamw;
pub mod kit;
pub mod masking;
pub mod metrics;
pub mod mlm;
pub mod optim;
pub mod preview;
pub mod profile;
pub mod run_dir;
mod run_loop;
pub mod save;
mod step;
pub mod weights;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{Checkpoint, Weights};
use crate::config::BertConfig;
use crate::data::Dataset;
use crate::error::{BertError, Result};
use crate::model::precision::Precision;
use crate::model::{BertModel, Compute};
pub use data_prep::{encode, split_dev, DataSummary, Encodings};
pub(crate) use data_prep::{encode_reporting, percentile, summarize};
use metrics::DevMetrics;
pub use mlm::mlm_loss;
use run_loop::{prepare, Loop};
pub(crate) use step::{accumulate_step, StepContext};
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// With `shuffle`: batch rows of similar length together (sorted inside
    /// windows of [`BUCKET_WINDOW`] batches, the batches then shuffled), so
    /// that batches carry little padding. Off: exactly the shuffled order.
    /// Absent from the settings of runs made before it existed, which had
    /// none: such a run resumes (or trains again) without it.
    #[serde(default)]
    pub bucketing: bool,
    /// Overrides the config's dropout probabilities.
    pub dropout: Option<f64>,
    /// The matrix products' precision (bf16 on CPUs with AVX-512-BF16 or AMX-BF16).
    /// Absent from runs made before it existed, which trained in fp32.
    #[serde(default)]
    pub precision: Precision,
    pub save_last: bool,
    /// The label set in class order; default: the training labels sorted.
    pub labels: Option<Vec<String>>,
    /// Write a checkpoint here before training (`epoch-0`: the base with its new
    /// head) and after every epoch (`epoch-N`); `save` moves them into the output.
    #[serde(skip)]
    pub epochs_dir: Option<PathBuf>,
    /// The run's working directory (see [`run_dir`]): each finished epoch's
    /// resumable state is saved there.
    #[serde(skip)]
    pub run_dir: Option<PathBuf>,
    /// Continue the run saved in `run_dir` instead of starting afresh.
    #[serde(skip)]
    pub resume: bool,
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
            bucketing: true,
            dropout: None,
            precision: Precision::Fp32,
            save_last: false,
            labels: None,
            epochs_dir: None,
            run_dir: None,
            resume: false,
        }
    }
}

/// Batches per length-sorted window when bucketing (as `transformers`'
/// `group_by_length` sorts "megabatches" of 50 batches).
pub const BUCKET_WINDOW: usize = 50;

/// Progress of a run, as the CLI and the app show it.
#[derive(Debug, Clone, Serialize)]
pub enum Event {
    /// Rows tokenised so far while the data is prepared (training and dev).
    Tokenizing {
        done: usize,
        total: usize,
    },
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
    /// Something failed that does not stop the run (a checkpoint not written).
    Warning(String),
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

impl Outcome {
    /// How the run ended, in words.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Finished => "finished".into(),
            Outcome::Cancelled => "cancelled".into(),
            Outcome::Diverged { step } => format!("diverged at step {step}"),
        }
    }
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
    /// The report of a run cancelled before it trained at all.
    pub fn cancelled_before_training() -> Report {
        Report {
            outcome: Outcome::Cancelled,
            steps: 0,
            epochs: Vec::new(),
            best_epoch: None,
            summary: DataSummary::default(),
            train_examples_per_s: 0.0,
            history: Vec::new(),
        }
    }

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
    let model = BertModel::build(&trainable, config, device, Compute::Differentiable)?;
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

/// Fine-tune a classifier (or continue masked-LM pre-training). `dev` may be
/// empty (no evaluation: the last epoch is kept). With `cfg.run_dir`, every
/// finished epoch is saved there and `cfg.resume` continues from it.
pub fn train(
    base_dir: &Path,
    train_data: &Dataset,
    dev_data: Option<&Dataset>,
    cfg: &TrainConfig,
    device: &Device,
    on_event: &mut dyn FnMut(Event),
    cancel: &AtomicBool,
) -> Result<Trained> {
    cfg.precision.check(device)?;
    // Cancelled while the data is prepared: `BertError::Cancelled`, nothing trained.
    let data = prepare(base_dir, (train_data, dev_data), cfg, on_event, cancel)?;
    let trainable = build(base_dir, cfg.task, &data.labels, cfg.seed, device)?;
    let mut run = Loop::new(base_dir, cfg, data, trainable)?;
    match (&cfg.run_dir, cfg.resume) {
        (Some(dir), true) => run.resume(dir)?,
        (None, true) => {
            return Err(BertError::Input(
                "resuming needs the run's directory".into(),
            ))
        }
        _ => {
            if let Err(e) = run.write_epoch_zero(cancel) {
                on_event(Event::Warning(format!(
                    "epoch 0 (the base with its new head) was not kept: {e}; training goes on"
                )));
            }
        }
    }
    for epoch in run.progress.epoch + 1..=cfg.epochs {
        if run.progress.step >= run.total {
            break;
        }
        let Some(train_loss) = run.epoch(epoch, on_event, cancel)? else {
            break;
        };
        if !run.end_epoch(epoch, train_loss, on_event, cancel)? {
            break;
        }
    }
    run.finish()
}
