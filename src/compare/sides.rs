//! Explanations and head importance before and after fine-tuning. The
//! "before" classifier is the run's epoch-0 checkpoint (the base with its
//! freshly initialised head) when it has one, else the base's own classifier;
//! "after" is the tuned model. Each side's result (or error) is kept apart,
//! so one side failing leaves the other to be shown.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::data::ReadOptions;
use crate::engine::LoadedModel;
use crate::error::{BertError, Result};
use crate::explain::{self, Explanation, HeadImportance};

/// Which model of the two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Before,
    After,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Before => "before",
            Side::After => "after",
        }
    }
}

/// A result per side; `None` where that side has no classifier.
#[derive(Debug, Clone, PartialEq)]
pub struct BeforeAfter<T> {
    pub before: Option<std::result::Result<T, String>>,
    /// Where "before" comes from, or why there is none.
    pub before_source: String,
    pub after: Option<std::result::Result<T, String>>,
}

impl<T> BeforeAfter<T> {
    pub fn side(&self, side: Side) -> Option<&std::result::Result<T, String>> {
        match side {
            Side::Before => self.before.as_ref(),
            Side::After => self.after.as_ref(),
        }
    }
}

/// The classifier before fine-tuning and where it comes from.
pub struct Before<'a> {
    pub model: Option<&'a LoadedModel>,
    pub source: String,
}

/// Epoch 0 when it has a classifier, else the base's own, else none.
pub fn before_classifier<'a>(
    base: &'a LoadedModel,
    initial: Option<&'a LoadedModel>,
) -> Before<'a> {
    let has_head = |m: &LoadedModel| m.model.classifier.is_some();
    match initial.filter(|m| has_head(m)) {
        Some(m) => Before {
            model: Some(m),
            source: "base with the run's freshly initialised head (epoch 0)".into(),
        },
        None if has_head(base) => Before {
            model: Some(base),
            source: "the base model's own classifier".into(),
        },
        None => Before {
            model: None,
            source: "the base model has no classifier".into(),
        },
    }
}

/// The models a before/after comparison reads: the base, the tuned model
/// and the run's epoch-0 checkpoint when it has one.
#[derive(Clone, Copy)]
pub struct Models<'a> {
    pub base: &'a LoadedModel,
    pub tuned: &'a LoadedModel,
    pub initial: Option<&'a LoadedModel>,
}

impl<'a> Models<'a> {
    /// The classifier before fine-tuning (see [`before_classifier`]).
    pub fn before(&self) -> Before<'a> {
        before_classifier(self.base, self.initial)
    }
}

/// Each side's explanation of its own predicted label for one input.
/// `on_progress` hears integrated gradients' points, side by side.
pub fn explain_before_after(
    models: Models<'_>,
    (text_a, text_b): (&str, Option<&str>),
    on_progress: &mut dyn FnMut(Side, usize, usize),
) -> BeforeAfter<Explanation> {
    let (before, tuned) = (models.before(), models.tuned);
    let mut run = |model: &LoadedModel, side: Side| {
        let mut progress = |done, total| on_progress(side, done, total);
        explain::explain_class(model, text_a, text_b, None, &mut progress)
            .map_err(|e| e.to_string())
    };
    BeforeAfter {
        before: before.model.map(|m| run(m, Side::Before)),
        before_source: before.source,
        after: tuned
            .model
            .classifier
            .is_some()
            .then(|| run(tuned, Side::After)),
    }
}

/// Each side's head importance over the first `max_rows` labelled rows of a
/// data file. A cancel stops both (the only error returned as a whole).
pub fn importance_before_after(
    models: Models<'_>,
    path: &Path,
    options: &ReadOptions,
    max_rows: usize,
    cancel: &AtomicBool,
    on_rows: &mut dyn FnMut(Side, usize, usize),
) -> Result<BeforeAfter<HeadImportance>> {
    let (before, tuned) = (models.before(), models.tuned);
    let mut run = |model: &LoadedModel, side: Side| {
        let mut progress = |done, total| on_rows(side, done, total);
        match explain::head_importance_of_file(
            model,
            path,
            options,
            max_rows,
            cancel,
            &mut progress,
        ) {
            Err(BertError::Cancelled) => Err(BertError::Cancelled),
            other => Ok(other.map_err(|e| e.to_string())),
        }
    };
    let before_result = before.model.map(|m| run(m, Side::Before)).transpose()?;
    let after = if tuned.model.classifier.is_some() {
        Some(run(tuned, Side::After)?)
    } else {
        None
    };
    Ok(BeforeAfter {
        before: before_result,
        before_source: before.source,
        after,
    })
}

/// `(layer, head, after − before)` for every head, the largest increase
/// first: the heads the task came to rely on. Empty when the maps differ in shape.
pub fn importance_gains(
    before: &HeadImportance,
    after: &HeadImportance,
) -> Vec<(usize, usize, f32)> {
    if (before.layers, before.heads) != (after.layers, after.heads) {
        return Vec::new();
    }
    let heads = after.heads.max(1);
    let mut gains: Vec<(usize, usize, f32)> = after
        .values
        .iter()
        .zip(&before.values)
        .enumerate()
        .map(|(i, (a, b))| (i / heads, i % heads, a - b))
        .collect();
    gains.sort_by(|x, y| y.2.total_cmp(&x.2));
    gains
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(values: Vec<f32>) -> HeadImportance {
        HeadImportance {
            layers: 2,
            heads: 2,
            values,
            rows: 3,
        }
    }

    #[test]
    fn gains_rank_the_largest_increase_first() {
        let before = map(vec![0.5, 0.1, 0.2, 0.3]);
        let after = map(vec![0.4, 0.6, 0.2, 0.35]);
        let gains = importance_gains(&before, &after);
        assert_eq!(gains.len(), 4);
        assert_eq!((gains[0].0, gains[0].1), (0, 1));
        assert!((gains[0].2 - 0.5).abs() < 1e-6);
        assert_eq!((gains[1].0, gains[1].1), (1, 1));
        assert_eq!((gains[3].0, gains[3].1), (0, 0));
        let other = HeadImportance {
            layers: 1,
            heads: 4,
            values: vec![0.0; 4],
            rows: 1,
        };
        assert!(importance_gains(&before, &other).is_empty());
    }
}
