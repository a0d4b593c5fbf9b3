//! The gradient-based explanations: gradient-weighted attention (Chefer, Gur
//! & Wolf 2021) and integrated gradients (Sundararajan et al. 2017, with
//! Captum's defaults), on the differentiable path.

use candle_core::{DType, Tensor, Var};

use crate::error::{BertError, Result};
use crate::explain::objective::Objective;
use crate::explain::rollout::Square;
use crate::model::attention::Probe;
use crate::model::{BertModel, ModelInput};
use crate::tokenize::Encoded;

/// The most tokens one batch of interpolation points holds.
const TOKENS_PER_CHUNK: usize = 4096;
/// The most attention-probability entries one batch holds (all layers).
const PROBS_PER_CHUNK: usize = 1 << 26;

/// The probabilities of every layer and `y`'s gradient with respect to them,
/// for one input: each `[heads][query][key]`, flat.
pub struct AttentionGrads {
    pub heads: usize,
    pub seq: usize,
    pub probs: Vec<Vec<f32>>,
    pub grads: Vec<Vec<f32>>,
    /// `y` at the input.
    pub y: f32,
}

/// One forward and backward pass with a probe on every layer's probabilities.
pub fn attention_grads(
    model: &BertModel,
    encoded: &Encoded,
    objective: Objective,
) -> Result<AttentionGrads> {
    let input = ModelInput::single(encoded);
    let (layers, heads) = (model.config.num_layers(), model.config.num_heads());
    let seq = input.mask.seq;
    let zeros = (0..layers)
        .map(|_| {
            Ok(Var::zeros(
                (1, heads, seq, seq),
                DType::F32,
                model.device(),
            )?)
        })
        .collect::<Result<Vec<_>>>()?;
    let probes: Vec<Probe> = zeros
        .iter()
        .map(|z| Probe {
            gate: None,
            probs_grad: Some(z.as_tensor()),
        })
        .collect();
    let words = model.word_embeddings(&input)?;
    let (hidden, probed) = model.encode_probed(&words, &input, &probes)?;
    let y = objective.value(model, &hidden, &input.mask)?;
    let grads = y.sum_all()?.backward()?;
    let host = |t: &Tensor| -> Result<Vec<f32>> { Ok(t.flatten_all()?.to_vec1::<f32>()?) };
    let mut out = AttentionGrads {
        heads,
        seq,
        probs: Vec::with_capacity(layers),
        grads: Vec::with_capacity(layers),
        y: y.to_vec1::<f32>()?.first().copied().unwrap_or(0.0),
    };
    for (zero, layer) in zeros.iter().zip(&probed) {
        out.probs.push(host(&layer.probs)?);
        out.grads.push(match grads.get(zero.as_tensor()) {
            Some(g) => host(g)?,
            None => vec![0.0; heads * seq * seq],
        });
    }
    Ok(out)
}

/// Chefer et al.'s relevance: `R = I`; per layer in order
/// `R ← R + mean_heads(max(0, ∂y/∂A ⊙ A))·R`; the first (`[CLS]`) row.
pub fn grad_attention(g: &AttentionGrads) -> Vec<f32> {
    let n = g.seq;
    let mut r = Square::identity(n);
    for (probs, grads) in g.probs.iter().zip(&g.grads) {
        let mut a = Square {
            n,
            data: vec![0.0; n * n],
        };
        for (p, d) in probs.chunks(n * n).zip(grads.chunks(n * n)) {
            for ((out, &p), &d) in a.data.iter_mut().zip(p).zip(d) {
                *out += (p as f64 * d as f64).max(0.0);
            }
        }
        let scale = 1.0 / g.heads.max(1) as f64;
        a.data.iter_mut().for_each(|v| *v *= scale);
        let update = a.matmul(&r);
        for (x, u) in r.data.iter_mut().zip(update.data) {
            *x += u;
        }
    }
    r.row(0).iter().map(|&v| v as f32).collect()
}

/// Gauss–Legendre nodes and weights on `[0, 1]` (what Captum's default
/// `gausslegendre` method uses: numpy's `leggauss`, mapped from `[-1, 1]`).
pub fn gauss_legendre(n: usize) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        // Newton's method on P_n from Tricomi's initial guess.
        let mut x = (std::f64::consts::PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut derivative = 1.0;
        for _ in 0..100 {
            let (mut p0, mut p1) = (1.0, x);
            for k in 2..=n {
                let k = k as f64;
                let p2 = ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k;
                p0 = p1;
                p1 = p2;
            }
            let pn = if n == 0 { 1.0 } else { p1 };
            let pn_1 = if n <= 1 { 1.0 } else { p0 };
            derivative = n as f64 * (x * pn - pn_1) / (x * x - 1.0);
            let step = pn / derivative;
            x -= step;
            if step.abs() < 1e-15 {
                break;
            }
        }
        let weight = 2.0 / ((1.0 - x * x) * derivative * derivative);
        out.push((0.5 * (1.0 + x), 0.5 * weight));
    }
    out.reverse();
    out
}

/// Integrated gradients of `y` with respect to the word-embedding output,
/// baseline zeros, `steps` Gauss–Legendre points: one attribution per token
/// (summed over the hidden dimension) and the completeness gap
/// `Σ attributions − (y(x) − y(0))`. `on_step` hears how many points are done.
pub fn integrated_gradients(
    model: &BertModel,
    encoded: &Encoded,
    objective: Objective,
    steps: usize,
    on_step: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<f32>, f32)> {
    if steps == 0 {
        return Err(BertError::Input(
            "integrated gradients need at least one step".into(),
        ));
    }
    let single = ModelInput::single(encoded);
    let seq = single.mask.seq;
    let words = model.word_embeddings(&single)?;
    let width = words.dim(1)?;
    let per_point = seq * seq * model.config.num_heads() * model.config.num_layers();
    let chunk = (TOKENS_PER_CHUNK / seq.max(1))
        .min(PROBS_PER_CHUNK / per_point.max(1))
        .clamp(1, steps);
    let points = gauss_legendre(steps);
    let mut total = vec![0f64; seq * width];
    for (done, part) in points.chunks(chunk).enumerate() {
        let m = part.len();
        let alphas: Vec<f32> = part.iter().map(|&(a, _)| a as f32).collect();
        let grads = at_alphas(model, (encoded, &words), &alphas, objective, true)?
            .1
            .unwrap_or_default();
        for ((_, w), g) in part.iter().zip(grads.chunks(seq * width)) {
            for (t, &v) in total.iter_mut().zip(g) {
                *t += w * v as f64;
            }
        }
        on_step((done * chunk + m).min(steps), steps);
    }
    let x = words.flatten_all()?.to_vec1::<f32>()?;
    let attributions: Vec<f32> = x
        .chunks(width)
        .zip(total.chunks(width))
        .map(|(xs, gs)| xs.iter().zip(gs).map(|(&a, &g)| a as f64 * g).sum::<f64>() as f32)
        .collect();
    let ends = at_alphas(model, (encoded, &words), &[1.0, 0.0], objective, false)?.0;
    let sum: f64 = attributions.iter().map(|&a| a as f64).sum();
    let delta = sum - (ends[0] as f64 - ends[1] as f64);
    Ok((attributions, delta as f32))
}

/// `α·words` for each α, as one batch `[α·seq, hidden]`, with its input.
fn scaled(encoded: &Encoded, words: &Tensor, alphas: &[f32]) -> Result<(Tensor, ModelInput)> {
    let (seq, width) = words.dims2()?;
    let scale = Tensor::from_slice(alphas, (alphas.len(), 1, 1), words.device())?;
    let batch = words
        .unsqueeze(0)?
        .broadcast_mul(&scale)?
        .reshape((alphas.len() * seq, width))?;
    let rows = vec![encoded.clone(); alphas.len()];
    Ok((batch, ModelInput::batch(&rows, 0)))
}

/// `y` at each α, and with `gradients` `∂y/∂(α·words)` too, `[α][token][hidden]` flat.
fn at_alphas(
    model: &BertModel,
    (encoded, words): (&Encoded, &Tensor),
    alphas: &[f32],
    objective: Objective,
    gradients: bool,
) -> Result<(Vec<f32>, Option<Vec<f32>>)> {
    let (batch, input) = scaled(encoded, words, alphas)?;
    let var = Var::from_tensor(&batch)?;
    let x = if gradients { var.as_tensor() } else { &batch };
    let (hidden, _) = model.encode_probed(x, &input, &[])?;
    let y = objective.value(model, &hidden, &input.mask)?;
    let values = y.to_vec1::<f32>()?;
    if !gradients {
        return Ok((values, None));
    }
    let grads = y.sum_all()?.backward()?;
    let g = match grads.get(var.as_tensor()) {
        Some(g) => g.flatten_all()?.to_vec1::<f32>()?,
        None => vec![0.0; batch.elem_count()],
    };
    Ok((values, Some(g)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gauss_legendre_integrates_polynomials_exactly() {
        for n in [1, 2, 5, 50] {
            let points = gauss_legendre(n);
            let weights: f64 = points.iter().map(|p| p.1).sum();
            assert!((weights - 1.0).abs() < 1e-12, "n={n}: {weights}");
            // ∫₀¹ x^k dx = 1/(k+1), exact up to degree 2n−1.
            let k = (2 * n - 1) as i32;
            let integral: f64 = points.iter().map(|&(x, w)| w * x.powi(k)).sum();
            assert!((integral - 1.0 / (k as f64 + 1.0)).abs() < 1e-12, "n={n}");
            assert!(points.windows(2).all(|p| p[0].0 < p[1].0));
        }
        // numpy.polynomial.legendre.leggauss(2): ±1/√3, weights 1.
        let two = gauss_legendre(2);
        assert!((two[0].0 - 0.5 * (1.0 - 1.0 / 3f64.sqrt())).abs() < 1e-15);
    }
}
