//! The "Words" toggle of the head, model and matrix views: the analysis's
//! attention merged over `##` pieces (once per analysis, cached), and the
//! mapping between word and token positions. The app keeps token positions;
//! only the drawing works in words.

use crate::engine::AttentionResult;
use crate::explain::words::{group, Words};
use crate::ui::intent::{Intent, TokenFocus};

/// The word-level result of the latest analysis, computed on first use.
#[derive(Default)]
pub struct WordLevel {
    /// Bumped with every new analysis (see [`WordLevel::data_changed`]).
    generation: u64,
    cached: Option<(u64, Words, AttentionResult)>,
}

impl WordLevel {
    /// The analysis drawn from now on is new: merge again on next use.
    pub fn data_changed(&mut self) {
        self.generation += 1;
        self.cached = None;
    }

    /// The words of `result` and its attention at word level.
    pub fn get(&mut self, result: &AttentionResult) -> (&Words, &AttentionResult) {
        let generation = self.generation;
        if !matches!(&self.cached, Some((g, ..)) if *g == generation) {
            self.cached = None;
        }
        let (_, words, merged) = self.cached.get_or_insert_with(|| {
            let (words, merged) = merge(result);
            (generation, words, merged)
        });
        (words, merged)
    }
}

/// `result` at word level: a word's segment and id are its first piece's;
/// every layer's and head's attention merged (to a word: summed over its
/// pieces; from a word: averaged).
pub fn merge(result: &AttentionResult) -> (Words, AttentionResult) {
    let words = group(&result.tokens);
    let first = |v: &[u32]| -> Vec<u32> {
        words
            .spans
            .iter()
            .map(|s| v.get(s.start).copied().unwrap_or(0))
            .collect()
    };
    let merged = AttentionResult {
        tokens: words.words.clone(),
        input_ids: first(&result.input_ids),
        token_type_ids: first(&result.token_type_ids),
        attentions: words.merge_maps(&result.attentions),
        truncated: result.truncated,
        neurons: None,
    };
    (words, merged)
}

/// The word holding token `token` (the last word past the end).
pub fn word_of(words: &Words, token: usize) -> usize {
    words
        .spans
        .iter()
        .position(|s| s.contains(&token))
        .unwrap_or(words.len().saturating_sub(1))
}

/// The first token of word `word` (clamped to the last word).
pub fn first_token(words: &Words, word: usize) -> usize {
    let last = words.len().saturating_sub(1);
    words.spans.get(word.min(last)).map_or(0, |s| s.start)
}

/// A token focus as the word-level views index it.
pub fn focus_to_words(focus: TokenFocus, words: &Words) -> TokenFocus {
    match focus {
        TokenFocus::Query(t) => TokenFocus::Query(word_of(words, t)),
        TokenFocus::Key(t) => TokenFocus::Key(word_of(words, t)),
    }
}

/// A word-level view's focus as a token focus (the word's first token).
pub fn focus_to_tokens(focus: TokenFocus, words: &Words) -> TokenFocus {
    match focus {
        TokenFocus::Query(w) => TokenFocus::Query(first_token(words, w)),
        TokenFocus::Key(w) => TokenFocus::Key(first_token(words, w)),
    }
}

/// A word-level view's intent with its positions turned into token positions.
pub fn intent_to_tokens(intent: Intent, words: &Words) -> Intent {
    let map = |f: Option<TokenFocus>| f.map(|f| focus_to_tokens(f, words));
    match intent {
        Intent::Hover(f) => Intent::Hover(map(f)),
        Intent::Pin(f) => Intent::Pin(map(f)),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::AttentionMaps;

    fn result() -> AttentionResult {
        let tokens: Vec<String> = ["[CLS]", "anim", "##als", "cross", "##ed", "[SEP]"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let seq = tokens.len();
        // Every query attends uniformly.
        let data = vec![1.0 / seq as f32; seq * seq];
        AttentionResult {
            input_ids: (10..10 + seq as u32).collect(),
            token_type_ids: vec![0; seq],
            tokens,
            attentions: AttentionMaps::new(1, 1, seq, data),
            truncated: false,
            neurons: None,
        }
    }

    #[test]
    fn merged_result_has_word_labels_and_rows_that_still_sum_to_one() {
        let mut level = WordLevel::default();
        let (words, merged) = level.get(&result());
        assert_eq!(words.words, ["[CLS]", "animals", "crossed", "[SEP]"]);
        assert_eq!(merged.tokens, words.words);
        assert_eq!(merged.input_ids, [10, 11, 13, 15]);
        assert_eq!(merged.attentions.seq, 4);
        for q in 0..4 {
            let sum: f32 = (0..4).map(|k| merged.attentions.get(0, 0, q, k)).sum();
            assert!((sum - 1.0).abs() < 1e-6);
        }
        assert!((merged.attentions.get(0, 0, 0, 1) - 2.0 / 6.0).abs() < 1e-6);
    }

    #[test]
    fn cache_is_rebuilt_for_a_new_analysis_only() {
        let mut level = WordLevel::default();
        let mut r = result();
        assert_eq!(level.get(&r).0.len(), 4);
        r.tokens[2] = "als".into();
        assert_eq!(level.get(&r).0.len(), 4, "same analysis: cached");
        level.data_changed();
        assert_eq!(level.get(&r).0.len(), 5);
    }

    #[test]
    fn positions_map_between_tokens_and_words_and_stay_in_range() {
        let (words, _) = merge(&result());
        assert_eq!(word_of(&words, 2), 1);
        assert_eq!(word_of(&words, 4), 2);
        assert_eq!(word_of(&words, 99), 3);
        assert_eq!(first_token(&words, 2), 3);
        assert_eq!(first_token(&words, 99), 5);
        let f = focus_to_words(TokenFocus::Key(4), &words);
        assert_eq!(f, TokenFocus::Key(2));
        assert_eq!(focus_to_tokens(f, &words), TokenFocus::Key(3));
        let pin = intent_to_tokens(Intent::Pin(Some(TokenFocus::Query(1))), &words);
        assert_eq!(pin, Intent::Pin(Some(TokenFocus::Query(1))));
        let hover = intent_to_tokens(Intent::Hover(Some(TokenFocus::Query(2))), &words);
        assert_eq!(hover, Intent::Hover(Some(TokenFocus::Query(3))));
    }
}
