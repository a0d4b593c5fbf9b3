//! The batched forward of a dataset pass: encoded rows in length-bucketed
//! batches through the model with every layer's attention, each batch handed
//! to a reducer and dropped before the next.

use std::borrow::Borrow;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{BertError, Result};
use crate::model::{cancel, AttentionProbs, BertModel, ModelInput};
use crate::tokenize::Encoded;

use super::batches::{self, bucketed};

/// Padded tokens a batch holds at most.
const TOKENS_PER_BATCH: usize = 1024;
/// Bytes one batch's attention maps may take (every layer and head).
const ATTENTION_BYTES: usize = 256 << 20;

/// One batch's attention, `[layer][row][head][query][key]`, queries and keys
/// padded to `seq`; the batch's rows are the pass's rows `rows`.
pub struct BatchAttention<'a> {
    data: &'a [f32],
    pub layers: usize,
    pub heads: usize,
    pub seq: usize,
    /// The pass's row indices, in batch order.
    pub rows: &'a [usize],
}

impl BatchAttention<'_> {
    /// Row `b`'s map of one head: `seq × seq`, row-major by query.
    pub fn map(&self, layer: usize, b: usize, head: usize) -> &[f32] {
        let block = self.seq * self.seq;
        let start = ((layer * self.rows.len() + b) * self.heads + head) * block;
        &self.data[start..start + block]
    }
}

/// Run `rows` (encoded and truncated) through `model` in length-bucketed
/// batches, handing each batch's attention to `reduce`. `progress(done,
/// total)` after each batch; `cancel` stops within a batch, between layers
/// (`BertError::Cancelled`).
pub fn attention_pass<E: Borrow<Encoded>>(
    model: &BertModel,
    pad_id: u32,
    rows: &[E],
    reduce: &mut dyn FnMut(&BatchAttention) -> Result<()>,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<()> {
    let (layers, heads) = (model.config.num_layers(), model.config.num_heads());
    let per_map = layers * heads * std::mem::size_of::<f32>();
    let fits = |n: usize, longest: usize| {
        n * longest <= TOKENS_PER_BATCH && n * per_map * longest * longest <= ATTENTION_BYTES
    };
    let mut run = |batch: &[usize], input: &ModelInput| {
        let out = model.encode(input)?;
        let data = match out.attentions {
            AttentionProbs::Host { data, .. } => data,
            tensors @ AttentionProbs::Tensors(_) => tensors.to_flat()?,
        };
        reduce(&BatchAttention {
            data: &data,
            layers,
            heads,
            seq: input.mask.seq,
            rows: batch,
        })
    };
    batched(pad_id, rows, fits, &mut run, progress, cancel)
}

/// One batch's hidden states at one layer: `[row][token][hidden]`, tokens
/// padded to `seq`; the batch's rows are the pass's rows `rows`.
pub struct BatchHidden<'a> {
    states: &'a [f32],
    /// As `transformers`' `hidden_states` numbers it (0: the embeddings).
    pub layer: usize,
    pub hidden: usize,
    pub seq: usize,
    pub rows: &'a [usize],
}

impl BatchHidden<'_> {
    /// Row `b`'s hidden state at token `t`.
    pub fn token(&self, b: usize, t: usize) -> &[f32] {
        let start = (b * self.seq + t) * self.hidden;
        &self.states[start..start + self.hidden]
    }
}

/// Run `rows` through `model` in length-bucketed batches, keeping no
/// attention, and hand `reduce` each batch's hidden states at each of
/// `layers` (ascending, as `hidden_states` numbers them); the layers past
/// the last one wanted are not computed.
pub fn hidden_pass<E: Borrow<Encoded>>(
    model: &BertModel,
    pad_id: u32,
    rows: &[E],
    layers: &[usize],
    reduce: &mut dyn FnMut(&BatchHidden) -> Result<()>,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<()> {
    let upto = layers.iter().copied().max().unwrap_or(0);
    let hidden = model.config.hidden_size();
    let fits = batches::within_tokens(TOKENS_PER_BATCH);
    let mut run = |batch: &[usize], input: &ModelInput| {
        let seq = input.mask.seq;
        model.hidden_states(input, upto, &mut |layer, states| {
            if !layers.contains(&layer) {
                return Ok(());
            }
            reduce(&BatchHidden {
                states,
                layer,
                hidden,
                seq,
                rows: batch,
            })
        })
    };
    batched(pad_id, rows, fits, &mut run, progress, cancel)
}

/// The loop both passes share: bucket, batch, run with the cancel watched,
/// report progress.
fn batched<E: Borrow<Encoded>>(
    pad_id: u32,
    rows: &[E],
    fits: impl Fn(usize, usize) -> bool,
    run: &mut dyn FnMut(&[usize], &ModelInput) -> Result<()>,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<()> {
    let lengths: Vec<usize> = rows.iter().map(|r| r.borrow().len()).collect();
    let mut done = 0;
    for batch in bucketed(&lengths, fits) {
        if cancel.load(Ordering::Relaxed) {
            return Err(BertError::Cancelled);
        }
        let encoded: Vec<&Encoded> = batch.iter().map(|&i| rows[i].borrow()).collect();
        let input = ModelInput::batch_of(&encoded, pad_id);
        cancel::watching(cancel, || run(&batch, &input)).map_err(|e| {
            if cancel.load(Ordering::Relaxed) {
                BertError::Cancelled
            } else {
                e
            }
        })?;
        done += batch.len();
        progress(done, rows.len());
    }
    Ok(())
}
