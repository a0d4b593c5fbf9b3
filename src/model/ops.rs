//! Building blocks shared by the BERT modules: linear layers, layer norm,
//! softmax and activations, each with a fast inference form and a
//! differentiable form. The differentiable form of each is chosen here, once:
//! fused CPU ops with a backward (`grad_kernels`) on host `f32` tensors,
//! composed candle ops on other devices and dtypes.

use candle_core::{Tensor, D};

use crate::checkpoint::Weights;
use crate::config::Activation;
use crate::error::Result;
use crate::model::dropout::{maybe, TrainDropout};
use crate::model::grad_kernels::{self, Gelu};
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
        linear(x, &self.weight, &self.bias)
    }

    /// `act(x Wᵀ + b)` (`BertIntermediate`, the masked-LM transform): GELU in
    /// the same fused node on host `f32` (`grad_kernels::linear_gelu`), else
    /// [`activate`] after [`Linear::forward`].
    pub fn forward_activated(&self, x: &Tensor, act: Activation) -> Result<Tensor> {
        let gelu = match act {
            Activation::Gelu => Some(Gelu::Erf),
            Activation::GeluTanh => Some(Gelu::Tanh),
            Activation::Relu | Activation::Silu => None,
        };
        match gelu {
            Some(kind) if grad_kernels::fused_cpu(x) => {
                grad_kernels::linear_gelu(x, &self.weight, &self.bias, kind)
            }
            _ => activate(&self.forward(x)?, act),
        }
    }
}

/// `x Wᵀ + b` with `W` `[out, in]`: one fused node on host `f32`
/// (`grad_kernels::linear`), else candle's matmul and bias add.
pub fn linear(x: &Tensor, weight: &Tensor, bias: &Tensor) -> Result<Tensor> {
    if grad_kernels::fused_cpu(x) {
        return grad_kernels::linear(x, weight, bias);
    }
    Ok(x.matmul(&weight.t()?)?.broadcast_add(bias)?)
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
    /// data (`kernels::layer_norm`), or differentiable: `grad_kernels::layer_norm`
    /// on host `f32`, else candle ops (candle's own fused `layer_norm` has no
    /// backward pass, so it is spelled out).
    pub fn forward(&self, x: &Tensor, compute: Compute) -> Result<Tensor> {
        match compute {
            Compute::FusedCpu => {
                let mut host = x.flatten_all()?.to_vec1::<f32>()?;
                let weight = self.weight.to_vec1::<f32>()?;
                let bias = self.bias.to_vec1::<f32>()?;
                kernels::layer_norm(&mut host, &weight, &bias, self.eps as f32);
                Ok(Tensor::from_vec(host, x.shape(), x.device())?)
            }
            Compute::Differentiable if grad_kernels::fused_cpu(x) => {
                grad_kernels::layer_norm(x, &self.weight, &self.bias, self.eps)
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

    /// `LayerNorm(dropout(branch) + residual)` on the differentiable path,
    /// with the hidden dropout when training (`BertSelfOutput`, `BertOutput`):
    /// one fused node on host `f32` (`grad_kernels::residual_layer_norm`),
    /// else dropout, addition and [`LayerNorm::forward`]. The mask is drawn at
    /// the same point either way, so seeded runs agree.
    pub fn forward_residual(
        &self,
        branch: Tensor,
        residual: &Tensor,
        dropout: Option<&TrainDropout>,
    ) -> Result<Tensor> {
        if !grad_kernels::fused_cpu(&branch) {
            let summed = (maybe(dropout, branch, |d| d.hidden)? + residual)?;
            return self.forward(&summed, Compute::Differentiable);
        }
        let keep = dropout.and_then(|d| d.draw(branch.elem_count(), d.hidden));
        let params = (&self.weight, &self.bias);
        grad_kernels::residual_layer_norm(&branch, keep, residual, params, self.eps)
    }
}

/// Softmax over the last dimension from differentiable ops (candle's
/// `softmax_last_dim` has no backward): the fused `grad_kernels::softmax` on
/// host `f32`, else composed candle ops. For output probabilities, and the
/// attention of the composed path (the fused path's is `kernels::softmax_masked`,
/// the fused CPU op's is inside `grad_kernels::attention`).
pub fn softmax(x: &Tensor) -> Result<Tensor> {
    if grad_kernels::fused_cpu(x) {
        return grad_kernels::softmax(x);
    }
    let max = x.max_keepdim(D::Minus1)?.detach();
    let exp = x.broadcast_sub(&max)?.exp()?;
    Ok(exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)?)
}

/// Apply the configured activation from candle ops: the differentiable path's
/// GELU/ReLU/SiLU where [`Linear::forward_activated`] has no fused form (the
/// fused path's are `kernels::activate`).
pub fn activate(x: &Tensor, act: Activation) -> Result<Tensor> {
    Ok(match act {
        Activation::Gelu => x.gelu_erf()?,
        Activation::GeluTanh => x.gelu()?,
        Activation::Relu => x.relu()?,
        Activation::Silu => x.silu()?,
    })
}
