//! `BertAttention`: multi-head self-attention (`BertSelfAttention`, eager) and its
//! output projection with residual LayerNorm (`BertSelfOutput`).
//! Returns the post-softmax attention probabilities of every head.

use candle_core::Tensor;

use crate::checkpoint::Weights;
use crate::config::BertConfig;
use crate::error::Result;
use crate::model::dropout::{maybe, TrainDropout};
use crate::model::grad_kernels;
use crate::model::kernels::AttentionShape;
use crate::model::ops::{softmax, LayerNorm, Linear};
use crate::model::BatchMask;

/// What the composed forward of one attention block takes besides its input
/// (explanations, ablation on the differentiable path).
#[derive(Debug, Default, Clone, Copy)]
pub struct Probe<'a> {
    /// `[batch or 1, heads, 1, 1]`, multiplied onto each head's context
    /// before the output projection (0 ablates a head; a variable of ones
    /// gives each head's importance as its gradient).
    pub gate: Option<&'a Tensor>,
    /// A zero variable shaped like the probabilities, added to them: its
    /// gradient is the gradient with respect to the probabilities (candle
    /// keeps gradients of variables only).
    pub probs_grad: Option<&'a Tensor>,
}

/// The composed forward's output and what it observed on the way.
pub struct Probed {
    /// The block's output, `[batch·seq, hidden]`.
    pub out: Tensor,
    /// `[batch, heads, seq, seq]`.
    pub probs: Tensor,
    /// The query and key projections, `[batch·seq, hidden]` (bias added,
    /// not scaled); `None` where the layer ran without a probe (fused ops).
    pub query: Option<Tensor>,
    pub key: Option<Tensor>,
}

impl Probe<'_> {
    /// Whether the probe observes nothing (the fused ops may run).
    pub fn is_empty(&self) -> bool {
        self.gate.is_none() && self.probs_grad.is_none()
    }
}

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
        let projected = self.output_dense.forward(&context)?;
        let out = self
            .output_layer_norm
            .forward_residual(projected, x, dropout)?;
        Ok((out, probs))
    }

    /// The block's output at each sequence's first token (`[CLS]`, rows
    /// `cls` of `x`) only, `[batch, hidden]`: all a classifier's last layer
    /// needs. Keys and values still cover every token; the one query per
    /// sequence makes the attention a small product (composed candle ops).
    pub fn forward_cls(
        &self,
        x: &Tensor,
        cls: &Tensor,
        mask: &BatchMask,
        dropout: Option<&TrainDropout>,
    ) -> Result<Tensor> {
        let (b, s, nh, d) = (mask.batch, mask.seq, self.heads, self.head_dim);
        let heads = |t: Tensor, len: usize| -> Result<Tensor> {
            Ok(t.reshape((b, len, nh, d))?.transpose(1, 2)?.contiguous()?)
        };
        let q = heads(self.query.forward(cls)?, 1)?;
        let k = heads(self.key.forward(x)?, s)?;
        let v = heads(self.value.forward(x)?, s)?;
        let scores = (q.matmul(&k.t()?.contiguous()?)? * (1.0 / (d as f64).sqrt()))?;
        let probs = softmax(&scores.broadcast_add(&mask.additive(x.device())?)?)?;
        let dropped = maybe(dropout, probs, |d| d.attention)?;
        // `[batch, heads, 1, head_dim]` is already `[batch, hidden]` in memory.
        let context = dropped.matmul(&v)?.reshape((b, nh * d))?;
        let projected = self.output_dense.forward(&context)?;
        self.output_layer_norm
            .forward_residual(projected, cls, dropout)
    }

    /// The attention core, `[batch·seq, hidden]` → context and probabilities:
    /// one fused node on host `f32` (`grad_kernels::attention`), else
    /// composed candle ops. The dropout mask is drawn after the projections
    /// either way, so seeded runs agree.
    fn attend(
        &self,
        x: &Tensor,
        mask: &BatchMask,
        dropout: Option<&TrainDropout>,
    ) -> Result<(Tensor, Tensor)> {
        let additive = mask.additive(x.device())?;
        if !grad_kernels::fused_cpu(x) {
            let q = self.query.forward(x)?;
            let (k, v) = (self.key.forward(x)?, self.value.forward(x)?);
            return self.attend_composed((&q, &k, v), mask, &additive, (dropout, Probe::default()));
        }
        // One projection with the three weights stacked: one product, and one
        // gradient for `x` instead of three to add up.
        let (q, k, v) = (&self.query, &self.key, &self.value);
        let weight = Tensor::cat(&[&q.weight, &k.weight, &v.weight], 0)?;
        let bias = Tensor::cat(&[&q.bias, &k.bias, &v.bias], 0)?;
        let qkv = grad_kernels::linear(x, &weight, &bias)?;
        let shape = AttentionShape {
            batch: mask.batch,
            seq: mask.seq,
            heads: self.heads,
            head_dim: self.head_dim,
        };
        let probs = shape.batch * shape.heads * shape.seq * shape.seq;
        let keep = dropout.and_then(|d| d.draw(probs, d.attention));
        grad_kernels::attention(&qkv, &additive, shape, keep)
    }

    /// The block on composed candle ops, with a probe: every device, and
    /// the path explanations take (their gradients need the probabilities as
    /// a node of their own).
    pub fn forward_probed(&self, x: &Tensor, mask: &BatchMask, probe: Probe) -> Result<Probed> {
        let additive = mask.additive(x.device())?;
        let (query, key) = (self.query.forward(x)?, self.key.forward(x)?);
        let value = self.value.forward(x)?;
        let qkv = (&query, &key, value);
        let (context, probs) = self.attend_composed(qkv, mask, &additive, (None, probe))?;
        let projected = self.output_dense.forward(&context)?;
        let out = self
            .output_layer_norm
            .forward_residual(projected, x, None)?;
        Ok(Probed {
            out,
            probs,
            query: Some(query),
            key: Some(key),
        })
    }

    fn attend_composed(
        &self,
        (q, k, v): (&Tensor, &Tensor, Tensor),
        mask: &BatchMask,
        additive: &Tensor,
        (dropout, probe): (Option<&TrainDropout>, Probe),
    ) -> Result<(Tensor, Tensor)> {
        let (b, s, nh, d) = (mask.batch, mask.seq, self.heads, self.head_dim);
        let split = |t: &Tensor| -> Result<Tensor> {
            Ok(t.reshape((b, s, nh, d))?.transpose(1, 2)?.contiguous()?)
        };
        let (q, k, v) = (split(q)?, split(k)?, split(&v)?);
        let scores = (q.matmul(&k.t()?.contiguous()?)? * (1.0 / (d as f64).sqrt()))?;
        let probs = softmax(&scores.broadcast_add(additive)?)?;
        let observed = match probe.probs_grad {
            Some(zero) => (&probs + zero)?,
            None => probs.clone(),
        };
        let dropped = maybe(dropout, observed, |d| d.attention)?;
        let mut context = dropped.matmul(&v)?;
        if let Some(gate) = probe.gate {
            context = context.broadcast_mul(gate)?;
        }
        let context = context
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * s, nh * d))?;
        Ok((context, probs))
    }
}
