//! Explanations beyond raw attention, each as its paper defines it: attention
//! rollout, gradient-weighted attention, integrated gradients, head
//! importance, and word-level merging. Gradients run on the differentiable
//! path ([`LoadedModel::differentiable`]); results are plain data.

pub mod gradients;
pub mod importance;
pub mod objective;
pub mod rollout;
pub mod summary;
pub mod words;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use serde::Serialize;

use crate::attention_maps::AttentionMaps;
use crate::data::{self, ReadOptions};
use crate::engine::LoadedModel;
use crate::error::{BertError, Result};
use crate::model::head_mask::Inspect;
use crate::tokenize::Encoded;
pub use importance::HeadImportance;
pub use objective::{Objective, Target};

/// Integrated gradients' interpolation points (Captum's default).
pub const IG_STEPS: usize = 50;

/// Every per-input explanation of one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Explanation {
    pub tokens: Vec<String>,
    pub target: Target,
    /// `[query][key]`.
    pub rollout: Vec<Vec<f32>>,
    /// Relevance of each token for `[CLS]`.
    pub grad_attention: Vec<f32>,
    /// One attribution per token.
    pub integrated_gradients: Vec<f32>,
    pub ig_delta: f32,
    /// The target's logit at the input.
    pub target_logit: f32,
    /// The tokens grouped into words.
    pub words: Vec<String>,
    pub truncated: bool,
}

impl Explanation {
    /// A method's scores per word (summed over each word's pieces).
    pub fn word_scores(&self, scores: &[f32]) -> Vec<f32> {
        words::group(&self.tokens).sum_scores(scores)
    }
}

/// Explain `target` (a label, or a token at the first `[MASK]`; the
/// prediction when `None`) for one input. `on_progress` hears integrated
/// gradients' points as they are done.
pub fn explain(
    model: &LoadedModel,
    text_a: &str,
    text_b: Option<&str>,
    target: Option<&str>,
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<Explanation> {
    let encoded = model.encode(text_a, text_b)?;
    let (objective, target) = resolve_target(model, &encoded, target)?;
    explain_encoded(model, encoded, (objective, target), on_progress)
}

/// Explain the classifier's `target` label (its prediction when `None`) for
/// one input, even when the input has a `[MASK]` the model could predict:
/// what the compare view and `compare` ask of each side.
pub fn explain_class(
    model: &LoadedModel,
    text_a: &str,
    text_b: Option<&str>,
    target: Option<&str>,
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<Explanation> {
    let encoded = model.encode(text_a, text_b)?;
    if model.model.classifier.is_none() {
        return Err(BertError::Unsupported(format!(
            "{}: no classification head to explain",
            model.dir.display()
        )));
    }
    let resolved = class_target(model, &encoded, target)?;
    explain_encoded(model, encoded, resolved, on_progress)
}

fn explain_encoded(
    model: &LoadedModel,
    encoded: Encoded,
    (objective, target): (Objective, Target),
    on_progress: &mut dyn FnMut(usize, usize),
) -> Result<Explanation> {
    let net = model.differentiable()?;
    let grads = gradients::attention_grads(net, &encoded, objective)?;
    let (layers, seq) = (grads.probs.len(), grads.seq);
    let maps = AttentionMaps::new(layers, grads.heads, seq, grads.probs.concat());
    let (ig, ig_delta) =
        gradients::integrated_gradients(net, &encoded, objective, IG_STEPS, on_progress)?;
    Ok(Explanation {
        rollout: rollout::rollout(&maps).to_rows(),
        grad_attention: gradients::grad_attention(&grads),
        integrated_gradients: ig,
        ig_delta,
        target_logit: grads.y,
        words: words::group(&encoded.tokens).words,
        target,
        tokens: encoded.tokens,
        truncated: encoded.truncated,
    })
}

/// What `y` is for this input: the masked-LM logit at the first `[MASK]`
/// when the model has a masked-LM head and the input a mask, else the
/// classifier's logit; of `target`, or of the prediction.
pub fn resolve_target(
    model: &LoadedModel,
    encoded: &Encoded,
    target: Option<&str>,
) -> Result<(Objective, Target)> {
    let tokenizer = &model.tokenizer;
    let first_mask = tokenizer
        .mask_id()
        .and_then(|m| encoded.input_ids.iter().position(|&id| id == m));
    if let (Some(_), Some(position)) = (&model.model.mlm, first_mask) {
        let id = match target {
            Some(token) => tokenizer.token_to_id(token).ok_or_else(|| {
                BertError::Input(format!(
                    "target \"{token}\" is not a token of the vocabulary of {}",
                    model.dir.display()
                ))
            })?,
            None => {
                let masks = model.predict_masks(encoded, 1, &Inspect::default())?;
                masks
                    .first()
                    .and_then(|m| m.predictions.first())
                    .map(|p| p.token)
                    .ok_or_else(|| BertError::Input("no prediction at the mask".into()))?
            }
        };
        let label = tokenizer.id_to_token(id).unwrap_or_default();
        let objective = Objective::Token { position, id };
        return Ok((
            objective,
            Target {
                label,
                index: id as usize,
            },
        ));
    }
    if model.model.classifier.is_none() {
        let why = match (&model.model.mlm, first_mask) {
            (Some(_), None) => format!(
                "it has a masked-LM head but the input has no {} to predict",
                tokenizer.mask_token()
            ),
            _ => "it has neither a classification head nor a masked-LM head".to_string(),
        };
        return Err(BertError::Unsupported(format!(
            "{}: nothing to explain: {why}",
            model.dir.display()
        )));
    }
    class_target(model, encoded, target)
}

/// The classifier's logit of `target` (a label or its index), or of the prediction.
fn class_target(
    model: &LoadedModel,
    encoded: &Encoded,
    target: Option<&str>,
) -> Result<(Objective, Target)> {
    let labels = &model.config().labels;
    let index = match target {
        Some(name) => label_index(labels, name).ok_or_else(|| {
            BertError::Input(format!(
                "target \"{name}\" is not a label of this model (labels: {})",
                labels.join(", ")
            ))
        })?,
        None => {
            let scores =
                model.classify_batch(std::slice::from_ref(encoded), &Inspect::default())?;
            let row = scores.into_iter().next().unwrap_or_default();
            crate::engine::top_indices(&row, 1)
                .first()
                .copied()
                .unwrap_or(0)
        }
    };
    let label = labels.get(index).cloned().unwrap_or_default();
    Ok((Objective::Class(index), Target { label, index }))
}

/// A label by name, else by its index written as a number.
fn label_index(labels: &[String], name: &str) -> Option<usize> {
    labels
        .iter()
        .position(|l| l == name)
        .or_else(|| name.parse::<usize>().ok().filter(|&i| i < labels.len()))
}

/// Head importance over the first `max_rows` labelled rows of a data file.
pub fn head_importance_of_file(
    model: &LoadedModel,
    path: &Path,
    options: &ReadOptions,
    max_rows: usize,
    cancel: &AtomicBool,
    on_rows: &mut dyn FnMut(usize, usize),
) -> Result<HeadImportance> {
    if model.model.classifier.is_none() {
        return Err(BertError::Unsupported(format!(
            "{}: head importance needs a classification head (no `classifier.weight`)",
            model.dir.display()
        )));
    }
    let options = ReadOptions {
        require_label: true,
        ..options.clone()
    };
    let data = data::read_head(path, &options, max_rows)?;
    if data.examples.is_empty() {
        return Err(BertError::File {
            path: path.to_path_buf(),
            message: "no labelled rows to measure head importance on".into(),
        });
    }
    let labels = &model.config().labels;
    let max_length = importance::MAX_TOKENS.min(model.config().max_length());
    let mut rows = Vec::with_capacity(data.examples.len());
    for e in &data.examples {
        let label = e.label.as_deref().unwrap_or_default();
        let class = label_index(labels, label).ok_or_else(|| {
            BertError::line(
                path,
                e.line,
                format!(
                    "label \"{label}\" is not one of the model's labels ({})",
                    labels.join(", ")
                ),
            )
        })?;
        let encoded = model
            .tokenizer
            .encode(&e.text_a, e.text_b.as_deref(), max_length)?;
        rows.push((encoded, class));
    }
    let net = model.differentiable()?;
    importance::head_importance(net, &rows, model.tokenizer.pad_id(), cancel, on_rows)
}
