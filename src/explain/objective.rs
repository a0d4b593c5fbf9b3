//! What an explanation explains: one logit of the model's output, a class of
//! the classifier or a token of the masked-LM head at a masked position.

use candle_core::Tensor;
use serde::Serialize;

use crate::error::{BertError, Result};
use crate::model::{first_tokens, BatchMask, BertModel};

/// The output explained, as the JSON names it: a label name (or token) and
/// its index (class index or token id).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Target {
    pub label: String,
    pub index: usize,
}

/// Which logit `y` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Objective {
    /// The classifier's logit of this class.
    Class(usize),
    /// The masked-LM logit of token `id` at sequence position `position`.
    Token { position: usize, id: u32 },
}

impl Objective {
    /// `y` for every sequence of a batch, `[batch]`, from the last hidden
    /// states `[batch·seq, hidden]`.
    pub fn value(&self, model: &BertModel, hidden: &Tensor, mask: &BatchMask) -> Result<Tensor> {
        let logits = match *self {
            Objective::Class(class) => {
                let cls = first_tokens(hidden, mask)?;
                model.classify_cls(&cls, None)?.narrow(1, class, 1)?
            }
            Objective::Token { position, id } => {
                let head = model.mlm.as_ref().ok_or_else(|| {
                    BertError::Unsupported("this checkpoint has no masked-LM head".into())
                })?;
                let rows: Vec<u32> = (0..mask.batch)
                    .map(|b| (b * mask.seq + position) as u32)
                    .collect();
                let rows = Tensor::from_vec(rows, mask.batch, hidden.device())?;
                let at_mask = hidden.index_select(&rows, 0)?;
                head.forward(&at_mask, model.compute())?
                    .narrow(1, id as usize, 1)?
            }
        };
        Ok(logits.squeeze(1)?)
    }
}
