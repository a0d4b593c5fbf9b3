//! `BertLayer`: attention block, then the feed-forward block
//! (`BertIntermediate` + `BertOutput`) with residual LayerNorm.

use candle_core::Tensor;

use crate::checkpoint::Weights;
use crate::config::{Activation, BertConfig};
use crate::error::Result;
use crate::model::attention::{BertAttention, Probe, Probed};
use crate::model::dropout::TrainDropout;
use crate::model::ops::{LayerNorm, Linear};
use crate::model::{first_tokens, BatchMask};

#[derive(Debug, Clone)]
pub struct BertLayer {
    pub attention: BertAttention,
    pub intermediate: Linear,
    pub output: Linear,
    pub output_layer_norm: LayerNorm,
    activation: Activation,
}

impl BertLayer {
    pub fn load(ckpt: &dyn Weights, config: &BertConfig, index: usize) -> Result<Self> {
        let p = format!("encoder.layer.{index}");
        let (h, i) = (config.hidden_size(), config.raw.intermediate_size);
        Ok(BertLayer {
            attention: BertAttention::load(ckpt, config, &format!("{p}.attention"))?,
            intermediate: Linear::load(ckpt, &format!("{p}.intermediate.dense"), i, h)?,
            output: Linear::load(ckpt, &format!("{p}.output.dense"), h, i)?,
            output_layer_norm: LayerNorm::load(
                ckpt,
                &format!("{p}.output.LayerNorm"),
                h,
                config.layer_norm_eps(),
            )?,
            activation: config.activation,
        })
    }

    /// The differentiable forward (any device, gradients flow).
    pub fn forward(
        &self,
        x: &Tensor,
        mask: &BatchMask,
        dropout: Option<&TrainDropout>,
    ) -> Result<(Tensor, Tensor)> {
        let (attended, probs) = self.attention.forward(x, mask, dropout)?;
        let inner = self
            .intermediate
            .forward_activated(&attended, self.activation)?;
        let out = self.output.forward(&inner)?;
        let out = self
            .output_layer_norm
            .forward_residual(out, &attended, dropout)?;
        Ok((out, probs))
    }

    /// [`forward`](Self::forward) at each sequence's `[CLS]` only,
    /// `[batch, hidden]` (the last layer of a classifier in training).
    pub fn forward_cls(
        &self,
        x: &Tensor,
        mask: &BatchMask,
        dropout: Option<&TrainDropout>,
    ) -> Result<Tensor> {
        let cls = first_tokens(x, mask)?;
        let attended = self.attention.forward_cls(x, &cls, mask, dropout)?;
        let inner = self
            .intermediate
            .forward_activated(&attended, self.activation)?;
        let out = self.output.forward(&inner)?;
        self.output_layer_norm
            .forward_residual(out, &attended, dropout)
    }

    /// [`forward`](Self::forward) on composed ops with a probe on the
    /// attention (no dropout): `out` is the layer's output.
    pub fn forward_probed(&self, x: &Tensor, mask: &BatchMask, probe: Probe) -> Result<Probed> {
        let mut probed = self.attention.forward_probed(x, mask, probe)?;
        let attended = probed.out;
        let inner = self
            .intermediate
            .forward_activated(&attended, self.activation)?;
        let out = self.output.forward(&inner)?;
        probed.out = self
            .output_layer_norm
            .forward_residual(out, &attended, None)?;
        Ok(probed)
    }

    pub fn activation(&self) -> Activation {
        self.activation
    }
}
