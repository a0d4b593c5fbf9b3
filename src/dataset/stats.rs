//! What each head attends to over a data file (Clark, Khandelwal, Levy &
//! Manning 2019, "What Does BERT Look At?"). For every layer, head and query
//! position i of every row (specials included), with a_ij its attention:
//! `cls` a_i0, `sep` Σ over `[SEP]` positions, `punct` Σ over punctuation
//! tokens, `self` a_ii, `prev` a_i,i-1 (i ≥ 1), `next` a_i,i+1 (i ≤ n-2),
//! `entropy` −Σ_j a_ij log₂ a_ij; each the mean over all query positions of
//! all rows pooled together.

use rayon::prelude::*;
use serde::Serialize;
use unicode_general_category::{get_general_category, GeneralCategory as G};

use crate::model::lanes16;
use crate::tokenize::Encoded;

use super::pass::BatchAttention;

/// The seven statistics, in this order in the sums.
pub const NAMES: [&str; 7] = ["cls", "sep", "punct", "self", "prev", "next", "entropy"];
const CLS: usize = 0;
const SEP: usize = 1;
const PUNCT: usize = 2;
const SELF: usize = 3;
const PREV: usize = 4;
const NEXT: usize = 5;
const ENTROPY: usize = 6;

/// Whether a token's text (without `##`) is non-empty and all Unicode
/// punctuation (general category P*).
pub fn is_punctuation(token: &str) -> bool {
    let text = token.strip_prefix("##").unwrap_or(token);
    !text.is_empty()
        && text.chars().all(|c| {
            matches!(
                get_general_category(c),
                G::ConnectorPunctuation
                    | G::DashPunctuation
                    | G::OpenPunctuation
                    | G::ClosePunctuation
                    | G::InitialPunctuation
                    | G::FinalPunctuation
                    | G::OtherPunctuation
            )
        })
}

/// A row's positions that the sums over keys need.
#[derive(Debug, Clone, Default)]
pub struct RowKeys {
    pub sep: Vec<usize>,
    pub punct: Vec<usize>,
}

impl RowKeys {
    pub fn of(encoded: &Encoded) -> RowKeys {
        let at = |keep: &dyn Fn(&str) -> bool| {
            encoded
                .tokens
                .iter()
                .enumerate()
                .filter(|(_, t)| keep(t))
                .map(|(i, _)| i)
                .collect()
        };
        RowKeys {
            sep: at(&|t| t == "[SEP]"),
            punct: at(&|t| is_punctuation(t)),
        }
    }
}

/// Head statistics, `[layer][head]` each.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadStats {
    pub rows: usize,
    pub tokens: usize,
    pub layers: usize,
    pub heads: usize,
    pub cls: Vec<Vec<f64>>,
    pub sep: Vec<Vec<f64>>,
    pub punct: Vec<Vec<f64>>,
    #[serde(rename = "self")]
    pub self_: Vec<Vec<f64>>,
    pub prev: Vec<Vec<f64>>,
    pub next: Vec<Vec<f64>>,
    pub entropy: Vec<Vec<f64>>,
    /// The first rows' own means, `[row][layer·heads + head][statistic]`
    /// (as many rows as the pass was asked to keep).
    #[serde(skip)]
    pub per_row: Vec<Vec<[f32; 7]>>,
}

impl HeadStats {
    /// One statistic by name (see [`NAMES`]).
    pub fn get(&self, name: &str) -> Option<&Vec<Vec<f64>>> {
        Some(match name {
            "cls" => &self.cls,
            "sep" => &self.sep,
            "punct" => &self.punct,
            "self" => &self.self_,
            "prev" => &self.prev,
            "next" => &self.next,
            "entropy" => &self.entropy,
            _ => return None,
        })
    }
}

/// Running sums over the batches of a pass.
pub struct StatsSums {
    layers: usize,
    heads: usize,
    /// `[layer·heads + head][statistic]`.
    sums: Vec<[f64; 7]>,
    queries: usize,
    with_prev: usize,
    rows: usize,
    /// Rows below this index keep their own means.
    keep: usize,
    per_row: Vec<Vec<[f32; 7]>>,
}

impl StatsSums {
    /// Sums for a model's heads; the rows below `keep` also keep their own means.
    pub fn new(layers: usize, heads: usize, keep: usize) -> StatsSums {
        StatsSums {
            layers,
            heads,
            sums: vec![[0.0; 7]; layers * heads],
            queries: 0,
            with_prev: 0,
            rows: 0,
            keep,
            per_row: Vec::new(),
        }
    }

    /// Add one batch: `lengths[r]` and `keys[r]` of the pass's row r.
    pub fn add(&mut self, attn: &BatchAttention, lengths: &[usize], keys: &[RowKeys]) {
        let (heads, keep) = (self.heads, self.keep);
        // Per head: the batch's sums, and the kept rows' own means.
        type Kept = Vec<(usize, [f32; 7])>;
        let partial: Vec<([f64; 7], Kept)> = (0..self.layers * heads)
            .into_par_iter()
            .map(|lh| {
                let (mut sums, mut kept) = ([0f64; 7], Vec::new());
                for (b, &row) in attn.rows.iter().enumerate() {
                    let map = attn.map(lh / heads, b, lh % heads);
                    let mut own = [0f64; 7];
                    add_row(&mut own, map, attn.seq, lengths[row], &keys[row]);
                    for (s, o) in sums.iter_mut().zip(own) {
                        *s += o;
                    }
                    if row < keep {
                        kept.push((row, row_means(&own, lengths[row])));
                    }
                }
                (sums, kept)
            })
            .collect();
        if self.per_row.len() < keep.min(lengths.len()) {
            let lh = self.layers * heads;
            self.per_row = vec![vec![[0f32; 7]; lh]; keep.min(lengths.len())];
        }
        for (lh, (part, kept)) in partial.into_iter().enumerate() {
            for (s, p) in self.sums[lh].iter_mut().zip(part) {
                *s += p;
            }
            for (row, means) in kept {
                self.per_row[row][lh] = means;
            }
        }
        for &row in attn.rows {
            self.queries += lengths[row];
            self.with_prev += lengths[row].saturating_sub(1);
            self.rows += 1;
        }
    }

    /// The means.
    pub fn finish(&self) -> HeadStats {
        let per = |stat: usize, count: usize| -> Vec<Vec<f64>> {
            self.sums
                .chunks(self.heads.max(1))
                .map(|layer| {
                    layer
                        .iter()
                        .map(|s| s[stat] / count.max(1) as f64)
                        .collect()
                })
                .collect()
        };
        HeadStats {
            rows: self.rows,
            tokens: self.queries,
            layers: self.layers,
            heads: self.heads,
            cls: per(CLS, self.queries),
            sep: per(SEP, self.queries),
            punct: per(PUNCT, self.queries),
            self_: per(SELF, self.queries),
            prev: per(PREV, self.with_prev),
            next: per(NEXT, self.with_prev),
            entropy: per(ENTROPY, self.queries),
            per_row: self.per_row.clone(),
        }
    }
}

/// One row's sums as its own means.
fn row_means(sums: &[f64; 7], n: usize) -> [f32; 7] {
    let mut out = [0f32; 7];
    for (stat, (o, s)) in out.iter_mut().zip(sums).enumerate() {
        let count = if stat == PREV || stat == NEXT {
            n.saturating_sub(1)
        } else {
            n
        };
        *o = (s / count.max(1) as f64) as f32;
    }
    out
}

/// One row's queries added to `sums`.
fn add_row(sums: &mut [f64; 7], map: &[f32], seq: usize, n: usize, keys: &RowKeys) {
    for i in 0..n {
        let q = &map[i * seq..i * seq + n];
        sums[CLS] += f64::from(q[0]);
        sums[SELF] += f64::from(q[i]);
        if i >= 1 {
            sums[PREV] += f64::from(q[i - 1]);
        }
        if i + 1 < n {
            sums[NEXT] += f64::from(q[i + 1]);
        }
        sums[SEP] += keys.sep.iter().map(|&j| f64::from(q[j])).sum::<f64>();
        sums[PUNCT] += keys.punct.iter().map(|&j| f64::from(q[j])).sum::<f64>();
        let entropy = lanes16::entropy_bits(q)
            .unwrap_or_else(|| q.iter().filter(|&&p| p > 0.0).map(|&p| -p * p.log2()).sum());
        sums[ENTROPY] += f64::from(entropy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn punctuation_is_general_category_p() {
        for t in [".", ",", "##.", "!?", "，", "。", "「", "—", "...", "'"] {
            assert!(is_punctuation(t), "{t}");
        }
        for t in ["##", "", "[CLS]", "a.", "$", "+", "1", "the", "##s"] {
            assert!(!is_punctuation(t), "{t}");
        }
    }
}
