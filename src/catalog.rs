//! Discovering models on this machine: `./models/*` and the Hugging Face cache.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::checkpoint::weight_keys;
use crate::config::BertConfig;
use crate::error::Result;
use crate::hub;

/// What `bertscope models` reports for one model.
#[derive(Debug, Clone, Serialize)]
pub struct ModelSummary {
    /// The name to pass as `--model`.
    pub name: String,
    pub path: PathBuf,
    pub layers: usize,
    pub heads: usize,
    pub hidden_size: usize,
    pub vocab_size: usize,
    pub has_mlm_head: bool,
    /// Classifier labels when the checkpoint has a classification head.
    pub classifier_labels: Option<Vec<String>>,
}

/// Summarise one model directory from `config.json` and the weights' tensor
/// names, without reading any tensor data.
pub fn summarize(name: &str, dir: &Path) -> Result<ModelSummary> {
    let config = BertConfig::load(&dir.join("config.json"))?;
    let keys = weight_keys(dir)?;
    Ok(ModelSummary {
        name: name.to_string(),
        path: dir.to_path_buf(),
        layers: config.num_layers(),
        heads: config.num_heads(),
        hidden_size: config.hidden_size(),
        vocab_size: config.raw.vocab_size,
        has_mlm_head: keys.iter().any(|k| k.starts_with("cls.predictions.")),
        classifier_labels: keys
            .iter()
            .any(|k| k == "classifier.weight")
            .then(|| config.labels.clone()),
    })
}

/// Every candidate model directory with the name to load it by, sorted by name.
pub fn candidates() -> Vec<(String, PathBuf)> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(hub::local_models_dir()) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.join("config.json").is_file() {
                found.push((path.display().to_string(), path));
            }
        }
    }
    for cache in hub::cache_dirs() {
        let Ok(entries) = std::fs::read_dir(&cache) else {
            continue;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(repo) = file_name.to_str().and_then(|n| n.strip_prefix("models--")) else {
                continue;
            };
            if let Some(snapshot) = hub::cached_snapshot(&entry.path()) {
                found.push((repo.replace("--", "/"), snapshot));
            }
        }
    }
    found.sort();
    found.dedup_by(|a, b| a.1 == b.1);
    found
}

/// Summaries of every model found, and the problems with those that failed to load.
pub fn scan() -> (Vec<ModelSummary>, Vec<String>) {
    let mut models = Vec::new();
    let mut problems = Vec::new();
    for (name, dir) in candidates() {
        match summarize(&name, &dir) {
            Ok(summary) => models.push(summary),
            Err(e) => problems.push(e.to_string()),
        }
    }
    (models, problems)
}
