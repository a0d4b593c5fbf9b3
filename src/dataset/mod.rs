//! Passes over a whole data file: its rows through the model in
//! length-bucketed batches, each batch reduced at once into running sums,
//! so that the attention of all rows never sits in memory together.
//!
//! - `batches.rs`: the length-bucketed batches (head importance uses them too);
//! - `pass.rs`: the batched forward with every layer's attention, progress
//!   and a cancel that lands within a batch;
//! - `stats.rs`: what each head attends to (Clark et al. 2019);
//! - `coref.rs`: the coreference probe (marked rows, each head's choice).

pub mod batches;
pub mod bench;
pub mod coref;
pub mod pass;
pub mod pooled;
pub mod stats;

/// Tokens each row is cut to unless told otherwise.
pub const DEFAULT_MAX_LENGTH: usize = 128;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::data::{Dataset, Skipped};
use crate::engine::LoadedModel;
use crate::error::{BertError, Result};

use coref::{CorefResult, CorefSums, ProbeRow};
use pass::attention_pass;
use stats::{HeadStats, RowKeys, StatsSums};

/// How much of a file a pass reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassLimits {
    /// The first rows only.
    pub max_rows: Option<usize>,
    /// Tokens each row is cut to (longest-first), at most the model's.
    pub max_length: usize,
}

impl Default for PassLimits {
    fn default() -> Self {
        PassLimits {
            max_rows: None,
            max_length: DEFAULT_MAX_LENGTH,
        }
    }
}

impl PassLimits {
    /// The tokens a row is cut to with `model`: an error below 2.
    pub fn length_for(&self, model: &LoadedModel) -> Result<usize> {
        if self.max_length < 2 {
            return Err(BertError::Input(format!(
                "a maximum length of {} tokens leaves no room for [CLS] and [SEP]",
                self.max_length
            )));
        }
        Ok(self.max_length.min(model.config().max_length()))
    }

    /// The rows of `data` a pass reads.
    pub fn rows<'d>(&self, data: &'d Dataset) -> &'d [crate::data::Example] {
        let n = self.max_rows.unwrap_or(usize::MAX).min(data.examples.len());
        &data.examples[..n]
    }
}

/// The seven head statistics over `data`'s rows (pairs when it has a
/// sentence B); the first `keep_rows` rows keep their own means too.
/// `progress(done, total)` in rows; `cancel` stops within a batch.
pub fn head_stats(
    model: &LoadedModel,
    data: &Dataset,
    limits: PassLimits,
    keep_rows: usize,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<HeadStats> {
    let max_length = limits.length_for(model)?;
    let rows = limits.rows(data);
    if rows.is_empty() {
        return Err(BertError::file(&data.path, "no rows to read"));
    }
    let inputs: Vec<(&str, Option<&str>)> = rows
        .iter()
        .map(|e| (e.text_a.as_str(), e.text_b.as_deref()))
        .collect();
    let mut encoded = model.tokenizer.encode_batch(&inputs, max_length, true)?;
    let keys: Vec<RowKeys> = encoded.iter().map(RowKeys::of).collect();
    // The token strings were needed for the keys only: ids are what the pass runs.
    for e in &mut encoded {
        e.tokens = Vec::new();
    }
    let lengths: Vec<usize> = encoded.iter().map(|e| e.len()).collect();
    let config = model.config();
    let mut sums = StatsSums::new(config.num_layers(), config.num_heads(), keep_rows);
    let mut reduce = |attn: &pass::BatchAttention| {
        sums.add(attn, &lengths, &keys);
        Ok(())
    };
    let pad = model.tokenizer.pad_id();
    attention_pass(&model.model, pad, &encoded, &mut reduce, progress, cancel)?;
    Ok(sums.finish())
}

/// A marked coreference row: its file line and its text with marks.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkedRow {
    pub line: usize,
    pub text: String,
}

/// The coreference probe over marked rows. A bad row (marks, a mark cut off
/// by truncation, no candidate) is an error naming `file:line`, or, with
/// `skip_bad_rows`, left out and returned among the skipped.
pub fn coref_probe(
    model: &LoadedModel,
    path: &Path,
    rows: &[MarkedRow],
    limits: PassLimits,
    skip_bad_rows: bool,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<(CorefResult, Vec<Skipped>)> {
    let max_length = limits.length_for(model)?;
    let n = limits.max_rows.unwrap_or(usize::MAX).min(rows.len());
    let mut probe_rows: Vec<ProbeRow> = Vec::with_capacity(n);
    let mut skipped = Vec::new();
    for row in &rows[..n] {
        let prepared =
            coref::parse(&row.text).and_then(|m| coref::prepare(&model.tokenizer, &m, max_length));
        match prepared {
            Ok(p) => probe_rows.push(p),
            Err(reason) if skip_bad_rows => skipped.push(Skipped {
                line: row.line,
                reason,
            }),
            Err(reason) => return Err(BertError::line(path, row.line, reason)),
        }
    }
    if probe_rows.is_empty() {
        return Err(BertError::file(path, "no usable marked rows"));
    }
    let config = model.config();
    let mut sums = CorefSums::new(config.num_layers(), config.num_heads(), probe_rows.len());
    let encoded: Vec<_> = probe_rows.iter().map(|r| &r.encoded).collect();
    let mut reduce = |attn: &pass::BatchAttention| {
        sums.add(attn, &probe_rows);
        Ok(())
    };
    let pad = model.tokenizer.pad_id();
    attention_pass(&model.model, pad, &encoded, &mut reduce, progress, cancel)?;
    Ok((sums.finish(&probe_rows), skipped))
}

/// The marked rows of a TSV/CSV's `text_column`, or of a `.txt` file's lines
/// (one row a line), with the rows the file reader skipped when `skip_bad_rows`.
pub fn read_marked(
    path: &Path,
    text_column: &str,
    delimiter: Option<u8>,
    skip_bad_rows: bool,
) -> Result<(Vec<MarkedRow>, Vec<Skipped>)> {
    let data = if path.extension().is_some_and(|e| e == "txt") {
        crate::data::read_lines(path)?
    } else {
        let options = crate::data::ReadOptions {
            delimiter,
            columns: crate::data::Columns {
                text_a: text_column.to_string(),
                text_b: None,
                label: "label".into(),
                id: "id".into(),
            },
            require_label: false,
            skip_bad_rows,
        };
        crate::data::read(path, &options)?
    };
    let rows = data
        .examples
        .into_iter()
        .map(|e| MarkedRow {
            line: e.line,
            text: e.text_a,
        })
        .collect();
    Ok((rows, data.skipped))
}
