//! Task heads on top of the encoder: `BertPooler`, the masked-LM head
//! (`BertOnlyMLMHead`, decoder tied to the word embeddings when absent) and the
//! sequence-classification head of `BertForSequenceClassification`.

use candle_core::Tensor;

use crate::checkpoint::Weights;
use crate::config::{Activation, BertConfig};
use crate::error::Result;
use crate::model::ops::{linear, Compute, LayerNorm, Linear};

/// `BertPooler`: dense + tanh on each sequence's first (`[CLS]`) token.
#[derive(Debug, Clone)]
pub struct BertPooler {
    pub dense: Linear,
}

impl BertPooler {
    pub fn load(ckpt: &dyn Weights, config: &BertConfig) -> Result<Option<Self>> {
        if !ckpt.contains("pooler.dense.weight") {
            return Ok(None);
        }
        let h = config.hidden_size();
        Ok(Some(BertPooler {
            dense: Linear::load(ckpt, "pooler.dense", h, h)?,
        }))
    }

    /// `cls_rows`: `[batch, hidden]`.
    pub fn forward(&self, cls_rows: &Tensor) -> Result<Tensor> {
        Ok(self.dense.forward(cls_rows)?.tanh()?)
    }
}

/// `BertLMPredictionHead`: transform (dense, activation, LayerNorm) then decoder.
#[derive(Debug, Clone)]
pub struct MlmHead {
    pub transform: Linear,
    pub layer_norm: LayerNorm,
    /// `[vocab, hidden]`: `cls.predictions.decoder.weight`, or the word embeddings.
    pub decoder: Tensor,
    pub bias: Tensor,
    activation: Activation,
}

impl MlmHead {
    pub fn load(
        ckpt: &dyn Weights,
        config: &BertConfig,
        word_embeddings: &Tensor,
    ) -> Result<Option<Self>> {
        if !ckpt.has_prefix("cls.predictions.") {
            return Ok(None);
        }
        let (h, v) = (config.hidden_size(), config.raw.vocab_size);
        let decoder = match ckpt.get_opt("cls.predictions.decoder.weight", &[v, h])? {
            Some(w) => w,
            None => word_embeddings.clone(),
        };
        let bias = match ckpt.get_opt("cls.predictions.bias", &[v])? {
            Some(b) => b,
            None => Tensor::zeros(v, candle_core::DType::F32, word_embeddings.device())?,
        };
        Ok(Some(MlmHead {
            transform: Linear::load(ckpt, "cls.predictions.transform.dense", h, h)?,
            layer_norm: LayerNorm::load(
                ckpt,
                "cls.predictions.transform.LayerNorm",
                h,
                config.layer_norm_eps(),
            )?,
            decoder,
            bias,
            activation: config.activation,
        }))
    }

    /// `rows`: `[n, hidden]` hidden states → `[n, vocab]` logits.
    pub fn forward(&self, rows: &Tensor, compute: Compute) -> Result<Tensor> {
        let x = self.transform.forward_activated(rows, self.activation)?;
        let x = self.layer_norm.forward(&x, compute)?;
        linear(&x, &self.decoder, &self.bias)
    }
}

/// The `classifier` linear layer of `BertForSequenceClassification`.
pub fn load_classifier(ckpt: &dyn Weights, config: &BertConfig) -> Result<Option<Linear>> {
    if !ckpt.contains("classifier.weight") {
        return Ok(None);
    }
    Linear::load(
        ckpt,
        "classifier",
        config.labels.len(),
        config.hidden_size(),
    )
    .map(Some)
}
