//! Fine-tuning throughput on synthetic batches, for `bertscope bench --train`.

use std::path::Path;
use std::time::Instant;

use candle_core::Device;

use crate::error::{BertError, Result};
use crate::model::dropout::TrainDropout;
use crate::tokenize::BertTokenizer;
use crate::train::{accumulate_step, build, optim::Optim, Encodings, StepContext, Task, Trainable};

/// Examples per second over `steps` training steps (after one warm-up step)
/// with batches of `batch` inputs of exactly `seq` tokens.
pub fn train_examples_per_s(
    base: &Path,
    batch: usize,
    seq: usize,
    steps: usize,
    device: &Device,
) -> Result<f64> {
    if batch == 0 || seq < 2 {
        return Err(BertError::Input(
            format!("batch size {batch} and sequence length {seq}: need a batch of at least 1 and a length of at least 2"),
        ));
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
        row.tokens.push(String::new());
    }
    let data = Encodings {
        rows: vec![row; batch],
        labels: (0..batch).map(|i| i % 2).collect(),
        special_ids: Vec::new(),
    };
    let chunk: Vec<usize> = (0..batch).collect();
    let mut rng = crate::train::weights::seeded(42);
    let never = std::sync::atomic::AtomicBool::new(false);
    let raw = &model.config.raw;
    let dropout = TrainDropout::new(
        42,
        raw.hidden_dropout_prob,
        raw.attention_probs_dropout_prob,
        model.config.classifier_dropout(),
    );
    let steps = steps.max(1);
    let mut optim = Optim::new(vars, 2e-5, 0.01, 0, steps + 1, 1.0)?;
    // The training loop's own step: micro-batches on the CPU, summed gradients.
    let ctx = StepContext {
        model: &model,
        data: &data,
        task: Task::Classification,
        pad: tokenizer.pad_id(),
        mask_id: 0,
        dropout: &dropout,
        cancel: &never,
    };
    let mut one_step = || -> Result<()> {
        accumulate_step(&ctx, &chunk, &mut rng, &mut optim)?;
        optim.step()?;
        Ok(())
    };
    one_step()?;
    let start = Instant::now();
    for _ in 0..steps {
        one_step()?;
    }
    Ok((steps * batch) as f64 / start.elapsed().as_secs_f64())
}
