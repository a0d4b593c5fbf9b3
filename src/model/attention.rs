//! `BertAttention`: multi-head self-attention (`BertSelfAttention`, eager) and its
//! output projection with residual LayerNorm (`BertSelfOutput`).
//! Returns the post-softmax attention probabilities of every head.

use candle_core::{Tensor, D};

use crate::checkpoint::Checkpoint;
use crate::config::BertConfig;
use crate::error::Result;
use crate::model::kernels::{self, AttentionShape};
use crate::model::ops::{Compute, LayerNorm, Linear};
use crate::model::BatchMask;

#[derive(Debug, Clone)]
pub struct BertAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    /// Query, key and value projections stacked, for one GEMM at inference.
    fused_qkv: Option<Linear>,
    pub output_dense: Linear,
    pub output_layer_norm: LayerNorm,
    heads: usize,
    head_dim: usize,
}

impl BertAttention {
    pub fn load(ckpt: &Checkpoint, config: &BertConfig, prefix: &str, fuse: bool) -> Result<Self> {
        let h = config.hidden_size();
        let query = Linear::load(ckpt, &format!("{prefix}.self.query"), h, h)?;
        let key = Linear::load(ckpt, &format!("{prefix}.self.key"), h, h)?;
        let value = Linear::load(ckpt, &format!("{prefix}.self.value"), h, h)?;
        let fused_qkv = if fuse {
            Some(Linear {
                weight: Tensor::cat(&[&query.weight, &key.weight, &value.weight], 0)?,
                bias: Tensor::cat(&[&query.bias, &key.bias, &value.bias], 0)?,
            })
        } else {
            None
        };
        Ok(BertAttention {
            query,
            key,
            value,
            fused_qkv,
            output_dense: Linear::load(ckpt, &format!("{prefix}.output.dense"), h, h)?,
            output_layer_norm: LayerNorm::load(
                ckpt,
                &format!("{prefix}.output.LayerNorm"),
                h,
                config.layer_norm_eps(),
            )?,
            heads: config.num_heads(),
            head_dim: config.head_dim(),
        })
    }

    /// `x`: `[batch·seq, hidden]`. Returns the block output and `[batch, heads, seq, seq]`.
    pub fn forward(
        &self,
        x: &Tensor,
        mask: &BatchMask,
        compute: Compute,
    ) -> Result<(Tensor, Tensor)> {
        let (context, probs) = match (compute, &self.fused_qkv) {
            (Compute::FusedCpu, Some(qkv)) => {
                let shape = AttentionShape {
                    batch: mask.batch,
                    seq: mask.seq,
                    heads: self.heads,
                    head_dim: self.head_dim,
                };
                kernels::attention(&qkv.forward(x)?, &mask.keep, &shape)?
            }
            _ => self.attend_differentiable(x, mask)?,
        };
        let projected = self.output_dense.forward(&context)?;
        let out = self.output_layer_norm.forward(&(projected + x)?, compute)?;
        Ok((out, probs))
    }

    fn attend_differentiable(&self, x: &Tensor, mask: &BatchMask) -> Result<(Tensor, Tensor)> {
        let (b, s, nh, d) = (mask.batch, mask.seq, self.heads, self.head_dim);
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((b, s, nh, d))?.transpose(1, 2)?.contiguous()?)
        };
        let q = split(self.query.forward(x)?)?;
        let k = split(self.key.forward(x)?)?;
        let v = split(self.value.forward(x)?)?;
        let scores = (q.matmul(&k.t()?.contiguous()?)? * (1.0 / (d as f64).sqrt()))?;
        let scores = scores.broadcast_add(&mask.additive(x.device())?)?;
        // softmax over the last dim built from differentiable ops.
        let max = scores.max_keepdim(D::Minus1)?.detach();
        let exp = scores.broadcast_sub(&max)?.exp()?;
        let probs = exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * s, nh * d))?;
        Ok((context, probs))
    }
}

impl BertAttention {
    pub fn is_fused(&self) -> bool {
        self.fused_qkv.is_some()
    }
}
