//! Building blocks shared by the BERT modules: linear layers, layer norm and
//! activations, each with a fast inference form and a differentiable form.

use candle_core::{Tensor, D};

use crate::checkpoint::Weights;
use crate::config::Activation;
use crate::error::Result;

/// How a forward pass may compute: fused CPU kernels (no gradients), or plain
/// candle ops that carry gradients and run on any device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compute {
    FusedCpu,
    Differentiable,
}

/// `nn.Linear`: `y = x Wᵀ + b`, on a 2-D input `[rows, in]`.
///
/// The weight is kept as the checkpoint stores it (`[out, in]`, what training
/// updates and saving writes) or, for inference, transposed once to a
/// contiguous `[in, out]` so the GEMM streams it without strided packing.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    pub bias: Tensor,
    transposed: bool,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Tensor) -> Self {
        Linear {
            weight,
            bias,
            transposed: false,
        }
    }

    pub fn load(ckpt: &dyn Weights, prefix: &str, out_dim: usize, in_dim: usize) -> Result<Self> {
        Ok(Linear::new(
            ckpt.get(&format!("{prefix}.weight"), &[out_dim, in_dim])?,
            ckpt.get(&format!("{prefix}.bias"), &[out_dim])?,
        ))
    }

    /// The weight as `[out, in]` (a view when stored transposed).
    pub fn weight(&self) -> Result<Tensor> {
        Ok(if self.transposed {
            self.weight.t()?
        } else {
            self.weight.clone()
        })
    }

    /// The weight as contiguous `[in, out]` data, when stored for inference.
    pub fn weight_in_out(&self) -> Option<&Tensor> {
        self.transposed.then_some(&self.weight)
    }

    /// Store the weight transposed for fast inference.
    pub fn for_inference(self) -> Result<Self> {
        if self.transposed {
            return Ok(self);
        }
        Ok(Linear {
            weight: self.weight.t()?.contiguous()?,
            bias: self.bias,
            transposed: true,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let w = if self.transposed {
            self.weight.clone()
        } else {
            self.weight.t()?
        };
        Ok(x.matmul(&w)?.broadcast_add(&self.bias)?)
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
    pub fn load(ckpt: &dyn Weights, prefix: &str, dim: usize, eps: f64) -> Result<Self> {
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

/// Apply the configured activation (the differentiable candle ops; the fused
/// CPU path applies activations in `kernels::activate`).
pub fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    Ok(match act {
        Activation::Gelu => x.gelu_erf()?,
        Activation::GeluTanh => x.gelu()?,
        Activation::Relu => x.relu()?,
        Activation::Silu => x.silu()?,
    })
}
