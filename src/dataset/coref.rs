//! The coreference probe (after Clark et al. 2019): rows that mark a pronoun
//! `{…}`, its antecedent `[…]` and other candidate mentions `<…>`; each head
//! chooses the candidate its pronoun attends to most, and is scored by how
//! often that is the antecedent, beside two baselines.
//!
//! A span's tokens are those whose character offsets overlap it. A head's
//! attention from the pronoun to a span is the mean over the pronoun's
//! tokens (queries) of the sum over the span's tokens (keys); the most
//! attended candidate is its choice, a tie going to the earlier span. With no
//! `<…>` marks, the candidates are the antecedent and every other word of the
//! row (words as the Words toggle groups tokens: a token and its `##` pieces),
//! `[CLS]`/`[SEP]` and the pronoun's words left out.

use std::ops::Range;

use serde::Serialize;

use crate::explain::words;
use crate::tokenize::{BertTokenizer, Encoded};

use super::pass::BatchAttention;

/// A marked stretch of the plain text, in bytes and in characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub bytes: Range<usize>,
    pub chars: Range<usize>,
}

/// A row with its marks taken out.
#[derive(Debug, Clone, PartialEq)]
pub struct Marked {
    /// The sentence as the model sees it.
    pub text: String,
    pub pronoun: Span,
    pub antecedent: Span,
    /// The `<…>` mentions, in order.
    pub others: Vec<Span>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Pronoun,
    Antecedent,
    Other,
}

/// Take the marks out of `marked`: exactly one `{pronoun}`, one
/// `[antecedent]`, any `<mentions>`; `\{ \[ \< \} \] \> \\` are literal.
pub fn parse(marked: &str) -> Result<Marked, String> {
    let mut text = String::with_capacity(marked.len());
    let mut chars = 0usize;
    let mut open: Option<(Kind, char, usize, usize)> = None;
    let mut spans: Vec<(Kind, Span)> = Vec::new();
    let mut it = marked.chars();
    while let Some(c) = it.next() {
        let literal = |c: char, text: &mut String, chars: &mut usize| {
            text.push(c);
            *chars += 1;
        };
        match c {
            '\\' => match it.next() {
                Some(e) if "{}[]<>\\".contains(e) => literal(e, &mut text, &mut chars),
                Some(e) => {
                    literal('\\', &mut text, &mut chars);
                    literal(e, &mut text, &mut chars);
                }
                None => literal('\\', &mut text, &mut chars),
            },
            '{' | '[' | '<' => {
                if let Some((_, opened, _, _)) = open {
                    return Err(format!("`{c}` inside `{opened}…`: marks cannot nest"));
                }
                let kind = match c {
                    '{' => Kind::Pronoun,
                    '[' => Kind::Antecedent,
                    _ => Kind::Other,
                };
                open = Some((kind, c, text.len(), chars));
            }
            '}' | ']' | '>' => {
                let expected = match c {
                    '}' => '{',
                    ']' => '[',
                    _ => '<',
                };
                match open.take() {
                    Some((kind, opened, bytes, start)) if opened == expected => {
                        let span = Span {
                            bytes: bytes..text.len(),
                            chars: start..chars,
                        };
                        spans.push((kind, span));
                    }
                    Some((_, opened, _, _)) => {
                        return Err(format!("`{opened}` is closed by `{c}`: unbalanced marks"))
                    }
                    None => return Err(format!("`{c}` closes no mark: unbalanced marks")),
                }
            }
            c => literal(c, &mut text, &mut chars),
        }
    }
    if let Some((_, opened, _, _)) = open {
        return Err(format!("`{opened}` is never closed: unbalanced marks"));
    }
    let of = |kind: Kind| {
        spans
            .iter()
            .filter(move |(k, _)| *k == kind)
            .map(|(_, s)| s.clone())
    };
    let pronoun = match of(Kind::Pronoun).collect::<Vec<_>>().as_slice() {
        [one] => one.clone(),
        [] => return Err("no pronoun marked as {…}".into()),
        more => {
            return Err(format!(
                "{} pronouns marked as {{…}}; a row marks one",
                more.len()
            ))
        }
    };
    let antecedent = match of(Kind::Antecedent).collect::<Vec<_>>().as_slice() {
        [one] => one.clone(),
        [] => return Err("no antecedent marked as […]".into()),
        more => {
            return Err(format!(
                "{} antecedents marked as […]; a row marks one",
                more.len()
            ))
        }
    };
    Ok(Marked {
        text,
        pronoun,
        antecedent,
        others: of(Kind::Other).collect(),
    })
}

/// A candidate of a row: its text, where it is and its tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub text: String,
    pub chars: Range<usize>,
    pub tokens: Vec<usize>,
}

/// A row ready for the pass: encoded, the pronoun's tokens, the candidates
/// in text order and which one is the antecedent.
#[derive(Debug, Clone)]
pub struct ProbeRow {
    /// The sentence without its marks.
    pub text: String,
    pub encoded: Encoded,
    pub pronoun_tokens: Vec<usize>,
    pub candidates: Vec<Candidate>,
    pub antecedent: usize,
    /// The candidate nearest the pronoun in characters (the baseline's choice).
    pub nearest: usize,
}

fn overlaps(a: &Range<usize>, b: &Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

/// The tokens whose offsets overlap `span` (`[CLS]` and `[SEP]` have none;
/// an `[UNK]` keeps its word's).
fn tokens_of(offsets: &[(usize, usize)], span: &Range<usize>) -> Vec<usize> {
    offsets
        .iter()
        .enumerate()
        .filter(|&(_, &(s, e))| s < e && overlaps(&(s..e), span))
        .map(|(i, _)| i)
        .collect()
}

/// Encode a marked row (cut to `max_length` tokens) and find its spans'
/// tokens and its candidates; why not, when a mark is cut off or covers no token.
pub fn prepare(
    tokenizer: &BertTokenizer,
    m: &Marked,
    max_length: usize,
) -> Result<ProbeRow, String> {
    let (encoded, offsets) = tokenizer
        .encode_with_offsets(&m.text, None, max_length)
        .map_err(|e| e.to_string())?;
    let kept_end = offsets.iter().map(|&(_, e)| e).max().unwrap_or(0);
    let tokens = |span: &Span, what: &str| -> Result<Vec<usize>, String> {
        let cut = span.bytes.end > kept_end
            && !m.text[kept_end.min(span.bytes.end)..span.bytes.end]
                .trim()
                .is_empty();
        if cut && encoded.truncated {
            return Err(format!(
                "the {what} `{}` is cut off by truncation to {max_length} tokens",
                &m.text[span.bytes.clone()]
            ));
        }
        let found = tokens_of(&offsets, &span.bytes);
        if found.is_empty() {
            return Err(format!(
                "the {what} mark `{}` covers no token",
                &m.text[span.bytes.clone()]
            ));
        }
        Ok(found)
    };
    let pronoun_tokens = tokens(&m.pronoun, "pronoun")?;
    let mut candidates = vec![Candidate {
        text: m.text[m.antecedent.bytes.clone()].to_string(),
        chars: m.antecedent.chars.clone(),
        tokens: tokens(&m.antecedent, "antecedent")?,
    }];
    if m.others.is_empty() {
        candidates.extend(other_words(
            m,
            &encoded,
            &offsets,
            &pronoun_tokens,
            &candidates[0].tokens,
        ));
    } else {
        for other in &m.others {
            candidates.push(Candidate {
                text: m.text[other.bytes.clone()].to_string(),
                chars: other.chars.clone(),
                tokens: tokens(other, "mention")?,
            });
        }
    }
    candidates.sort_by_key(|c| (c.chars.start, c.chars.end));
    let antecedent = candidates
        .iter()
        .position(|c| c.chars == m.antecedent.chars)
        .unwrap_or(0);
    if candidates.len() < 2 {
        return Err("no candidate besides the antecedent".into());
    }
    let nearest = nearest(&candidates, &m.pronoun.chars);
    Ok(ProbeRow {
        text: m.text.clone(),
        encoded,
        pronoun_tokens,
        candidates,
        antecedent,
        nearest,
    })
}

/// Every word of the row but `[CLS]`/`[SEP]`, the pronoun's and the antecedent's.
fn other_words(
    m: &Marked,
    encoded: &Encoded,
    offsets: &[(usize, usize)],
    pronoun: &[usize],
    antecedent: &[usize],
) -> Vec<Candidate> {
    let grouped = words::group(&encoded.tokens);
    let char_at = |byte: usize| m.text[..byte].chars().count();
    grouped
        .spans
        .iter()
        .filter(|span| !(*span).clone().any(|t| offsets[t].0 >= offsets[t].1))
        .filter(|span| {
            !(*span)
                .clone()
                .any(|t| pronoun.contains(&t) || antecedent.contains(&t))
        })
        .map(|span| {
            let (start, end) = (offsets[span.start].0, offsets[span.end - 1].1);
            Candidate {
                text: m.text[start..end].to_string(),
                chars: char_at(start)..char_at(end),
                tokens: span.clone().collect(),
            }
        })
        .collect()
}

/// The candidate with the smallest gap in characters to the pronoun (a tie
/// to the earlier).
fn nearest(candidates: &[Candidate], pronoun: &Range<usize>) -> usize {
    let gap = |c: &Candidate| {
        if c.chars.end <= pronoun.start {
            pronoun.start - c.chars.end
        } else {
            c.chars.start.saturating_sub(pronoun.end)
        }
    };
    (0..candidates.len())
        .min_by_key(|&i| (gap(&candidates[i]), i))
        .unwrap_or(0)
}

/// The candidate a head's attention map (`seq × seq`) chooses.
pub fn choose(map: &[f32], seq: usize, row: &ProbeRow) -> usize {
    let q = row.pronoun_tokens.len().max(1) as f64;
    let mut best = (0, f64::NEG_INFINITY);
    for (c, cand) in row.candidates.iter().enumerate() {
        let total: f64 = row
            .pronoun_tokens
            .iter()
            .map(|&i| {
                cand.tokens
                    .iter()
                    .map(|&j| f64::from(map[i * seq + j]))
                    .sum::<f64>()
            })
            .sum();
        let score = total / q;
        if score > best.1 {
            best = (c, score);
        }
    }
    best.0
}

/// Each row's choice by each head, filled batch by batch.
pub struct CorefSums {
    layers: usize,
    heads: usize,
    /// `[row][layer·heads + head]`: the chosen candidate.
    pub choices: Vec<Vec<u16>>,
}

impl CorefSums {
    pub fn new(layers: usize, heads: usize, rows: usize) -> CorefSums {
        CorefSums {
            layers,
            heads,
            choices: vec![Vec::new(); rows],
        }
    }

    pub fn add(&mut self, attn: &BatchAttention, rows: &[ProbeRow]) {
        for (b, &r) in attn.rows.iter().enumerate() {
            self.choices[r] = (0..self.layers * self.heads)
                .map(|lh| {
                    let map = attn.map(lh / self.heads, b, lh % self.heads);
                    choose(map, attn.seq, &rows[r]) as u16
                })
                .collect();
        }
    }

    pub fn finish(self, rows: &[ProbeRow]) -> CorefResult {
        let (layers, heads) = (self.layers, self.heads);
        let n = rows.len().max(1) as f64;
        let correct = |lh: usize| {
            rows.iter()
                .zip(&self.choices)
                .filter(|(row, c)| c.get(lh).map(|&c| c as usize) == Some(row.antecedent))
                .count()
        };
        let accuracy: Vec<Vec<f64>> = (0..layers)
            .map(|l| {
                (0..heads)
                    .map(|h| correct(l * heads + h) as f64 / n)
                    .collect()
            })
            .collect();
        let mut ranked: Vec<HeadScore> = (0..layers * heads)
            .map(|lh| HeadScore {
                layer: lh / heads,
                head: lh % heads,
                accuracy: accuracy[lh / heads][lh % heads],
            })
            .collect();
        ranked.sort_by(|a, b| {
            b.accuracy
                .total_cmp(&a.accuracy)
                .then((a.layer, a.head).cmp(&(b.layer, b.head)))
        });
        ranked.truncate(5);
        let top = ranked.first().map_or(0, |b| b.layer * heads + b.head);
        let predictions = rows
            .iter()
            .zip(&self.choices)
            .enumerate()
            .map(|(i, (row, c))| {
                let chosen = c.get(top).map_or(0, |&c| c as usize);
                Prediction {
                    row: i,
                    predicted: row.candidates[chosen].text.clone(),
                    antecedent: row.candidates[row.antecedent].text.clone(),
                    correct: chosen == row.antecedent,
                }
            })
            .collect();
        let baselines = Baselines {
            nearest: rows.iter().filter(|r| r.nearest == r.antecedent).count() as f64 / n,
            chance: rows
                .iter()
                .map(|r| 1.0 / r.candidates.len() as f64)
                .sum::<f64>()
                / n,
        };
        CorefResult {
            rows: rows.len(),
            layers,
            heads,
            accuracy,
            best: ranked,
            baselines,
            predictions,
            choices: self.choices,
            details: rows
                .iter()
                .map(|r| RowDetail {
                    text: r.text.clone(),
                    candidates: r.candidates.iter().map(|c| c.text.clone()).collect(),
                    antecedent: r.antecedent,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadScore {
    pub layer: usize,
    pub head: usize,
    pub accuracy: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Baselines {
    pub nearest: f64,
    pub chance: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub row: usize,
    pub predicted: String,
    pub antecedent: String,
    pub correct: bool,
}

/// The probe over a file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorefResult {
    pub rows: usize,
    pub layers: usize,
    pub heads: usize,
    /// `[layer][head]`: the fraction of rows where the head chose the antecedent.
    pub accuracy: Vec<Vec<f64>>,
    /// The top 5 heads.
    pub best: Vec<HeadScore>,
    pub baselines: Baselines,
    /// The best head's choice on every row.
    pub predictions: Vec<Prediction>,
    /// Every head's choice on every row (`[row][layer·heads + head]`).
    #[serde(skip)]
    pub choices: Vec<Vec<u16>>,
    /// Each row's sentence, candidates and antecedent, for listing them.
    #[serde(skip)]
    pub details: Vec<RowDetail>,
}

/// A row as the Heads view lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct RowDetail {
    pub text: String,
    pub candidates: Vec<String>,
    pub antecedent: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_come_out_and_escapes_stay() {
        let m = parse(
            r"The [animal] didn't cross the <street> because {it} was tired \[sic\] \\ \{ \<",
        )
        .unwrap();
        assert_eq!(
            m.text,
            r"The animal didn't cross the street because it was tired [sic] \ { <"
        );
        assert_eq!(&m.text[m.antecedent.bytes.clone()], "animal");
        assert_eq!(&m.text[m.pronoun.bytes.clone()], "it");
        assert_eq!(m.others.len(), 1);
        let zh = parse("[胖虎]叫<大雄>去買漫畫，回來慢了就打{他}。").unwrap();
        assert_eq!(zh.text, "胖虎叫大雄去買漫畫，回來慢了就打他。");
        assert_eq!(zh.pronoun.chars, 16..17);
        assert_eq!(zh.pronoun.bytes, 48..51);
    }

    #[test]
    fn bad_marks_say_why() {
        for (row, why) in [
            ("[a] and {b", "never closed"),
            ("[a] and b}", "closes no mark"),
            ("[a <b>] {c}", "cannot nest"),
            ("[a] {b]", "closed by"),
            ("[a] b", "no pronoun"),
            ("[a] {b} {c}", "2 pronouns"),
            ("a {b}", "no antecedent"),
            ("[a] [b] {c}", "2 antecedents"),
        ] {
            let e = parse(row).unwrap_err();
            assert!(e.contains(why), "{row}: {e}");
        }
    }

    #[test]
    fn the_nearest_candidate_by_character_gap() {
        let cand = |chars: Range<usize>| Candidate {
            text: String::new(),
            chars,
            tokens: vec![],
        };
        let candidates = [cand(0..3), cand(10..14), cand(31..35)];
        assert_eq!(nearest(&candidates, &(20..22)), 1);
        assert_eq!(nearest(&candidates, &(24..26)), 2);
        // A tie (8 characters either side) goes to the earlier span.
        assert_eq!(nearest(&candidates, &(22..23)), 1);
    }
}
