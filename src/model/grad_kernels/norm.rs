//! `nn.LayerNorm` over the last dimension as one op, alone or after dropout on
//! a residual branch and the residual connection (`BertSelfOutput`,
//! `BertOutput`). The weight and bias come packed as one `[2·dim]` tensor;
//! the backward recomputes each row's input, mean and 1/σ (cheaper than
//! keeping them).

use candle_core::{bail, CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use super::{by_blocks, by_blocks_with_sums, check_rows, host, output, rows, tensor_like, Held};

/// `LayerNorm(x)`, as a binary op `(x, [weight; bias])`; `LayerNorm(branch ⊙
/// keep + residual)`, as a ternary op `(branch, residual, [weight; bias])`.
pub(super) struct NormOp {
    eps: f32,
    /// Dropout on the branch, one value per element (ternary op only).
    keep: Option<Vec<f32>>,
}

/// The values of one call: the input (or branch), the residual, the packed
/// weight and bias.
struct Inputs<'a> {
    x: &'a [f32],
    residual: Option<&'a [f32]>,
    params: &'a [f32],
}

impl NormOp {
    pub fn new(eps: f64, keep: Option<Vec<f32>>) -> Self {
        NormOp {
            eps: eps as f32,
            keep,
        }
    }

    fn check(&self, inputs: &Inputs) -> candle_core::Result<usize> {
        let dim = inputs.params.len() / 2;
        check_rows("layer norm", inputs.x, dim)?;
        let n = inputs.x.len();
        if inputs.params.len() != 2 * dim
            || inputs.residual.is_some_and(|r| r.len() != n)
            || self.keep.as_ref().is_some_and(|k| k.len() != n)
        {
            bail!("layer norm: input, residual, dropout mask or parameters differ in size");
        }
        Ok(dim)
    }

    /// The layer norm's input at `at..at + len`: `x` itself, or
    /// `branch ⊙ keep + residual` written into `scratch`.
    fn input<'a>(
        &self,
        inputs: &Inputs<'a>,
        (at, len): (usize, usize),
        scratch: &'a mut Vec<f32>,
    ) -> &'a [f32] {
        let x = &inputs.x[at..at + len];
        let Some(residual) = inputs.residual else {
            return x;
        };
        scratch.resize(len, 0.0);
        let keep = self.keep.as_ref().map(|k| &k[at..at + len]);
        rows::combine(x, keep, Some(&residual[at..at + len]), scratch);
        scratch
    }

    fn forward(&self, inputs: &Inputs) -> candle_core::Result<Vec<f32>> {
        let dim = self.check(inputs)?;
        let (w, b) = inputs.params.split_at(dim);
        let mut y = vec![0f32; inputs.x.len()];
        by_blocks(&mut y, dim, |at, out| {
            let mut scratch = Vec::new();
            let x = self.input(inputs, (at, out.len()), &mut scratch);
            rows::layer_norm(x, w, b, self.eps, out)
        });
        Ok(y)
    }

    /// The gradients of the layer norm's input and of `[weight; bias]`.
    fn backward(&self, inputs: &Inputs, dy: &[f32]) -> candle_core::Result<(Vec<f32>, Vec<f32>)> {
        let dim = self.check(inputs)?;
        let w = &inputs.params[..dim];
        let mut dx = vec![0f32; inputs.x.len()];
        let dparams = by_blocks_with_sums(&mut dx, dim, 2 * dim, |at, out, sums| {
            let mut scratch = Vec::new();
            let x = self.input(inputs, (at, out.len()), &mut scratch);
            let (dw, db) = sums.split_at_mut(dim);
            let dy = &dy[at..at + out.len()];
            rows::layer_norm_bwd(x, dy, w, self.eps, out, (dw, db))
        });
        Ok((dx, dparams))
    }

    /// The branch's gradient, the input's through the dropout mask (none
    /// without dropout: then it is the input's).
    fn branch_grad(&self, dx: &[f32]) -> Option<Vec<f32>> {
        let keep = self.keep.as_ref()?;
        let mut d_branch = vec![0f32; dx.len()];
        by_blocks(&mut d_branch, 1, |at, out| {
            let end = at + out.len();
            rows::combine(&dx[at..end], Some(&keep[at..end]), None, out)
        });
        Some(d_branch)
    }
}

impl CustomOp2 for NormOp {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let inputs = Inputs {
            x: host(s1, l1)?,
            residual: None,
            params: host(s2, l2)?,
        };
        Ok(output(self.forward(&inputs)?, l1))
    }

    fn bwd(
        &self,
        x: &Tensor,
        params: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let held = [x, params, &dy].map(Held::of);
        let inputs = Inputs {
            x: held[0].values()?,
            residual: None,
            params: held[1].values()?,
        };
        let (dx, dparams) = self.backward(&inputs, held[2].values()?)?;
        Ok((
            Some(tensor_like(dx, x)?),
            Some(tensor_like(dparams, params)?),
        ))
    }
}

impl CustomOp3 for NormOp {
    fn name(&self) -> &'static str {
        "fused-residual-layer-norm"
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
        let inputs = Inputs {
            x: host(s1, l1)?,
            residual: Some(host(s2, l2)?),
            params: host(s3, l3)?,
        };
        Ok(output(self.forward(&inputs)?, l1))
    }

    fn bwd(
        &self,
        branch: &Tensor,
        residual: &Tensor,
        params: &Tensor,
        _y: &Tensor,
        dy: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dy = dy.contiguous()?;
        let held = [branch, residual, params, &dy].map(Held::of);
        let inputs = Inputs {
            x: held[0].values()?,
            residual: Some(held[1].values()?),
            params: held[2].values()?,
        };
        let (dx, dparams) = self.backward(&inputs, held[3].values()?)?;
        let d_branch = self.branch_grad(&dx);
        let d_residual = tensor_like(dx, residual)?;
        let d_branch = match d_branch {
            Some(d) => tensor_like(d, branch)?,
            None => d_residual.clone(),
        };
        Ok((
            Some(d_branch),
            Some(d_residual),
            Some(tensor_like(dparams, params)?),
        ))
    }
}
