//! The attention core of the inference encoder: softmax(q·kᵀ·scale, padding
//! keys out)·v for every (sequence, head) of a fused `q|k|v` projection, in
//! parallel, as `transformers`' eager attention. Each head runs fused on 16
//! lanes (`lanes16::attention`) where the CPU has AVX-512F, else through
//! general products and a row softmax.

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use crate::model::lanes16::{
    self,
    attention::{Dest, Head},
};

use super::{exp, with_simd};

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
    if crate::model::lanes16::softmax_masked(scores, mask) {
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

#[cfg(test)]
mod tests;
