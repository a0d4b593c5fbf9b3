//! Fused CPU kernels for inference on plain `f32` slices: linear layers with the
//! bias (and activation) folded into the GEMM, residual + LayerNorm, and the
//! attention core (scores, masked softmax and context for every head at once).
//! They carry no gradients; training uses the differentiable path instead.

use rayon::prelude::*;

use crate::config::Activation;

mod attention_core;
pub use attention_core::{attention, AttentionShape, ContextOut};

/// √(2/π), of the tanh approximation of GELU (`gelu_new`).
const SQRT_2_OVER_PI: f32 = 0.797_884_6;

/// Below this many multiply-adds a GEMM runs on one thread: splitting costs more.
const PARALLEL_GEMM_MIN_FLOPS: usize = 1 << 18;

pub(crate) fn parallelism(flops: usize) -> gemm::Parallelism {
    let threads = rayon::current_num_threads();
    if threads > 1 && flops >= PARALLEL_GEMM_MIN_FLOPS {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    }
}

/// `out[rows, out_dim] = x[rows, in_dim] · W + b` with `W` row-major `[in_dim, out_dim]`.
pub fn linear(x: &[f32], rows: usize, weight: &[f32], bias: &[f32], out: &mut [f32]) {
    let out_dim = bias.len();
    let in_dim = weight.len() / out_dim.max(1);
    assert!(
        x.len() >= rows * in_dim && out.len() >= rows * out_dim && weight.len() == out_dim * in_dim
    );
    for row in out[..rows * out_dim].chunks_mut(out_dim) {
        row.copy_from_slice(bias);
    }
    // SAFETY: the asserts above bound every index the strides below reach.
    unsafe {
        gemm::gemm(
            rows,
            out_dim,
            in_dim,
            out.as_mut_ptr(),
            1,
            out_dim as isize,
            true,
            x.as_ptr(),
            1,
            in_dim as isize,
            weight.as_ptr(),
            1,
            out_dim as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism(rows * out_dim * in_dim),
        );
    }
}

/// Run `body` compiled for AVX2+FMA when the CPU has them (8 lanes and fused
/// multiply-add for the element-wise loops below), else for the baseline target.
macro_rules! with_simd {
    ($name:ident, fn($($arg:ident: $ty:ty),*) $body:block) => {
        #[inline(always)]
        fn body($($arg: $ty),*) $body

        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2($($arg: $ty),*) {
            body($($arg),*)
        }

        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU supports the features `avx2` was compiled for.
            return unsafe { avx2($($arg),*) };
        }
        body($($arg),*)
    };
}
pub(crate) use with_simd;

/// Apply an activation in place, in parallel chunks.
pub fn activate(values: &mut [f32], act: Activation) {
    values
        .par_chunks_mut(4096)
        .for_each(|chunk| activate_run(chunk, act));
}

/// Apply an activation in place to one run of values, on this thread.
pub(crate) fn activate_run(chunk: &mut [f32], act: Activation) {
    if act == Activation::Gelu && super::lanes16::gelu(chunk) {
        return;
    }
    with_simd!(activate_run, fn(chunk: &mut [f32], act: Activation) {
        match act {
            // Plain `for` loops: `for_each` goes through an iterator's `fold`,
            // which is not always inlined into this AVX2 copy of the body.
            Activation::Gelu => {
                for x in chunk.iter_mut() {
                    *x = gelu_erf(*x);
                }
            }
            Activation::GeluTanh => {
                for x in chunk.iter_mut() {
                    let v = *x;
                    *x = 0.5 * v * (1.0 + (SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)).tanh());
                }
            }
            Activation::Relu => {
                for x in chunk.iter_mut() {
                    *x = x.max(0.0);
                }
            }
            Activation::Silu => {
                for x in chunk.iter_mut() {
                    *x /= 1.0 + exp(-*x);
                }
            }
        }
    });
}

/// Exact GELU `x·Φ(x)`, with [`erf`].
#[inline(always)]
pub fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `erf`'s rational approximation `x·P(x²)/Q(x²)` (degrees 5 and 5 in
/// `x²`): its coefficients were fitted by `scripts/fit-erf.py` to minimise
/// the largest error on [0, 4] (2e-8 in exact arithmetic; within 3.4e-7 of
/// the truth in `f32`, where PyTorch's own vectorised `erf` is within 5e-7).
/// Past |x| = 4 erf is ±1 in `f32`. Multiplies, adds and one division, so
/// 16 lanes run it.
pub(crate) const ERF_P: [f32; 6] = [
    // 2/√π, erf's slope at 0 (the fit's value to within one f32 step).
    std::f32::consts::FRAC_2_SQRT_PI,
    0.196_249_26,
    0.053_467_51,
    0.004_003_657_5,
    0.000_288_041_63,
    1.974_825_9e-6,
];
/// The denominator's coefficients from `x²` up (the constant is 1).
pub(crate) const ERF_Q: [f32; 5] = [
    0.507_252_5,
    0.116_476_536,
    0.015_444_444,
    0.001_216_362_8,
    3.748_083_3e-5,
];
/// Where `erf`'s approximation is clamped.
pub(crate) const ERF_CLAMP: f32 = 4.0;

#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-ERF_CLAMP, ERF_CLAMP);
    let t = x * x;
    let p = ERF_P.iter().rev().fold(0.0, |acc, &c| acc * t + c);
    let q = ERF_Q.iter().rev().fold(0.0, |acc, &c| acc * t + c) * t + 1.0;
    x * p / q
}

/// `x = LayerNorm(x + residual)` over rows of `dim`, in place.
pub fn add_layer_norm(x: &mut [f32], residual: &[f32], weight: &[f32], bias: &[f32], eps: f32) {
    let dim = weight.len();
    x.par_chunks_mut(dim)
        .zip(residual.par_chunks(dim))
        .for_each(|(row, res)| add_norm_row(row, res, weight, bias, eps));
}

/// [`add_layer_norm`], each finished row then handed, while it is in the
/// caches, to `copy` with the row of the same index of `copies` (rows
/// `width` apart): a second form of the rows made in the same pass.
pub fn add_layer_norm_copying<T: Send>(
    x: &mut [f32],
    residual: &[f32],
    (weight, bias, eps): (&[f32], &[f32], f32),
    (copies, width): (&mut [T], usize),
    copy: impl Fn(&[f32], &mut [T]) + Sync,
) {
    let dim = weight.len();
    x.par_chunks_mut(dim)
        .zip(residual.par_chunks(dim))
        .zip(copies.par_chunks_mut(width.max(1)))
        .for_each(|((row, res), dst)| {
            add_norm_row(row, res, weight, bias, eps);
            copy(row, dst);
        });
}

fn add_norm_row(row: &mut [f32], residual: &[f32], weight: &[f32], bias: &[f32], eps: f32) {
    for (v, r) in row.iter_mut().zip(residual) {
        *v += r;
    }
    norm_row(row, weight, bias, eps)
}

/// `x = LayerNorm(x)` over rows of `dim`, in place: the fused path's one
/// layer norm (the differentiable path's is `ops::LayerNorm`).
pub fn layer_norm(x: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    x.par_chunks_mut(weight.len())
        .for_each(|row| norm_row(row, weight, bias, eps));
}

fn norm_row(row: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
    with_simd!(norm_row, fn(row: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
        let n = row.len() as f32;
        let mean = lane_sum(row, |v| v) / n;
        let var = lane_sum(row, |v| (v - mean) * (v - mean)) / n;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, w), b) in row.iter_mut().zip(weight).zip(bias) {
            *v = (*v - mean) * inv * w + b;
        }
    });
}

/// Sum of `f(v)` over a row with 8 independent accumulators (vectorises).
#[inline(always)]
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0f32; 8];
    let mut chunks = values.chunks_exact(8);
    for c in &mut chunks {
        for i in 0..8 {
            acc[i] += f(c[i]);
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    acc.iter().sum::<f32>() + tail
}

/// `eˣ` to within 2 ulp (Cephes `expf`: range reduction by ln 2 and a degree-6
/// polynomial), branch-free so loops over it vectorise, unlike libm's `expf`.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * LOG2E + ROUND;
    let n = shifted - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 5e-1;
    let e = p * r * r + r + 1.0;
    // The low mantissa bits of `shifted` hold n as an integer.
    let n_int = shifted.to_bits() as i32 - ROUND.to_bits() as i32;
    e * f32::from_bits(((n_int + 127) as u32) << 23)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_libm_to_f32_precision() {
        for i in -600..=600 {
            let x = i as f32 * 0.01;
            let exact = candle_core::cpu::erf::erf_f64(x as f64) as f32;
            // Within 3.4e-7 of the truth, and `exact` is rounded to f32.
            assert!(
                (erf(x) - exact).abs() < 4e-7,
                "erf({x}) = {} vs {exact}",
                erf(x)
            );
        }
    }

    #[test]
    fn exp_matches_std() {
        for i in -8700..=8800 {
            let x = i as f32 * 0.01;
            let (got, want) = (exp(x), (x as f64).exp());
            let rel = ((got as f64 - want) / want).abs();
            assert!(rel < 3e-7, "exp({x}) = {got} vs {want}");
        }
        assert_eq!(exp(-1e30), exp(-87.0));
    }

    #[test]
    fn linear_matches_naive() {
        let (rows, ind, outd) = (3, 5, 4);
        let x: Vec<f32> = (0..rows * ind).map(|i| (i as f32 * 0.37).sin()).collect();
        // w is [in, out]
        let w: Vec<f32> = (0..outd * ind).map(|i| (i as f32 * 0.11).cos()).collect();
        let b: Vec<f32> = (0..outd).map(|i| i as f32 * 0.5).collect();
        let mut out = vec![0.0; rows * outd];
        linear(&x, rows, &w, &b, &mut out);
        for r in 0..rows {
            for o in 0..outd {
                let want: f32 = b[o]
                    + (0..ind)
                        .map(|k| x[r * ind + k] * w[k * outd + o])
                        .sum::<f32>();
                assert!((out[r * outd + o] - want).abs() < 1e-5);
            }
        }
    }

    #[test]
    fn add_layer_norm_matches_formula() {
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        add_layer_norm(
            &mut x,
            &[0.0, 0.0, 1.0, 1.0],
            &[1.0, 2.0],
            &[0.0, 1.0],
            1e-12,
        );
        // rows [1, 2] and [4, 5] normalise to [-1, 1].
        assert!((x[0] + 1.0).abs() < 1e-5 && (x[1] - 3.0).abs() < 1e-5);
        assert!((x[2] + 1.0).abs() < 1e-5 && (x[3] - 3.0).abs() < 1e-5);
    }
}
