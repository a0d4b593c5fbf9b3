//! Building blocks shared by the BERT modules: linear layers, layer norm and
//! activations, each with a fast inference form and a differentiable form.

use candle_core::{Tensor, D};

use crate::checkpoint::Checkpoint;
use crate::config::Activation;
use crate::error::Result;
use crate::model::kernels;

/// How a forward pass may compute: fused CPU kernels (no gradients), or plain
/// candle ops that carry gradients and run on any device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compute {
    FusedCpu,
    Differentiable,
}

/// `nn.Linear`: `y = x Wᵀ + b`, on a 2-D input `[rows, in]`.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    pub fn load(ckpt: &Checkpoint, prefix: &str, out_dim: usize, in_dim: usize) -> Result<Self> {
        Ok(Linear {
            weight: ckpt.get(&format!("{prefix}.weight"), &[out_dim, in_dim])?,
            bias: ckpt.get(&format!("{prefix}.bias"), &[out_dim])?,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(x.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?)
    }
}

/// `nn.LayerNorm` over the last dimension.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
    pub eps: f64,
}

impl LayerNorm {
    pub fn load(ckpt: &Checkpoint, prefix: &str, dim: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            weight: ckpt.get(&format!("{prefix}.weight"), &[dim])?,
            bias: ckpt.get(&format!("{prefix}.bias"), &[dim])?,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor, compute: Compute) -> Result<Tensor> {
        match compute {
            Compute::FusedCpu => Ok(candle_nn::ops::layer_norm(
                x,
                &self.weight,
                &self.bias,
                self.eps as f32,
            )?),
            Compute::Differentiable => {
                // candle's fused layer_norm has no backward pass: spell it out.
                let mean = x.mean_keepdim(D::Minus1)?;
                let centered = x.broadcast_sub(&mean)?;
                let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
                let normed = centered.broadcast_div(&(var + self.eps)?.sqrt()?)?;
                Ok(normed
                    .broadcast_mul(&self.weight)?
                    .broadcast_add(&self.bias)?)
            }
        }
    }
}

/// Apply the configured activation.
pub fn activate(x: &Tensor, act: Activation, compute: Compute) -> Result<Tensor> {
    Ok(match (act, compute) {
        (Activation::Gelu, Compute::FusedCpu) => kernels::gelu_erf(x)?,
        (Activation::Gelu, Compute::Differentiable) => x.gelu_erf()?,
        (Activation::GeluTanh, _) => x.gelu()?,
        (Activation::Relu, _) => x.relu()?,
        (Activation::Silu, _) => x.silu()?,
    })
}
