//! One vector per row: a layer's hidden states pooled (`[CLS]`, or the mean
//! over the row's tokens, specials included), and the classifier's choice
//! when the model has one — what the projection of a data file plots.

use std::sync::atomic::AtomicBool;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use super::pass::{hidden_pass, BatchHidden};
use super::PassLimits;
use crate::data::Dataset;
use crate::engine::LoadedModel;
use crate::error::{BertError, Result};

/// How a row's token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pool {
    /// The `[CLS]` token's state.
    Cls,
    /// The mean over the row's tokens, `[CLS]` and `[SEP]` included.
    Mean,
}

/// What a pooled pass reads: which layer, pooled how, of which rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pooling {
    /// `hidden_states` numbering: 0 the embeddings, i layer i's output.
    pub layer: usize,
    pub pool: Pool,
    pub limits: PassLimits,
}

/// Each row's pooled vector (`[row][hidden]`, flat) and, when the model
/// classifies, the label it predicts.
#[derive(Debug, Clone)]
pub struct Pooled {
    pub rows: usize,
    pub hidden: usize,
    pub vectors: Vec<f32>,
    pub predicted: Option<Vec<String>>,
}

/// Pool `data`'s rows as `pooling` says in one batched pass; with
/// `predict`, also run the classifier (which needs the last layer) when the
/// model has one.
pub fn pooled(
    model: &LoadedModel,
    data: &Dataset,
    pooling: Pooling,
    predict: bool,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<Pooled> {
    let Pooling {
        layer,
        pool,
        limits,
    } = pooling;
    let config = model.config();
    let last = config.num_layers();
    if layer > last {
        return Err(BertError::Input(format!(
            "--layer {layer} does not exist: the model has layers 0 (the embeddings) to {last}"
        )));
    }
    let max_length = limits.length_for(model)?;
    let rows = limits.rows(data);
    if rows.is_empty() {
        return Err(BertError::file(&data.path, "no rows to project"));
    }
    let inputs: Vec<(&str, Option<&str>)> = rows
        .iter()
        .map(|e| (e.text_a.as_str(), e.text_b.as_deref()))
        .collect();
    let encoded = model.tokenizer.encode_batch(&inputs, max_length, false)?;
    let hidden = config.hidden_size();
    let classify = predict && model.model.classifier.is_some() && model.model.pooler.is_some();
    let layers: Vec<usize> = if classify && layer != last {
        vec![layer, last]
    } else {
        vec![layer]
    };
    let mut vectors = vec![0f32; rows.len() * hidden];
    let mut cls_last = if classify {
        vec![0f32; rows.len() * hidden]
    } else {
        Vec::new()
    };
    let mut reduce = |batch: &BatchHidden| {
        for (b, &row) in batch.rows.iter().enumerate() {
            if batch.layer == layer {
                let out = &mut vectors[row * hidden..(row + 1) * hidden];
                pool_row(batch, b, encoded[row].len(), pool, out);
            }
            if classify && batch.layer == last {
                cls_last[row * hidden..(row + 1) * hidden].copy_from_slice(batch.token(b, 0));
            }
        }
        Ok(())
    };
    let pad = model.tokenizer.pad_id();
    hidden_pass(
        &model.model,
        pad,
        &encoded,
        &layers,
        &mut reduce,
        progress,
        cancel,
    )?;
    let predicted = if classify {
        Some(predict_labels(model, cls_last, rows.len())?)
    } else {
        None
    };
    Ok(Pooled {
        rows: rows.len(),
        hidden,
        vectors,
        predicted,
    })
}

fn pool_row(batch: &BatchHidden, b: usize, len: usize, pool: Pool, out: &mut [f32]) {
    match pool {
        Pool::Cls => out.copy_from_slice(batch.token(b, 0)),
        Pool::Mean => {
            let mut sum = vec![0f64; out.len()];
            for t in 0..len {
                for (s, &x) in sum.iter_mut().zip(batch.token(b, t)) {
                    *s += f64::from(x);
                }
            }
            for (o, s) in out.iter_mut().zip(sum) {
                *o = (s / len.max(1) as f64) as f32;
            }
        }
    }
}

/// The classifier's label for each row's last-layer `[CLS]` state.
fn predict_labels(model: &LoadedModel, cls: Vec<f32>, rows: usize) -> Result<Vec<String>> {
    let hidden = model.config().hidden_size();
    let cls = Tensor::from_vec(cls, (rows, hidden), model.model.device())?;
    let logits = model.model.classify_cls(&cls, None)?;
    let best: Vec<u32> = logits.argmax(1)?.to_vec1()?;
    let labels = &model.config().labels;
    Ok(best
        .into_iter()
        .map(|i| {
            labels
                .get(i as usize)
                .cloned()
                .unwrap_or_else(|| format!("LABEL_{i}"))
        })
        .collect())
}
