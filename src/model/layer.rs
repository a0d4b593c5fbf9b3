//! `BertLayer`: attention block, then the feed-forward block
//! (`BertIntermediate` + `BertOutput`) with residual LayerNorm.

use candle_core::Tensor;

use crate::checkpoint::Checkpoint;
use crate::config::{Activation, BertConfig};
use crate::error::Result;
use crate::model::attention::BertAttention;
use crate::model::ops::{activate, Compute, LayerNorm, Linear};
use crate::model::BatchMask;

#[derive(Debug, Clone)]
pub struct BertLayer {
    pub attention: BertAttention,
    pub intermediate: Linear,
    pub output: Linear,
    pub output_layer_norm: LayerNorm,
    activation: Activation,
}

impl BertLayer {
    pub fn load(ckpt: &Checkpoint, config: &BertConfig, index: usize, fuse: bool) -> Result<Self> {
        let p = format!("encoder.layer.{index}");
        let (h, i) = (config.hidden_size(), config.raw.intermediate_size);
        Ok(BertLayer {
            attention: BertAttention::load(ckpt, config, &format!("{p}.attention"), fuse)?,
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

    pub fn forward(
        &self,
        x: &Tensor,
        mask: &BatchMask,
        compute: Compute,
    ) -> Result<(Tensor, Tensor)> {
        let (attended, probs) = self.attention.forward(x, mask, compute)?;
        let inner = activate(
            &self.intermediate.forward(&attended)?,
            self.activation,
            compute,
        )?;
        let out = self.output.forward(&inner)?;
        let out = self
            .output_layer_norm
            .forward(&(out + &attended)?, compute)?;
        Ok((out, probs))
    }
}
