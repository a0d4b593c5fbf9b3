//! A BERT of our own on candle that mirrors `transformers`' `BertModel` (eager
//! attention) and returns every layer's attention probabilities.

pub mod attention;
pub mod bf16_speed;
pub mod cancel;
pub mod cpu;
pub mod dropout;
pub mod embeddings;
pub mod fused_encoder;
pub mod grad_kernels;
pub mod head_mask;
pub mod heads;
pub mod hidden_states;
pub mod kernels;
pub mod lanes16;
pub mod layer;
pub mod ops;
pub mod precision;

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::attention_maps::AttentionMaps;
use crate::checkpoint::{Checkpoint, Weights};
use crate::config::BertConfig;
use crate::error::{BertError, Result};
use crate::tokenize::Encoded;
use attention::{Probe, Probed};
use dropout::TrainDropout;
use embeddings::BertEmbeddings;
use fused_encoder::FusedEncoder;
use head_mask::{HeadSet, Inspect, Neurons};
use heads::{BertPooler, MlmHead};
use layer::BertLayer;
pub use ops::Compute;
use ops::Linear;

/// Which positions of a padded batch are real tokens.
#[derive(Debug, Clone)]
pub struct BatchMask {
    pub batch: usize,
    pub seq: usize,
    /// `batch·seq` flags, false for padding.
    pub keep: Vec<bool>,
}

/// Each sequence's first row (`[CLS]`) of `hidden` `[batch·seq, hidden]`:
/// `[batch, hidden]`.
pub fn first_tokens(hidden: &Tensor, mask: &BatchMask) -> Result<Tensor> {
    let index: Vec<u32> = (0..mask.batch).map(|i| (i * mask.seq) as u32).collect();
    let index = Tensor::from_vec(index, mask.batch, hidden.device())?;
    Ok(hidden.index_select(&index, 0)?)
}

impl BatchMask {
    /// `[batch, 1, 1, seq]`: 0 for real keys, a large negative for padding.
    pub fn additive(&self, device: &Device) -> Result<Tensor> {
        let values: Vec<f32> = self
            .keep
            .iter()
            .map(|&k| if k { 0.0 } else { -1e9 })
            .collect();
        Ok(Tensor::from_vec(
            values,
            (self.batch, 1, 1, self.seq),
            device,
        )?)
    }
}

/// A batch of encoded inputs, right-padded to the longest.
#[derive(Debug, Clone)]
pub struct ModelInput {
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    pub mask: BatchMask,
}

impl ModelInput {
    pub fn single(encoded: &Encoded) -> Self {
        Self::batch(std::slice::from_ref(encoded), 0)
    }

    /// Pad every row to the longest with `pad_id` (type 0, masked out).
    pub fn batch(rows: &[Encoded], pad_id: u32) -> Self {
        Self::batch_of(&rows.iter().collect::<Vec<_>>(), pad_id)
    }

    /// [`batch`](Self::batch) of rows held elsewhere (a dataset pass's
    /// bucket), without copying them first.
    pub fn batch_of(rows: &[&Encoded], pad_id: u32) -> Self {
        let seq = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        let mut input = ModelInput {
            input_ids: Vec::with_capacity(rows.len() * seq),
            token_type_ids: Vec::with_capacity(rows.len() * seq),
            mask: BatchMask {
                batch: rows.len(),
                seq,
                keep: Vec::with_capacity(rows.len() * seq),
            },
        };
        for row in rows {
            let pad = seq - row.len();
            input.input_ids.extend(&row.input_ids);
            input.input_ids.extend(std::iter::repeat_n(pad_id, pad));
            input.token_type_ids.extend(&row.token_type_ids);
            input.token_type_ids.extend(std::iter::repeat_n(0, pad));
            input.mask.keep.extend(std::iter::repeat_n(true, row.len()));
            input.mask.keep.extend(std::iter::repeat_n(false, pad));
        }
        input
    }
}

/// Post-softmax attention probabilities of every layer.
pub enum AttentionProbs {
    /// One `[batch, heads, seq, seq]` tensor per layer (differentiable path).
    Tensors(Vec<Tensor>),
    /// Host data `[layer][batch][head][query][key]` (fused CPU path).
    Host {
        data: Vec<f32>,
        layers: usize,
        batch: usize,
        heads: usize,
        seq: usize,
    },
}

impl AttentionProbs {
    /// Everything as host data `[layer][batch][head][query][key]`.
    pub fn to_flat(&self) -> Result<Vec<f32>> {
        match self {
            AttentionProbs::Host { data, .. } => Ok(data.clone()),
            AttentionProbs::Tensors(layers) => {
                let mut out = Vec::new();
                for t in layers {
                    out.extend(t.flatten_all()?.to_vec1::<f32>()?);
                }
                Ok(out)
            }
        }
    }

    /// The maps of one batch row (moved out without copying for a batch of one).
    pub fn into_maps(self, row: usize) -> Result<AttentionMaps> {
        match self {
            AttentionProbs::Host {
                data,
                layers,
                batch,
                heads,
                seq,
            } => {
                if batch == 1 && row == 0 {
                    return Ok(AttentionMaps::new(layers, heads, seq, data));
                }
                let block = heads * seq * seq;
                let mut out = Vec::with_capacity(layers * block);
                for layer in data.chunks(batch * block) {
                    out.extend_from_slice(&layer[row * block..(row + 1) * block]);
                }
                Ok(AttentionMaps::new(layers, heads, seq, out))
            }
            AttentionProbs::Tensors(tensors) => {
                let (heads, seq) = match tensors.first() {
                    Some(t) => (t.dim(1)?, t.dim(2)?),
                    None => (0, 0),
                };
                let mut data = Vec::with_capacity(tensors.len() * heads * seq * seq);
                for t in &tensors {
                    data.extend(t.get(row)?.flatten_all()?.to_vec1::<f32>()?);
                }
                Ok(AttentionMaps::new(tensors.len(), heads, seq, data))
            }
        }
    }
}

/// Encoder output: hidden states `[batch·seq, hidden]` and every layer's attention.
pub struct EncoderOutput {
    pub hidden: Tensor,
    pub attentions: AttentionProbs,
    /// The queries and keys [`Inspect::neurons`] asked for.
    pub neurons: Option<Neurons>,
}

/// The encoder layers, in the form of the model's one compute path.
pub enum Encoder {
    /// Fused CPU inference (no gradients).
    Fused(FusedEncoder),
    /// Candle ops that carry gradients, on any device (training, CUDA).
    Differentiable(Vec<BertLayer>),
}

/// `BertModel` plus whichever heads the checkpoint carries.
pub struct BertModel {
    pub config: BertConfig,
    pub embeddings: BertEmbeddings,
    pub encoder: Encoder,
    pub pooler: Option<BertPooler>,
    pub mlm: Option<MlmHead>,
    pub classifier: Option<Linear>,
    device: Device,
}

impl BertModel {
    /// Load the weights of `dir` for inference: the fused encoder on the CPU,
    /// the differentiable one elsewhere.
    pub fn load(dir: &Path, config: BertConfig, device: &Device) -> Result<Self> {
        let compute = if device.is_cpu() {
            Compute::FusedCpu
        } else {
            Compute::Differentiable
        };
        Self::load_with(dir, config, device, compute)
    }

    /// Load the weights of `dir` for the given compute path.
    pub fn load_with(
        dir: &Path,
        config: BertConfig,
        device: &Device,
        compute: Compute,
    ) -> Result<Self> {
        let ckpt = Checkpoint::open(dir, device)?;
        Self::build(&ckpt, config, device, compute)
    }

    /// Build the model for one compute path. The fused path needs the CPU.
    pub fn build(
        ckpt: &dyn Weights,
        config: BertConfig,
        device: &Device,
        compute: Compute,
    ) -> Result<Self> {
        let embeddings = BertEmbeddings::load(ckpt, &config)?;
        let layers = (0..config.num_layers())
            .map(|i| BertLayer::load(ckpt, &config, i))
            .collect::<Result<Vec<_>>>()?;
        let encoder = match compute {
            Compute::FusedCpu if device.is_cpu() => {
                Encoder::Fused(FusedEncoder::new(&layers, config.num_heads())?)
            }
            Compute::FusedCpu => {
                return Err(BertError::Unsupported(
                    "the fused encoder runs on the CPU only".into(),
                ))
            }
            Compute::Differentiable => Encoder::Differentiable(layers),
        };
        let pooler = BertPooler::load(ckpt, &config)?;
        let mlm = MlmHead::load(ckpt, &config, &embeddings.word_embeddings)?;
        let classifier = heads::load_classifier(ckpt, &config)?;
        Ok(BertModel {
            config,
            embeddings,
            encoder,
            pooler,
            mlm,
            classifier,
            device: device.clone(),
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The compute path this model was built for.
    pub fn compute(&self) -> Compute {
        match self.encoder {
            Encoder::Fused(_) => Compute::FusedCpu,
            Encoder::Differentiable(_) => Compute::Differentiable,
        }
    }

    fn check_input(&self, input: &ModelInput) -> Result<()> {
        let raw = &self.config.raw;
        let cfg = self.config.path.display();
        if input.mask.seq > raw.max_position_embeddings {
            return Err(BertError::Input(format!(
                "input has {} tokens but {cfg} allows max_position_embeddings = {}",
                input.mask.seq, raw.max_position_embeddings
            )));
        }
        if let Some(&id) = input
            .input_ids
            .iter()
            .find(|&&id| id as usize >= raw.vocab_size)
        {
            return Err(BertError::Input(format!(
                "token id {id} is outside the vocabulary: {cfg} has vocab_size = {}",
                raw.vocab_size
            )));
        }
        if let Some(&t) = input
            .token_type_ids
            .iter()
            .find(|&&t| t as usize >= raw.type_vocab_size)
        {
            return Err(BertError::Input(format!(
                "token type {t} is not available: {cfg} has type_vocab_size = {} (this model takes single sentences)",
                raw.type_vocab_size
            )));
        }
        Ok(())
    }

    /// Run embeddings and every encoder layer (no dropout).
    pub fn encode(&self, input: &ModelInput) -> Result<EncoderOutput> {
        self.encode_with(input, None)
    }

    /// [`encode`](Self::encode) with heads ablated and/or one head's queries
    /// and keys reported.
    pub fn encode_inspect(&self, input: &ModelInput, inspect: &Inspect) -> Result<EncoderOutput> {
        let (layers, heads) = (self.config.num_layers(), self.config.num_heads());
        inspect.ablate.check(layers, heads)?;
        if let Some((l, h)) = inspect.neurons {
            HeadSet::from_iter([(l, h)]).check(layers, heads)?;
        }
        match &self.encoder {
            Encoder::Fused(encoder) => {
                let (b, s) = (input.mask.batch, input.mask.seq);
                let host = self.embed(input)?.flatten_all()?.to_vec1::<f32>()?;
                let (host, attentions, neurons) = encoder.forward(host, &input.mask, inspect)?;
                let hidden =
                    Tensor::from_vec(host, (b * s, self.config.hidden_size()), &self.device)?;
                Ok(EncoderOutput {
                    hidden,
                    attentions,
                    neurons,
                })
            }
            Encoder::Differentiable(_) if inspect.is_plain() => self.encode(input),
            Encoder::Differentiable(_) => self.encode_gated(input, inspect),
        }
    }

    /// The differentiable path with constant gates (0 for ablated heads).
    fn encode_gated(&self, input: &ModelInput, inspect: &Inspect) -> Result<EncoderOutput> {
        let (layers, heads) = (self.config.num_layers(), self.config.num_heads());
        let gates = inspect
            .ablate
            .gates(layers, heads)
            .into_iter()
            .map(|g| Ok(Tensor::from_vec(g, (1, heads, 1, 1), &self.device)?))
            .collect::<Result<Vec<_>>>()?;
        let probes: Vec<Probe> = gates
            .iter()
            .map(|gate| Probe {
                gate: Some(gate),
                probs_grad: None,
            })
            .collect();
        let words = self.word_embeddings(input)?;
        let (hidden, probed) = self.encode_probed(&words, input, &probes)?;
        let neurons = match inspect.neurons {
            Some((l, h)) => Some(neurons_of(&probed[l], (l, h), heads)?),
            None => None,
        };
        let attentions = AttentionProbs::Tensors(probed.into_iter().map(|p| p.probs).collect());
        Ok(EncoderOutput {
            hidden,
            attentions,
            neurons,
        })
    }

    /// The word-embedding lookup of `input`, `[batch·seq, hidden]`.
    pub fn word_embeddings(&self, input: &ModelInput) -> Result<Tensor> {
        self.check_input(input)?;
        let n = input.mask.batch * input.mask.seq;
        let ids = Tensor::from_slice(&input.input_ids, n, &self.device)?;
        Ok(self.embeddings.word_embeddings.index_select(&ids, 0)?)
    }

    /// Embeddings from the word-embedding output `words` (`[batch·seq,
    /// hidden]`, e.g. a scaled variable), then every layer on composed ops
    /// with `probes[layer]` (missing or empty probes: the fused ops, no
    /// queries and keys). The differentiable path
    /// only; no dropout. Returns the last hidden states and each layer's
    /// observations.
    pub fn encode_probed(
        &self,
        words: &Tensor,
        input: &ModelInput,
        probes: &[Probe],
    ) -> Result<(Tensor, Vec<Probed>)> {
        let Encoder::Differentiable(layers) = &self.encoder else {
            return Err(BertError::Unsupported(
                "explanations need a model built for the differentiable path".into(),
            ));
        };
        let (types, positions) = self.types_positions(input)?;
        let mut hidden = self.embeddings.forward_from_words(
            words,
            &types,
            &positions,
            Compute::Differentiable,
        )?;
        let mut probed = Vec::with_capacity(layers.len());
        for (i, layer) in layers.iter().enumerate() {
            let probe = probes.get(i).copied().unwrap_or_default();
            let step = if probe.is_empty() {
                let (out, probs) = layer.forward(&hidden, &input.mask, None)?;
                Probed {
                    out,
                    probs,
                    query: None,
                    key: None,
                }
            } else {
                layer.forward_probed(&hidden, &input.mask, probe)?
            };
            hidden = step.out.clone();
            probed.push(step);
        }
        Ok((hidden, probed))
    }

    /// The forward of training, with dropout: the differentiable path only.
    pub fn encode_train(
        &self,
        input: &ModelInput,
        dropout: Option<&TrainDropout>,
    ) -> Result<EncoderOutput> {
        if self.compute() != Compute::Differentiable {
            return Err(BertError::Unsupported(
                "training needs a model built for the differentiable path".into(),
            ));
        }
        self.encode_with(input, dropout)
    }

    fn encode_with(
        &self,
        input: &ModelInput,
        dropout: Option<&TrainDropout>,
    ) -> Result<EncoderOutput> {
        match &self.encoder {
            Encoder::Fused(_) => self.encode_inspect(input, &Inspect::default()),
            Encoder::Differentiable(layers) => {
                let mut hidden = dropout::maybe(dropout, self.embed(input)?, |d| d.hidden)?;
                let mut attentions = Vec::with_capacity(layers.len());
                for layer in layers {
                    let (next, probs) = layer.forward(&hidden, &input.mask, dropout)?;
                    hidden = next;
                    attentions.push(probs);
                }
                Ok(EncoderOutput {
                    hidden,
                    attentions: AttentionProbs::Tensors(attentions),
                    neurons: None,
                })
            }
        }
    }

    /// The embeddings of `input`, `[batch·seq, hidden]`.
    fn embed(&self, input: &ModelInput) -> Result<Tensor> {
        let (types, positions) = self.types_positions(input)?;
        let n = input.mask.batch * input.mask.seq;
        let ids = Tensor::from_slice(&input.input_ids, n, &self.device)?;
        self.embeddings
            .forward(&ids, &types, &positions, self.compute())
    }

    /// The checked input's token types and positions, `[batch·seq]` each.
    fn types_positions(&self, input: &ModelInput) -> Result<(Tensor, Tensor)> {
        self.check_input(input)?;
        let (b, s) = (input.mask.batch, input.mask.seq);
        let types = Tensor::from_slice(&input.token_type_ids, b * s, &self.device)?;
        let positions: Vec<u32> = (0..b).flat_map(|_| 0..s as u32).collect();
        Ok((types, Tensor::from_vec(positions, b * s, &self.device)?))
    }

    /// The training forward of a classifier: `[CLS]`'s hidden state after the
    /// last layer, `[batch, hidden]`, with the last layer computed at `[CLS]`
    /// only (nothing else of it reaches the classifier): the same numbers as
    /// [`encode_train`](Self::encode_train)'s `[CLS]` rows, for about one
    /// layer's work less.
    pub fn encode_train_cls(
        &self,
        input: &ModelInput,
        dropout: Option<&TrainDropout>,
    ) -> Result<Tensor> {
        let Encoder::Differentiable(layers) = &self.encoder else {
            return Err(BertError::Unsupported(
                "training needs a model built for the differentiable path".into(),
            ));
        };
        let mut hidden = dropout::maybe(dropout, self.embed(input)?, |d| d.hidden)?;
        let Some((last, first)) = layers.split_last() else {
            return first_tokens(&hidden, &input.mask);
        };
        for layer in first {
            hidden = layer.forward(&hidden, &input.mask, dropout)?.0;
        }
        last.forward_cls(&hidden, &input.mask, dropout)
    }

    /// Rows of `[CLS]` hidden states, `[batch, hidden]`.
    pub fn cls_rows(&self, hidden: &Tensor, mask: &BatchMask) -> Result<Tensor> {
        first_tokens(hidden, mask)
    }

    /// Classifier logits `[batch, labels]` (dropout is the identity at inference).
    pub fn classify_logits(&self, out: &EncoderOutput, mask: &BatchMask) -> Result<Tensor> {
        self.classify_logits_train(out, mask, None)
    }

    /// Classifier logits with the classifier's dropout when training.
    pub fn classify_logits_train(
        &self,
        out: &EncoderOutput,
        mask: &BatchMask,
        dropout: Option<&TrainDropout>,
    ) -> Result<Tensor> {
        self.classify_cls(&self.cls_rows(&out.hidden, mask)?, dropout)
    }

    /// Classifier logits `[batch, labels]` from `[CLS]` hidden states
    /// `[batch, hidden]`, with the classifier's dropout when training.
    pub fn classify_cls(&self, cls: &Tensor, dropout: Option<&TrainDropout>) -> Result<Tensor> {
        let classifier = self.classifier.as_ref().ok_or_else(|| {
            BertError::Unsupported(format!(
                "{}: this checkpoint has no classification head (no `classifier.weight`)",
                self.config
                    .path
                    .parent()
                    .unwrap_or(Path::new("."))
                    .display()
            ))
        })?;
        let pooler = self.pooler.as_ref().ok_or_else(|| {
            BertError::Unsupported(format!(
                "{}: this checkpoint has a classifier but no pooler (`pooler.dense.weight`)",
                self.config
                    .path
                    .parent()
                    .unwrap_or(Path::new("."))
                    .display()
            ))
        })?;
        let pooled = pooler.forward(cls)?;
        classifier.forward(&dropout::maybe(dropout, pooled, |d| d.classifier)?)
    }

    /// Masked-LM logits `[positions.len(), vocab]` at the given flat row indices.
    pub fn mlm_logits(&self, out: &EncoderOutput, rows: &[u32]) -> Result<Tensor> {
        let head = self.mlm.as_ref().ok_or_else(|| {
            BertError::Unsupported(format!(
                "{}: this checkpoint has no masked-LM head (no `cls.predictions.*` weights)",
                self.config
                    .path
                    .parent()
                    .unwrap_or(Path::new("."))
                    .display()
            ))
        })?;
        let index = Tensor::from_slice(rows, rows.len(), &self.device)?;
        head.forward(&out.hidden.index_select(&index, 0)?, self.compute())
    }
}

/// One head's queries and keys from a probed layer (every row of the batch).
fn neurons_of(probed: &Probed, (layer, head): (usize, usize), heads: usize) -> Result<Neurons> {
    let (Some(query), Some(key)) = (&probed.query, &probed.key) else {
        return Err(BertError::Unsupported(format!(
            "layer {layer} ran without a probe: no queries and keys to show"
        )));
    };
    let (rows, width) = query.dims2()?;
    let dim = width / heads.max(1);
    let slice = |t: &Tensor| -> Result<Vec<f32>> {
        Ok(t.narrow(1, head * dim, dim)?
            .flatten_all()?
            .to_vec1::<f32>()?)
    };
    Ok(Neurons {
        layer,
        head,
        tokens: rows,
        dim,
        queries: slice(query)?,
        keys: slice(key)?,
    })
}
