//! Exact cosine search over one stored layer: the query token's hidden
//! state (computed by the index's own model) against every stored token's,
//! the top K kept, ties to the earlier token.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;
use serde::Serialize;

use super::format::{self, Manifest, RowRecord, TokenRecord};
use crate::engine::LoadedModel;
use crate::error::{BertError, Result};
use crate::explain::words;
use crate::model::precision::{self, Precision};
use crate::model::ModelInput;
use crate::tokenize::BertTokenizer;

/// Tokens converted from f16 at a time by one thread.
const BLOCK: usize = 256;

/// A complete index, its rows and token table in memory (vectors are read
/// a layer at a time).
#[derive(Debug, Clone)]
pub struct Index {
    pub dir: PathBuf,
    pub manifest: Manifest,
    pub rows: Vec<RowRecord>,
    pub tokens: Vec<TokenRecord>,
}

/// One layer's vectors (f16) and their norms.
pub struct LayerVectors {
    pub layer: usize,
    hidden: usize,
    data: Vec<f16>,
    norms: Vec<f32>,
}

impl LayerVectors {
    /// Vectors given as f32 (`[token][hidden]`), stored as f16 as a layer
    /// file holds them.
    pub fn from_f32(layer: usize, hidden: usize, values: &[f32]) -> LayerVectors {
        let data: Vec<f16> = values.iter().map(|&x| f16::from_f32(x)).collect();
        Self::from_f16(layer, hidden, data)
    }

    fn from_f16(layer: usize, hidden: usize, data: Vec<f16>) -> LayerVectors {
        let norms = data
            .par_chunks(hidden.max(1))
            .map(|v| {
                let mut buf = vec![0f32; v.len()];
                v.convert_to_f32_slice(&mut buf);
                buf.iter().map(|x| x * x).sum::<f32>().sqrt()
            })
            .collect();
        LayerVectors {
            layer,
            hidden,
            data,
            norms,
        }
    }

    pub fn len(&self) -> usize {
        self.norms.len()
    }

    pub fn is_empty(&self) -> bool {
        self.norms.is_empty()
    }
}

/// The query: one token of an input at one layer.
#[derive(Debug, Clone)]
pub struct Query {
    pub token: String,
    pub index: usize,
    pub layer: usize,
    pub vector: Vec<f32>,
    /// The products it was computed with: the index's, unless this CPU
    /// cannot run them (a bf16 index searched where there is no bf16).
    pub precision: Precision,
}

/// What the query was, as printed.
#[derive(Debug, Clone, Serialize)]
pub struct QueryInfo {
    pub token: String,
    pub index: usize,
    pub precision: Precision,
}

/// One match: the stored token, the whole word it belongs to and its row.
#[derive(Debug, Clone, Serialize)]
pub struct Hit {
    /// 0-based data row, header excluded.
    pub row: usize,
    /// The token's position in the row as the model sees it (0: `[CLS]`).
    pub token_index: usize,
    pub token: String,
    pub word: String,
    /// Cosine similarity with the query.
    pub score: f32,
    /// The sentence holding the token (sentence B for a pair's second half).
    pub text: String,
    /// 0: sentence A, 1: sentence B.
    pub segment: u8,
    /// The token's character range in `text`.
    pub chars: [u32; 2],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The whole row: sentence A and B.
    #[serde(skip)]
    pub row_text: (String, Option<String>),
}

/// A search's answer.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResult {
    pub query: QueryInfo,
    pub layer: usize,
    pub hits: Vec<Hit>,
    /// Milliseconds the scoring and ranking took (the layer already loaded).
    pub search_ms: f64,
}

impl Index {
    /// Open a complete index.
    pub fn open(dir: &Path) -> Result<Index> {
        if !dir.join(format::MANIFEST).is_file() {
            return Err(BertError::file(
                dir,
                "is not a bertscope index (it has no index.json): build one with `bertscope index`",
            ));
        }
        let manifest = format::Manifest::read(dir)?;
        if !manifest.complete {
            return Err(BertError::file(
                dir,
                format!(
                    "the index is not complete ({} of {} rows); run `bertscope index` again with the same flags to resume it",
                    manifest.rows, manifest.rows_total
                ),
            ));
        }
        let rows = format::read_rows(dir, &manifest)?;
        let tokens = format::read_tokens(dir, &manifest)?;
        if let Some(bad) = tokens.iter().find(|t| t.row as usize >= rows.len()) {
            return Err(BertError::file(
                &dir.join(format::TOKENS),
                format!("names row {} of {}; rebuild the index", bad.row, rows.len()),
            ));
        }
        Ok(Index {
            dir: dir.to_path_buf(),
            manifest,
            rows,
            tokens,
        })
    }

    /// Read one stored layer's vectors.
    pub fn load_layer(&self, layer: usize) -> Result<LayerVectors> {
        self.manifest.check_layer(layer)?;
        let hidden = self.manifest.model.hidden;
        let path = self.dir.join(format::layer_file(layer));
        let bytes = format::read_exact_len(&path, self.manifest.tokens * hidden * 2)?;
        let data: Vec<f16> = bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]]))
            .collect();
        Ok(LayerVectors::from_f16(layer, hidden, data))
    }

    /// The model that filled the index, checked by its fingerprint.
    pub fn load_model(&self, device: &Device) -> Result<LoadedModel> {
        let source = &self.manifest.model;
        let dir = if source.dir.join("config.json").is_file() {
            source.dir.clone()
        } else {
            crate::hub::resolve(&source.name)?
        };
        let fingerprint = super::fingerprint::of_model(&dir)?;
        if fingerprint != source.fingerprint {
            return Err(BertError::file(
                &dir,
                format!(
                    "is not the model that filled the index {} (its files changed since); rebuild the index",
                    self.dir.display()
                ),
            ));
        }
        LoadedModel::load_dir(&source.name, &dir, device)
    }

    /// Token `index` of the input at `layer`, computed by `model`.
    pub fn query(
        &self,
        model: &LoadedModel,
        text_a: &str,
        text_b: Option<&str>,
        index: usize,
        layer: usize,
    ) -> Result<Query> {
        self.manifest.check_layer(layer)?;
        let encoded = model.encode(text_a, text_b)?;
        let Some(token) = encoded.tokens.get(index).cloned() else {
            return Err(BertError::Input(format!(
                "--token {index} is past the input's end: it has {} tokens (0 to {}, [CLS] is 0)",
                encoded.len(),
                encoded.len().saturating_sub(1)
            )));
        };
        let hidden = model.config().hidden_size();
        let mut vector = Vec::new();
        let input = ModelInput::single(&encoded);
        let precision = match self.manifest.precision.check(model.model.device()) {
            Ok(()) => self.manifest.precision,
            Err(_) => Precision::Fp32,
        };
        precision::scoped(precision, || {
            model.model.hidden_states(&input, layer, &mut |l, states| {
                if l == layer {
                    vector = states[index * hidden..(index + 1) * hidden].to_vec();
                }
                Ok(())
            })
        })?;
        Ok(Query {
            token,
            index,
            layer,
            vector,
            precision,
        })
    }

    /// The `top` stored tokens of `vectors` nearest `query` by cosine;
    /// `tokenizer` (the index's model's) spells the hits' tokens and words.
    pub fn search(
        &self,
        vectors: &LayerVectors,
        query: &Query,
        top: usize,
        tokenizer: &BertTokenizer,
    ) -> Result<SearchResult> {
        if query.vector.len() != vectors.hidden {
            return Err(BertError::Input(format!(
                "the query has {} dimensions but the index stores {}",
                query.vector.len(),
                vectors.hidden
            )));
        }
        let started = Instant::now();
        let ranked = top_k(vectors, &query.vector, top);
        let search_ms = started.elapsed().as_secs_f64() * 1000.0;
        let hits = ranked
            .into_iter()
            .map(|(i, score)| self.hit(i, score, tokenizer))
            .collect::<Result<Vec<_>>>()?;
        Ok(SearchResult {
            query: QueryInfo {
                token: query.token.clone(),
                index: query.index,
                precision: query.precision,
            },
            layer: query.layer,
            hits,
            search_ms,
        })
    }

    /// Stored token `i` as a hit: its row tokenised again for the token and
    /// word strings.
    fn hit(&self, i: usize, score: f32, tokenizer: &BertTokenizer) -> Result<Hit> {
        let record = self.tokens[i];
        let row = &self.rows[record.row as usize];
        let t = record.token_index as usize;
        let encoded =
            tokenizer.encode(&row.text_a, row.text_b.as_deref(), self.manifest.max_length)?;
        let grouped = words::group(&encoded.tokens);
        let word = grouped
            .spans
            .iter()
            .position(|s| s.contains(&t))
            .map(|w| grouped.words[w].clone())
            .unwrap_or_default();
        let token = encoded.tokens.get(t).cloned().unwrap_or_default();
        let text = if record.segment == 0 {
            row.text_a.clone()
        } else {
            row.text_b.clone().unwrap_or_default()
        };
        Ok(Hit {
            row: row.row,
            token_index: t,
            token,
            word,
            score,
            text,
            segment: record.segment,
            chars: [record.chars.0, record.chars.1],
            label: row.label.clone(),
            row_text: (row.text_a.clone(), row.text_b.clone()),
        })
    }
}

/// The `k` best (index, cosine) of `vectors` against `query`, best first,
/// ties to the lower index. Exact: every vector is scored.
pub fn top_k(vectors: &LayerVectors, query: &[f32], k: usize) -> Vec<(usize, f32)> {
    let hidden = vectors.hidden.max(1);
    let qn = query.iter().map(|x| x * x).sum::<f32>().sqrt();
    let q: Vec<f32> = query
        .iter()
        .map(|x| if qn > 0.0 { x / qn } else { 0.0 })
        .collect();
    let best = vectors
        .data
        .par_chunks(BLOCK * hidden)
        .enumerate()
        .fold(Vec::new, |mut kept: Vec<(usize, f32)>, (block, chunk)| {
            let mut buf = vec![0f32; chunk.len()];
            chunk.convert_to_f32_slice(&mut buf);
            let mut dots = vec![0f32; chunk.len() / hidden];
            dot_rows(&buf, &q, &mut dots);
            for (j, dot) in dots.into_iter().enumerate() {
                let i = block * BLOCK + j;
                let norm = vectors.norms[i];
                let score = if norm > 0.0 { dot / norm } else { 0.0 };
                keep(&mut kept, (i, score), k);
            }
            kept
        })
        .reduce(Vec::new, |mut a, b| {
            for hit in b {
                keep(&mut a, hit, k);
            }
            a
        });
    best
}

/// `out[r] = rows[r] · q` for the rows of `rows` (each `q.len()` long),
/// summed in 16 lanes so that the loop vectorises.
fn dot_rows(rows: &[f32], q: &[f32], out: &mut [f32]) {
    crate::model::kernels::with_simd!(dot_rows, fn(rows: &[f32], q: &[f32], out: &mut [f32]) {
        for (row, o) in rows.chunks_exact(q.len().max(1)).zip(out.iter_mut()) {
            let mut lanes = [0f32; 16];
            let (body, tail) = row.split_at(row.len() - row.len() % 16);
            for (r, w) in body.chunks_exact(16).zip(q.chunks_exact(16)) {
                for l in 0..16 {
                    lanes[l] += r[l] * w[l];
                }
            }
            let rest: f32 = tail.iter().zip(&q[body.len()..]).map(|(a, b)| a * b).sum();
            *o = lanes.iter().sum::<f32>() + rest;
        }
    });
}

/// Insert `hit` into `kept` (sorted best first, at most `k`).
fn keep(kept: &mut Vec<(usize, f32)>, hit: (usize, f32), k: usize) {
    let better = |a: &(usize, f32), b: &(usize, f32)| a.1 > b.1 || (a.1 == b.1 && a.0 < b.0);
    if kept.len() == k && kept.last().is_some_and(|last| !better(&hit, last)) {
        return;
    }
    let at = kept.partition_point(|x| better(x, &hit));
    kept.insert(at, hit);
    kept.truncate(k);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(rows: &[&[f32]]) -> LayerVectors {
        let flat: Vec<f32> = rows.iter().flat_map(|r| r.iter().copied()).collect();
        LayerVectors::from_f32(0, rows[0].len(), &flat)
    }

    #[test]
    fn ranks_by_cosine_with_ties_to_the_earlier() {
        let v = layer(&[
            &[1.0, 0.0],
            &[0.0, 2.0],
            &[3.0, 3.0],
            &[0.0, 0.0],
            &[2.0, 2.0],
        ]);
        let hits = top_k(&v, &[1.0, 1.0], 3);
        let order: Vec<usize> = hits.iter().map(|h| h.0).collect();
        assert_eq!(order, vec![2, 4, 0]);
        assert!((hits[0].1 - 1.0).abs() < 1e-6);
        assert!((hits[2].1 - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
        assert_eq!(top_k(&v, &[1.0, 1.0], 10).len(), 5);
        assert!(top_k(&v, &[1.0, 1.0], 0).is_empty());
    }
}
