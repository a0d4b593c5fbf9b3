//! Word-level views of wordpiece results (Clark et al. 2019): a word is a
//! token and the `##` pieces that follow it; special tokens and CJK
//! characters stay words of their own.

use std::ops::Range;

use serde::Serialize;

use crate::attention_maps::AttentionMaps;
use crate::tokenize::is_special;

/// The words of a tokenised input and the tokens each covers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Words {
    /// Each word's text: its pieces joined without `##`.
    pub words: Vec<String>,
    /// The token range of each word.
    #[serde(skip)]
    pub spans: Vec<Range<usize>>,
}

/// A CJK ideograph, as BERT's basic tokenizer counts them.
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x4E00..=0x9FFF | 0x3400..=0x4DBF | 0x20000..=0x2A6DF | 0x2A700..=0x2B73F
        | 0x2B740..=0x2B81F | 0x2B820..=0x2CEAF | 0xF900..=0xFAFF | 0x2F800..=0x2FA1F)
}

fn is_cjk_token(token: &str) -> bool {
    let mut chars = token.trim_start_matches("##").chars();
    matches!((chars.next(), chars.next()), (Some(c), None) if is_cjk(c))
}

/// Group `tokens` into words.
pub fn group(tokens: &[String]) -> Words {
    let mut words: Vec<String> = Vec::new();
    let mut spans: Vec<Range<usize>> = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let piece = token.strip_prefix("##").filter(|p| !p.is_empty());
        let previous = i.checked_sub(1).map(|p| tokens[p].as_str());
        let joins = match (piece, previous) {
            (Some(_), Some(prev)) => {
                !is_special(prev)
                    && !is_special(token)
                    && !is_cjk_token(prev)
                    && !is_cjk_token(token)
            }
            _ => false,
        };
        match (joins, words.last_mut(), spans.last_mut()) {
            (true, Some(word), Some(span)) => {
                word.push_str(piece.unwrap_or(token));
                span.end = i + 1;
            }
            _ => {
                words.push(piece.unwrap_or(token).to_string());
                spans.push(i..i + 1);
            }
        }
    }
    Words { words, spans }
}

impl Words {
    pub fn len(&self) -> usize {
        self.words.len()
    }

    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Per-token scores summed over each word's pieces (attributions add up).
    pub fn sum_scores(&self, scores: &[f32]) -> Vec<f32> {
        self.spans
            .iter()
            .map(|s| scores.get(s.clone()).map_or(0.0, |v| v.iter().sum()))
            .collect()
    }

    /// One `[query][key]` token matrix (`seq × seq`, row-major) at word level:
    /// attention to a word is the sum over its pieces, from a word the mean.
    pub fn merge_matrix(&self, matrix: &[f32], seq: usize) -> Vec<f32> {
        let n = self.len();
        let mut out = vec![0.0f32; n * n];
        for (qi, q) in self.spans.iter().enumerate() {
            let pieces = q.len().max(1) as f32;
            for (ki, k) in self.spans.iter().enumerate() {
                let mut total = 0.0f32;
                for row in q.clone() {
                    for col in k.clone() {
                        total += matrix.get(row * seq + col).copied().unwrap_or(0.0);
                    }
                }
                out[qi * n + ki] = total / pieces;
            }
        }
        out
    }

    /// Every layer's and head's attention at word level.
    pub fn merge_maps(&self, maps: &AttentionMaps) -> AttentionMaps {
        let mut data = Vec::with_capacity(maps.layers * maps.heads * self.len() * self.len());
        for layer in 0..maps.layers {
            for head in 0..maps.heads {
                data.extend(self.merge_matrix(maps.head(layer, head), maps.seq));
            }
        }
        AttentionMaps::new(maps.layers, maps.heads, self.len(), data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn pieces_join_their_word_and_specials_and_cjk_stay_alone() {
        let w = group(&toks(
            "[CLS] the anim ##als cross ##ed [SEP] 胖 虎 ##s [SEP]",
        ));
        assert_eq!(
            w.words,
            toks("[CLS] the animals crossed [SEP] 胖 虎 s [SEP]")
        );
        assert_eq!(w.spans[2], 2..4);
        let w = group(&toks("[CLS] ##ing [MASK] ##s x"));
        assert_eq!(w.words, toks("[CLS] ing [MASK] s x"));
    }

    #[test]
    fn attention_to_a_word_sums_and_from_a_word_averages() {
        // Tokens: a ##b c — words "ab", "c".
        let w = group(&toks("a ##b c"));
        #[rustfmt::skip]
        let m = [
            0.2, 0.3, 0.5,
            0.6, 0.2, 0.2,
            0.1, 0.1, 0.8,
        ];
        let merged = w.merge_matrix(&m, 3);
        let expect = [(0.5 + 0.8) / 2.0, (0.5 + 0.2) / 2.0, 0.2, 0.8];
        for (a, b) in merged.iter().zip(expect) {
            assert!((a - b).abs() < 1e-6, "{merged:?}");
        }
        assert_eq!(w.sum_scores(&[1.0, 2.0, 4.0]), vec![3.0, 4.0]);
    }
}
