//! Writing a fine-tuned model as a standard Hugging Face checkpoint, atomically:
//! `config.json`, `model.safetensors` (`bert.` prefix, `classifier.*`, the MLM
//! head when the base had one), tokenizer files, `metrics.json`, `training_args.json`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::error::{read_to_string, BertError, Op, Result};
use crate::train::{TrainConfig, Trained};

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

/// Refuse outputs that would destroy something: the base model, or a
/// non-empty directory without `overwrite`.
pub fn check_output(output: &Path, base: &Path, overwrite: bool) -> Result<()> {
    let same = match (output.canonicalize(), base.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same {
        return Err(BertError::file(
            output,
            "is the base model's directory; choose another --output",
        ));
    }
    let non_empty = output
        .read_dir()
        .map(|mut d| d.next().is_some())
        .unwrap_or(false);
    if non_empty && !overwrite {
        return Err(BertError::file(
            output,
            "is not empty (pass --overwrite to replace it)",
        ));
    }
    if output.exists() && !output.is_dir() {
        return Err(BertError::file(output, "exists and is not a directory"));
    }
    Ok(())
}

/// Write the checkpoint to `output` via a temporary sibling directory and a rename.
pub fn save(
    trained: &Trained,
    cfg: &TrainConfig,
    output: &Path,
    overwrite: bool,
) -> Result<PathBuf> {
    check_output(output, &trained.base_dir, overwrite)?;
    let tmp = temp_sibling(output)?;
    std::fs::create_dir_all(&tmp).map_err(|e| BertError::io(Op::Create, &tmp, &e))?;
    let written = write_all(trained, cfg, &tmp).and_then(|()| move_epochs(cfg, &tmp));
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if output.exists() {
        std::fs::remove_dir_all(output).map_err(|e| BertError::io(Op::Remove, output, &e))?;
    }
    std::fs::rename(&tmp, output).map_err(|e| BertError::io(Op::Rename, output, &e))?;
    Ok(output.to_path_buf())
}

/// Write a checkpoint into `dir` (created; not atomic: for scratch directories
/// such as per-epoch checkpoints).
pub fn write_dir(trained: &Trained, cfg: &TrainConfig, dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| BertError::io(Op::Remove, dir, &e))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| BertError::io(Op::Create, dir, &e))?;
    write_all(trained, cfg, dir)
}

/// The subdirectory of a saved run that holds its per-epoch checkpoints.
pub const EPOCHS_DIR: &str = "epochs";

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
    copy_tree(from, &to)?;
    std::fs::remove_dir_all(from).map_err(|e| BertError::io(Op::Remove, from, &e))
}

/// Copy a directory tree (files and subdirectories).
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| BertError::io(Op::Create, to, &e))?;
    for entry in from.read_dir().map_err(|e| BertError::io(Op::List, from, &e))? {
        let entry = entry.map_err(|e| BertError::io(Op::List, from, &e))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| BertError::io(Op::Write, &dst, &e))?;
        }
    }
    Ok(())
}

/// "Save as…": copy a fine-tuned directory to `output` atomically (temporary
/// sibling, then rename), refusing the base model's directory and, without
/// `overwrite`, a non-empty one.
pub fn copy_checkpoint(from: &Path, output: &Path, base: &Path, overwrite: bool) -> Result<()> {
    check_output(output, base, overwrite)?;
    check_output(output, from, true)?;
    let tmp = temp_sibling(output)?;
    if let Err(e) = copy_tree(from, &tmp) {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if output.exists() {
        std::fs::remove_dir_all(output).map_err(|e| BertError::io(Op::Remove, output, &e))?;
    }
    std::fs::rename(&tmp, output).map_err(|e| BertError::io(Op::Rename, output, &e))
}

/// A fresh temporary directory next to `output` (same filesystem: rename works).
fn temp_sibling(output: &Path) -> Result<PathBuf> {
    let parent = output
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| BertError::io(Op::Create, parent, &e))?;
    let name = output
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("model");
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(|e| BertError::io(Op::Remove, &tmp, &e))?;
    }
    Ok(tmp)
}

fn write_all(trained: &Trained, cfg: &TrainConfig, dir: &Path) -> Result<()> {
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
    candle_core::safetensors::save(&tensors, &weights)
        .map_err(|e| BertError::file(&weights, format!("cannot write: {e}")))?;

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
    }
    write_json(&dir.join("training_args.json"), &args)
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| BertError::file(path, e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| BertError::io(Op::Write, path, &e))
}
