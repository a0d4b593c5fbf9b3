//! `config.json` of a BERT checkpoint, with the defaults of `transformers.BertConfig`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{BertError, Op, Result};

/// Largest `config.json` read (a real one is 1 KB; 65 536 labels make ~2 MB).
const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Upper bounds far above any published BERT (the largest: 4096 hidden, 48
/// layers, 64 heads, 16 384 intermediate, a 250k vocabulary, 8192 positions), so
/// that a corrupt or hostile `config.json` is refused before it sizes anything.
const MAX_HIDDEN_SIZE: usize = 1 << 16;
const MAX_HEADS: usize = 1 << 10;
const MAX_LAYERS: usize = 1 << 10;
const MAX_INTERMEDIATE_SIZE: usize = 1 << 18;
const MAX_VOCAB_SIZE: usize = 1 << 22;
const MAX_POSITIONS: usize = 1 << 17;
const MAX_TYPE_VOCAB_SIZE: usize = 1 << 10;
const MAX_LABELS: usize = 1 << 16;
/// Most parameters the dimensions may imply together: 8.6 billion, 34 GB as f32.
const MAX_PARAMETERS: u128 = 1 << 33;

/// Activation used in the feed-forward block and the MLM transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU (`erf`), transformers' `gelu`.
    Gelu,
    /// Tanh approximation, transformers' `gelu_new` / `gelu_pytorch_tanh`.
    GeluTanh,
    Relu,
    Silu,
}

impl Activation {
    fn parse(name: &str) -> Option<Self> {
        match name {
            "gelu" => Some(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluTanh),
            "relu" => Some(Activation::Relu),
            "silu" | "swish" => Some(Activation::Silu),
            _ => None,
        }
    }
}

/// The fields of `config.json` as written on disk; unknown fields are ignored.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RawConfig {
    pub architectures: Option<Vec<String>>,
    pub model_type: Option<String>,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub hidden_dropout_prob: f64,
    pub attention_probs_dropout_prob: f64,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub initializer_range: f64,
    pub layer_norm_eps: f64,
    pub pad_token_id: Option<u32>,
    pub position_embedding_type: Option<String>,
    pub classifier_dropout: Option<f64>,
    pub problem_type: Option<String>,
    pub num_labels: Option<usize>,
    pub id2label: Option<BTreeMap<String, String>>,
    pub label2id: Option<BTreeMap<String, i64>>,
}

impl Default for RawConfig {
    fn default() -> Self {
        RawConfig {
            architectures: None,
            model_type: None,
            vocab_size: 30522,
            hidden_size: 768,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            intermediate_size: 3072,
            hidden_act: "gelu".into(),
            hidden_dropout_prob: 0.1,
            attention_probs_dropout_prob: 0.1,
            max_position_embeddings: 512,
            type_vocab_size: 2,
            initializer_range: 0.02,
            layer_norm_eps: 1e-12,
            pad_token_id: Some(0),
            position_embedding_type: None,
            classifier_dropout: None,
            problem_type: None,
            num_labels: None,
            id2label: None,
            label2id: None,
        }
    }
}

/// A validated BERT configuration.
#[derive(Debug, Clone)]
pub struct BertConfig {
    pub raw: RawConfig,
    pub activation: Activation,
    /// Labels by class index, from `id2label` (else `LABEL_i`).
    pub labels: Vec<String>,
    pub path: PathBuf,
}

impl BertConfig {
    pub fn hidden_size(&self) -> usize {
        self.raw.hidden_size
    }
    pub fn num_layers(&self) -> usize {
        self.raw.num_hidden_layers
    }
    pub fn num_heads(&self) -> usize {
        self.raw.num_attention_heads
    }
    pub fn head_dim(&self) -> usize {
        self.raw.hidden_size / self.raw.num_attention_heads
    }
    pub fn layer_norm_eps(&self) -> f64 {
        self.raw.layer_norm_eps
    }
    /// Longest input the position embeddings allow (BERT caps this at 512).
    pub fn max_length(&self) -> usize {
        self.raw.max_position_embeddings.min(512)
    }
    /// True when the classifier outputs independent sigmoid scores, as the
    /// `transformers` text-classification pipeline decides.
    pub fn uses_sigmoid(&self, num_labels: usize) -> bool {
        self.raw.problem_type.as_deref() == Some("multi_label_classification") || num_labels == 1
    }
    /// Dropout for a classifier head: `classifier_dropout`, else `hidden_dropout_prob`.
    pub fn classifier_dropout(&self) -> f64 {
        self.raw
            .classifier_dropout
            .unwrap_or(self.raw.hidden_dropout_prob)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = read_text_at_most(path, MAX_CONFIG_BYTES)?;
        Self::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let raw: RawConfig = serde_json::from_str(text).map_err(|e| BertError::json(path, &e))?;
        Self::validate(path, text, raw)
    }

    pub fn from_raw(path: &Path, raw: RawConfig) -> Result<Self> {
        Self::validate(path, "", raw)
    }

    fn validate(path: &Path, text: &str, raw: RawConfig) -> Result<Self> {
        let field_error = |field: &str, message: String| match field_line(text, field) {
            Some(line) => BertError::file(path, format!("line {line}: field `{field}`: {message}")),
            None => BertError::file(path, format!("field `{field}`: {message}")),
        };
        if let Some(model_type) = &raw.model_type {
            if !matches!(model_type.as_str(), "bert" | "") {
                return Err(field_error(
                    "model_type",
                    format!("\"{model_type}\" is not a BERT model (expected \"bert\")"),
                ));
            }
        }
        let activation = Activation::parse(&raw.hidden_act).ok_or_else(|| {
            field_error(
                "hidden_act",
                format!(
                    "unsupported activation \"{}\" (supported: gelu, gelu_new, gelu_pytorch_tanh, relu, silu)",
                    raw.hidden_act
                ),
            )
        })?;
        let too_large = |field: &str, value: usize, limit: usize| {
            field_error(
                field,
                format!("{value} is larger than any BERT ({limit} at most); is the file corrupt?"),
            )
        };
        for (field, value, limit) in [
            ("hidden_size", raw.hidden_size, MAX_HIDDEN_SIZE),
            ("num_attention_heads", raw.num_attention_heads, MAX_HEADS),
            ("num_hidden_layers", raw.num_hidden_layers, MAX_LAYERS),
            (
                "intermediate_size",
                raw.intermediate_size,
                MAX_INTERMEDIATE_SIZE,
            ),
            ("vocab_size", raw.vocab_size, MAX_VOCAB_SIZE),
            (
                "max_position_embeddings",
                raw.max_position_embeddings,
                MAX_POSITIONS,
            ),
            ("type_vocab_size", raw.type_vocab_size, MAX_TYPE_VOCAB_SIZE),
        ] {
            if value == 0 {
                return Err(field_error(field, "must be greater than 0".into()));
            }
            if value > limit {
                return Err(too_large(field, value, limit));
            }
        }
        for (field, value) in [
            ("num_labels", raw.num_labels.unwrap_or(0)),
            ("id2label", raw.id2label.as_ref().map_or(0, BTreeMap::len)),
        ] {
            if value > MAX_LABELS {
                return Err(too_large(field, value, MAX_LABELS));
            }
        }
        if !raw.hidden_size.is_multiple_of(raw.num_attention_heads) {
            return Err(field_error(
                "num_attention_heads",
                format!(
                    "hidden_size {} is not a multiple of num_attention_heads {}",
                    raw.hidden_size, raw.num_attention_heads
                ),
            ));
        }
        let parameters = parameter_count(&raw);
        if parameters > MAX_PARAMETERS {
            return Err(BertError::file(
                path,
                format!(
                    "the dimensions imply {parameters} parameters, more than the {MAX_PARAMETERS} this program can hold; is the file corrupt?"
                ),
            ));
        }
        if let Some(kind) = &raw.position_embedding_type {
            if kind != "absolute" {
                return Err(field_error(
                    "position_embedding_type",
                    format!("\"{kind}\" is not supported (only \"absolute\")"),
                ));
            }
        }
        let labels = labels_from(&raw).map_err(|m| field_error("id2label", m))?;
        Ok(BertConfig {
            raw,
            activation,
            labels,
            path: path.to_path_buf(),
        })
    }
}

/// Parameters of the model the dimensions describe, with both heads (biases and
/// layer norms included, roughly).
fn parameter_count(raw: &RawConfig) -> u128 {
    let [hidden, inter, layers, vocab, positions, types, labels] = [
        raw.hidden_size,
        raw.intermediate_size,
        raw.num_hidden_layers,
        raw.vocab_size,
        raw.max_position_embeddings,
        raw.type_vocab_size,
        raw.num_labels.unwrap_or(2),
    ]
    .map(|n| n as u128);
    let embeddings = (vocab + positions + types + 2) * hidden;
    let layer = 4 * hidden * hidden + 2 * hidden * inter + 9 * hidden + inter;
    let heads = 2 * hidden * hidden + (labels + 4) * hidden + vocab + labels;
    embeddings + layers * layer + heads
}

fn labels_from(raw: &RawConfig) -> std::result::Result<Vec<String>, String> {
    match &raw.id2label {
        Some(map) if !map.is_empty() => {
            let mut labels = vec![None; map.len()];
            for (key, label) in map {
                let index: usize = key
                    .parse()
                    .map_err(|_| format!("key \"{key}\" is not a class index"))?;
                let slot = labels.get_mut(index).ok_or_else(|| {
                    format!("index {index} out of range for {} labels", map.len())
                })?;
                *slot = Some(label.clone());
            }
            Ok(labels
                .into_iter()
                .enumerate()
                .map(|(i, l)| l.unwrap_or_else(|| format!("LABEL_{i}")))
                .collect())
        }
        _ => Ok((0..raw.num_labels.unwrap_or(2))
            .map(|i| format!("LABEL_{i}"))
            .collect()),
    }
}

/// Read a UTF-8 text file of at most `limit` bytes; a larger one is refused
/// before it is read, and reading stops at the limit should it grow meanwhile.
pub(crate) fn read_text_at_most(path: &Path, limit: u64) -> Result<String> {
    let io_error = |e: std::io::Error| BertError::io(Op::Read, path, &e);
    let too_large = |len: u64| {
        BertError::file(
            path,
            format!(
                "file is {len} bytes, larger than the {} MiB such a file can sensibly be",
                limit >> 20
            ),
        )
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let len = file.metadata().map_err(io_error)?.len();
    if len > limit {
        return Err(too_large(len));
    }
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    String::from_utf8(bytes).map_err(|_| BertError::file(path, "not valid UTF-8"))
}

/// 1-based line of the first `"field"` key in a JSON text, to point at the culprit.
fn field_line(text: &str, field: &str) -> Option<usize> {
    let needle = format!("\"{field}\"");
    text.lines()
        .position(|line| line.contains(&needle))
        .map(|i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_transformers() {
        let c = BertConfig::parse(Path::new("config.json"), "{}").unwrap();
        assert_eq!(c.hidden_size(), 768);
        assert_eq!(c.activation, Activation::Gelu);
        assert_eq!(c.labels, vec!["LABEL_0", "LABEL_1"]);
    }

    #[test]
    fn bad_activation_names_line_and_field() {
        let text = "{\n  \"hidden_act\": \"mish\"\n}";
        let err = BertConfig::parse(Path::new("m/config.json"), text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "m/config.json: line 2: field `hidden_act`: unsupported activation \"mish\" (supported: gelu, gelu_new, gelu_pytorch_tanh, relu, silu)"
        );
    }

    #[test]
    fn absurd_dimensions_name_the_field() {
        let text = "{\n  \"vocab_size\": 1000000000000\n}";
        let err = BertConfig::parse(Path::new("m/config.json"), text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "m/config.json: line 2: field `vocab_size`: 1000000000000 is larger than any BERT (4194304 at most); is the file corrupt?"
        );
    }

    #[test]
    fn bert_large_is_within_bounds() {
        let text = r#"{"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
            "intermediate_size": 4096, "vocab_size": 250002, "max_position_embeddings": 8192}"#;
        assert!(BertConfig::parse(Path::new("config.json"), text).is_ok());
    }

    #[test]
    fn invalid_json_has_position() {
        let err = BertConfig::parse(Path::new("config.json"), "{\n \"hidden_size\": \"big\"\n}")
            .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("config.json:2:"), "{text}");
        assert!(text.contains("invalid type"), "{text}");
    }

    #[test]
    fn id2label_orders_labels() {
        let c = BertConfig::parse(
            Path::new("config.json"),
            r#"{"id2label": {"1": "b", "0": "a", "2": "c"}}"#,
        )
        .unwrap();
        assert_eq!(c.labels, vec!["a", "b", "c"]);
    }
}
