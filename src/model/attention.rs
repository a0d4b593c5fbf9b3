//! `BertAttention`: multi-head self-attention (`BertSelfAttention`, eager) and its
//! output projection with residual LayerNorm (`BertSelfOutput`).
//! Returns the post-softmax attention probabilities of every head.

use candle_core::{Tensor, D};

use crate::checkpoint::Weights;
use crate::config::BertConfig;
use crate::error::Result;
use crate::model::dropout::{maybe, TrainDropout};
use crate::model::ops::{Compute, LayerNorm, Linear};
use crate::model::BatchMask;

/// The query, key and value projections.
#[derive(Debug, Clone)]
pub enum Projections {
    /// As in the checkpoint (`self.query`, `self.key`, `self.value`): for training.
    Separate {
        query: Linear,
        key: Linear,
        value: Linear,
    },
    /// Stacked `[query; key; value]` for one GEMM at inference.
    Fused(Linear),
}

#[derive(Debug, Clone)]
pub struct BertAttention {
    pub projections: Projections,
    pub output_dense: Linear,
    pub output_layer_norm: LayerNorm,
    heads: usize,
    head_dim: usize,
}

impl BertAttention {
    pub fn load(ckpt: &dyn Weights, config: &BertConfig, prefix: &str, fuse: bool) -> Result<Self> {
        let h = config.hidden_size();
        let query = Linear::load(ckpt, &format!("{prefix}.self.query"), h, h)?;
        let key = Linear::load(ckpt, &format!("{prefix}.self.key"), h, h)?;
        let value = Linear::load(ckpt, &format!("{prefix}.self.value"), h, h)?;
        let mut output_dense = Linear::load(ckpt, &format!("{prefix}.output.dense"), h, h)?;
        let projections = if fuse {
            output_dense = output_dense.for_inference()?;
            let weights = [query.weight()?, key.weight()?, value.weight()?];
            let stacked = Linear::new(
                Tensor::cat(&weights, 0)?,
                Tensor::cat(&[&query.bias, &key.bias, &value.bias], 0)?,
            );
            Projections::Fused(stacked.for_inference()?)
        } else {
            Projections::Separate { query, key, value }
        };
        Ok(BertAttention {
            projections,
            output_dense,
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
    /// `dropout`: training only, on the attention probabilities and the output.
    pub fn forward(
        &self,
        x: &Tensor,
        mask: &BatchMask,
        dropout: Option<&TrainDropout>,
    ) -> Result<(Tensor, Tensor)> {
        let (context, probs) = self.attend(x, mask, dropout)?;
        let projected = maybe(dropout, self.output_dense.forward(&context)?, |d| d.hidden)?;
        let out = self
            .output_layer_norm
            .forward(&(projected + x)?, Compute::Differentiable)?;
        Ok((out, probs))
    }

    fn attend(
        &self,
        x: &Tensor,
        mask: &BatchMask,
        dropout: Option<&TrainDropout>,
    ) -> Result<(Tensor, Tensor)> {
        let (b, s, nh, d) = (mask.batch, mask.seq, self.heads, self.head_dim);
        let split = |t: Tensor| -> Result<Tensor> {
            Ok(t.reshape((b, s, nh, d))?.transpose(1, 2)?.contiguous()?)
        };
        let (q, k, v) = match &self.projections {
            Projections::Separate { query, key, value } => {
                (query.forward(x)?, key.forward(x)?, value.forward(x)?)
            }
            Projections::Fused(stacked) => {
                let qkv = stacked.forward(x)?;
                let h = nh * d;
                (
                    qkv.narrow(1, 0, h)?,
                    qkv.narrow(1, h, h)?,
                    qkv.narrow(1, 2 * h, h)?,
                )
            }
        };
        let (q, k, v) = (split(q)?, split(k)?, split(v)?);
        let scores = (q.matmul(&k.t()?.contiguous()?)? * (1.0 / (d as f64).sqrt()))?;
        let scores = scores.broadcast_add(&mask.additive(x.device())?)?;
        // softmax over the last dim built from differentiable ops.
        let max = scores.max_keepdim(D::Minus1)?.detach();
        let exp = scores.broadcast_sub(&max)?.exp()?;
        let probs = exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)?;
        let dropped = maybe(dropout, probs.clone(), |d| d.attention)?;
        let context = dropped
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * s, nh * d))?;
        Ok((context, probs))
    }
}

impl BertAttention {
    /// The stacked query/key/value projection, when built for fused inference.
    pub fn fused_qkv(&self) -> Option<&Linear> {
        match &self.projections {
            Projections::Fused(stacked) => Some(stacked),
            Projections::Separate { .. } => None,
        }
    }
}
