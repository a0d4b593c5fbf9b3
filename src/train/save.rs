//! Writing a fine-tuned model as a standard Hugging Face checkpoint, atomically:
//! `config.json`, `model.safetensors` (`bert.` prefix, `classifier.*`, the MLM
//! head when the base had one), tokenizer files, `metrics.json`, `training_args.json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use serde_json::{json, Value};

use crate::error::{read_to_string, BertError, Op, Result};
use crate::train::weights::NamedVar;
use crate::train::{TrainConfig, Trained};
pub use crate::write_guard::EPOCHS_DIR;
use crate::write_guard::{self, check_output_dir, Protected, MARKER_KEY};

const TOKENIZER_FILES: [&str; 4] = [
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
];

/// The checkpoint key `transformers` expects for one of our normalised names.
fn hf_key(name: &str) -> String {
    if name.starts_with("classifier.") || name.starts_with("cls.") {
        name.to_string()
    } else {
        format!("bert.{name}")
    }
}

/// Write the checkpoint to `output`, guarded: the output must not be, contain
/// or sit inside anything in `protected` (the current directory, the
/// executable, the base model, the data), and an existing one is replaced only
/// when `overwrite` and it is a checkpoint bertscope wrote. The checkpoint is
/// written into a staging directory first and swapped in atomically.
pub fn save_to(
    trained: &Trained,
    cfg: &TrainConfig,
    output: &Path,
    protected: &Protected,
    overwrite: bool,
) -> Result<PathBuf> {
    check_output_dir(output, protected, overwrite)?;
    let staging = write_guard::staging_dir(output, "new")?;
    let written = write_checkpoint(trained, cfg, &staging)
        .and_then(|()| move_epochs(cfg, &staging))
        .and_then(|()| write_guard::replace_dir(&staging, output));
    if let Err(e) = written {
        // The run's epoch checkpoints go back where they were, for a retry.
        if let Some(epochs) = &cfg.epochs_dir {
            let moved = staging.join(EPOCHS_DIR);
            if moved.is_dir() && !epochs.exists() {
                let _ = std::fs::rename(&moved, epochs);
            }
        }
        let _ = write_guard::remove_staging(&staging);
        return Err(relabel(e, &staging, output));
    }
    Ok(output.to_path_buf())
}

/// An error about a file in the staging directory, told about the same file
/// in `target` (where the user will look for it).
pub fn relabel(e: BertError, staging: &Path, target: &Path) -> BertError {
    match e {
        BertError::File { path, message } => match path.strip_prefix(staging) {
            Ok(rest) => BertError::File {
                path: target.join(rest),
                message,
            },
            Err(_) => BertError::File { path, message },
        },
        other => other,
    }
}

/// [`save_to`] protecting the current directory, the executable and the base model.
pub fn save(
    trained: &Trained,
    cfg: &TrainConfig,
    output: &Path,
    overwrite: bool,
) -> Result<PathBuf> {
    let protected = Protected::new().with("the base model", &trained.base_dir);
    save_to(trained, cfg, output, &protected, overwrite)
}

/// Write a checkpoint to `dir` (a per-epoch checkpoint inside a run's own
/// directory) through a staging directory, replacing a checkpoint of ours
/// already there: a kill never leaves it half written.
pub fn write_dir(trained: &Trained, cfg: &TrainConfig, dir: &Path) -> Result<()> {
    let staging = write_guard::staging_dir(dir, "new")?;
    let written = write_checkpoint(trained, cfg, &staging)
        .and_then(|()| write_guard::replace_dir(&staging, dir));
    if let Err(e) = written {
        let _ = write_guard::remove_staging(&staging);
        return Err(relabel(e, &staging, dir));
    }
    Ok(())
}

/// Per-epoch checkpoints (`epochs/epoch-N`) of a saved run, in epoch order.
pub fn epoch_checkpoints(dir: &Path) -> Vec<(usize, PathBuf)> {
    let Ok(entries) = dir.join(EPOCHS_DIR).read_dir() else {
        return Vec::new();
    };
    let mut found: Vec<(usize, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.to_string();
            let epoch = name.strip_prefix("epoch-")?.parse().ok()?;
            e.path()
                .join("config.json")
                .is_file()
                .then(|| (epoch, e.path()))
        })
        .collect();
    found.sort();
    found
}

/// Move the run's per-epoch checkpoints (if it kept them) into the output.
fn move_epochs(cfg: &TrainConfig, out: &Path) -> Result<()> {
    let Some(from) = cfg.epochs_dir.as_deref().filter(|d| d.is_dir()) else {
        return Ok(());
    };
    let to = out.join(EPOCHS_DIR);
    if std::fs::rename(from, &to).is_ok() {
        return Ok(());
    }
    copy_tree(from, &to, &mut |_| {})?;
    std::fs::remove_dir_all(from).map_err(|e| BertError::io(Op::Remove, from, &e))
}

/// Copy a directory tree (files and subdirectories; symbolic links are
/// refused, not followed). `progress(bytes)` after each file.
pub fn copy_tree(from: &Path, to: &Path, progress: &mut dyn FnMut(u64)) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| BertError::io(Op::Create, to, &e))?;
    for entry in from
        .read_dir()
        .map_err(|e| BertError::io(Op::List, from, &e))?
    {
        let entry = entry.map_err(|e| BertError::io(Op::List, from, &e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry
            .file_type()
            .map_err(|e| BertError::io(Op::Read, &src, &e))?;
        if kind.is_symlink() {
            return Err(BertError::file(&src, "is a symbolic link; not copied"));
        } else if kind.is_dir() {
            copy_tree(&src, &dst, progress)?;
        } else {
            let bytes =
                std::fs::copy(&src, &dst).map_err(|e| BertError::io(Op::Write, &dst, &e))?;
            progress(bytes);
        }
    }
    Ok(())
}

/// "Save as…": copy a fine-tuned directory to `output`, with the same rules as
/// [`save_to`] (the base model and the run itself protected; an existing
/// output replaced only when `overwrite` and it is bertscope's).
pub fn copy_checkpoint(from: &Path, output: &Path, base: &Path, overwrite: bool) -> Result<()> {
    copy_checkpoint_with_progress(from, output, base, overwrite, &mut |_| {})
}

/// [`copy_checkpoint`] reporting the bytes copied so far.
pub fn copy_checkpoint_with_progress(
    from: &Path,
    output: &Path,
    base: &Path,
    overwrite: bool,
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    let mut protected = Protected::new();
    protected.add("the tuned model being saved", from);
    if !base.as_os_str().is_empty() {
        protected.add("the base model", base);
    }
    check_output_dir(output, &protected, overwrite)?;
    let staging = write_guard::staging_dir(output, "new")?;
    let mut copied = 0u64;
    let written = copy_tree(from, &staging, &mut |bytes| {
        copied += bytes;
        progress(copied)
    })
    .and_then(|()| write_guard::replace_dir(&staging, output));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    Ok(())
}

/// The weights of a checkpoint bertscope wrote, by our names, checked against
/// the shapes of `vars`.
pub fn read_weights(path: &Path, vars: &[NamedVar]) -> Result<Vec<(String, Tensor)>> {
    let device = vars
        .first()
        .map(|v| v.var.device().clone())
        .unwrap_or(candle_core::Device::Cpu);
    let stored = candle_core::safetensors::load(path, &device)
        .map_err(|e| BertError::file(path, format!("cannot read: {e}")))?;
    vars.iter()
        .map(|v| {
            let key = hf_key(&v.name);
            let t = stored
                .get(&key)
                .ok_or_else(|| BertError::weight(path, &key, "missing"))?;
            if t.dims() != v.var.dims() {
                return Err(BertError::weight(
                    path,
                    &key,
                    format!("has shape {:?}, expected {:?}", t.dims(), v.var.dims()),
                ));
            }
            Ok((v.name.clone(), t.clone()))
        })
        .collect()
}

/// Write every file of a checkpoint into the existing directory `dir`.
pub fn write_checkpoint(trained: &Trained, cfg: &TrainConfig, dir: &Path) -> Result<()> {
    let base_config = trained.base_dir.join("config.json");
    let mut config: Value = serde_json::from_str(&read_to_string(&base_config)?)
        .map_err(|e| BertError::json(&base_config, &e))?;
    let labels = &trained.labels;
    if cfg.task == crate::train::Task::Mlm {
        if let Value::Object(obj) = &mut config {
            obj.insert("architectures".into(), json!(["BertForMaskedLM"]));
            obj.insert("model_type".into(), json!("bert"));
        }
        return write_rest(trained, cfg, dir, &config);
    }
    let id2label: serde_json::Map<String, Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (i.to_string(), json!(l)))
        .collect();
    let label2id: serde_json::Map<String, Value> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| (l.clone(), json!(i)))
        .collect();
    if let Value::Object(obj) = &mut config {
        obj.insert(
            "architectures".into(),
            json!(["BertForSequenceClassification"]),
        );
        obj.insert("num_labels".into(), json!(labels.len()));
        obj.insert("id2label".into(), Value::Object(id2label));
        obj.insert("label2id".into(), Value::Object(label2id));
        obj.insert("model_type".into(), json!("bert"));
    }
    write_rest(trained, cfg, dir, &config)
}

/// Everything but the architecture-specific config fields.
fn write_rest(trained: &Trained, cfg: &TrainConfig, dir: &Path, config: &Value) -> Result<()> {
    let labels = &trained.labels;
    write_json(&dir.join("config.json"), config)?;

    let tensors: HashMap<String, candle_core::Tensor> = trained
        .tensors
        .iter()
        .map(|(name, t)| {
            Ok((
                hf_key(name),
                t.to_device(&candle_core::Device::Cpu)?.contiguous()?,
            ))
        })
        .collect::<Result<_>>()?;
    let weights = dir.join("model.safetensors");
    write_safetensors(&tensors, &weights)?;

    for file in TOKENIZER_FILES {
        let from = trained.base_dir.join(file);
        if from.is_file() {
            let to = dir.join(file);
            std::fs::copy(&from, &to).map_err(|e| BertError::io(Op::Write, &to, &e))?;
        }
    }
    write_json(
        &dir.join("metrics.json"),
        &serde_json::to_value(&trained.report).unwrap_or(Value::Null),
    )?;
    let mut args = serde_json::to_value(cfg).unwrap_or(Value::Null);
    if let Value::Object(obj) = &mut args {
        obj.insert(
            "base_model".into(),
            json!(trained.base_dir.display().to_string()),
        );
        obj.insert("labels".into(), json!(labels));
        obj.insert(MARKER_KEY.into(), json!(crate::train::run_dir::marker()));
    }
    write_json(&dir.join("training_args.json"), &args)
}

/// Write tensors as safetensors with the `{"format": "pt"}` metadata that
/// `transformers`' `from_pretrained` reads (4.x fails on a file without it).
pub fn write_safetensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<()> {
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let mut sorted: Vec<(&String, &Tensor)> = tensors.iter().collect();
    sorted.sort_by_key(|(name, _)| name.as_str());
    safetensors::serialize_to_file(sorted, Some(metadata), path).map_err(|e| match e {
        safetensors::SafeTensorError::IoError(io) => BertError::io(Op::Write, path, &io),
        other => BertError::file(path, format!("cannot write: {other}")),
    })
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| BertError::file(path, e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| BertError::io(Op::Write, path, &e))
}
