//! Checkpoint weights on disk: `model.safetensors` (memory-mapped, optionally
//! sharded) or `pytorch_model.bin`, with the key variants real BERT checkpoints use
//! normalised to the names of `transformers.BertModel`. Sizes a file claims are
//! checked against the file before anything is allocated for them.

mod pickle_guard;
mod pth;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use crate::config::read_text_at_most;
use crate::error::{BertError, Result};

/// Largest shard index read (a `weight_map` of a few thousand names: ~100 KB).
const MAX_INDEX_BYTES: u64 = 16 << 20;

enum Store {
    /// One memory map per file; tensors are read when asked for.
    Safetensors(MmapedSafetensors),
    /// Tensors already read (pickle checkpoints).
    Loaded(HashMap<String, Tensor>),
}

/// A source of named model tensors: a checkpoint on disk for inference, or
/// trainable variables for fine-tuning. Names are normalised `BertModel` keys.
pub trait Weights {
    /// A tensor with the expected shape, as f32 on the model's device.
    fn get(&self, key: &str, shape: &[usize]) -> Result<Tensor>;
    fn contains(&self, key: &str) -> bool;
    fn has_prefix(&self, prefix: &str) -> bool;

    /// Like [`Weights::get`] for optional tensors.
    fn get_opt(&self, key: &str, shape: &[usize]) -> Result<Option<Tensor>> {
        if self.contains(key) {
            self.get(key, shape).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// Where one normalised key lives.
struct Entry {
    original: String,
    file: PathBuf,
}

/// All tensors of a checkpoint, addressed by normalised names such as
/// `encoder.layer.0.attention.self.query.weight` or `cls.predictions.bias`.
pub struct Checkpoint {
    store: Store,
    entries: HashMap<String, Entry>,
    device: Device,
}

/// The weight files a directory holds, in the order `transformers` prefers them.
pub fn weight_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    for index in [
        "model.safetensors.index.json",
        "pytorch_model.bin.index.json",
    ] {
        let index = dir.join(index);
        if index.is_file() {
            return shard_files(&index);
        }
    }
    let bin = dir.join("pytorch_model.bin");
    if bin.is_file() {
        return Ok(vec![bin]);
    }
    Err(BertError::file(
        dir,
        "no weights found (expected model.safetensors, model.safetensors.index.json or pytorch_model.bin)",
    ))
}

fn shard_files(index: &Path) -> Result<Vec<PathBuf>> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: HashMap<String, String>,
    }
    let text = read_text_at_most(index, MAX_INDEX_BYTES)?;
    let parsed: Index = serde_json::from_str(&text).map_err(|e| BertError::json(index, &e))?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let files: BTreeSet<&String> = parsed.weight_map.values().collect();
    if files.is_empty() {
        return Err(BertError::file(index, "field `weight_map` lists no files"));
    }
    let mut paths = Vec::new();
    for file in files {
        let path = dir.join(file);
        if !path.is_file() {
            return Err(BertError::file(
                &path,
                format!("shard listed in {} not found", index.display()),
            ));
        }
        paths.push(path);
    }
    Ok(paths)
}

/// The normalised key names of a directory's weights, sorted, read from the
/// safetensors headers or the pickle's tensor list: no tensor data is read.
pub fn weight_keys(dir: &Path) -> Result<Vec<String>> {
    let mut keys = BTreeSet::new();
    for file in weight_files(dir)? {
        let names = if is_pickle(&file) {
            pth::list(&file, |name| normalize(name).is_some())?
                .into_iter()
                .map(|t| t.name)
                .collect()
        } else {
            let map = map_safetensors(&file)?;
            map.tensors()
                .into_iter()
                .map(|(name, _)| name)
                .collect::<Vec<_>>()
        };
        keys.extend(names.iter().filter_map(|name| normalize(name)));
    }
    Ok(keys.into_iter().collect())
}

fn is_pickle(file: &Path) -> bool {
    file.extension().is_some_and(|e| e == "bin")
}

/// Map one safetensors file; its header is checked against the file's length.
fn map_safetensors(file: &Path) -> Result<MmapedSafetensors> {
    // SAFETY: the map is read-only; a checkpoint modified while we run is the
    // user's business, as with every mmap-based loader (transformers included).
    unsafe { MmapedSafetensors::new(file) }.map_err(|e| {
        BertError::file(
            file,
            format!("not a valid safetensors file (truncated or corrupt): {e}"),
        )
    })
}

/// Map a checkpoint key to the `BertModel` naming; `None` for keys we ignore.
fn normalize(key: &str) -> Option<String> {
    let key = key.strip_prefix("bert.").unwrap_or(key);
    if key.ends_with("position_ids") || key.starts_with("cls.seq_relationship") {
        return None;
    }
    let mut key = key.to_string();
    if key.contains("LayerNorm") {
        if let Some(stem) = key.strip_suffix(".gamma") {
            key = format!("{stem}.weight");
        } else if let Some(stem) = key.strip_suffix(".beta") {
            key = format!("{stem}.bias");
        }
    }
    if key == "cls.predictions.decoder.bias" {
        key = "cls.predictions.bias".to_string();
    }
    Some(key)
}

impl Checkpoint {
    /// Open the weights of a model directory on `device`.
    pub fn open(dir: &Path, device: &Device) -> Result<Self> {
        let files = weight_files(dir)?;
        if files.iter().any(|f| is_pickle(f)) {
            Self::open_pickle(&files, device)
        } else {
            Self::open_safetensors(&files, device)
        }
    }

    fn open_safetensors(files: &[PathBuf], device: &Device) -> Result<Self> {
        let mut entries = HashMap::new();
        for file in files {
            let single = map_safetensors(file)?;
            for (name, _) in single.tensors() {
                if let Some(key) = normalize(&name) {
                    entries.insert(
                        key,
                        Entry {
                            original: name,
                            file: file.clone(),
                        },
                    );
                }
            }
        }
        // SAFETY: as in `map_safetensors`.
        let store = unsafe { MmapedSafetensors::multi(files) }
            .map_err(|e| BertError::file(&files[0], format!("cannot map weights: {e}")))?;
        Ok(Checkpoint {
            store: Store::Safetensors(store),
            entries,
            device: device.clone(),
        })
    }

    /// Read a pickle checkpoint's tensors, after checking every size it claims.
    fn open_pickle(files: &[PathBuf], device: &Device) -> Result<Self> {
        let mut entries = HashMap::new();
        let mut tensors = HashMap::new();
        for file in files {
            let listed = pth::list(file, |name| normalize(name).is_some())?;
            for (name, tensor) in pth::read(file, &listed)? {
                if let Some(key) = normalize(&name) {
                    tensors.insert(name.clone(), tensor);
                    entries.insert(
                        key,
                        Entry {
                            original: name,
                            file: file.clone(),
                        },
                    );
                }
            }
        }
        Ok(Checkpoint {
            store: Store::Loaded(tensors),
            entries,
            device: device.clone(),
        })
    }

    /// The normalised keys, sorted.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    /// The file that holds the weights (the first shard when sharded).
    pub fn describe_source(&self) -> PathBuf {
        self.entries
            .values()
            .map(|e| e.file.clone())
            .min()
            .unwrap_or_default()
    }

    /// The shape stored for a key, without reading the data.
    pub fn shape_of(&self, key: &str) -> Option<Vec<usize>> {
        let entry = self.entries.get(key)?;
        match &self.store {
            Store::Safetensors(st) => st.get(&entry.original).ok().map(|v| v.shape().to_vec()),
            Store::Loaded(map) => map.get(&entry.original).map(|t| t.dims().to_vec()),
        }
    }
}

impl Weights for Checkpoint {
    fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    fn has_prefix(&self, prefix: &str) -> bool {
        self.entries.keys().any(|k| k.starts_with(prefix))
    }

    /// A tensor with the expected shape, as f32 on the checkpoint's device.
    fn get(&self, key: &str, shape: &[usize]) -> Result<Tensor> {
        let entry = self.entries.get(key).ok_or_else(|| {
            BertError::weight(&self.describe_source(), key, "missing from the checkpoint")
        })?;
        let tensor = match &self.store {
            Store::Safetensors(st) => st.load(&entry.original, &self.device),
            Store::Loaded(map) => match map.get(&entry.original) {
                Some(t) => t.to_device(&self.device),
                None => Err(candle_core::Error::Msg("tensor vanished".into())),
            },
        }
        .map_err(|e| {
            BertError::weight(&entry.file, &entry.original, format!("cannot read: {e}"))
        })?;
        if tensor.dims() != shape {
            return Err(BertError::weight(
                &entry.file,
                &entry.original,
                format!(
                    "shape {:?} disagrees with config.json, which implies {:?}",
                    tensor.dims(),
                    shape
                ),
            ));
        }
        tensor
            .to_dtype(DType::F32)
            .map_err(|e| BertError::weight(&entry.file, &entry.original, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn key_variants_normalise() {
        assert_eq!(
            normalize("bert.encoder.layer.0.output.LayerNorm.gamma").as_deref(),
            Some("encoder.layer.0.output.LayerNorm.weight")
        );
        assert_eq!(
            normalize("embeddings.LayerNorm.beta").as_deref(),
            Some("embeddings.LayerNorm.bias")
        );
        assert_eq!(normalize("bert.embeddings.position_ids"), None);
        assert_eq!(normalize("cls.seq_relationship.weight"), None);
        assert_eq!(
            normalize("cls.predictions.decoder.bias").as_deref(),
            Some("cls.predictions.bias")
        );
        assert_eq!(
            normalize("classifier.weight").as_deref(),
            Some("classifier.weight")
        );
    }
}
