//! `nn.Linear` as one op, optionally followed by GELU (`BertIntermediate`):
//! the bias rides in the GEMM, and the backward writes `dW` in the weight's
//! own `[out, in]` layout (candle's composed form transposes it back).

use std::sync::OnceLock;

use candle_core::{bail, CpuStorage, CustomOp3, Layout, Shape, Tensor};

use rayon::prelude::*;

use super::{
    bf16, by_blocks_with_sums, column_sums, gemm_strided, host, parallelism, rows, task_len,
    tensor_like, Gelu, Held, View,
};
use crate::model::cancel;
use crate::model::precision::{self, Precision};

/// `act(x Wᵀ + b)`: `(x, W, b)` with `x` `[.., in]`, `W` `[out, in]`, `b` `[out]`.
pub(super) struct LinearOp {
    gelu: Option<Gelu>,
    /// `gelu'(x Wᵀ + b)`, computed by a forward with GELU in the same pass as
    /// the activation (they share `erf`), for its backward.
    gelu_grad: OnceLock<Vec<f32>>,
    /// Products in bf16 (`--precision bf16`), fixed when the op is made.
    precision: Precision,
}

impl LinearOp {
    pub fn new(gelu: Option<Gelu>) -> Self {
        LinearOp {
            gelu,
            gelu_grad: OnceLock::new(),
            precision: precision::current(),
        }
    }

    /// `dst[m, n] (+)= lhs[m, k] · rhs[k, n]` in this op's precision, `dst`
    /// at strides `(rs, cs)`.
    fn product(
        &self,
        dims: (usize, usize, usize),
        dst: (&mut [f32], usize, usize),
        accumulate: bool,
        lhs: View,
        rhs: View,
    ) -> candle_core::Result<()> {
        match self.precision {
            Precision::Fp32 => {
                let threads = parallelism(dims.0 * dims.1 * dims.2);
                gemm_strided(dims, dst, accumulate, lhs, rhs, threads)
            }
            Precision::Bf16 => bf16::gemm(dims, dst, accumulate, lhs, rhs),
        }
    }

    /// GELU of `z`, its derivative kept for the backward; or `z` itself.
    fn activate(&self, mut z: Vec<f32>) -> candle_core::Result<Vec<f32>> {
        let Some(kind) = self.gelu else {
            return Ok(z);
        };
        let mut y = vec![0f32; z.len()];
        let len = task_len(1);
        y.par_chunks_mut(len)
            .zip(z.par_chunks_mut(len))
            .for_each(|(y, z)| rows::gelu_keeping_grad(z, kind, y));
        if self.gelu_grad.set(z).is_err() {
            bail!("linear: the op ran twice");
        }
        Ok(y)
    }

    /// The gradient of `x Wᵀ + b` through GELU, with its column sums (the
    /// bias gradient) taken in the same pass; nothing without GELU.
    fn pre_activation_grad(&self, dy: &[f32], out: usize) -> candle_core::Result<PreActivation> {
        if self.gelu.is_none() {
            return Ok(PreActivation {
                dz: None,
                bias: None,
            });
        }
        let Some(grad) = self.gelu_grad.get() else {
            bail!("linear: backward before forward")
        };
        if grad.len() != dy.len() {
            bail!("linear: {} gradients for {} outputs", dy.len(), grad.len());
        }
        let mut dz = vec![0f32; dy.len()];
        let bias = by_blocks_with_sums(&mut dz, out, out, |at, block, sums| {
            let end = at + block.len();
            rows::product(&dy[at..end], &grad[at..end], block);
            rows::column_sums(block, sums);
        });
        Ok(PreActivation {
            dz: Some(dz),
            bias: Some(bias),
        })
    }
}

/// The gradient before the activation and its column sums (`None`: the
/// output's own gradient, whose sums are taken only when the bias needs them).
struct PreActivation {
    dz: Option<Vec<f32>>,
    bias: Option<Vec<f32>>,
}

impl CustomOp3 for LinearOp {
    fn name(&self) -> &'static str {
        "fused-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        cancel::check()?;
        let (x, w, b) = (host(s1, l1)?, host(s2, l2)?, host(s3, l3)?);
        let (out, inner) = l2.shape().dims2()?;
        if l1.dims().last() != Some(&inner) || b.len() != out {
            let (x_dims, w_dims) = (l1.dims(), l2.dims());
            bail!(
                "linear: input {x_dims:?}, weight {w_dims:?}, {} biases",
                b.len()
            );
        }
        let n_rows = x.len() / inner.max(1);
        // Every row starts as the bias (no zero fill first); the product adds to it.
        let mut z = Vec::with_capacity(n_rows * out);
        for _ in 0..n_rows {
            z.extend_from_slice(b);
        }
        let (x_view, w_t) = ((x, inner, 1), (w, 1, inner));
        self.product((n_rows, out, inner), (&mut z, out, 1), true, x_view, w_t)?;
        let mut dims = l1.dims().to_vec();
        if let Some(last) = dims.last_mut() {
            *last = out;
        }
        Ok((CpuStorage::F32(self.activate(z)?), Shape::from(dims)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // Six linear layers per BERT layer, forward and backward: the step's cancel points.
        cancel::check()?;
        let dy = dy.contiguous()?;
        let (hx, hw, hdy) = (Held::of(x), Held::of(w), Held::of(&dy));
        let (xs, ws) = (hx.values()?, hw.values()?);
        let (out, inner) = w.dims2()?;
        let pre = self.pre_activation_grad(hdy.values()?, out)?;
        let dz = match &pre.dz {
            Some(dz) => dz.as_slice(),
            None => hdy.values()?,
        };
        let n_rows = xs.len() / inner.max(1);
        let mut dx = vec![0f32; n_rows * inner];
        self.product(
            (n_rows, inner, out),
            (&mut dx, inner, 1),
            false,
            (dz, out, 1),
            (ws, inner, 1),
        )?;
        // Weights that carry no gradient (explanations, frozen layers): no `dW`.
        if !w.track_op() && !b.track_op() {
            return Ok((Some(tensor_like(dx, x)?), None, None));
        }
        // dWᵀ[inner, out] = xᵀ · dz, written through dW's own `[out, inner]`
        // strides: gemm runs this order at full speed for every BERT shape,
        // where dzᵀ · x (the transposed left operand) ran at half speed for
        // the feed-forward's widening layer.
        let mut dw = vec![0f32; out * inner];
        self.product(
            (inner, out, n_rows),
            (&mut dw, 1, inner),
            false,
            (xs, 1, inner),
            (dz, out, 1),
        )?;
        Ok((
            Some(tensor_like(dx, x)?),
            Some(tensor_like(dw, w)?),
            Some(tensor_like(
                pre.bias.unwrap_or_else(|| column_sums(dz, out)),
                b,
            )?),
        ))
    }
}
