//! Fine-tuning throughput on synthetic batches, for `bertscope bench --train`,
//! and the time to prepare a data file, for `bench --data`.

use std::path::Path;
use std::time::Instant;

use std::sync::atomic::AtomicBool;

use candle_core::Device;
use rand::rngs::SmallRng;

use crate::data::{self, ReadOptions};
use crate::error::{BertError, Result};
use crate::model::dropout::TrainDropout;
use crate::model::precision::Precision;
use crate::model::BertModel;
use crate::tokenize::BertTokenizer;
use crate::train::{
    accumulate_step, build, encode, optim::Optim, summarize, Encodings, StepContext, Task,
    Trainable,
};

/// A model, an optimiser and one synthetic batch of `batch` inputs of exactly
/// `seq` tokens, trained as the training loop trains.
pub(crate) struct Bench {
    pub model: BertModel,
    pub optim: Optim,
    pub data: Encodings,
    pub dropout: TrainDropout,
    pub pad: u32,
    pub precision: Precision,
}

impl Bench {
    pub fn new(
        base: &Path,
        batch: usize,
        seq: usize,
        steps: usize,
        device: &Device,
        precision: Precision,
    ) -> Result<Self> {
        precision.check(device)?;
        if batch == 0 || seq < 2 {
            return Err(BertError::Input(format!(
                "batch size {batch} and sequence length {seq}: need a batch of at least 1 and a length of at least 2"
            )));
        }
        let tokenizer = BertTokenizer::load(base)?;
        let labels = vec!["a".to_string(), "b".to_string()];
        let Trainable { model, vars, .. } = build(base, Task::Classification, &labels, 42, device)?;
        let text = ["the quick brown fox jumps over the lazy dog"; 64].join(" ");
        let mut row = tokenizer.encode(&text, None, seq)?;
        let filler = row.input_ids.last().copied().unwrap_or(0);
        while row.len() < seq {
            row.input_ids.push(filler);
            row.token_type_ids.push(0);
        }
        row.tokens = Vec::new();
        let data = Encodings {
            rows: vec![row; batch],
            labels: (0..batch).map(|i| i % 2).collect(),
            special_ids: Vec::new(),
        };
        let raw = &model.config.raw;
        let dropout = TrainDropout::new(
            42,
            raw.hidden_dropout_prob,
            raw.attention_probs_dropout_prob,
            model.config.classifier_dropout(),
        );
        let optim = Optim::new(vars, 2e-5, 0.01, 0, steps + 1, 1.0)?;
        Ok(Bench {
            model,
            optim,
            data,
            dropout,
            pad: tokenizer.pad_id(),
            precision,
        })
    }

    /// One optimiser step: the training loop's own micro-batches and AdamW.
    pub fn step(&mut self, rng: &mut SmallRng, never: &AtomicBool) -> Result<()> {
        let ctx = StepContext {
            model: &self.model,
            data: &self.data,
            task: Task::Classification,
            pad: self.pad,
            mask_id: 0,
            dropout: &self.dropout,
            cancel: never,
            precision: self.precision,
        };
        let chunk: Vec<usize> = (0..self.data.rows.len()).collect();
        accumulate_step(&ctx, &chunk, rng, &mut self.optim)?;
        self.optim.step()?;
        Ok(())
    }
}

/// Examples per second over `steps` training steps (after one warm-up step)
/// with batches of `batch` inputs of exactly `seq` tokens.
pub fn train_examples_per_s(
    base: &Path,
    batch: usize,
    seq: usize,
    steps: usize,
    device: &Device,
    precision: Precision,
) -> Result<f64> {
    let steps = steps.max(1);
    let mut bench = Bench::new(base, batch, seq, steps, device, precision)?;
    let mut rng = crate::train::weights::seeded(42);
    let never = AtomicBool::new(false);
    bench.step(&mut rng, &never)?;
    let start = Instant::now();
    for _ in 0..steps {
        bench.step(&mut rng, &never)?;
    }
    Ok((steps * batch) as f64 / start.elapsed().as_secs_f64())
}

/// Seconds spent preparing a data file for training.
#[derive(Debug, serde::Serialize)]
pub struct DataTiming {
    pub rows: usize,
    /// Reading and checking the rows.
    pub read_s: f64,
    /// Tokenising and encoding them, with the length statistics.
    pub tokenize_s: f64,
}

/// Prepare `file` as `finetune` does, with `base`'s tokenizer truncating at
/// `max_length`; the tokenizer's loading is not timed.
pub fn prepare_data(
    base: &Path,
    file: &Path,
    options: &ReadOptions,
    max_length: usize,
) -> Result<DataTiming> {
    let tokenizer = BertTokenizer::load(base)?;
    let never = AtomicBool::new(false);
    let start = Instant::now();
    let train = data::read(file, options)?;
    let read_s = start.elapsed().as_secs_f64();
    let start = Instant::now();
    let labels: Vec<String> = train.label_counts().into_keys().collect();
    let encodings = encode(&tokenizer, &train, &labels, max_length, &never)?;
    summarize(&tokenizer, (&train, &encodings), None, &never)?;
    Ok(DataTiming {
        rows: encodings.rows.len(),
        read_s,
        tokenize_s: start.elapsed().as_secs_f64(),
    })
}
