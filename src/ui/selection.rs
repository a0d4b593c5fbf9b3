//! What the attention views show: layer, heads, sentence filter, special-token
//! hiding and the focused token — pure data and rules, no drawing.

use serde::{Deserialize, Serialize};

use crate::attention_maps::AttentionMaps;
use crate::tokenize::is_special;
use crate::ui::intent::TokenFocus;
use crate::ui::support::contrast::Contrast;

/// Which sentence's tokens attend to which (BertViz's sentence filter).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum SentenceFilter {
    #[default]
    All,
    AToA,
    AToB,
    BToA,
    BToB,
}

impl SentenceFilter {
    pub const ALL: [SentenceFilter; 5] = [
        SentenceFilter::All,
        SentenceFilter::AToA,
        SentenceFilter::AToB,
        SentenceFilter::BToA,
        SentenceFilter::BToB,
    ];

    pub fn label(self) -> &'static str {
        match self {
            SentenceFilter::All => "All",
            SentenceFilter::AToA => "A→A",
            SentenceFilter::AToB => "A→B",
            SentenceFilter::BToA => "B→A",
            SentenceFilter::BToB => "B→B",
        }
    }

    /// Segments (token type ids) allowed on the query and key side.
    fn sides(self) -> (Option<u32>, Option<u32>) {
        match self {
            SentenceFilter::All => (None, None),
            SentenceFilter::AToA => (Some(0), Some(0)),
            SentenceFilter::AToB => (Some(0), Some(1)),
            SentenceFilter::BToA => (Some(1), Some(0)),
            SentenceFilter::BToB => (Some(1), Some(1)),
        }
    }
}

/// The user's selection in the attention views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Selection {
    pub layer: usize,
    /// Which heads are drawn (by index); shorter than `heads` means "the rest on".
    pub heads_on: Vec<bool>,
    /// The head shown in the matrix view and highlighted in the model view.
    pub focus_head: usize,
    pub filter: SentenceFilter,
    pub hide_special: bool,
    /// With special tokens hidden, rescale each row over the visible keys.
    pub renormalize: bool,
    /// Draw words (a token and its `##` pieces) instead of tokens.
    #[serde(default)]
    pub words: bool,
    /// How weights become line opacities in the head and model views.
    #[serde(default)]
    pub contrast: Contrast,
}

impl Default for Selection {
    fn default() -> Self {
        Selection {
            layer: 0,
            heads_on: Vec::new(),
            focus_head: 0,
            filter: SentenceFilter::All,
            hide_special: false,
            renormalize: true,
            words: false,
            contrast: Contrast::default(),
        }
    }
}

impl Selection {
    /// Clamp to a model's shape (after loading another model).
    pub fn fit(&mut self, layers: usize, heads: usize) {
        self.layer = self.layer.min(layers.saturating_sub(1));
        self.focus_head = self.focus_head.min(heads.saturating_sub(1));
        self.heads_on.resize(heads, true);
        if !self.heads_on.iter().any(|&on| on) {
            self.heads_on.iter_mut().for_each(|on| *on = true);
        }
    }

    pub fn head_on(&self, head: usize) -> bool {
        self.heads_on.get(head).copied().unwrap_or(true)
    }

    /// Click on a head's swatch: toggle it (keeping at least one on).
    pub fn toggle_head(&mut self, head: usize) {
        if let Some(on) = self.heads_on.get_mut(head) {
            *on = !*on;
        }
        if !self.heads_on.iter().any(|&on| on) {
            if let Some(on) = self.heads_on.get_mut(head) {
                *on = true;
            }
        }
        self.focus_head = head;
    }

    /// Double-click: show only this head (again: show all).
    pub fn isolate_head(&mut self, head: usize) {
        let only_this = self
            .heads_on
            .iter()
            .enumerate()
            .all(|(i, &on)| on == (i == head));
        for (i, on) in self.heads_on.iter_mut().enumerate() {
            *on = only_this || i == head;
        }
        self.focus_head = head;
    }
}

/// Token metadata the views need.
#[derive(Debug, Clone, Copy)]
pub struct TokenInfo {
    pub segment: u32,
    pub special: bool,
}

pub fn token_infos(tokens: &[String], types: &[u32]) -> Vec<TokenInfo> {
    tokens
        .iter()
        .zip(types)
        .map(|(t, &segment)| TokenInfo {
            segment,
            special: is_special(t),
        })
        .collect()
}

/// Token positions shown as queries (left column) and keys (right column).
#[derive(Debug, Clone, PartialEq)]
pub struct VisibleTokens {
    pub queries: Vec<usize>,
    pub keys: Vec<usize>,
}

pub fn visible_tokens(
    infos: &[TokenInfo],
    filter: SentenceFilter,
    hide_special: bool,
) -> VisibleTokens {
    let (q_side, k_side) = filter.sides();
    let pick = |side: Option<u32>| -> Vec<usize> {
        infos
            .iter()
            .enumerate()
            .filter(|(_, t)| side.is_none_or(|s| t.segment == s) && !(hide_special && t.special))
            .map(|(i, _)| i)
            .collect()
    };
    VisibleTokens {
        queries: pick(q_side),
        keys: pick(k_side),
    }
}

/// Which links of one head to walk, and how.
#[derive(Debug, Clone, Copy)]
pub struct Links {
    pub layer: usize,
    pub head: usize,
    /// Rescale each query's weights over the visible keys.
    pub renormalize: bool,
    /// Only the links of the hovered or pinned token.
    pub focus: Option<TokenFocus>,
    /// Links below this weight are skipped.
    pub min_weight: f32,
}

/// Call `link(qi, ki, w)` for each drawn link of one head: `qi`/`ki` index the
/// visible queries/keys, `w` is the weight (rescaled over the visible keys when
/// `renormalize`), links below `min_weight` or away from `focus` are skipped.
pub fn for_each_link(
    maps: &AttentionMaps,
    visible: &VisibleTokens,
    links: Links,
    mut link: impl FnMut(usize, usize, f32),
) {
    let Links {
        layer,
        head,
        renormalize,
        focus,
        min_weight,
    } = links;
    let matrix = maps.head(layer, head);
    for (qi, &q) in visible.queries.iter().enumerate() {
        if matches!(focus, Some(TokenFocus::Query(f)) if f != q) {
            continue;
        }
        let row = &matrix[q * maps.seq..(q + 1) * maps.seq];
        let mut scale = 1.0;
        if renormalize {
            let sum: f32 = visible.keys.iter().map(|&k| row[k]).sum();
            if sum > 0.0 {
                scale = 1.0 / sum;
            }
        }
        for (ki, &k) in visible.keys.iter().enumerate() {
            if matches!(focus, Some(TokenFocus::Key(f)) if f != k) {
                continue;
            }
            let w = row[k] * scale;
            if w >= min_weight {
                link(qi, ki, w);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(renormalize: bool, focus: Option<TokenFocus>) -> Links {
        Links {
            layer: 0,
            head: 0,
            renormalize,
            focus,
            min_weight: 0.0,
        }
    }

    fn infos() -> Vec<TokenInfo> {
        // [CLS] a1 a2 [SEP] b1 [SEP]
        let tokens: Vec<String> = ["[CLS]", "a1", "a2", "[SEP]", "b1", "[SEP]"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        token_infos(&tokens, &[0, 0, 0, 0, 1, 1])
    }

    #[test]
    fn sentence_filters_pick_segments() {
        let v = visible_tokens(&infos(), SentenceFilter::AToB, false);
        assert_eq!(v.queries, vec![0, 1, 2, 3]);
        assert_eq!(v.keys, vec![4, 5]);
        let v = visible_tokens(&infos(), SentenceFilter::BToA, true);
        assert_eq!(v.queries, vec![4]);
        assert_eq!(v.keys, vec![1, 2]);
    }

    #[test]
    fn renormalised_rows_sum_to_one() {
        let seq = 6;
        let data: Vec<f32> = (0..seq * seq)
            .map(|i| ((i % seq) + 1) as f32 / 21.0)
            .collect();
        let maps = AttentionMaps::new(1, 1, seq, data);
        let v = visible_tokens(&infos(), SentenceFilter::All, true);
        let mut sums = vec![0f32; v.queries.len()];
        for_each_link(&maps, &v, links(true, None), |qi, _, w| sums[qi] += w);
        for sum in &sums {
            assert!((sum - 1.0).abs() < 1e-6);
        }
        let mut first = None;
        for_each_link(&maps, &v, links(false, None), |qi, ki, w| {
            if (qi, ki) == (0, 0) {
                first = Some(w);
            }
        });
        assert_eq!(first, Some(2.0 / 21.0));
        let mut focused = Vec::new();
        for_each_link(
            &maps,
            &v,
            links(false, Some(TokenFocus::Key(2))),
            |qi, ki, _| focused.push((qi, ki)),
        );
        assert_eq!(focused, vec![(0, 1), (1, 1), (2, 1)]);
    }

    #[test]
    fn heads_toggle_and_isolate() {
        let mut s = Selection::default();
        s.fit(2, 3);
        s.toggle_head(1);
        assert_eq!(s.heads_on, vec![true, false, true]);
        s.isolate_head(2);
        assert_eq!(s.heads_on, vec![false, false, true]);
        s.isolate_head(2);
        assert_eq!(s.heads_on, vec![true, true, true]);
        s.isolate_head(0);
        s.toggle_head(0);
        assert_eq!(
            s.heads_on,
            vec![true, false, false],
            "the last head stays on"
        );
    }
}
