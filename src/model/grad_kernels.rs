//! Fused, multi-threaded CPU ops with a backward pass, for the differentiable
//! (training) path on `f32` host tensors: linear (+ GELU), layer norm
//! (+ dropout and residual), softmax, dropout and the attention core (scores,
//! masked softmax, dropout, context). Each is a candle custom op: one graph
//! node, one allocation and one parallel pass where candle composes many
//! small single-threaded ops, each with its own node, allocation and gradient
//! accumulation in the backward. `ops`, `dropout` and `attention` pick them
//! where [`fused_cpu`] holds and keep the composed candle ops everywhere else.

mod attention;
mod bf16;
mod dense;
mod norm;
mod rows;
mod rowwise;

use std::sync::{Arc, OnceLock};

use candle_core::{bail, CpuStorage, DType, Layout, Shape, Storage, StorageRef, Tensor};
use rayon::prelude::*;

use crate::error::Result;
use crate::model::kernels::{parallelism, AttentionShape};
pub use bf16::available as bf16_available;
pub use bf16::gemm as bf16_gemm;
pub use bf16::kernel_times as bf16_kernel_times;
pub use bf16::{amx_not_taken_because, cpu_has_amx};
pub use bf16::{
    gemm_with as bf16_gemm_with, kernel as bf16_kernel, product as bf16_product,
    round_row as bf16_round_row, Bf16Rows, Epilogue as Bf16Epilogue, Finish as Bf16Finish,
    Kernel as Bf16Kernel, KernelTimes as Bf16KernelTimes, Lhs as Bf16Lhs, Out as Bf16Out,
    PackedB as Bf16PackedB, Rhs as Bf16Rhs,
};
pub use rows::Gelu;

/// Values per parallel task: enough to amortise the scheduling. It depends on
/// the shape alone, so the column sums are added in the same order (and give
/// the same bits) whatever the thread count.
const TASK_VALUES: usize = 1 << 14;

/// Whether the fused ops can run on `x`: host memory and `f32` (custom ops
/// have no CUDA kernels here, and the kernels are written for `f32`).
pub fn fused_cpu(x: &Tensor) -> bool {
    x.device().is_cpu() && x.dtype() == DType::F32
}

/// The values of a contiguous `f32` host storage.
fn host<'a>(storage: &'a CpuStorage, layout: &Layout) -> candle_core::Result<&'a [f32]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("fused CPU op: expected a contiguous tensor")
    };
    Ok(&storage.as_slice::<f32>()?[start..end])
}

/// A tensor's storage, read-locked, for reading its values in a backward pass.
struct Held<'a> {
    storage: StorageRef<'a>,
    layout: &'a Layout,
}

impl<'a> Held<'a> {
    fn of(t: &'a Tensor) -> Self {
        let (storage, layout) = t.storage_and_layout();
        Held { storage, layout }
    }

    fn values(&self) -> candle_core::Result<&[f32]> {
        match &*self.storage {
            Storage::Cpu(cpu) => host(cpu, self.layout),
            _ => bail!("fused CPU op: a tensor is not in host memory"),
        }
    }
}

fn output(values: Vec<f32>, layout: &Layout) -> (CpuStorage, Shape) {
    (CpuStorage::F32(values), layout.shape().clone())
}

fn tensor_like(values: Vec<f32>, like: &Tensor) -> candle_core::Result<Tensor> {
    Tensor::from_vec(values, like.shape(), like.device())
}

/// Whole rows of `dim` values per parallel task.
fn task_len(dim: usize) -> usize {
    (TASK_VALUES / dim.max(1)).max(1) * dim.max(1)
}

/// Fill `out` by blocks of whole rows in parallel: `f(offset, block)`.
fn by_blocks(out: &mut [f32], dim: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    let len = task_len(dim);
    out.par_chunks_mut(len)
        .enumerate()
        .for_each(|(i, block)| f(i * len, block));
}

/// Like [`by_blocks`], each block also adding into its own zeroed `f64` row
/// of `width` sums; returns the sums of all blocks, added in block order.
fn by_blocks_with_sums(
    out: &mut [f32],
    dim: usize,
    width: usize,
    f: impl Fn(usize, &mut [f32], &mut [f64]) + Sync,
) -> Vec<f32> {
    let len = task_len(dim);
    let partials: Vec<Vec<f64>> = out
        .par_chunks_mut(len)
        .enumerate()
        .map(|(i, block)| {
            let mut sums = vec![0f64; width];
            f(i * len, block, &mut sums);
            sums
        })
        .collect();
    add_partials(&partials, width)
}

/// Column sums of the rows of `dy` (`dim` values each), in parallel.
fn column_sums(dy: &[f32], dim: usize) -> Vec<f32> {
    let partials: Vec<Vec<f64>> = dy
        .par_chunks(task_len(dim))
        .map(|block| {
            let mut sums = vec![0f64; dim];
            rows::column_sums(block, &mut sums);
            sums
        })
        .collect();
    add_partials(&partials, dim)
}

/// The blocks' partial sums added in block order, rounded to `f32`.
fn add_partials(partials: &[Vec<f64>], width: usize) -> Vec<f32> {
    let mut total = vec![0f64; width];
    for part in partials {
        total.iter_mut().zip(part).for_each(|(t, p)| *t += p);
    }
    total.into_iter().map(|v| v as f32).collect()
}

/// Check that `x` holds whole rows of `dim` values.
fn check_rows(op: &str, x: &[f32], dim: usize) -> candle_core::Result<()> {
    if dim == 0 || !x.len().is_multiple_of(dim) {
        bail!("{op}: {} values are not rows of {dim}", x.len());
    }
    Ok(())
}

/// A strided matrix operand: its values from the first element on, its row
/// stride and its column stride.
type View<'a> = (&'a [f32], usize, usize);

/// `dst[m, n] (+)= lhs[m, k] · rhs[k, n]`, `dst` row-major; on several
/// threads when `threaded` and the product is large enough.
fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    lhs: View,
    rhs: View,
    threaded: bool,
) -> candle_core::Result<()> {
    let threads = match threaded {
        true => parallelism(m * n * k),
        false => gemm::Parallelism::None,
    };
    gemm_strided((m, n, k), (dst, n, 1), accumulate, lhs, rhs, threads)
}

/// The one call into `gemm`, every stride checked against its slice first.
fn gemm_strided(
    (m, n, k): (usize, usize, usize),
    (dst, dst_rs, dst_cs): (&mut [f32], usize, usize),
    accumulate: bool,
    lhs: View,
    rhs: View,
    threads: gemm::Parallelism,
) -> candle_core::Result<()> {
    let reach = |len: usize, rs: usize, cs: usize, rows: usize, cols: usize| {
        rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < len
    };
    let operand = |(data, rs, cs): View, rows, cols| reach(data.len(), rs, cs, rows, cols);
    if !reach(dst.len(), dst_rs, dst_cs, m, n) || !operand(lhs, m, k) || !operand(rhs, k, n) {
        bail!("matmul: operands smaller than their shapes");
    }
    // SAFETY: the checks above bound every index the strides reach; `dst` is
    // borrowed mutably, so it cannot alias the operands.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            dst_cs as isize,
            dst_rs as isize,
            accumulate,
            lhs.0.as_ptr(),
            lhs.2 as isize,
            lhs.1 as isize,
            rhs.0.as_ptr(),
            rhs.2 as isize,
            rhs.1 as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            threads,
        );
    }
    Ok(())
}

/// `x Wᵀ + b` over the last dimension of `x` (`nn.Linear`, `W` `[out, in]`).
pub fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    let op = dense::LinearOp::new(None);
    Ok(x.contiguous()?
        .apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)?)
}

/// `gelu(x Wᵀ + b)`: `BertIntermediate` in one node.
pub fn linear_gelu(x: &Tensor, weight: &Tensor, bias: &Tensor, kind: Gelu) -> Result<Tensor> {
    let op = dense::LinearOp::new(Some(kind));
    Ok(x.contiguous()?
        .apply_op3(&weight.contiguous()?, &bias.contiguous()?, op)?)
}

/// `nn.LayerNorm` over the last dimension.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let op = norm::NormOp::new(eps, None);
    Ok(x.contiguous()?
        .apply_op2(&Tensor::cat(&[weight, bias], 0)?, op)?)
}

/// `LayerNorm(branch ⊙ keep + residual)` over the last dimension: dropout on
/// a residual branch (`keep`, one value per element, if training), the
/// residual connection and the layer norm (`BertSelfOutput`, `BertOutput`).
pub fn residual_layer_norm(
    branch: &Tensor,
    keep: Option<Vec<f32>>,
    residual: &Tensor,
    (weight, bias): (&Tensor, &Tensor),
    eps: f64,
) -> Result<Tensor> {
    let op = norm::NormOp::new(eps, keep);
    let params = Tensor::cat(&[weight, bias], 0)?;
    Ok(branch
        .contiguous()?
        .apply_op3(&residual.contiguous()?, &params, op)?)
}

/// Softmax over the last dimension.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1(rowwise::SoftmaxOp)?)
}

/// `x ⊙ keep`: dropout with a mask already drawn (one value per element).
pub fn dropout(x: &Tensor, keep: Vec<f32>) -> Result<Tensor> {
    Ok(x.contiguous()?.apply_op1(rowwise::DropoutOp { keep })?)
}

/// The attention core as one node: per head, `softmax(q kᵀ/√head_dim + mask)`,
/// dropout (`keep`, `[batch, heads, seq, seq]`) and the product with `v`.
/// `qkv`: the packed projections `[batch·seq, 3·hidden]` (`q | k | v` in each
/// row, what one linear layer with the three weights stacked gives); `mask`:
/// additive `[batch, 1, 1, seq]`. Returns the context `[batch·seq, hidden]`
/// and the probabilities before dropout, `[batch, heads, seq, seq]` (the
/// attention maps; no gradient flows back through them).
pub fn attention(
    qkv: &Tensor,
    mask: &Tensor,
    shape: AttentionShape,
    keep: Option<Vec<f32>>,
) -> Result<(Tensor, Tensor)> {
    let probs = Arc::new(OnceLock::new());
    let op = attention::AttentionOp {
        shape,
        scale: (1.0 / (shape.head_dim as f64).sqrt()) as f32,
        mask: mask.flatten_all()?.to_vec1::<f32>()?,
        keep,
        probs: Arc::clone(&probs),
    };
    let context = qkv.contiguous()?.apply_op1(op)?;
    match probs.get() {
        Some(probs) => Ok((context, probs.clone())),
        None => Err(candle_core::Error::Msg("attention: no probabilities".into()).into()),
    }
}
