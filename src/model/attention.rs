//! `BertAttention`: multi-head self-attention (`BertSelfAttention`, eager) and its
//! output projection with residual LayerNorm (`BertSelfOutput`).
//! Returns the post-softmax attention probabilities of every head.

use candle_core::Tensor;

use crate::checkpoint::Weights;
use crate::config::BertConfig;
use crate::error::Result;
use crate::model::dropout::{maybe, TrainDropout};
use crate::model::ops::{softmax, Compute, LayerNorm, Linear};
use crate::model::BatchMask;

#[derive(Debug, Clone)]
pub struct BertAttention {
    pub query: Linear,
    pub key: Linear,
    pub value: Linear,
    pub output_dense: Linear,
    pub output_layer_norm: LayerNorm,
    heads: usize,
    head_dim: usize,
}

impl BertAttention {
    pub fn load(ckpt: &dyn Weights, config: &BertConfig, prefix: &str) -> Result<Self> {
        let h = config.hidden_size();
        Ok(BertAttention {
            query: Linear::load(ckpt, &format!("{prefix}.self.query"), h, h)?,
            key: Linear::load(ckpt, &format!("{prefix}.self.key"), h, h)?,
            value: Linear::load(ckpt, &format!("{prefix}.self.value"), h, h)?,
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
        let (q, k, v) = (
            self.query.forward(x)?,
            self.key.forward(x)?,
            self.value.forward(x)?,
        );
        let (q, k, v) = (split(q)?, split(k)?, split(v)?);
        let scores = (q.matmul(&k.t()?.contiguous()?)? * (1.0 / (d as f64).sqrt()))?;
        let scores = scores.broadcast_add(&mask.additive(x.device())?)?;
        let probs = softmax(&scores)?;
        let dropped = maybe(dropout, probs.clone(), |d| d.attention)?;
        let context = dropped
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * s, nh * d))?;
        Ok((context, probs))
    }
}
