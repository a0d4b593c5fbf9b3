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

/// Tokenise every example (class indices from `labels`); stops with
/// `BertError::Cancelled` as soon as `cancel` is set.
pub fn encode(
    tokenizer: &BertTokenizer,
    data: &Dataset,
    labels: &[String],
    max_length: usize,
    cancel: &AtomicBool,
) -> Result<Encodings> {
    let mut rows = Vec::with_capacity(data.examples.len());
    let mut classes = Vec::with_capacity(data.examples.len());
    for e in &data.examples {
        if cancel.load(Ordering::Relaxed) {
            return Err(BertError::Cancelled);
        }
        if labels.is_empty() {
            rows.push(tokenizer.encode(&e.text_a, e.text_b.as_deref(), max_length)?);
            continue;
        }
        let label = e.label.as_deref().unwrap_or_default();
        let class = labels.iter().position(|l| l == label).ok_or_else(|| {
            BertError::line(
                &data.path,
                e.line,
                format!(
                    "label \"{label}\" does not occur in the training data (labels: {})",
                    labels.join(", ")
                ),
            )
        })?;
        rows.push(tokenizer.encode(&e.text_a, e.text_b.as_deref(), max_length)?);
        classes.push(class);
    }
    let special_ids = crate::train::masking::special_ids(&rows);
    for row in &mut rows {
        row.tokens = Vec::new();
    }
    Ok(Encodings {
        rows,
        labels: classes,
        special_ids,
    })
}

pub(crate) fn percentile(sorted: &[usize], p: f64) -> usize {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub(crate) fn summarize(
    tokenizer: &BertTokenizer,
    train: &Dataset,
    dev: Option<&Dataset>,
    max_length: usize,
    cancel: &AtomicBool,
) -> Result<DataSummary> {
    let mut lengths = Vec::with_capacity(train.examples.len());
    for e in &train.examples {
        if cancel.load(Ordering::Relaxed) {
            return Err(BertError::Cancelled);
        }
        lengths.push(
            tokenizer
                .encode(&e.text_a, e.text_b.as_deref(), usize::MAX)?
                .len(),
        );
    }
    lengths.sort_unstable();
    Ok(DataSummary {
        train_rows: train.examples.len(),
        dev_rows: dev.map_or(0, |d| d.examples.len()),
        label_counts: train.label_counts(),
        majority_baseline: train.majority_baseline(),
        length_percentiles: [50.0, 90.0, 95.0, 99.0, 100.0].map(|p| percentile(&lengths, p)),
        truncated: lengths.iter().filter(|&&l| l > max_length).count(),
        skipped_rows: train.skipped.len() + dev.map_or(0, |d| d.skipped.len()),
    })
}
