//! The Explain view's state: the method and target chosen, explanations
//! received (cached per input and target, so switching views costs nothing),
//! the one being computed with its progress, and the head-importance section.
//! The worker computes; this holds plain `Explanation` data only.

pub mod importance;
pub mod strip;
pub mod view;

use std::collections::VecDeque;

use crate::explain::Explanation;
use crate::ui::intent::Intent;
use crate::ui::training::form::TrainForm;
use crate::ui::worker::{ExplainKey, ModelInfo, Request, WorkerHandle};
pub use importance::{ImportanceAction, ImportanceState};

/// Explanations kept (inputs × targets); the oldest goes first.
const CACHE_SIZE: usize = 16;

/// How a token's score is computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Method {
    #[default]
    IntegratedGradients,
    GradAttention,
    Rollout,
}

impl Method {
    pub const ALL: [Method; 3] = [
        Method::IntegratedGradients,
        Method::GradAttention,
        Method::Rollout,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Method::IntegratedGradients => "Integrated gradients",
            Method::GradAttention => "Gradient-weighted attention",
            Method::Rollout => "Attention rollout",
        }
    }

    /// What the method measures, in a sentence.
    pub fn caption(self) -> &'static str {
        match self {
            Method::IntegratedGradients => {
                "Sundararajan et al. 2017: each token's share of the target's logit, \
                 integrated from an all-zero embedding (50 points); signed."
            }
            Method::GradAttention => {
                "Chefer et al. 2021: attention weighted by its gradient for the target \
                 (positive part), carried through the layers; the [CLS] row."
            }
            Method::Rollout => {
                "Abnar & Zuidema 2020: attention plus the residual path, multiplied \
                 through the layers; the [CLS] row (the same for every target)."
            }
        }
    }

    /// One score per token.
    pub fn scores(self, e: &Explanation) -> Vec<f32> {
        match self {
            Method::IntegratedGradients => e.integrated_gradients.clone(),
            Method::GradAttention => e.grad_attention.clone(),
            Method::Rollout => e.rollout.first().cloned().unwrap_or_default(),
        }
    }

    /// Signed scores get a diverging scale, the others a sequential one.
    pub fn signed(self) -> bool {
        self == Method::IntegratedGradients
    }
}

/// Answers by key, the newest last (the compare view keeps its own).
pub struct Cache<K = ExplainKey, V = Result<Explanation, String>>(VecDeque<(K, V)>);

impl<K, V> Default for Cache<K, V> {
    fn default() -> Self {
        Cache(VecDeque::new())
    }
}

impl<K: PartialEq, V> Cache<K, V> {
    pub fn get(&self, key: &K) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, r)| r)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn insert(&mut self, key: K, result: V) {
        self.0.retain(|(k, _)| *k != key);
        if self.0.len() >= CACHE_SIZE {
            self.0.pop_front();
        }
        self.0.push_back((key, result));
    }
}

/// The explanation being computed.
struct Pending {
    key: ExplainKey,
    /// Integrated gradients' points done, of all.
    progress: Option<(usize, usize)>,
}

/// What the Explain view draws from besides its own state.
pub struct ExplainInput<'a> {
    pub text_a: &'a str,
    pub text_b: &'a str,
    /// The text is final (typing has paused): it may be sent to the worker.
    pub text_settled: bool,
    pub info: &'a ModelInfo,
    pub train: &'a TrainForm,
    /// The layer and head the other views show.
    pub selected: (usize, usize),
}

#[derive(Default)]
pub struct ExplainState {
    pub method: Method,
    /// Words instead of wordpieces.
    pub words: bool,
    /// `None`: the model's prediction.
    pub target: Option<String>,
    /// The masked-LM view's "another token" field.
    pub token_field: String,
    pub cache: Cache,
    pending: Option<Pending>,
    pub importance: ImportanceState,
}

impl ExplainState {
    /// The key of an input with the chosen target.
    pub fn key(&self, text_a: &str, text_b: &str) -> ExplainKey {
        ExplainKey {
            text_a: text_a.to_string(),
            text_b: (!text_b.trim().is_empty()).then(|| text_b.to_string()),
            target: self.target.clone(),
        }
    }

    /// Progress of the explanation of `key` while it is computed
    /// (`Some(None)`: started, no point done yet).
    pub fn computing(&self, key: &ExplainKey) -> Option<Option<(usize, usize)>> {
        self.pending
            .as_ref()
            .filter(|p| p.key == *key)
            .map(|p| p.progress)
    }

    /// Ask the worker for `key` unless it is cached or on its way.
    pub fn ensure(&mut self, key: &ExplainKey, worker: &mut WorkerHandle) {
        if self.cache.get(key).is_some() || self.computing(key).is_some() {
            return;
        }
        worker.send(Request::Explain(key.clone()));
        self.pending = Some(Pending {
            key: key.clone(),
            progress: None,
        });
    }

    /// The worker's answer for `key`.
    pub fn received(&mut self, key: ExplainKey, result: Result<Explanation, String>) {
        if self.pending.as_ref().is_some_and(|p| p.key == key) {
            self.pending = None;
        }
        self.cache.insert(key, result);
    }

    pub fn progress(&mut self, key: &ExplainKey, done: usize, total: usize) {
        if let Some(p) = self.pending.as_mut().filter(|p| p.key == *key) {
            p.progress = Some((done, total));
        }
    }

    /// A new model: every explanation and importance map is out of date.
    pub fn model_changed(&mut self) {
        self.cache = Cache::default();
        self.pending = None;
        self.target = None;
        self.importance.model_changed();
    }

    /// Nothing is being computed and something was answered (screenshots wait for it).
    pub fn settled(&self) -> bool {
        self.pending.is_none() && !self.cache.0.is_empty() && !self.importance.running()
    }

    /// Draw the view (asking the worker for what it lacks); intents for the app.
    pub fn show(
        &mut self,
        ui: &mut egui::Ui,
        input: &ExplainInput,
        worker: &mut WorkerHandle,
    ) -> Vec<Intent> {
        self.importance.poll_dialog(input.train);
        let mut actions = Vec::new();
        if std::mem::take(&mut self.importance.compute_on_open) {
            actions.push(ImportanceAction::Compute);
        }
        let key = self.key(input.text_a, input.text_b);
        if input.text_settled {
            self.ensure(&key, worker);
        }
        actions.extend(view::show(ui, self, input, &key));
        actions
            .into_iter()
            .filter_map(|a| self.importance.act(a, worker, input.train, ui.ctx()))
            .collect()
    }
}

/// Whether the input asks a masked-LM question (the engine's rule: the model
/// has a masked-LM head and the text a `[MASK]`).
pub fn asks_masked_lm(info: &ModelInfo, text_a: &str, text_b: &str) -> bool {
    info.has_mlm && (text_a.contains("[MASK]") || text_b.contains("[MASK]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(a: &str) -> ExplainKey {
        ExplainKey {
            text_a: a.into(),
            text_b: None,
            target: None,
        }
    }

    #[test]
    fn the_cache_keeps_the_newest_answers() {
        let mut cache = Cache::default();
        for i in 0..CACHE_SIZE + 2 {
            cache.insert(key(&i.to_string()), Err(format!("{i}")));
        }
        assert!(cache.get(&key("0")).is_none());
        assert!(cache.get(&key("1")).is_none());
        assert_eq!(
            cache.get(&key("2")).cloned(),
            Some(Err::<Explanation, _>("2".into()))
        );
        cache.insert(key("2"), Err("again".into()));
        assert_eq!(cache.0.len(), CACHE_SIZE);
        assert_eq!(cache.0.back().map(|(k, _)| k.text_a.as_str()), Some("2"));
    }

    #[test]
    fn an_empty_second_sentence_is_no_pair() {
        let state = ExplainState::default();
        assert_eq!(state.key("a", "  ").text_b, None);
        assert_eq!(state.key("a", "b").text_b.as_deref(), Some("b"));
    }
}
