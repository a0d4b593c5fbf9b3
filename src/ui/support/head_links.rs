//! The links of one head, walked fast: the same links as
//! [`for_each_link`](crate::ui::selection::for_each_link), but the visible keys
//! are read as runs of consecutive positions, so a row is scanned in chunks
//! (vectorised) and only a chunk holding a strong enough weight is looked at
//! one by one; a walk can be limited to some query rows and some key columns
//! (what is on screen); weights become opacities by the selection's
//! [`Contrast`], and a head's lines are capped to its strongest.

use std::ops::Range;

use crate::attention_maps::AttentionMaps;
use crate::ui::intent::TokenFocus;
use crate::ui::selection::VisibleTokens;
use crate::ui::support::contrast::Contrast;

/// One line: query row, key row (indices into the visible tokens) and a
/// value (a weight while walking, an opacity once shown).
pub type Link = (u16, u16, f32);

/// Weights are compared in chunks of this many.
const CHUNK: usize = 16;

/// Consecutive visible keys: `len` token positions from `pos`, the first of
/// them the `ki`-th visible key.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Run {
    pos: usize,
    ki: usize,
    len: usize,
}

/// The visible keys as runs of consecutive token positions.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KeyRuns {
    runs: Vec<Run>,
    count: usize,
}

impl KeyRuns {
    pub fn new(keys: &[usize]) -> KeyRuns {
        let mut runs: Vec<Run> = Vec::new();
        for (ki, &pos) in keys.iter().enumerate() {
            match runs.last_mut() {
                Some(run) if run.pos + run.len == pos => run.len += 1,
                _ => runs.push(Run { pos, ki, len: 1 }),
            }
        }
        KeyRuns {
            runs,
            count: keys.len(),
        }
    }

    /// The runs cut to the visible keys `kis` (indices, not positions).
    fn within(&self, kis: Range<usize>) -> impl Iterator<Item = Run> + '_ {
        self.runs.iter().filter_map(move |run| {
            let start = run.ki.max(kis.start);
            let end = (run.ki + run.len).min(kis.end);
            (start < end).then(|| Run {
                pos: run.pos + (start - run.ki),
                ki: start,
                len: end - start,
            })
        })
    }
}

/// One head's weights with what is visible of them.
pub struct HeadRows<'a> {
    maps: &'a AttentionMaps,
    matrix: &'a [f32],
    visible: &'a VisibleTokens,
    runs: &'a KeyRuns,
    renormalize: bool,
    focus: Option<TokenFocus>,
}

impl<'a> HeadRows<'a> {
    /// `runs` must be [`KeyRuns::new`] of `visible.keys`.
    pub fn new(
        maps: &'a AttentionMaps,
        (layer, head): (usize, usize),
        visible: &'a VisibleTokens,
        runs: &'a KeyRuns,
        renormalize: bool,
        focus: Option<TokenFocus>,
    ) -> HeadRows<'a> {
        HeadRows {
            maps,
            matrix: maps.head(layer, head),
            visible,
            runs,
            renormalize,
            focus,
        }
    }

    fn row(&self, q: usize) -> &[f32] {
        &self.matrix[q * self.maps.seq..(q + 1) * self.maps.seq]
    }

    /// What a row's weights are multiplied by: 1, or one over their sum
    /// over the visible keys.
    fn scale(&self, row: &[f32]) -> f32 {
        if !self.renormalize {
            return 1.0;
        }
        let sum: f32 = self
            .runs
            .runs
            .iter()
            .map(|r| lane_sum(&row[r.pos..r.pos + r.len]))
            .sum();
        if sum > 0.0 {
            1.0 / sum
        } else {
            1.0
        }
    }

    /// The visible keys a walk may visit: all, or the focused key's.
    fn key_range(&self) -> Range<usize> {
        match self.focus {
            Some(TokenFocus::Key(f)) => match self.visible.keys.binary_search(&f) {
                Ok(ki) => ki..ki + 1,
                Err(_) => 0..0,
            },
            _ => 0..self.runs.count,
        }
    }

    fn query_shown(&self, q: usize) -> bool {
        !matches!(self.focus, Some(TokenFocus::Query(f)) if f != q)
    }

    /// The largest weight the head shows (after renormalising, with the focus).
    pub fn max(&self) -> f32 {
        let keys = self.key_range();
        let mut max = 0.0f32;
        for &q in &self.visible.queries {
            if !self.query_shown(q) {
                continue;
            }
            let row = self.row(q);
            let scale = self.scale(row);
            for run in self.runs.within(keys.clone()) {
                max = max.max(lane_max(&row[run.pos..run.pos + run.len]) * scale);
            }
        }
        max
    }

    /// Appends the links from the query rows `qis` to the key rows in `kis`
    /// whose weight is at least `min_weight`.
    pub fn walk(
        &self,
        qis: impl Iterator<Item = usize>,
        kis: Range<usize>,
        min_weight: f32,
        out: &mut Vec<Link>,
    ) {
        let all = self.key_range();
        let kis = kis.start.max(all.start)..kis.end.min(all.end);
        if kis.is_empty() {
            return;
        }
        for qi in qis {
            let Some(&q) = self.visible.queries.get(qi) else {
                break;
            };
            if !self.query_shown(q) {
                continue;
            }
            let row = self.row(q);
            let scale = self.scale(row);
            // Compared raw (unscaled) in chunks, a hair below the threshold;
            // the candidates are then checked exactly as `for_each_link` does.
            let raw = min_weight / scale * (1.0 - 1e-5);
            for run in self.runs.within(kis.clone()) {
                let weights = &row[run.pos..run.pos + run.len];
                for (c, chunk) in weights.chunks(CHUNK).enumerate() {
                    if !chunk.iter().fold(false, |any, &x| any | (x >= raw)) {
                        continue;
                    }
                    for (j, &x) in chunk.iter().enumerate() {
                        let w = x * scale;
                        if w >= min_weight {
                            out.push((qi as u16, (run.ki + c * CHUNK + j) as u16, w));
                        }
                    }
                }
            }
        }
    }
}

/// Keeps the `cap` strongest links and turns weights into opacities.
/// Returns whether links were dropped.
pub fn shown(links: &mut Vec<Link>, contrast: Contrast, head_max: f32, cap: usize) -> bool {
    let capped = links.len() > cap;
    if capped {
        links.select_nth_unstable_by(cap, |a, b| b.2.total_cmp(&a.2));
        links.truncate(cap);
    }
    if !contrast.is_raw() {
        for link in links.iter_mut() {
            link.2 = contrast.opacity(link.2, head_max);
        }
    }
    capped
}

/// The lines of a whole head (the model view's thumbnails): opacities of at
/// least `min_opacity`, the `cap` strongest. Returns them and whether the
/// cap dropped some.
pub fn head_lines(
    rows: &HeadRows,
    contrast: Contrast,
    min_opacity: f32,
    cap: usize,
) -> (Vec<Link>, bool) {
    let head_max = if contrast.per_head { rows.max() } else { 1.0 };
    let mut links = Vec::new();
    if head_max <= 0.0 {
        return (links, false);
    }
    let min_weight = contrast.min_weight(min_opacity, head_max);
    rows.walk(
        0..rows.visible.queries.len(),
        0..rows.runs.count,
        min_weight,
        &mut links,
    );
    let capped = shown(&mut links, contrast, head_max, cap);
    (links, capped)
}

/// Sum in eight lanes (vectorised).
fn lane_sum(xs: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = xs.chunks_exact(8);
    let rest: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane += x;
        }
    }
    lanes.iter().sum::<f32>() + rest
}

/// Maximum (of non-negative weights) in eight lanes.
fn lane_max(xs: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = xs.chunks_exact(8);
    let rest = chunks.remainder().iter().fold(0.0f32, |m, &x| m.max(x));
    for chunk in chunks {
        for (lane, &x) in lanes.iter_mut().zip(chunk) {
            *lane = if x > *lane { x } else { *lane };
        }
    }
    lanes.iter().fold(rest, |m, &x| m.max(x))
}

#[cfg(test)]
mod tests;
