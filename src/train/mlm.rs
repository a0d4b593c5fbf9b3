//! Masked-LM fine-tuning: a masked-LM head on any checkpoint (new and tied to
//! the word embeddings when absent), its loss on corrupted batches, and
//! masked-token accuracy and perplexity on dev.

use std::path::Path;

use candle_core::{Device, Tensor, D};

use crate::checkpoint::{Checkpoint, Weights};
use crate::config::BertConfig;
use crate::error::Result;
use crate::model::dropout::TrainDropout;
use crate::model::{BertModel, Compute, ModelInput};
use crate::train::metrics::DevMetrics;
use crate::train::weights::{self, TrainableWeights};
use crate::train::{masking, Encodings, TrainConfig, Trainable};

/// The masked-LM model: the checkpoint's MLM head, or a new one (decoder tied to
/// the word embeddings, initialised as `transformers` does).
pub fn build(base_dir: &Path, seed: u64, device: &Device) -> Result<Trainable> {
    let config = BertConfig::load(&base_dir.join("config.json"))?;
    let ckpt = Checkpoint::open(base_dir, device)?;
    let (h, v) = (config.hidden_size(), config.raw.vocab_size);
    let mut trainable = TrainableWeights::new(&ckpt);
    if !ckpt.has_prefix("cls.predictions.") {
        let mut rng = weights::seeded(seed);
        let std = config.raw.initializer_range;
        let p = "cls.predictions.transform";
        trainable.insert(
            &format!("{p}.dense.weight"),
            weights::normal(&[h, h], std, &mut rng, device)?,
        );
        trainable.insert(&format!("{p}.dense.bias"), weights::zeros(&[h], device)?);
        trainable.insert(
            &format!("{p}.LayerNorm.weight"),
            Tensor::ones(h, candle_core::DType::F32, device)?,
        );
        trainable.insert(
            &format!("{p}.LayerNorm.bias"),
            weights::zeros(&[h], device)?,
        );
        trainable.insert("cls.predictions.bias", weights::zeros(&[v], device)?);
    }
    let labels = config.labels.clone();
    let model = BertModel::build(&trainable, config, device, Compute::Differentiable)?;
    let all_vars = trainable.into_vars();
    // The pooler and a classifier get no gradient from the MLM loss.
    let vars = all_vars
        .iter()
        .filter(|v| !v.name.starts_with("pooler.") && !v.name.starts_with("classifier."))
        .cloned()
        .collect();
    Ok(Trainable {
        model,
        vars,
        all_vars,
        labels,
    })
}

/// Dev masking draws from a stream of its own, the same every epoch.
const DEV_MASKING_STREAM: u64 = 0xD3F;

/// Masked-LM loss of a corrupted batch, with the number of correct predictions.
pub fn mlm_loss(
    model: &BertModel,
    batch: &masking::MaskedBatch,
    pad_id: u32,
    dropout: Option<&TrainDropout>,
) -> Result<(Tensor, usize)> {
    let input = ModelInput::batch(&batch.rows, pad_id);
    let out = model.encode_train(&input, dropout)?;
    let logits = model.mlm_logits(&out, &batch.positions)?;
    let targets = Tensor::from_slice(&batch.targets, batch.targets.len(), model.device())?;
    let loss = candle_nn::loss::cross_entropy(&logits, &targets)?;
    let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
    let correct = predicted
        .iter()
        .zip(&batch.targets)
        .filter(|(p, t)| p == t)
        .count();
    Ok((loss, correct))
}

/// Masked-token accuracy and perplexity on dev, with a fixed masking seed.
pub fn evaluate(
    model: &BertModel,
    dev: &Encodings,
    cfg: &TrainConfig,
    pad_id: u32,
    mask_id: u32,
    cancel: &std::sync::atomic::AtomicBool,
) -> Result<DevMetrics> {
    let mut rng = weights::seeded(cfg.seed ^ DEV_MASKING_STREAM);
    let (mut loss_sum, mut correct, mut count) = (0f64, 0usize, 0usize);
    for rows in dev.rows.chunks(cfg.batch_size) {
        if cancel.load(std::sync::atomic::Ordering::Relaxed) {
            return Err(crate::error::BertError::Cancelled);
        }
        let vocab = model.config.raw.vocab_size;
        let batch = masking::mask_batch(rows, &dev.special_ids, mask_id, vocab, &mut rng);
        if batch.positions.is_empty() {
            continue;
        }
        let (loss, right) = mlm_loss(model, &batch, pad_id, None)?;
        loss_sum += loss.to_scalar::<f32>()? as f64 * batch.targets.len() as f64;
        correct += right;
        count += batch.targets.len();
    }
    let loss = loss_sum / count.max(1) as f64;
    Ok(DevMetrics {
        accuracy: correct as f64 / count.max(1) as f64,
        macro_f1: 0.0,
        confusion: Vec::new(),
        loss,
        perplexity: Some(loss.exp()),
    })
}
