//! Building blocks shared by the BERT modules: linear layers, layer norm and
//! activations, each with a fast inference form and a differentiable form.

use candle_core::{Tensor, D};

use crate::checkpoint::Weights;
use crate::config::Activation;
use crate::error::Result;
use crate::model::kernels;

/// Which of the two forward paths a model was built for: the fused CPU
/// encoder (inference only, no gradients) or plain candle ops that carry
/// gradients and run on any device (training, CUDA). Chosen once, when the
/// model is built; see `BertModel::build`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compute {
    FusedCpu,
    Differentiable,
}

/// `nn.Linear`: `y = x Wᵀ + b` on a 2-D input `[rows, in]`, the weight as the
/// checkpoint stores it (`[out, in]`, what training updates and saving writes).
/// The fused encoder keeps its own transposed copy (`fused_encoder::FusedLinear`).
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl Linear {
    pub fn new(weight: Tensor, bias: Tensor) -> Self {
        Linear { weight, bias }
    }

    pub fn load(ckpt: &dyn Weights, prefix: &str, out_dim: usize, in_dim: usize) -> Result<Self> {
        Ok(Linear::new(
            ckpt.get(&format!("{prefix}.weight"), &[out_dim, in_dim])?,
            ckpt.get(&format!("{prefix}.bias"), &[out_dim])?,
        ))
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
    pub fn load(ckpt: &dyn Weights, prefix: &str, dim: usize, eps: f64) -> Result<Self> {
        Ok(LayerNorm {
            weight: ckpt.get(&format!("{prefix}.weight"), &[dim])?,
            bias: ckpt.get(&format!("{prefix}.bias"), &[dim])?,
            eps,
        })
    }

    /// The model's path decides the implementation: the fused kernel on host
    /// data (`kernels::layer_norm`), or differentiable candle ops (candle's own
    /// fused `layer_norm` has no backward pass, so it is spelled out).
    pub fn forward(&self, x: &Tensor, compute: Compute) -> Result<Tensor> {
        match compute {
            Compute::FusedCpu => {
                let mut host = x.flatten_all()?.to_vec1::<f32>()?;
                let weight = self.weight.to_vec1::<f32>()?;
                let bias = self.bias.to_vec1::<f32>()?;
                kernels::layer_norm(&mut host, &weight, &bias, self.eps as f32);
                Ok(Tensor::from_vec(host, x.shape(), x.device())?)
            }
            Compute::Differentiable => {
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

/// Softmax over the last dimension from differentiable ops (candle's
/// `softmax_last_dim` has no backward): the differentiable path's one softmax,
/// for attention and for output probabilities. The fused path's is
/// `kernels::softmax_masked`.
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let exp = x.broadcast_sub(&max)?.exp()?;
    Ok(exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)?)
}

/// Apply the configured activation: the differentiable path's one GELU/ReLU/SiLU
/// (the fused path's are `kernels::activate`).
pub fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    Ok(match act {
        Activation::Gelu => x.gelu_erf()?,
        Activation::GeluTanh => x.gelu()?,
        Activation::Relu => x.relu()?,
        Activation::Silu => x.silu()?,
    })
}
