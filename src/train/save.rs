//! Writing a fine-tuned model as a standard Hugging Face checkpoint, atomically:
//! `config.json`, `model.safetensors` (`bert.` prefix, `classifier.*`, the MLM
//! head when the base had one), tokenizer files, `metrics.json`, `training_args.json`.
//! Writes take the run's cancel flag: a cancel stops them within a chunk
//! (`BertError::Cancelled`), leaving what was at the destination untouched.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use candle_core::Tensor;
use serde_json::{json, Value};

use crate::error::{read_to_string, BertError, Op, Result};
use crate::train::run_dir::{OPTIMIZER_FILE, STATE_FILE};
use crate::train::weights::NamedVar;
use crate::train::{TrainConfig, Trained};
pub use crate::write_guard::EPOCHS_DIR;
use crate::write_guard::{self, check_output_dir, Protected, MARKER_KEY};

mod safetensors_writer;

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
    let never = AtomicBool::new(false);
    save_to_cancellable(trained, cfg, output, protected, overwrite, &never)
}

/// [`save_to`], stopped by `cancel` (`BertError::Cancelled`): the output is
/// left as it was, the staging directory removed and the run's epoch
/// checkpoints put back, so the run can still be resumed or saved.
pub fn save_to_cancellable(
    trained: &Trained,
    cfg: &TrainConfig,
    output: &Path,
    protected: &Protected,
    overwrite: bool,
    cancel: &AtomicBool,
) -> Result<PathBuf> {
    check_output_dir(output, protected, overwrite)?;
    let staging = write_guard::staging_dir(output, "new")?;
    let written = write_checkpoint(trained, cfg, &staging, cancel)
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
/// already there: a kill or a cancel never leaves it half written.
pub fn write_dir(
    trained: &Trained,
    cfg: &TrainConfig,
    dir: &Path,
    cancel: &AtomicBool,
) -> Result<()> {
    let staging = write_guard::staging_dir(dir, "new")?;
    let written = write_checkpoint(trained, cfg, &staging, cancel)
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
    copy_files(from, &to, &checkpoint_files(from)?, &mut |_| {})?;
    std::fs::remove_dir_all(from).map_err(|e| BertError::io(Op::Remove, from, &e))
}

/// What a copy of the checkpoint in `from` takes: every file of the tree
/// (`epochs/epoch-N` included), by path relative to `from`, with its size —
/// but not a run state's AdamW moments and trainer state, which only *Resume*
/// reads (two thirds of an unsaved run's `last/`). Symbolic links are refused,
/// not followed.
pub fn checkpoint_files(from: &Path) -> Result<Vec<(PathBuf, u64)>> {
    let mut files = Vec::new();
    list_files(from, Path::new(""), &mut files)?;
    Ok(files)
}

fn list_files(root: &Path, sub: &Path, files: &mut Vec<(PathBuf, u64)>) -> Result<()> {
    let dir = root.join(sub);
    for entry in dir
        .read_dir()
        .map_err(|e| BertError::io(Op::List, &dir, &e))?
    {
        let entry = entry.map_err(|e| BertError::io(Op::List, &dir, &e))?;
        let (path, name) = (entry.path(), entry.file_name());
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| BertError::io(Op::Read, &path, &e))?;
        if meta.file_type().is_symlink() {
            return Err(BertError::file(&path, "is a symbolic link; not copied"));
        } else if meta.is_dir() {
            list_files(root, &sub.join(&name), files)?;
        } else if name != OPTIMIZER_FILE && name != STATE_FILE {
            files.push((sub.join(&name), meta.len()));
        }
    }
    Ok(())
}

/// Copy `files` (from [`checkpoint_files`]) from `from` to `to`;
/// `progress(bytes)` after each file.
fn copy_files(
    from: &Path,
    to: &Path,
    files: &[(PathBuf, u64)],
    progress: &mut dyn FnMut(u64),
) -> Result<()> {
    std::fs::create_dir_all(to).map_err(|e| BertError::io(Op::Create, to, &e))?;
    for (file, _) in files {
        let dst = to.join(file);
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(|e| BertError::io(Op::Create, parent, &e))?;
        }
        let bytes =
            std::fs::copy(from.join(file), &dst).map_err(|e| BertError::io(Op::Write, &dst, &e))?;
        progress(bytes);
    }
    Ok(())
}

/// "Save as…": copy the checkpoint in `from` (a saved run, or an unsaved
/// run's `last/` or `best/`: see [`checkpoint_files`]) to `output`, with the
/// same rules as [`save_to`] (the base model and the run itself protected; an
/// existing output replaced only when `overwrite` and it is bertscope's).
/// `progress(copied, total)` in bytes, once before the copy and after each file.
pub fn copy_checkpoint_with_progress(
    from: &Path,
    output: &Path,
    base: &Path,
    overwrite: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let mut protected = Protected::new();
    protected.add("the tuned model being saved", from);
    if !base.as_os_str().is_empty() {
        protected.add("the base model", base);
    }
    check_output_dir(output, &protected, overwrite)?;
    let files = checkpoint_files(from)?;
    let total = files.iter().map(|(_, size)| size).sum();
    progress(0, total);
    let staging = write_guard::staging_dir(output, "new")?;
    let mut copied = 0u64;
    let written = copy_files(from, &staging, &files, &mut |bytes| {
        copied += bytes;
        progress(copied, total)
    })
    .and_then(|()| write_guard::replace_dir(&staging, output));
    if let Err(e) = written {
        // Ours, made above; it may hold the copy of a folder bertscope did not write.
        let _ = std::fs::remove_dir_all(&staging);
        return Err(relabel(e, &staging, output));
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
pub fn write_checkpoint(
    trained: &Trained,
    cfg: &TrainConfig,
    dir: &Path,
    cancel: &AtomicBool,
) -> Result<()> {
    let base_config = trained.base_dir.join("config.json");
    let mut config: Value = serde_json::from_str(&read_to_string(&base_config)?)
        .map_err(|e| BertError::json(&base_config, &e))?;
    let labels = &trained.labels;
    if cfg.task == crate::train::Task::Mlm {
        if let Value::Object(obj) = &mut config {
            obj.insert("architectures".into(), json!(["BertForMaskedLM"]));
            obj.insert("model_type".into(), json!("bert"));
        }
        return write_rest(trained, cfg, dir, &config, cancel);
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
    write_rest(trained, cfg, dir, &config, cancel)
}

/// Everything but the architecture-specific config fields.
fn write_rest(
    trained: &Trained,
    cfg: &TrainConfig,
    dir: &Path,
    config: &Value,
    cancel: &AtomicBool,
) -> Result<()> {
    let labels = &trained.labels;
    write_json(&dir.join("config.json"), config)?;

    let tensors: Vec<(String, Tensor)> = trained
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
    write_safetensors(&tensors, &weights, cancel)?;

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

/// Write tensors (on the CPU) as safetensors with the `{"format": "pt"}`
/// metadata that `transformers`' `from_pretrained` reads (4.x fails on a file
/// without it), in chunks: `BertError::Cancelled` soon after `cancel` is set.
pub fn write_safetensors(
    tensors: &[(String, Tensor)],
    path: &Path,
    cancel: &AtomicBool,
) -> Result<()> {
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors_writer::write(tensors, &metadata, path, cancel)
}

fn write_json(path: &Path, value: &Value) -> Result<()> {
    let text =
        serde_json::to_string_pretty(value).map_err(|e| BertError::file(path, e.to_string()))?;
    std::fs::write(path, text + "\n").map_err(|e| BertError::io(Op::Write, path, &e))
}
