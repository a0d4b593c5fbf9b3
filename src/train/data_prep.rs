//! From labelled rows to model inputs: the dev split, tokenised examples with
//! class indices, and the data summary printed before training.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::data::Dataset;
use crate::error::{BertError, Result};
use crate::tokenize::{BertTokenizer, Encoded};
use crate::train::weights;
use std::sync::atomic::{AtomicBool, Ordering};

/// The dev split draws from a stream of its own, apart from the training
/// shuffle and dropout seeded by the same `seed`.
const DEV_SPLIT_STREAM: u64 = 0xDE5;

/// What the data looks like to the model, printed before training.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DataSummary {
    pub train_rows: usize,
    pub dev_rows: usize,
    pub label_counts: BTreeMap<String, usize>,
    pub majority_baseline: f64,
    /// Token-length percentiles (50, 90, 95, 99, max) of the training inputs.
    pub length_percentiles: [usize; 5],
    /// Training inputs longer than `--max-length` (they are truncated).
    pub truncated: usize,
    pub skipped_rows: usize,
}

/// Move a seeded random `fraction` of the rows into a dev set.
pub fn split_dev(train_data: &mut Dataset, fraction: f64, seed: u64) -> Dataset {
    use rand::seq::SliceRandom;
    let mut order: Vec<usize> = (0..train_data.examples.len()).collect();
    order.shuffle(&mut weights::seeded(seed ^ DEV_SPLIT_STREAM));
    let n_dev = (train_data.examples.len() as f64 * fraction).round() as usize;
    let dev_idx: std::collections::HashSet<usize> = order[..n_dev].iter().copied().collect();
    let mut dev = train_data.clone();
    dev.examples = Vec::new();
    let mut kept = Vec::new();
    for (i, e) in train_data.examples.drain(..).enumerate() {
        if dev_idx.contains(&i) {
            dev.examples.push(e);
        } else {
            kept.push(e);
        }
    }
    train_data.examples = kept;
    dev.skipped.clear();
    dev
}

/// Tokenised examples with class indices: token ids only (the token strings
/// are dropped once encoded, so training holds no copy of the text).
pub struct Encodings {
    pub rows: Vec<Encoded>,
    pub labels: Vec<usize>,
    /// The special tokens' ids seen in the rows (sorted), for masking.
    pub special_ids: Vec<u32>,
}

/// Rows tokenised per parallel batch: enough to keep every core busy, few
/// enough that progress moves and a cancel lands within a fraction of a second.
const ENCODE_CHUNK: usize = 4096;

/// Tokenise every example (class indices from `labels`); stops with
/// `BertError::Cancelled` as soon as `cancel` is set.
pub fn encode(
    tokenizer: &BertTokenizer,
    data: &Dataset,
    labels: &[String],
    max_length: usize,
    cancel: &AtomicBool,
) -> Result<Encodings> {
    encode_reporting(tokenizer, data, labels, max_length, cancel, &mut |_| {})
}

/// [`encode`] in parallel batches, calling `on_progress(rows done)` after each.
pub(crate) fn encode_reporting(
    tokenizer: &BertTokenizer,
    data: &Dataset,
    labels: &[String],
    max_length: usize,
    cancel: &AtomicBool,
    on_progress: &mut dyn FnMut(usize),
) -> Result<Encodings> {
    let classes = if labels.is_empty() {
        Vec::new()
    } else {
        class_indices(data, labels)?
    };
    let mut rows = Vec::with_capacity(data.examples.len());
    for chunk in data.examples.chunks(ENCODE_CHUNK) {
        if cancel.load(Ordering::Relaxed) {
            return Err(BertError::Cancelled);
        }
        let inputs: Vec<(&str, Option<&str>)> = chunk
            .iter()
            .map(|e| (e.text_a.as_str(), e.text_b.as_deref()))
            .collect();
        rows.extend(tokenizer.encode_batch(&inputs, max_length, false)?);
        on_progress(rows.len());
    }
    let special_ids = crate::train::masking::special_ids(&rows, tokenizer);
    Ok(Encodings {
        rows,
        labels: classes,
        special_ids,
    })
}

/// Each example's class: its label's index in `labels`.
fn class_indices(data: &Dataset, labels: &[String]) -> Result<Vec<usize>> {
    data.examples
        .iter()
        .map(|e| {
            let label = e.label.as_deref().unwrap_or_default();
            labels.iter().position(|l| l == label).ok_or_else(|| {
                BertError::line(
                    &data.path,
                    e.line,
                    format!(
                        "label \"{label}\" does not occur in the training data (labels: {})",
                        labels.join(", ")
                    ),
                )
            })
        })
        .collect()
}

pub(crate) fn percentile(sorted: &[usize], p: f64) -> usize {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// What the training data looks like, from its encodings: a truncated row's
/// full length is counted by encoding it again without truncation.
pub(crate) fn summarize(
    tokenizer: &BertTokenizer,
    (train, train_enc): (&Dataset, &Encodings),
    dev: Option<&Dataset>,
    cancel: &AtomicBool,
) -> Result<DataSummary> {
    let mut lengths: Vec<usize> = train_enc.rows.iter().map(Encoded::len).collect();
    let cut: Vec<usize> = (0..lengths.len())
        .filter(|&i| train_enc.rows[i].truncated)
        .collect();
    for chunk in cut.chunks(ENCODE_CHUNK) {
        if cancel.load(Ordering::Relaxed) {
            return Err(BertError::Cancelled);
        }
        let inputs: Vec<(&str, Option<&str>)> = chunk
            .iter()
            .map(|&i| {
                (
                    train.examples[i].text_a.as_str(),
                    train.examples[i].text_b.as_deref(),
                )
            })
            .collect();
        let full = tokenizer.encode_batch(&inputs, usize::MAX, false)?;
        for (&i, row) in chunk.iter().zip(full) {
            lengths[i] = row.len();
        }
    }
    lengths.sort_unstable();
    Ok(DataSummary {
        train_rows: train.examples.len(),
        dev_rows: dev.map_or(0, |d| d.examples.len()),
        label_counts: train.label_counts(),
        majority_baseline: train.majority_baseline(),
        length_percentiles: [50.0, 90.0, 95.0, 99.0, 100.0].map(|p| percentile(&lengths, p)),
        truncated: cut.len(),
        skipped_rows: train.skipped.len() + dev.map_or(0, |d| d.skipped.len()),
    })
}
