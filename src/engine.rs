//! A loaded checkpoint (config, tokenizer, model) and the engine's capabilities as
//! plain-data results: attention maps, masked-LM top-k, classification.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use serde::Serialize;

use crate::attention_maps::AttentionMaps;
use crate::config::BertConfig;
use crate::error::{BertError, Result};
use crate::hub;
use std::sync::OnceLock;

use crate::model::head_mask::{Inspect, Neurons};
use crate::model::ops::{softmax, Compute};
use crate::model::{BertModel, EncoderOutput, ModelInput};
use crate::tokenize::{BertTokenizer, Encoded};

/// A checkpoint ready for inference.
pub struct LoadedModel {
    /// What the user asked for (`--model`).
    pub name: String,
    pub dir: PathBuf,
    pub tokenizer: BertTokenizer,
    pub model: BertModel,
    /// The same weights on the differentiable path, loaded on first use by
    /// explanations when `model` is the fused CPU encoder.
    differentiable: OnceLock<BertModel>,
}

/// Tokens and every attention map of one input.
#[derive(Debug, Clone, Serialize)]
pub struct AttentionResult {
    pub tokens: Vec<String>,
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    pub attentions: AttentionMaps,
    pub truncated: bool,
    /// The queries and keys of the head [`Inspect::neurons`] named.
    #[serde(skip)]
    pub neurons: Option<Neurons>,
}

/// One candidate for a masked position, as the `fill-mask` pipeline names it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MaskPrediction {
    pub token: u32,
    pub token_str: String,
    pub score: f32,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MaskResult {
    /// Position of the `[MASK]` among the tokens.
    pub index: usize,
    pub predictions: Vec<MaskPrediction>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FillMaskResult {
    pub tokens: Vec<String>,
    pub masks: Vec<MaskResult>,
    pub truncated: bool,
}

/// What the app shows for one input.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub attention: AttentionResult,
    /// Masked-LM predictions; `None` when the model has no MLM head.
    pub masks: Option<Vec<MaskResult>>,
    /// Label probabilities, highest first; `None` without a classifier.
    pub classes: Option<Vec<LabelScore>>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LabelScore {
    pub label: String,
    pub score: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClassifyResult {
    pub predictions: Vec<LabelScore>,
    pub truncated: bool,
}

impl LoadedModel {
    /// Resolve `spec` (directory, `./models` name or cached Hub id) and load it.
    pub fn load(spec: &str, device: &Device) -> Result<Self> {
        let dir = hub::resolve(spec)?;
        Self::load_dir(spec, &dir, device)
    }

    pub fn load_dir(name: &str, dir: &Path, device: &Device) -> Result<Self> {
        let config = BertConfig::load(&dir.join("config.json"))?;
        let tokenizer = BertTokenizer::load(dir)?;
        let model = BertModel::load(dir, config, device)?;
        Ok(LoadedModel {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            tokenizer,
            model,
            differentiable: OnceLock::new(),
        })
    }

    /// The model on the differentiable path (gradients): `model` itself
    /// when it is built for it, else the same checkpoint loaded once more.
    pub fn differentiable(&self) -> Result<&BertModel> {
        if self.model.compute() == Compute::Differentiable {
            return Ok(&self.model);
        }
        if let Some(model) = self.differentiable.get() {
            return Ok(model);
        }
        let config = self.model.config.clone();
        let model = BertModel::load_with(
            &self.dir,
            config,
            self.model.device(),
            Compute::Differentiable,
        )?;
        Ok(self.differentiable.get_or_init(|| model))
    }

    pub fn config(&self) -> &BertConfig {
        &self.model.config
    }

    /// Tokenise, truncating to the model's maximum length.
    pub fn encode(&self, text_a: &str, text_b: Option<&str>) -> Result<Encoded> {
        self.tokenizer
            .encode(text_a, text_b, self.config().max_length())
    }

    fn run(&self, encoded: &Encoded, inspect: &Inspect) -> Result<EncoderOutput> {
        let input = ModelInput::single(encoded);
        self.model.encode_inspect(&input, inspect)
    }

    /// Every layer's and head's attention for one input (with `inspect`'s
    /// heads ablated and its head's queries and keys).
    pub fn attention(
        &self,
        text_a: &str,
        text_b: Option<&str>,
        inspect: &Inspect,
    ) -> Result<AttentionResult> {
        let encoded = self.encode(text_a, text_b)?;
        let out = self.run(&encoded, inspect)?;
        Ok(AttentionResult {
            attentions: out.attentions.into_maps(0)?,
            tokens: encoded.tokens,
            input_ids: encoded.input_ids,
            token_type_ids: encoded.token_type_ids,
            truncated: encoded.truncated,
            neurons: out.neurons,
        })
    }

    /// Top-k predictions for every `[MASK]` of the input, in input order.
    pub fn fill_mask(
        &self,
        text_a: &str,
        text_b: Option<&str>,
        top_k: usize,
        inspect: &Inspect,
    ) -> Result<FillMaskResult> {
        if self.model.mlm.is_none() {
            return Err(BertError::Unsupported(format!(
                "{}: this checkpoint has no masked-LM head (no `cls.predictions.*` weights); fill-mask needs a *ForMaskedLM or *ForPreTraining checkpoint",
                self.dir.display()
            )));
        }
        let encoded = self.encode(text_a, text_b)?;
        let masks = self.predict_masks(&encoded, top_k, inspect)?;
        Ok(FillMaskResult {
            tokens: encoded.tokens,
            masks,
            truncated: encoded.truncated,
        })
    }

    /// Top-k predictions at each mask position of an already encoded input.
    pub fn predict_masks(
        &self,
        encoded: &Encoded,
        top_k: usize,
        inspect: &Inspect,
    ) -> Result<Vec<MaskResult>> {
        let out = self.run(encoded, inspect)?;
        let masks = self.mask_predictions(encoded, &out, top_k)?;
        if masks.is_empty() {
            return Err(BertError::Input(format!(
                "the input has no {} token to predict",
                self.tokenizer.mask_token()
            )));
        }
        Ok(masks)
    }

    /// Predictions at every mask position of `encoded` from its encoder output
    /// (empty when the input has no mask).
    fn mask_predictions(
        &self,
        encoded: &Encoded,
        out: &EncoderOutput,
        top_k: usize,
    ) -> Result<Vec<MaskResult>> {
        if top_k == 0 {
            return Err(BertError::Input(
                "the number of predictions per mask (top k) must be at least 1".into(),
            ));
        }
        let Some(mask_id) = self.tokenizer.mask_id() else {
            return Ok(vec![]);
        };
        let positions: Vec<u32> = encoded
            .input_ids
            .iter()
            .enumerate()
            .filter(|(_, &id)| id == mask_id)
            .map(|(i, _)| i as u32)
            .collect();
        if positions.is_empty() {
            return Ok(vec![]);
        }
        let logits = self.model.mlm_logits(out, &positions)?;
        let probs = softmax(&logits)?.to_vec2::<f32>()?;
        positions
            .iter()
            .zip(probs)
            .map(|(&index, row)| {
                let predictions = top_indices(&row, top_k)
                    .into_iter()
                    .map(|id| {
                        Ok(MaskPrediction {
                            token: id as u32,
                            token_str: self.tokenizer.decode(&[id as u32])?,
                            score: row[id],
                        })
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(MaskResult {
                    index: index as usize,
                    predictions,
                })
            })
            .collect()
    }

    /// One forward pass for the app: attention maps, plus masked-LM predictions
    /// when the model has an MLM head. `masked` lists token positions to replace
    /// with the mask token first (special tokens and out-of-range positions are
    /// left alone).
    pub fn analyze(
        &self,
        text_a: &str,
        text_b: Option<&str>,
        masked: &[usize],
        top_k: usize,
        inspect: &Inspect,
    ) -> Result<Analysis> {
        let mut encoded = self.encode(text_a, text_b)?;
        if let Some(mask_id) = self.tokenizer.mask_id() {
            for &i in masked {
                let ordinary = encoded
                    .tokens
                    .get(i)
                    .is_some_and(|t| !crate::tokenize::is_special(t));
                if ordinary {
                    encoded.input_ids[i] = mask_id;
                    encoded.tokens[i] = self.tokenizer.mask_token().to_string();
                }
            }
        }
        let out = self.run(&encoded, inspect)?;
        let masks = match self.model.mlm {
            Some(_) => Some(self.mask_predictions(&encoded, &out, top_k)?),
            None => None,
        };
        let classes = match (&self.model.classifier, &self.model.pooler) {
            (Some(_), Some(_)) => {
                let mask = ModelInput::single(&encoded).mask;
                let scores = self.scores(&self.model.classify_logits(&out, &mask)?)?;
                scores.into_iter().next().map(|row| self.ranked_labels(row))
            }
            _ => None,
        };
        Ok(Analysis {
            attention: AttentionResult {
                attentions: out.attentions.into_maps(0)?,
                tokens: encoded.tokens,
                input_ids: encoded.input_ids,
                token_type_ids: encoded.token_type_ids,
                truncated: encoded.truncated,
                neurons: out.neurons,
            },
            masks,
            classes,
        })
    }

    /// Label probabilities, highest first.
    pub fn classify(
        &self,
        text_a: &str,
        text_b: Option<&str>,
        inspect: &Inspect,
    ) -> Result<ClassifyResult> {
        let encoded = self.encode(text_a, text_b)?;
        let scores = self
            .classify_batch(std::slice::from_ref(&encoded), inspect)?
            .pop()
            .unwrap_or_default();
        Ok(ClassifyResult {
            predictions: self.ranked_labels(scores),
            truncated: encoded.truncated,
        })
    }

    /// Each label with its score (class order), highest first.
    fn ranked_labels(&self, scores: Vec<f32>) -> Vec<LabelScore> {
        let mut predictions: Vec<LabelScore> = self
            .config()
            .labels
            .iter()
            .zip(scores)
            .map(|(label, score)| LabelScore {
                label: label.clone(),
                score,
            })
            .collect();
        predictions.sort_by(|a, b| b.score.total_cmp(&a.score));
        predictions
    }

    /// Label probabilities for a batch of encoded inputs (class order of `labels`).
    pub fn classify_batch(&self, rows: &[Encoded], inspect: &Inspect) -> Result<Vec<Vec<f32>>> {
        if rows.is_empty() {
            return Ok(vec![]);
        }
        let input = ModelInput::batch(rows, self.tokenizer.pad_id());
        let logits = if inspect.is_plain() {
            self.model.classify_input(&input)?
        } else {
            let out = self.model.encode_inspect(&input, inspect)?;
            self.model.classify_logits(&out, &input.mask)?
        };
        self.scores(&logits)
    }

    /// Logits `[batch, labels]` → probabilities (sigmoid for multi-label models).
    fn scores(&self, logits: &candle_core::Tensor) -> Result<Vec<Vec<f32>>> {
        let scores = if self.config().uses_sigmoid(self.config().labels.len()) {
            candle_nn::ops::sigmoid(logits)?
        } else {
            softmax(logits)?
        };
        Ok(scores.to_vec2::<f32>()?)
    }

    /// Median forward time (ms) with attentions at batch 1 for each length.
    pub fn bench_forward(&self, lengths: &[usize], runs: usize) -> Result<Vec<(usize, f64)>> {
        let mut results = Vec::new();
        for &len in lengths {
            let max = self.config().raw.max_position_embeddings;
            if len < 2 || len > max {
                return Err(BertError::Input(format!(
                    "sequence length {len}: must be between 2 and {max} (max_position_embeddings)"
                )));
            }
            let encoded = self.synthetic_input(len)?;
            let input = ModelInput::single(&encoded);
            let time_once = || -> Result<f64> {
                let start = Instant::now();
                let out = self.model.encode(&input)?;
                // Bring the attentions back as plain data, as every caller does.
                let _maps = out.attentions.into_maps(0)?;
                Ok(start.elapsed().as_secs_f64() * 1e3)
            };
            for _ in 0..3 {
                time_once()?;
            }
            let mut times = (0..runs.max(1))
                .map(|_| time_once())
                .collect::<Result<Vec<_>>>()?;
            times.sort_by(f64::total_cmp);
            results.push((len, times[times.len() / 2]));
        }
        Ok(results)
    }

    /// `[CLS] w w … [SEP]` of exactly `len` tokens, from ordinary vocabulary words.
    fn synthetic_input(&self, len: usize) -> Result<Encoded> {
        let text = ["the quick brown fox jumps over the lazy dog"; 64].join(" ");
        let mut encoded = self.tokenizer.encode(&text, None, len)?;
        // A tokenizer that yields fewer tokens (tiny vocabularies) is padded out
        // with the [SEP] id so the length is exact.
        let filler = encoded.input_ids.last().copied().unwrap_or(0);
        while encoded.input_ids.len() < len {
            encoded.input_ids.push(filler);
            encoded.token_type_ids.push(0);
            encoded.tokens.push(String::new());
        }
        Ok(encoded)
    }
}

/// Indices of the `k` largest values, largest first (ties: lower index first).
pub fn top_indices(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    let k = k.min(values.len());
    if k == 0 {
        return vec![];
    }
    idx.select_nth_unstable_by(k - 1, |&a, &b| {
        values[b].total_cmp(&values[a]).then(a.cmp(&b))
    });
    idx.truncate(k);
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]).then(a.cmp(&b)));
    idx
}
