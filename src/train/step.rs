//! One training step and one evaluation pass: the loss of a batch, micro-batches
//! with gradients gathered in the optimiser, and dev metrics.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{Tensor, D};

use crate::error::Result;
use crate::model::cancel;
use crate::model::dropout::TrainDropout;
use crate::model::precision::{self, Precision};
use crate::model::{BertModel, ModelInput};
use crate::tokenize::Encoded;
use crate::train::metrics::{self, DevMetrics};
use crate::train::mlm::mlm_loss;
use crate::train::optim::Optim;
use crate::train::{masking, Encodings, Task};

/// Cross-entropy of a batch and its logits.
pub fn batch_loss(
    model: &BertModel,
    rows: &[Encoded],
    labels: &[usize],
    pad_id: u32,
    dropout: Option<&TrainDropout>,
) -> Result<(Tensor, Tensor)> {
    let input = ModelInput::batch(rows, pad_id);
    let cls = model.encode_train_cls(&input, dropout)?;
    let logits = model.classify_cls(&cls, dropout)?;
    let targets: Vec<u32> = labels.iter().map(|&l| l as u32).collect();
    let targets = Tensor::from_vec(targets, labels.len(), model.device())?;
    let loss = candle_nn::loss::cross_entropy(&logits, &targets)?;
    Ok((loss, logits))
}

/// Evaluate on encoded dev data (no dropout).
pub fn evaluate(
    model: &BertModel,
    dev: &Encodings,
    batch_size: usize,
    pad_id: u32,
    classes: usize,
    cancel: &AtomicBool,
) -> Result<DevMetrics> {
    let mut predicted = Vec::with_capacity(dev.rows.len());
    let mut loss_sum = 0f64;
    for (rows, labels) in dev
        .rows
        .chunks(batch_size)
        .zip(dev.labels.chunks(batch_size))
    {
        if cancel.load(Ordering::Relaxed) {
            return Err(crate::error::BertError::Cancelled);
        }
        let (loss, logits) = batch_loss(model, rows, labels, pad_id, None)?;
        loss_sum += loss.to_scalar::<f32>()? as f64 * rows.len() as f64;
        predicted.extend(
            logits
                .argmax(D::Minus1)?
                .to_vec1::<u32>()?
                .into_iter()
                .map(|p| p as usize),
        );
    }
    let loss = loss_sum / dev.rows.len().max(1) as f64;
    Ok(metrics::evaluate(&dev.labels, &predicted, classes, loss))
}

/// Activation memory one micro-batch may hold on the CPU: the graph keeps
/// every layer's intermediate tensors until its backward pass. Gradients are
/// summed over micro-batches, so the step is the same; a cancel lands within
/// a layer anyway (see `model::cancel`), so micro-batches need only bound
/// memory, and large ones keep the matrix products efficient.
const MICRO_BATCH_BYTES: usize = 2 << 30;

/// Rows per micro-batch for inputs of `longest` tokens: as many as fit in
/// [`MICRO_BATCH_BYTES`] by an estimate of what a layer keeps per token
/// (hidden-size tensors, the feed-forward block's, the attention maps). GPUs
/// take the whole batch at once.
pub(crate) fn micro_batch_rows(model: &BertModel, longest: usize, batch: usize) -> usize {
    if !model.device().is_cpu() {
        return batch.max(1);
    }
    let raw = &model.config.raw;
    let per_token = 4
        * raw.num_hidden_layers
        * (12 * raw.hidden_size
            + 3 * raw.intermediate_size
            + 3 * raw.num_attention_heads * longest);
    (MICRO_BATCH_BYTES / (per_token * longest).max(1)).clamp(1, batch.max(1))
}

/// What every training step of a run reads.
pub(crate) struct StepContext<'a> {
    pub model: &'a BertModel,
    pub data: &'a Encodings,
    pub task: Task,
    pub pad: u32,
    pub mask_id: u32,
    pub dropout: &'a TrainDropout,
    pub cancel: &'a AtomicBool,
    pub precision: Precision,
}

/// Forward and backward over the rows `chunk` of one batch in micro-batches,
/// gradients gathered in `optim`. Returns the batch's loss, or `None` when
/// cancelled midway (or, for masked-LM, when there is nothing to predict).
/// The fused CPU ops watch the cancel flag: a cancel lands within a layer.
pub(crate) fn accumulate_step(
    ctx: &StepContext,
    chunk: &[usize],
    rng: &mut rand::rngs::SmallRng,
    optim: &mut Optim,
) -> Result<Option<f64>> {
    let run = || precision::scoped(ctx.precision, || micro_batches(ctx, chunk, rng, optim));
    match cancel::watching(ctx.cancel, run) {
        Err(_) if ctx.cancel.load(Ordering::Relaxed) => {
            optim.discard();
            Ok(None)
        }
        done => done,
    }
}

fn micro_batches(
    ctx: &StepContext,
    chunk: &[usize],
    rng: &mut rand::rngs::SmallRng,
    optim: &mut Optim,
) -> Result<Option<f64>> {
    let StepContext {
        model,
        data,
        task,
        pad,
        mask_id,
        dropout,
        cancel,
        ..
    } = *ctx;
    let longest = chunk.iter().map(|&i| data.rows[i].len()).max().unwrap_or(1);
    let per = micro_batch_rows(model, longest, chunk.len());
    let parts: Vec<&[usize]> = chunk.chunks(per).collect();
    let rows_of =
        |part: &[usize]| -> Vec<Encoded> { part.iter().map(|&i| data.rows[i].clone()).collect() };
    let mut total = 0f64;
    match task {
        Task::Classification => {
            for part in parts {
                if cancel.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                let targets: Vec<usize> = part.iter().map(|&i| data.labels[i]).collect();
                let (loss, _) = batch_loss(model, &rows_of(part), &targets, pad, Some(dropout))?;
                let share = (loss * (part.len() as f64 / chunk.len() as f64))?;
                total += share.to_scalar::<f32>()? as f64;
                optim.backward(&share)?;
            }
        }
        Task::Mlm => {
            let vocab = model.config.raw.vocab_size;
            let batches: Vec<masking::MaskedBatch> = parts
                .iter()
                .map(|part| {
                    masking::mask_batch(&rows_of(part), &data.special_ids, mask_id, vocab, rng)
                })
                .collect();
            let predicted: usize = batches.iter().map(|b| b.positions.len()).sum();
            if predicted == 0 {
                return Ok(None);
            }
            for batch in batches.iter().filter(|b| !b.positions.is_empty()) {
                if cancel.load(Ordering::Relaxed) {
                    return Ok(None);
                }
                let (loss, _) = mlm_loss(model, batch, pad, Some(dropout))?;
                let share = (loss * (batch.positions.len() as f64 / predicted as f64))?;
                total += share.to_scalar::<f32>()? as f64;
                optim.backward(&share)?;
            }
        }
    }
    Ok(Some(total))
}
