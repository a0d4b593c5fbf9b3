//! Classification metrics on a dev set: accuracy, macro-F1, confusion matrix.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevMetrics {
    pub accuracy: f64,
    pub macro_f1: f64,
    /// `confusion[gold][predicted]` counts (classification).
    pub confusion: Vec<Vec<usize>>,
    pub loss: f64,
    /// `exp(loss)` for masked-LM training, where `accuracy` is masked-token accuracy.
    pub perplexity: Option<f64>,
}

/// Metrics from gold and predicted class indices over `classes` labels.
pub fn evaluate(gold: &[usize], predicted: &[usize], classes: usize, loss: f64) -> DevMetrics {
    let mut confusion = vec![vec![0usize; classes]; classes];
    for (&g, &p) in gold.iter().zip(predicted) {
        if g < classes && p < classes {
            confusion[g][p] += 1;
        }
    }
    let correct: usize = (0..classes).map(|c| confusion[c][c]).sum();
    let accuracy = if gold.is_empty() {
        0.0
    } else {
        correct as f64 / gold.len() as f64
    };
    // Macro-F1 over the classes present in gold or predictions (as scikit-learn).
    let mut f1s = Vec::new();
    for c in 0..classes {
        let tp = confusion[c][c] as f64;
        let gold_c: usize = confusion[c].iter().sum();
        let pred_c: usize = confusion.iter().map(|row| row[c]).sum();
        if gold_c == 0 && pred_c == 0 {
            continue;
        }
        let denom = (gold_c + pred_c) as f64;
        f1s.push(if denom > 0.0 { 2.0 * tp / denom } else { 0.0 });
    }
    let macro_f1 = if f1s.is_empty() {
        0.0
    } else {
        f1s.iter().sum::<f64>() / f1s.len() as f64
    };
    DevMetrics {
        accuracy,
        macro_f1,
        confusion,
        loss,
        perplexity: None,
    }
}

/// Whether an epoch with `score` (higher is better) and dev loss `loss` is
/// better than the best so far, `best` = (its score, its dev loss): a higher
/// score wins, and an equal score with a lower dev loss.
pub fn improves(score: f64, loss: Option<f64>, best: Option<(f64, Option<f64>)>) -> bool {
    match best {
        None => true,
        Some((best_score, best_loss)) => {
            score > best_score
                || (score == best_score && matches!((loss, best_loss), (Some(l), Some(b)) if l < b))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{evaluate, improves};

    #[test]
    fn hand_computed_metrics() {
        // gold: 0 0 1 1 2, predicted: 0 1 1 1 0
        let m = evaluate(&[0, 0, 1, 1, 2], &[0, 1, 1, 1, 0], 3, 0.0);
        assert_eq!(m.accuracy, 0.6);
        assert_eq!(
            m.confusion,
            vec![vec![1, 1, 0], vec![0, 2, 0], vec![1, 0, 0]]
        );
        // F1: class0 = 2·1/(2+2) = 0.5, class1 = 2·2/(2+3) = 0.8, class2 = 0.
        assert!((m.macro_f1 - (0.5 + 0.8 + 0.0) / 3.0).abs() < 1e-12);
    }

    #[test]
    fn ties_in_score_go_to_the_lower_dev_loss() {
        assert!(improves(0.5, Some(0.7), None));
        assert!(improves(0.6, Some(0.9), Some((0.5, Some(0.7)))));
        assert!(!improves(0.4, Some(0.1), Some((0.5, Some(0.7)))));
        // Equal accuracy: the lower dev loss wins, an equal or higher one does not.
        assert!(improves(0.5, Some(0.6), Some((0.5, Some(0.7)))));
        assert!(!improves(0.5, Some(0.7), Some((0.5, Some(0.7)))));
        assert!(!improves(0.5, Some(0.8), Some((0.5, Some(0.7)))));
        assert!(!improves(0.5, None, Some((0.5, None))));
    }
}
