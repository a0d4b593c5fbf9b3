//! Softmax over the last dimension and dropout with a drawn mask, each as one
//! op whose backward reads only what it needs (the output; the mask).

use candle_core::{bail, CpuStorage, CustomOp1, Layout, Shape, Tensor};

use super::{by_blocks, check_rows, host, output, rows, tensor_like, Held};

/// Softmax over the last dimension; the backward reads the output alone.
pub(super) struct SoftmaxOp;

impl CustomOp1 for SoftmaxOp {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = host(s, l)?;
        let keys = l.dims().last().copied().unwrap_or(0);
        check_rows("softmax", x, keys)?;
        let mut y = vec![0f32; x.len()];
        by_blocks(&mut y, keys, |at, out| {
            let rows_in = x[at..at + out.len()].chunks_exact(keys);
            for (x_row, y_row) in rows_in.zip(out.chunks_exact_mut(keys)) {
                rows::softmax(x_row, None, 1.0, y_row);
            }
        });
        Ok(output(y, l))
    }

    /// `dx = y ⊙ (dy − Σ dy⊙y)`, row by row.
    fn bwd(&self, _x: &Tensor, y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let dy = dy.contiguous()?;
        let (hy, hdy) = (Held::of(y), Held::of(&dy));
        let (ys, dys) = (hy.values()?, hdy.values()?);
        let keys = y.dims().last().copied().unwrap_or(1).max(1);
        let mut dx = vec![0f32; ys.len()];
        by_blocks(&mut dx, keys, |at, out| {
            let end = at + out.len();
            let pairs = ys[at..end]
                .chunks_exact(keys)
                .zip(dys[at..end].chunks_exact(keys));
            for ((y_row, dy_row), dx_row) in pairs.zip(out.chunks_exact_mut(keys)) {
                rows::softmax_bwd(y_row, dy_row, 1.0, dx_row);
            }
        });
        Ok(Some(tensor_like(dx, y)?))
    }
}

/// Dropout with a mask drawn beforehand (`TrainDropout::draw`): `x ⊙ keep`.
pub(super) struct DropoutOp {
    pub keep: Vec<f32>,
}

impl DropoutOp {
    /// `values ⊙ keep`, in parallel.
    fn masked(&self, values: &[f32]) -> candle_core::Result<Vec<f32>> {
        if self.keep.len() != values.len() {
            bail!(
                "dropout: {} mask values for {}",
                self.keep.len(),
                values.len()
            );
        }
        let mut y = vec![0f32; values.len()];
        by_blocks(&mut y, 1, |at, out| {
            let end = at + out.len();
            rows::combine(&values[at..end], Some(&self.keep[at..end]), None, out)
        });
        Ok(y)
    }
}

impl CustomOp1 for DropoutOp {
    fn name(&self) -> &'static str {
        "fused-dropout"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        Ok(output(self.masked(host(s, l)?)?, l))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, dy: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let dy = dy.contiguous()?;
        let held = Held::of(&dy);
        Ok(Some(tensor_like(self.masked(held.values()?)?, x)?))
    }
}
