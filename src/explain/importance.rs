//! Head importance (Michel, Levy & Neubig 2019): the mean over labelled rows
//! of |∂ℓ/∂ξ| for a gate ξ = 1 on every head's context, ℓ the cross-entropy
//! against the gold label, in eval mode.

use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Tensor, Var};
use serde::Serialize;

use crate::compare::HeadChanges;
use crate::dataset::batches::{bucketed, within_tokens};
use crate::error::{BertError, Result};
use crate::model::attention::Probe;
use crate::model::{first_tokens, BertModel, ModelInput};
use crate::tokenize::Encoded;

/// Rows are truncated to this many tokens (the definition's).
pub const MAX_TOKENS: usize = 128;
/// The most tokens one batch holds.
const TOKENS_PER_BATCH: usize = 2048;

/// Importance per head, `[layer][head]`, over `rows` labelled inputs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadImportance {
    pub layers: usize,
    pub heads: usize,
    /// Row-major `[layer][head]`.
    pub values: Vec<f32>,
    pub rows: usize,
}

impl HeadImportance {
    pub fn get(&self, layer: usize, head: usize) -> f32 {
        self.values
            .get(layer * self.heads + head)
            .copied()
            .unwrap_or(0.0)
    }

    /// Nested `[layer][head]` for JSON.
    pub fn to_rows(&self) -> Vec<Vec<f32>> {
        self.values
            .chunks(self.heads.max(1))
            .map(<[f32]>::to_vec)
            .collect()
    }

    /// Each layer divided by its largest value (what the map shows).
    pub fn normalised_per_layer(&self) -> HeadChanges {
        let mut values = self.values.clone();
        for layer in values.chunks_mut(self.heads.max(1)) {
            let max = layer.iter().copied().fold(0.0f32, f32::max);
            if max > 0.0 {
                layer.iter_mut().for_each(|v| *v /= max);
            }
        }
        HeadChanges {
            layers: self.layers,
            heads: self.heads,
            values,
            inputs: self.rows,
        }
    }
}

/// Importance of every head over `rows` (encoded inputs, already truncated,
/// with their gold class). `on_rows` hears how many rows are done; `cancel`
/// stops between batches.
pub fn head_importance(
    model: &BertModel,
    rows: &[(Encoded, usize)],
    pad_id: u32,
    cancel: &AtomicBool,
    on_rows: &mut dyn FnMut(usize, usize),
) -> Result<HeadImportance> {
    let (layers, heads) = (model.config.num_layers(), model.config.num_heads());
    let labels = model.config.labels.len();
    if let Some((_, class)) = rows.iter().find(|(_, c)| *c >= labels) {
        return Err(BertError::Input(format!(
            "class {class} is outside the model's {labels} labels"
        )));
    }
    let mut sums = vec![0f64; layers * heads];
    let mut done = 0;
    for batch in batches(rows) {
        if cancel.load(Ordering::Relaxed) {
            return Err(BertError::Cancelled);
        }
        let grads = batch_gradients(model, &batch, pad_id)?;
        for (sum, g) in sums.iter_mut().zip(grads) {
            *sum += g;
        }
        done += batch.len();
        on_rows(done, rows.len());
    }
    let n = rows.len().max(1) as f64;
    Ok(HeadImportance {
        layers,
        heads,
        values: sums.iter().map(|s| (s / n) as f32).collect(),
        rows: rows.len(),
    })
}

/// The rows in length-bucketed batches of at most [`TOKENS_PER_BATCH`]
/// padded tokens (the dataset pass's batching).
fn batches(rows: &[(Encoded, usize)]) -> Vec<Vec<(Encoded, usize)>> {
    let lengths: Vec<usize> = rows.iter().map(|(e, _)| e.len()).collect();
    bucketed(&lengths, within_tokens(TOKENS_PER_BATCH))
        .into_iter()
        .map(|batch| batch.into_iter().map(|i| rows[i].clone()).collect())
        .collect()
}

/// Σ over the batch's rows of |∂ℓ_row/∂ξ_row|, `[layer][head]` flat: every
/// row has gates of its own, so the summed loss's gradient keeps them apart.
fn batch_gradients(model: &BertModel, batch: &[(Encoded, usize)], pad_id: u32) -> Result<Vec<f64>> {
    let (layers, heads) = (model.config.num_layers(), model.config.num_heads());
    let encoded: Vec<Encoded> = batch.iter().map(|(e, _)| e.clone()).collect();
    let input = ModelInput::batch(&encoded, pad_id);
    let b = batch.len();
    let gates = (0..layers)
        .map(|_| Ok(Var::ones((b, heads, 1, 1), DType::F32, model.device())?))
        .collect::<Result<Vec<_>>>()?;
    let probes: Vec<Probe> = gates
        .iter()
        .map(|g| Probe {
            gate: Some(g.as_tensor()),
            probs_grad: None,
        })
        .collect();
    let words = model.word_embeddings(&input)?;
    let (hidden, _) = model.encode_probed(&words, &input, &probes)?;
    let logits = model.classify_cls(&first_tokens(&hidden, &input.mask)?, None)?;
    let log_probs = candle_nn::ops::log_softmax(&logits, 1)?;
    let gold: Vec<u32> = batch.iter().map(|&(_, c)| c as u32).collect();
    let gold = Tensor::from_vec(gold, (b, 1), model.device())?;
    let loss = log_probs.gather(&gold, 1)?.sum_all()?.neg()?;
    let grads = loss.backward()?;
    let mut sums = vec![0f64; layers * heads];
    for (layer, gate) in gates.iter().enumerate() {
        let Some(g) = grads.get(gate.as_tensor()) else {
            continue;
        };
        let g = g.flatten_all()?.to_vec1::<f32>()?;
        for row in g.chunks(heads) {
            for (h, v) in row.iter().enumerate() {
                sums[layer * heads + h] += v.abs() as f64;
            }
        }
    }
    Ok(sums)
}
