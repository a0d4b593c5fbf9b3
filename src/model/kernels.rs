//! Fused CPU kernels for inference: the attention core (scores, softmax and
//! context for every head at once, in parallel) and a parallel exact GELU.
//! They carry no gradients; training uses the differentiable path instead.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Storage, Tensor};
use rayon::prelude::*;

use crate::error::{BertError, Result};

/// A raw pointer that may cross threads: every task writes a disjoint region.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: used only for writes to disjoint column blocks, one per (batch, head) task.
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

/// Shapes of one attention call.
pub struct AttentionShape {
    pub batch: usize,
    pub seq: usize,
    pub heads: usize,
    pub head_dim: usize,
}

/// Self-attention over a fused projection `qkv` = `[batch·seq, 3·hidden]` (query,
/// key and value blocks side by side). `key_mask` holds `batch·seq` flags, false for
/// padding keys. Returns the context `[batch·seq, hidden]` and the post-softmax
/// probabilities `[batch, heads, seq, seq]`, as `transformers`' eager attention.
pub fn attention(
    qkv: &Tensor,
    key_mask: &[bool],
    shape: &AttentionShape,
) -> Result<(Tensor, Tensor)> {
    let AttentionShape {
        batch,
        seq,
        heads,
        head_dim,
    } = *shape;
    let hidden = heads * head_dim;
    let row = 3 * hidden;
    let qkv = qkv.contiguous()?;
    let (storage, layout) = qkv.storage_and_layout();
    let data = match &*storage {
        Storage::Cpu(CpuStorage::F32(data)) => &data[layout.start_offset()..],
        _ => {
            return Err(BertError::Unsupported(
                "fused attention needs f32 on the CPU".into(),
            ))
        }
    };
    if data.len() < batch * seq * row || key_mask.len() != batch * seq {
        return Err(BertError::Unsupported(
            "fused attention: inconsistent shapes".into(),
        ));
    }
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut probs = vec![0f32; batch * heads * seq * seq];
    let mut context = vec![0f32; batch * seq * hidden];
    let ctx_ptr = SharedMut(context.as_mut_ptr());
    probs
        .par_chunks_mut(seq * seq)
        .enumerate()
        .for_each(|(task, p)| {
            let (b, h) = (task / heads, task % heads);
            let base = b * seq * row;
            let q = &data[base + h * head_dim..];
            let k = &data[base + hidden + h * head_dim..];
            let v = &data[base + 2 * hidden + h * head_dim..];
            let mask = &key_mask[b * seq..(b + 1) * seq];
            // SAFETY: all pointers address in-bounds blocks checked above; strides
            // describe row-major views of `qkv`, `p` and this task's context columns.
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
            let ctx = ctx_ptr;
            // SAFETY: this task alone writes columns h·d..(h+1)·d of batch b's rows.
            unsafe {
                gemm::gemm(
                    seq,
                    head_dim,
                    seq,
                    ctx.0.add(b * seq * hidden + h * head_dim),
                    1,
                    hidden as isize,
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
        });
    let device = qkv.device();
    let context = Tensor::from_vec(context, (batch * seq, hidden), device)?;
    let probs = Tensor::from_vec(probs, (batch, heads, seq, seq), device)?;
    Ok((context, probs))
}

/// Softmax of one row of scores; masked keys get exactly zero.
fn softmax_masked(scores: &mut [f32], mask: &[bool]) {
    let mut max = f32::NEG_INFINITY;
    for (s, &keep) in scores.iter().zip(mask) {
        if keep && *s > max {
            max = *s;
        }
    }
    let mut sum = 0f32;
    for (s, &keep) in scores.iter_mut().zip(mask) {
        *s = if keep { (*s - max).exp() } else { 0.0 };
        sum += *s;
    }
    if sum > 0.0 {
        let inv = 1.0 / sum;
        scores.iter_mut().for_each(|s| *s *= inv);
    }
}

/// Exact (`erf`) GELU computed in parallel chunks.
struct GeluErf;

impl CustomOp1 for GeluErf {
    fn name(&self) -> &'static str {
        "bertscope-gelu-erf"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let CpuStorage::F32(data) = storage else {
            candle_core::bail!("gelu_erf kernel needs f32");
        };
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("gelu_erf kernel needs a contiguous input");
        };
        let input = &data[start..end];
        let mut out = vec![0f32; input.len()];
        out.par_chunks_mut(4096)
            .zip(input.par_chunks(4096))
            .for_each(|(o, i)| {
                for (y, &x) in o.iter_mut().zip(i) {
                    *y = 0.5
                        * x
                        * (1.0
                            + candle_core::cpu::erf::erf_f32(x * std::f32::consts::FRAC_1_SQRT_2));
                }
            });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

/// `gelu` as `transformers` computes it (`x · Φ(x)` with the exact `erf`).
pub fn gelu_erf(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&GeluErf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

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
    fn gelu_matches_candle() {
        let x = Tensor::arange(-50i64, 50, &Device::Cpu)
            .unwrap()
            .to_dtype(candle_core::DType::F32)
            .unwrap()
            .affine(0.1, 0.0)
            .unwrap();
        let ours: Vec<f32> = gelu_erf(&x).unwrap().to_vec1().unwrap();
        let theirs: Vec<f32> = x.gelu_erf().unwrap().to_vec1().unwrap();
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() < 1e-6, "{a} vs {b}");
        }
    }
}
