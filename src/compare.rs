//! How much each attention head changed between two models on the same input:
//! the mean Jensen–Shannon divergence of the heads' attention rows; and
//! (`sides.rs`) explanations and head importance before and after fine-tuning.

use crate::attention_maps::AttentionMaps;
use crate::engine::{Analysis, ClassifyResult, LoadedModel};
use crate::error::{BertError, Result};
use crate::{HeadSet, Inspect};

mod sides;
pub use sides::{
    before_classifier, explain_before_after, importance_before_after, importance_gains,
    BeforeAfter, Models, Side,
};

/// Jensen–Shannon divergence between two distributions over the same support,
/// in bits: 0 for identical rows, 1 for rows with disjoint support.
pub fn js_divergence(p: &[f32], q: &[f32]) -> f32 {
    let kl_to_mid = |a: f32, b: f32| {
        if a <= 0.0 {
            0.0
        } else {
            a as f64 * (2.0 * a as f64 / (a as f64 + b as f64)).log2()
        }
    };
    let total: f64 = p
        .iter()
        .zip(q)
        .map(|(&a, &b)| kl_to_mid(a, b) + kl_to_mid(b, a))
        .sum();
    (0.5 * total).clamp(0.0, 1.0) as f32
}

/// A value per (layer, head).
#[derive(Debug, Clone, PartialEq)]
pub struct HeadChanges {
    pub layers: usize,
    pub heads: usize,
    /// Row-major `[layer][head]`.
    pub values: Vec<f32>,
    /// How many inputs the values average over.
    pub inputs: usize,
}

impl HeadChanges {
    pub fn get(&self, layer: usize, head: usize) -> f32 {
        self.values
            .get(layer * self.heads + head)
            .copied()
            .unwrap_or(0.0)
    }

    pub fn max(&self) -> f32 {
        self.values.iter().copied().fold(0.0, f32::max)
    }

    /// `(layer, head, change)`, most changed first.
    pub fn ranked(&self) -> Vec<(usize, usize, f32)> {
        let mut all: Vec<(usize, usize, f32)> = self
            .values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i / self.heads.max(1), i % self.heads.max(1), v))
            .collect();
        all.sort_by(|a, b| b.2.total_cmp(&a.2));
        all
    }

    /// Average with another input's changes (weighted by inputs).
    pub fn merge(&mut self, other: &HeadChanges) -> Result<()> {
        if (self.layers, self.heads) != (other.layers, other.heads) {
            return Err(BertError::Input(format!(
                "cannot average head changes of {}×{} and {}×{} models",
                self.layers, self.heads, other.layers, other.heads
            )));
        }
        let (n, m) = (self.inputs as f32, other.inputs as f32);
        for (a, b) in self.values.iter_mut().zip(&other.values) {
            *a = (*a * n + b * m) / (n + m).max(1.0);
        }
        self.inputs += other.inputs;
        Ok(())
    }
}

/// Mean over query rows of the JS divergence between the base's and the tuned
/// model's attention rows, for every head. Both maps must cover the same tokens.
pub fn head_changes(base: &AttentionMaps, tuned: &AttentionMaps) -> Result<HeadChanges> {
    if (base.layers, base.heads, base.seq) != (tuned.layers, tuned.heads, tuned.seq) {
        return Err(BertError::Input(format!(
            "the models differ in shape: {} layers × {} heads × {} tokens vs {} × {} × {}",
            base.layers, base.heads, base.seq, tuned.layers, tuned.heads, tuned.seq
        )));
    }
    let seq = base.seq;
    let mut values = Vec::with_capacity(base.layers * base.heads);
    for layer in 0..base.layers {
        for head in 0..base.heads {
            let (a, b) = (base.head(layer, head), tuned.head(layer, head));
            let sum: f32 = a
                .chunks(seq.max(1))
                .zip(b.chunks(seq.max(1)))
                .map(|(p, q)| js_divergence(p, q))
                .sum();
            values.push(sum / seq.max(1) as f32);
        }
    }
    Ok(HeadChanges {
        layers: base.layers,
        heads: base.heads,
        values,
        inputs: 1,
    })
}

/// `tuned − base` for one head, row-major `[query][key]`.
pub fn head_difference(
    base: &AttentionMaps,
    tuned: &AttentionMaps,
    layer: usize,
    head: usize,
) -> Vec<f32> {
    if base.seq != tuned.seq || layer >= base.layers.min(tuned.layers) {
        return Vec::new();
    }
    if head >= base.heads.min(tuned.heads) {
        return Vec::new();
    }
    base.head(layer, head)
        .iter()
        .zip(tuned.head(layer, head))
        .map(|(a, b)| b - a)
        .collect()
}

/// Base and tuned model on one input, as the compare view shows it.
#[derive(Debug, Clone)]
pub struct Comparison {
    pub tuned: Analysis,
    /// How much each head changed; `Err` when the two inputs do not line up
    /// (different tokenizers).
    pub changes: std::result::Result<HeadChanges, String>,
    /// Class probabilities before fine-tuning, and where they come from.
    pub before: Option<ClassifyResult>,
    pub before_source: String,
    pub after: Option<ClassifyResult>,
}

/// Run the tuned model (and the classifier it started from) on the input the
/// base model was analysed on. `initial` is the run's epoch-0 checkpoint: the
/// base with its freshly initialised head. `ablate`: the heads the base was
/// analysed without, switched off on every side that has them too, so that
/// before and after are compared on equal terms.
pub fn compare_input(
    base: (&LoadedModel, &Analysis),
    tuned: &LoadedModel,
    initial: Option<&LoadedModel>,
    (text_a, text_b): (&str, Option<&str>),
    (masked, top_k): (&[usize], usize),
    ablate: &HeadSet,
) -> Result<Comparison> {
    let inspect = |m: &LoadedModel| {
        let (layers, heads) = (m.config().num_layers(), m.config().num_heads());
        match ablate.check(layers, heads) {
            Ok(()) => Inspect {
                ablate: ablate.clone(),
                neurons: None,
            },
            Err(_) => Inspect::default(),
        }
    };
    let tuned_analysis = tuned.analyze(text_a, text_b, masked, top_k, &inspect(tuned))?;
    let changes = if base.1.attention.tokens == tuned_analysis.attention.tokens {
        head_changes(
            &base.1.attention.attentions,
            &tuned_analysis.attention.attentions,
        )
        .map_err(|e| e.to_string())
    } else {
        Err("the base and tuned models tokenise this input differently".to_string())
    };
    let source = before_classifier(base.0, initial);
    let before = match source.model {
        Some(m) => Some(m.classify(text_a, text_b, &inspect(m))?),
        None => None,
    };
    let before_source = source.source;
    let after = if tuned.model.classifier.is_some() {
        Some(tuned.classify(text_a, text_b, &inspect(tuned))?)
    } else {
        None
    };
    Ok(Comparison {
        tuned: tuned_analysis,
        changes,
        before,
        before_source,
        after,
    })
}

/// Head changes averaged over many inputs (e.g. the dev set); inputs the two
/// models tokenise differently are skipped.
pub fn mean_changes(
    base: &LoadedModel,
    tuned: &LoadedModel,
    inputs: &[(String, Option<String>)],
) -> Result<Option<HeadChanges>> {
    let mut total: Option<HeadChanges> = None;
    for (a, b) in inputs {
        let x = base.attention(a, b.as_deref(), &Inspect::default())?;
        let y = tuned.attention(a, b.as_deref(), &Inspect::default())?;
        if x.tokens != y.tokens {
            continue;
        }
        let changes = head_changes(&x.attentions, &y.attentions)?;
        match &mut total {
            Some(t) => t.merge(&changes)?,
            None => total = Some(changes),
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_divergence_known_values() {
        assert!(js_divergence(&[0.2, 0.3, 0.5], &[0.2, 0.3, 0.5]).abs() < 1e-7);
        assert!((js_divergence(&[1.0, 0.0], &[0.0, 1.0]) - 1.0).abs() < 1e-6);
        // p = (1, 0), q = (½, ½): m = (¾, ¼);
        // JS = ½·log2(4/3) + ½·(½·log2(2/3) + ½·log2(2)) = 0.311278…
        let expected =
            0.5 * (4.0f64 / 3.0).log2() + 0.5 * (0.5 * (2.0f64 / 3.0).log2() + 0.5 * 2.0f64.log2());
        assert!((js_divergence(&[1.0, 0.0], &[0.5, 0.5]) as f64 - expected).abs() < 1e-6);
        assert!((expected - 0.311278).abs() < 1e-6);
        // Symmetric.
        let (p, q) = ([0.7, 0.2, 0.1], [0.1, 0.6, 0.3]);
        assert!((js_divergence(&p, &q) - js_divergence(&q, &p)).abs() < 1e-7);
    }

    #[test]
    fn head_changes_rank_the_changed_head_first() {
        // 1 layer, 2 heads, 2 tokens; head 1 flips from "look at 0" to "look at 1".
        let base = AttentionMaps::new(1, 2, 2, vec![0.5, 0.5, 0.5, 0.5, 1.0, 0.0, 1.0, 0.0]);
        let tuned = AttentionMaps::new(1, 2, 2, vec![0.5, 0.5, 0.5, 0.5, 0.0, 1.0, 0.0, 1.0]);
        let changes = head_changes(&base, &tuned).unwrap();
        assert!(changes.get(0, 0).abs() < 1e-7);
        assert!((changes.get(0, 1) - 1.0).abs() < 1e-6);
        assert_eq!(changes.ranked()[0].1, 1);
        let diff = head_difference(&base, &tuned, 0, 1);
        assert_eq!(diff, vec![-1.0, 1.0, -1.0, 1.0]);

        let mut avg = changes.clone();
        let zero = head_changes(&base, &base).unwrap();
        avg.merge(&zero).unwrap();
        assert_eq!(avg.inputs, 2);
        assert!((avg.get(0, 1) - 0.5).abs() < 1e-6);
        let other = AttentionMaps::new(1, 1, 2, vec![1.0, 0.0, 1.0, 0.0]);
        assert!(head_changes(&base, &other).is_err());
    }
}
