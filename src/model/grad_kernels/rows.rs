//! The slice kernels behind `grad_kernels`' ops, one row (or one block of
//! rows) at a time and compiled for AVX2+FMA where the CPU has them. Column
//! sums (the gradients of weights and biases) are added into `f64` partials.

use crate::model::kernels::{erf, exp, with_simd};
use crate::model::lanes16;

/// √(2/π), of the tanh approximation of GELU (`gelu_new`).
const SQRT_2_OVER_PI: f32 = 0.797_884_6;
/// 1/√(2π), the standard normal density at 0.
const INV_SQRT_2PI: f32 = 0.398_942_3;
/// Below this exponent `eˣ` is zero in f32 (the clamped `kernels::exp` is not).
const EXP_UNDERFLOW: f32 = -87.0;

/// Which GELU: exact (`x·Φ(x)`, `gelu`) or the tanh approximation (`gelu_new`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gelu {
    Erf,
    Tanh,
}

/// Sum of `f(a, b)` over two rows with 8 independent accumulators (vectorises).
#[inline(always)]
fn lane_sum2(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| f(x, y))
        .sum();
    let mut acc = [0f32; 8];
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += f(x[l], y[l]);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Largest value of a row, with 8 independent lanes.
#[inline(always)]
fn lane_max(a: &[f32]) -> f32 {
    let chunks = a.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let mut acc = [f32::NEG_INFINITY; 8];
    for c in chunks {
        for l in 0..8 {
            acc[l] = acc[l].max(c[l]);
        }
    }
    acc.iter().fold(tail, |m, &v| m.max(v))
}

/// Mean and 1/√(var + eps) of a row (biased variance, as `nn.LayerNorm`).
#[inline(always)]
fn row_stats(row: &[f32], eps: f32) -> (f32, f32) {
    let n = row.len() as f32;
    let mean = lane_sum2(row, row, |v, _| v) / n;
    let var = lane_sum2(row, row, |v, _| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (var + eps).sqrt())
}

/// `y = (x − mean)/σ · w + b` for the rows of `x` (each `w.len()` long).
pub fn layer_norm(x: &[f32], w: &[f32], b: &[f32], eps: f32, y: &mut [f32]) {
    with_simd!(layer_norm, fn(x: &[f32], w: &[f32], b: &[f32], eps: f32, y: &mut [f32]) {
        for (xr, yr) in x.chunks_exact(w.len()).zip(y.chunks_exact_mut(w.len())) {
            let (mean, rstd) = row_stats(xr, eps);
            for (((o, &v), &wi), &bi) in yr.iter_mut().zip(xr).zip(w).zip(b) {
                *o = (v - mean) * rstd * wi + bi;
            }
        }
    });
}

/// Layer norm's backward for the rows of `x`: writes `dx`, adds into `dw`, `db`.
/// With `x̂ = (x − mean)/σ` and `g = dy·w`: `dx = (g − mean(g) − x̂·mean(g·x̂))/σ`.
pub fn layer_norm_bwd(
    x: &[f32],
    dy: &[f32],
    w: &[f32],
    eps: f32,
    dx: &mut [f32],
    sums: (&mut [f64], &mut [f64]),
) {
    with_simd!(layer_norm_bwd, fn(x: &[f32], dy: &[f32], w: &[f32], eps: f32, dx: &mut [f32], sums: (&mut [f64], &mut [f64])) {
        let (dw, db) = sums;
        let dim = w.len();
        let rows = x.chunks_exact(dim).zip(dy.chunks_exact(dim));
        for ((xr, dyr), dxr) in rows.zip(dx.chunks_exact_mut(dim)) {
            let (mean, rstd) = row_stats(xr, eps);
            for ((g, &d), &wi) in dxr.iter_mut().zip(dyr).zip(w) {
                *g = d * wi;
            }
            let mean_g = lane_sum2(dxr, dxr, |g, _| g) / dim as f32;
            let mean_gx = lane_sum2(dxr, xr, |g, v| g * (v - mean) * rstd) / dim as f32;
            for (g, &v) in dxr.iter_mut().zip(xr) {
                *g = (*g - mean_g - (v - mean) * rstd * mean_gx) * rstd;
            }
            for (((sw, sb), &d), &v) in dw.iter_mut().zip(db.iter_mut()).zip(dyr).zip(xr) {
                *sw += (d * (v - mean) * rstd) as f64;
                *sb += d as f64;
            }
        }
    });
}

/// `y = softmax(scale·s + mask)` of one row; `mask` is additive (0 or a large negative).
pub fn softmax(s: &[f32], mask: Option<&[f32]>, scale: f32, y: &mut [f32]) {
    if lanes16::softmax_scaled(s, mask, scale, y) {
        return;
    }
    with_simd!(softmax, fn(s: &[f32], mask: Option<&[f32]>, scale: f32, y: &mut [f32]) {
        match mask {
            Some(m) => {
                for ((o, &v), &a) in y.iter_mut().zip(s).zip(m) {
                    *o = scale * v + a;
                }
            }
            None => {
                for (o, &v) in y.iter_mut().zip(s) {
                    *o = scale * v;
                }
            }
        }
        let max = lane_max(y);
        for o in y.iter_mut() {
            let d = *o - max;
            *o = if d > EXP_UNDERFLOW { exp(d) } else { 0.0 };
        }
        let inv = 1.0 / lane_sum2(y, y, |e, _| e);
        for o in y.iter_mut() {
            *o *= inv;
        }
    });
}

/// Softmax's backward for one row: `dx = scale · y ⊙ (dy − Σ dy⊙y)`.
pub fn softmax_bwd(y: &[f32], dy: &[f32], scale: f32, dx: &mut [f32]) {
    with_simd!(softmax_bwd, fn(y: &[f32], dy: &[f32], scale: f32, dx: &mut [f32]) {
        let dot = lane_sum2(y, dy, |a, b| a * b);
        for ((o, &p), &d) in dx.iter_mut().zip(y).zip(dy) {
            *o = scale * p * (d - dot);
        }
    });
}

/// `tanh` from `exp`, so that it vectorises.
#[inline(always)]
fn tanh(u: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * u) + 1.0)
}

/// GELU at `z` and its derivative: `x·Φ(x)` exactly as `kernels::gelu_erf`
/// computes it, and `Φ(x) + x·φ(x)`; or the tanh approximation's.
#[inline(always)]
fn gelu_and_grad(z: f32, kind: Gelu) -> (f32, f32) {
    match kind {
        Gelu::Erf => {
            let r = erf(z * std::f32::consts::FRAC_1_SQRT_2);
            let value = 0.5 * z * (1.0 + r);
            let cdf = 0.5 * (1.0 + r);
            (value, cdf + z * INV_SQRT_2PI * exp(-0.5 * z * z))
        }
        Gelu::Tanh => {
            let t = tanh(SQRT_2_OVER_PI * z * (1.0 + 0.044715 * z * z));
            let du = SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * z * z);
            let value = 0.5 * z * (1.0 + t);
            (value, 0.5 * (1.0 + t) + 0.5 * z * (1.0 - t * t) * du)
        }
    }
}

/// `y = gelu(z)`, and `z` replaced by `gelu'(z)`, element by element: the
/// value and the derivative share `erf` (the backward is then a product).
pub fn gelu_keeping_grad(z: &mut [f32], kind: Gelu, y: &mut [f32]) {
    if kind == Gelu::Erf && lanes16::gelu_keeping_grad(z, y) {
        return;
    }
    with_simd!(gelu_keeping_grad, fn(z: &mut [f32], kind: Gelu, y: &mut [f32]) {
        for (o, v) in y.iter_mut().zip(z.iter_mut()) {
            let (value, grad) = gelu_and_grad(*v, kind);
            *o = value;
            *v = grad;
        }
    });
}

/// `out = a ⊙ b`, element by element.
pub fn product(a: &[f32], b: &[f32], out: &mut [f32]) {
    with_simd!(product, fn(a: &[f32], b: &[f32], out: &mut [f32]) {
        for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
            *o = x * y;
        }
    });
}

/// Column sums of the rows of `dy` (each `sums.len()` long) added into `sums`.
pub fn column_sums(dy: &[f32], sums: &mut [f64]) {
    with_simd!(column_sums, fn(dy: &[f32], sums: &mut [f64]) {
        for row in dy.chunks_exact(sums.len()) {
            for (s, &d) in sums.iter_mut().zip(row) {
                *s += d as f64;
            }
        }
    });
}

/// `y = x (⊙ keep) (+ r)`, element by element: dropout, and the residual add.
pub fn combine(x: &[f32], keep: Option<&[f32]>, r: Option<&[f32]>, y: &mut [f32]) {
    with_simd!(combine, fn(x: &[f32], keep: Option<&[f32]>, r: Option<&[f32]>, y: &mut [f32]) {
        match (keep, r) {
            (Some(k), Some(r)) => {
                for (((o, &v), &m), &res) in y.iter_mut().zip(x).zip(k).zip(r) {
                    *o = v * m + res;
                }
            }
            (Some(k), None) => {
                for ((o, &v), &m) in y.iter_mut().zip(x).zip(k) {
                    *o = v * m;
                }
            }
            (None, Some(r)) => {
                for ((o, &v), &res) in y.iter_mut().zip(x).zip(r) {
                    *o = v + res;
                }
            }
            (None, None) => y.copy_from_slice(&x[..y.len()]),
        }
    });
}
