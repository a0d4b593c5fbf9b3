//! Fused CPU kernels for inference on plain `f32` slices: linear layers with the
//! bias (and activation) folded into the GEMM, residual + LayerNorm, and the
//! attention core (scores, masked softmax and context for every head at once).
//! They carry no gradients; training uses the differentiable path instead.

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::lanes16::{
    self,
    attention::{Dest, Head},
};
use crate::config::Activation;

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

/// Shapes of one attention call.
#[derive(Debug, Clone, Copy)]
pub struct AttentionShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl AttentionShape {
    /// Token rows of the batch: `batch · seq`.
    pub fn rows(&self) -> usize {
        self.batch * self.seq
    }
}

/// The buffers' sizes `attention` relies on for its unchecked writes.
fn check_buffers(
    shape: AttentionShape,
    qkv: &[f32],
    key_mask: &[bool],
    context: &ContextOut,
    probs: Option<&[f32]>,
) {
    let AttentionShape {
        batch,
        seq,
        heads,
        head_dim,
    } = shape;
    let (hidden, row) = (heads * head_dim, 3 * heads * head_dim);
    assert!(
        qkv.len() >= batch * seq * row,
        "qkv holds fewer than batch·seq rows of 3·hidden"
    );
    assert_eq!(key_mask.len(), batch * seq, "one key-mask flag per token");
    let context_fits = match context {
        ContextOut::F32(values) => values.len() >= batch * seq * hidden,
        ContextOut::Rounded { pairs, stride, .. } => {
            head_dim % 2 == 0 && *stride >= hidden / 2 && pairs.len() >= batch * seq * stride
        }
    };
    assert!(context_fits, "context holds fewer than batch·seq rows");
    if let Some(probs) = probs {
        assert_eq!(
            probs.len(),
            batch * heads * seq * seq,
            "probs is [batch, heads, seq, seq]"
        );
    }
}

/// Where [`attention`] writes the context.
pub enum ContextOut<'a> {
    /// `[batch·seq, hidden]` values.
    F32(&'a mut [f32]),
    /// Rows of value pairs `stride` apart, head `h`'s (even) `head_dim`
    /// values made into `head_dim / 2` pairs at pair `h · head_dim / 2` by
    /// `round` (bf16 rows for the next product).
    Rounded {
        pairs: &'a mut [u32],
        stride: usize,
        round: fn(&[f32], &mut [u32]),
    },
}

/// Self-attention over a fused projection `qkv` = `[batch·seq, 3·hidden]` (query,
/// key and value blocks side by side). `key_mask` holds `batch·seq` flags, false for
/// padding keys. Writes the context `[batch·seq, hidden]` and, when `probs`
/// is given, the post-softmax probabilities `[batch, heads, seq, seq]`, as
/// `transformers`' eager attention (without, each task keeps its head's
/// scores in a buffer of its own, reused from head to head).
pub fn attention(
    qkv: &[f32],
    key_mask: &[bool],
    shape: AttentionShape,
    context: ContextOut,
    probs: Option<&mut [f32]>,
) {
    attention_on(qkv, key_mask, shape, context, probs, true);
}

/// [`attention`], each head fused on 16 lanes where `fused` and the CPU
/// runs it, else through the general products.
fn attention_on(
    qkv: &[f32],
    key_mask: &[bool],
    shape: AttentionShape,
    context: ContextOut,
    probs: Option<&mut [f32]>,
    fused: bool,
) {
    let AttentionShape {
        seq,
        heads,
        head_dim,
        ..
    } = shape;
    let hidden = heads * head_dim;
    let row = 3 * hidden;
    check_buffers(shape, qkv, key_mask, &context, probs.as_deref());
    let scale = 1.0 / (head_dim as f32).sqrt();
    /// The context's base pointer, shared by the (batch, head) tasks.
    #[derive(Clone, Copy)]
    enum ContextPtr {
        F32(*mut f32),
        Rounded(*mut u32, usize, fn(&[f32], &mut [u32])),
    }
    // SAFETY: each task writes only its own columns h·d..(h+1)·d (or pairs
    // h·d/2..(h+1)·d/2) of batch b's rows (disjoint regions), and the
    // context outlives the parallel loop.
    unsafe impl Send for ContextPtr {}
    unsafe impl Sync for ContextPtr {}
    let ctx_ptr = match context {
        ContextOut::F32(values) => ContextPtr::F32(values.as_mut_ptr()),
        ContextOut::Rounded {
            pairs,
            stride,
            round,
        } => ContextPtr::Rounded(pairs.as_mut_ptr(), stride, round),
    };
    let one_head = |task: usize, p: Option<&mut [f32]>, own: &mut Own| {
        let (b, h) = (task / heads, task % heads);
        let base = b * seq * row;
        let q = &qkv[base + h * head_dim..];
        let k = &qkv[base + hidden + h * head_dim..];
        let v = &qkv[base + 2 * hidden + h * head_dim..];
        let mask = &key_mask[b * seq..(b + 1) * seq];
        #[cfg(target_arch = "x86_64")]
        {
            let dest = match ctx_ptr {
                // SAFETY: this task alone writes columns h·d..(h+1)·d of batch b's rows.
                ContextPtr::F32(values) => Dest::F32 {
                    at: unsafe { values.add(b * seq * hidden + h * head_dim) },
                    stride: hidden,
                },
                // SAFETY: this task alone writes pairs h·d/2..(h+1)·d/2 of batch b's rows.
                ContextPtr::Rounded(pairs, stride, _) => Dest::Pairs {
                    at: unsafe { pairs.add(b * seq * stride + h * head_dim / 2) },
                    stride,
                },
            };
            if fused && lanes16::attention::available(&dest) {
                let head = Head {
                    q,
                    k,
                    v,
                    row,
                    seq,
                    dim: head_dim,
                    keys: mask,
                    scale,
                };
                // SAFETY: available; `dest` is this task's rows and columns
                // of the context (`check_buffers` bounds them).
                unsafe { lanes16::attention::run(head, dest, p, &mut own.fused) };
                return;
            }
        }
        let p = match p {
            Some(p) => p,
            None => {
                own.scores.resize(seq * seq, 0.0);
                &mut own.scores[..]
            }
        };
        // SAFETY: `check_buffers` bounds every index; strides describe
        // row-major views of `qkv` and `p`.
        unsafe {
            gemm::gemm(
                seq,
                seq,
                head_dim,
                p.as_mut_ptr(),
                1,
                seq as isize,
                false,
                q.as_ptr(),
                1,
                row as isize,
                k.as_ptr(),
                row as isize,
                1,
                0.0,
                scale,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for scores in p.chunks_mut(seq) {
            softmax_masked(scores, mask);
        }
        // The context goes straight to its columns, or to a buffer of this
        // task's to be rounded into its pairs.
        let (dst, dst_rs) = match ctx_ptr {
            // SAFETY: this task alone writes columns h·d..(h+1)·d of batch b's rows.
            ContextPtr::F32(values) => unsafe {
                (values.add(b * seq * hidden + h * head_dim), hidden)
            },
            ContextPtr::Rounded(..) => {
                own.context.resize(seq * head_dim, 0.0);
                (own.context.as_mut_ptr(), head_dim)
            }
        };
        // SAFETY: `dst` holds `seq` rows of `head_dim` values `dst_rs` apart.
        unsafe {
            gemm::gemm(
                seq,
                head_dim,
                seq,
                dst,
                1,
                dst_rs as isize,
                false,
                p.as_ptr(),
                1,
                seq as isize,
                v.as_ptr(),
                1,
                row as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        if let ContextPtr::Rounded(pairs, stride, round) = ctx_ptr {
            for (i, values) in own.context.chunks_exact(head_dim.max(1)).enumerate() {
                // SAFETY: this task alone writes pairs h·d/2..(h+1)·d/2 of
                // batch b's rows, within the buffer (`check_buffers`).
                let dst = unsafe {
                    let at = (b * seq + i) * stride + h * head_dim / 2;
                    std::slice::from_raw_parts_mut(pairs.add(at), head_dim / 2)
                };
                round(values, dst);
            }
        }
    };
    let tasks = shape.batch * heads;
    match probs {
        Some(probs) => probs
            .par_chunks_mut(seq * seq)
            .enumerate()
            .for_each_init(Own::default, |own, (task, p)| one_head(task, Some(p), own)),
        None => (0..tasks)
            .into_par_iter()
            .for_each_init(Own::default, |own, task| one_head(task, None, own)),
    }
}

/// A task's buffers in [`attention`], kept from head to head.
#[derive(Default)]
struct Own {
    /// The fused head's (16 lanes).
    #[cfg(target_arch = "x86_64")]
    fused: lanes16::attention::Scratch,
    /// A head's scores when the maps are not kept (general products).
    scores: Vec<f32>,
    /// A head's context before it is rounded into pairs.
    context: Vec<f32>,
}

/// Softmax of one row of scores; masked keys get exactly zero.
fn softmax_masked(scores: &mut [f32], mask: &[bool]) {
    if super::lanes16::softmax_masked(scores, mask) {
        return;
    }
    with_simd!(softmax_masked, fn(scores: &mut [f32], mask: &[bool]) {
        let max = lane_fold(scores, mask, f32::NEG_INFINITY, f32::max);
        for (s, &keep) in scores.iter_mut().zip(mask) {
            let e = exp(*s - max);
            *s = if keep { e } else { 0.0 };
        }
        let sum = lane_fold(scores, mask, 0.0, |a, b| a + b);
        if sum > 0.0 {
            let inv = 1.0 / sum;
            for s in scores.iter_mut() {
                *s *= inv;
            }
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

/// Fold the kept values of a row with 8 independent accumulators, so the
/// reduction vectorises (a single f32 accumulator forces sequential order).
#[inline(always)]
fn lane_fold(values: &[f32], mask: &[bool], init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut acc = [init; 8];
    let chunks = values.chunks_exact(8).zip(mask.chunks_exact(8));
    for (v, m) in chunks {
        for i in 0..8 {
            acc[i] = f(acc[i], if m[i] { v[i] } else { init });
        }
    }
    let tail = values.len() - values.len() % 8;
    let mut total = acc.into_iter().fold(init, &f);
    for (v, &keep) in values[tail..].iter().zip(&mask[tail..]) {
        if keep {
            total = f(total, *v);
        }
    }
    total
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
    fn softmax_masks_padding_exactly() {
        let mut row = vec![1.0, 2.0, 3.0];
        softmax_masked(&mut row, &[true, true, false]);
        let e = (1f32).exp();
        assert!((row[0] - 1.0 / (1.0 + e)).abs() < 1e-7);
        assert!((row[1] - e / (1.0 + e)).abs() < 1e-7);
        assert_eq!(row[2], 0.0);
    }

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

    /// The fused head and the general products give the same attention
    /// through [`attention`]: probabilities, `f32` context and bf16 pairs,
    /// with padding keys, at a width that is not a whole register.
    #[test]
    fn the_fused_and_general_attention_agree() {
        let (batch, seq, heads, head_dim) = (3, 37, 4, 10);
        let shape = AttentionShape {
            batch,
            seq,
            heads,
            head_dim,
        };
        let (hidden, rows) = (heads * head_dim, batch * seq);
        let qkv: Vec<f32> = (0..rows * 3 * hidden)
            .map(|i| ((i * 7919) % 997) as f32 / 249.25 - 2.0)
            .collect();
        // Sequence b has its last 5·b keys padded.
        let keys: Vec<bool> = (0..rows).map(|i| i % seq < seq - 5 * (i / seq)).collect();
        let run = |fused: bool| {
            let mut probs = vec![0f32; batch * heads * seq * seq];
            let mut context = vec![0f32; rows * hidden];
            let out = ContextOut::F32(&mut context);
            attention_on(&qkv, &keys, shape, out, Some(&mut probs), fused);
            let stride = hidden / 2 + 4;
            let mut pairs = vec![0u32; rows * stride];
            let round: fn(&[f32], &mut [u32]) = crate::model::grad_kernels::bf16_round_row;
            let out = ContextOut::Rounded {
                pairs: &mut pairs,
                stride,
                round,
            };
            attention_on(&qkv, &keys, shape, out, None, fused);
            (probs, context, pairs)
        };
        let (fused, general) = (run(true), run(false));
        for (n, (a, b)) in fused.0.iter().zip(&general.0).enumerate() {
            assert!(
                (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                "probability {n}: {a} vs {b}"
            );
            if *b == 0.0 {
                assert_eq!(*a, 0.0, "probability {n}: a padding key's");
            }
        }
        for (n, (a, b)) in fused.1.iter().zip(&general.1).enumerate() {
            assert!(
                (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                "context {n}: {a} vs {b}"
            );
        }
        // Each pair is its context's two values rounded (the f32 sums of the
        // two paths may differ in their last bits, so the pairs are checked
        // against each path's own f32 context).
        for (label, (_, context, pairs)) in [("fused", &fused), ("general", &general)] {
            let stride = hidden / 2 + 4;
            for r in 0..rows {
                for p in 0..hidden / 2 {
                    let bf = |x: f32| u32::from(half::bf16::from_f32(x).to_bits());
                    let (a, b) = (context[r * hidden + 2 * p], context[r * hidden + 2 * p + 1]);
                    let got = pairs[r * stride + p];
                    assert_eq!(got, bf(a) | bf(b) << 16, "{label}: pair [{r}, {p}]");
                }
            }
        }
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
