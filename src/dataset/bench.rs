//! Batched inference throughput, for `bertscope bench --inference`: the
//! forward the dataset passes run (no gradients, no attention maps kept) on
//! synthetic batches of exactly `batch` × `seq` real tokens.

use std::time::Instant;

use crate::engine::LoadedModel;
use crate::error::{BertError, Result};
use crate::model::precision::{self, Precision};
use crate::model::ModelInput;
use crate::tokenize::Encoded;

/// Forwards timed after two warm-up ones.
const WARM_UP: usize = 2;

/// Rows a second through every layer of `model` at `precision`: `batch`
/// inputs of `seq` tokens, the median of `runs` timed forwards.
pub fn inference_rows_per_s(
    model: &LoadedModel,
    batch: usize,
    seq: usize,
    runs: usize,
    precision: Precision,
) -> Result<f64> {
    precision.check(model.model.device())?;
    let config = model.config();
    if seq < 2 || seq > config.max_length() {
        return Err(BertError::Input(format!(
            "--seq {seq}: between 2 and the model's {} tokens",
            config.max_length()
        )));
    }
    let vocab = config.raw.vocab_size as u32;
    let rows: Vec<Encoded> = (0..batch)
        .map(|b| Encoded {
            tokens: Vec::new(),
            // Spread over the vocabulary, away from the specials at its start.
            input_ids: (0..seq)
                .map(|t| {
                    1000.min(vocab - 1)
                        + ((b * 7919 + t * 104_729) as u32) % (vocab.saturating_sub(1000).max(1))
                })
                .collect(),
            token_type_ids: vec![0; seq],
            truncated: false,
        })
        .collect();
    let input = ModelInput::batch(&rows, model.tokenizer.pad_id());
    let layers = config.num_layers();
    let mut times = Vec::with_capacity(runs);
    precision::scoped(precision, || -> Result<()> {
        for run in 0..WARM_UP + runs.max(1) {
            let start = Instant::now();
            model
                .model
                .hidden_states(&input, layers, &mut |_, _| Ok(()))?;
            if run >= WARM_UP {
                times.push(start.elapsed().as_secs_f64());
            }
        }
        Ok(())
    })?;
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    Ok(batch as f64 / median.max(1e-12))
}
