//! The forward that keeps hidden states instead of attention: what the
//! embedding index and the projection of a data file read, and what
//! `predict` classifies from.

use candle_core::Tensor;

use super::{BertModel, Encoder, ModelInput};
use crate::error::{BertError, Result};

impl BertModel {
    /// Run `input` through the embeddings and layers `0..upto`, handing
    /// `sink(i, states)` the hidden states `[batch·seq, hidden]` as
    /// `transformers`' `hidden_states` numbers them (0: the embeddings'
    /// output; i: layer i's output). No attention map is kept.
    pub fn hidden_states(
        &self,
        input: &ModelInput,
        upto: usize,
        sink: &mut dyn FnMut(usize, &[f32]) -> Result<()>,
    ) -> Result<()> {
        let layers = self.config.num_layers();
        if upto > layers {
            return Err(BertError::Input(format!(
                "layer {upto} does not exist: the model has layers 0 (the embeddings) to {layers}"
            )));
        }
        let embedded = self.embed(input)?;
        match &self.encoder {
            Encoder::Fused(encoder) => {
                let host = embedded.flatten_all()?.to_vec1::<f32>()?;
                encoder.hidden_states(host, &input.mask, upto, sink)
            }
            Encoder::Differentiable(layers) => {
                let mut hidden = embedded;
                sink(0, &hidden.flatten_all()?.to_vec1::<f32>()?)?;
                for (index, layer) in layers.iter().take(upto).enumerate() {
                    super::cancel::check()?;
                    hidden = layer.forward(&hidden, &input.mask, None)?.0;
                    sink(index + 1, &hidden.flatten_all()?.to_vec1::<f32>()?)?;
                }
                Ok(())
            }
        }
    }

    /// Classifier logits `[batch, labels]` from a forward that keeps no
    /// attention map: on the host, only the last layer's `[CLS]` rows are
    /// copied out (a batch of 32 × 128 tokens through BERT-base would
    /// otherwise fill ~300 MB of maps nobody reads). The differentiable
    /// encoder (a GPU) runs its usual forward.
    pub fn classify_input(&self, input: &ModelInput) -> Result<Tensor> {
        let Encoder::Fused(_) = &self.encoder else {
            let out = self.encode(input)?;
            return self.classify_logits(&out, &input.mask);
        };
        let (layers, width) = (self.config.num_layers(), self.config.hidden_size());
        let (batch, seq) = (input.mask.batch, input.mask.seq);
        let mut cls: Vec<f32> = Vec::with_capacity(batch * width);
        self.hidden_states(input, layers, &mut |index, states| {
            if index == layers {
                for row in states.chunks((seq * width).max(1)).take(batch) {
                    cls.extend(row.iter().take(width));
                }
            }
            Ok(())
        })?;
        let cls = Tensor::from_vec(cls, (batch, width), &self.device)?;
        self.classify_cls(&cls, None)
    }
}
