//! `BertEmbeddings`: word + absolute position + token type, then LayerNorm.

use candle_core::Tensor;

use crate::checkpoint::Weights;
use crate::config::BertConfig;
use crate::error::Result;
use crate::model::ops::{Compute, LayerNorm};

#[derive(Debug, Clone)]
pub struct BertEmbeddings {
    pub word_embeddings: Tensor,
    pub position_embeddings: Tensor,
    pub token_type_embeddings: Tensor,
    pub layer_norm: LayerNorm,
}

impl BertEmbeddings {
    pub fn load(ckpt: &dyn Weights, config: &BertConfig) -> Result<Self> {
        let raw = &config.raw;
        let h = raw.hidden_size;
        Ok(BertEmbeddings {
            word_embeddings: ckpt.get("embeddings.word_embeddings.weight", &[raw.vocab_size, h])?,
            position_embeddings: ckpt.get(
                "embeddings.position_embeddings.weight",
                &[raw.max_position_embeddings, h],
            )?,
            token_type_embeddings: ckpt.get(
                "embeddings.token_type_embeddings.weight",
                &[raw.type_vocab_size, h],
            )?,
            layer_norm: LayerNorm::load(ckpt, "embeddings.LayerNorm", h, raw.layer_norm_eps)?,
        })
    }

    /// `input_ids`, `token_type_ids`: `[batch·seq]` u32; returns `[batch·seq, hidden]`.
    pub fn forward(
        &self,
        input_ids: &Tensor,
        token_type_ids: &Tensor,
        position_ids: &Tensor,
        compute: Compute,
    ) -> Result<Tensor> {
        let words = self.word_embeddings.index_select(input_ids, 0)?;
        self.forward_from_words(&words, token_type_ids, position_ids, compute)
    }

    /// The same from the word-embedding lookup's output `words`
    /// (`[batch·seq, hidden]`): the point integrated gradients scale.
    pub fn forward_from_words(
        &self,
        words: &Tensor,
        token_type_ids: &Tensor,
        position_ids: &Tensor,
        compute: Compute,
    ) -> Result<Tensor> {
        let types = self.token_type_embeddings.index_select(token_type_ids, 0)?;
        let positions = self.position_embeddings.index_select(position_ids, 0)?;
        let sum = ((words + types)? + positions)?;
        self.layer_norm.forward(&sum, compute)
    }
}
