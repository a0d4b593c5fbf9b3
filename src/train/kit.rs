//! The launch kit for GPUs and clusters: a fine-tuning run, as `finetune`'s
//! flags or the app's training form describe it, written as a Hugging Face
//! Trainer script (`train.py`) with `requirements.txt`, an `accelerate.yaml`
//! template and a README. The script's recipe lives in
//! `assets/trainer_kit/train.py`; this module fills in the run's settings.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Map, Value};

use crate::data::Columns;
use crate::error::{read_to_string, BertError, Result};
use crate::train::{Task, TrainConfig};
use crate::write_guard::{self, Protected};

const TRAIN_PY: &str = include_str!("../../assets/trainer_kit/train.py");
const REQUIREMENTS: &str = include_str!("../../assets/trainer_kit/requirements.txt");
const ACCELERATE: &str = include_str!("../../assets/trainer_kit/accelerate.yaml");
const README: &str = include_str!("../../assets/trainer_kit/README.md");

/// The files of a kit, in the order they are written.
pub const KIT_FILES: [&str; 4] = [
    "train.py",
    "requirements.txt",
    "accelerate.yaml",
    "README.md",
];

/// What `train.py` says it was written by (and how a kit is recognised).
pub fn marker() -> String {
    format!("{} trainer kit", crate::train::run_dir::marker())
}

/// A run to export: the settings `finetune` would train with.
#[derive(Debug, Clone)]
pub struct KitRun {
    /// A model directory (written as an absolute path) or a Hub id.
    pub model: String,
    pub train: PathBuf,
    pub dev: Option<PathBuf>,
    pub dev_fraction: Option<f64>,
    pub output: PathBuf,
    pub config: TrainConfig,
    pub columns: Columns,
    /// As typed (`\t` or `tab` for a tab); `None`: by the file's extension.
    pub delimiter: Option<String>,
    pub skip_bad_rows: bool,
}

impl KitRun {
    /// The run as `train.py`'s `RUN` settings (one key per flag).
    pub fn settings(&self) -> Value {
        let c = &self.config;
        let path = |p: &Path| json!(write_guard::absolute(p).display().to_string());
        json!({
            "task": match c.task { Task::Classification => "classification", Task::Mlm => "mlm" },
            "model": self.model,
            "train": path(&self.train),
            "dev": self.dev.as_deref().map(path),
            "dev_fraction": self.dev_fraction,
            "output": path(&self.output),
            "epochs": c.epochs,
            "batch_size": c.batch_size,
            "lr": c.lr,
            "weight_decay": c.weight_decay,
            "warmup_ratio": c.warmup_ratio,
            "max_grad_norm": c.max_grad_norm,
            "max_length": c.max_length,
            "seed": c.seed,
            "max_steps": c.max_steps,
            "shuffle": c.shuffle,
            "bucketing": c.bucketing,
            "dropout": c.dropout,
            "save_last": c.save_last,
            "labels": c.labels,
            "text_a_column": self.columns.text_a,
            "text_b_column": self.columns.text_b,
            "label_column": self.columns.label,
            "id_column": self.columns.id,
            "delimiter": self.delimiter,
            "skip_bad_rows": self.skip_bad_rows,
        })
    }
}

/// The model as the kit names it: an existing directory by its absolute path,
/// anything else (a Hub id) as given.
pub fn model_name(spec: &str, resolved: Option<&Path>) -> String {
    if Path::new(spec).exists() {
        return write_guard::absolute(Path::new(spec)).display().to_string();
    }
    match resolved {
        // `./models/NAME`: a path; a Hub cache snapshot: the Hub id.
        Some(dir) if !is_in_hub_cache(dir) => write_guard::absolute(dir).display().to_string(),
        _ => spec.to_string(),
    }
}

fn is_in_hub_cache(dir: &Path) -> bool {
    dir.components()
        .any(|c| c.as_os_str().to_string_lossy().starts_with("models--"))
}

/// Write the kit into `dir` (created; an existing kit replaced only with
/// `overwrite`, anything else refused; a non-empty `dir` without `overwrite`
/// is `BertError::OutputExists`). `command` is how the run was
/// described (the command line, or the app's form), for the README.
pub fn write(
    dir: &Path,
    run: &KitRun,
    command: &str,
    protected: &Protected,
    overwrite: bool,
) -> Result<Vec<PathBuf>> {
    check_dir(dir, protected, overwrite)?;
    std::fs::create_dir_all(dir).map_err(|e| BertError::io(crate::error::Op::Create, dir, &e))?;
    let settings = run.settings();
    let train_py = TRAIN_PY
        .replacen("__BERTSCOPE_RUN__", &python_literal(&settings, 0), 1)
        .replacen(
            "__BERTSCOPE_WRITTEN_BY__",
            &python_literal(&json!(marker()), 0),
            1,
        );
    let readme = README
        .replace("__BERTSCOPE_COMMAND__", command)
        .replace("__BERTSCOPE_MODEL__", &run.model);
    let contents = [
        train_py,
        REQUIREMENTS.to_string(),
        ACCELERATE.to_string(),
        readme,
    ];
    let mut written = Vec::new();
    for (name, text) in KIT_FILES.iter().zip(contents) {
        let path = dir.join(name);
        write_guard::write_file_atomically(&path, |file| file.write_all(text.as_bytes()))?;
        written.push(path);
    }
    Ok(written)
}

/// `dir` may be new, empty, or (with `overwrite`) a kit bertscope wrote.
fn check_dir(dir: &Path, protected: &Protected, overwrite: bool) -> Result<()> {
    match write_guard::check_output_dir(dir, protected, false) {
        Err(e @ BertError::OutputExists { .. }) => {
            if !overwrite {
                return Err(e);
            }
            is_kit(dir).map_err(|why| {
                BertError::file(
                    dir,
                    format!("is not a kit bertscope wrote ({why}); nothing was replaced"),
                )
            })
        }
        other => other,
    }
}

/// Whether `dir` holds a kit bertscope wrote and nothing else.
fn is_kit(dir: &Path) -> std::result::Result<(), String> {
    let entries = dir.read_dir().map_err(|e| e.to_string())?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if !KIT_FILES.contains(&name.as_str()) {
            return Err(format!("it holds {name}"));
        }
    }
    let script = read_to_string(&dir.join("train.py")).map_err(|e| e.to_string())?;
    if !script.contains("trainer kit\"") || !script.contains("WRITTEN_BY = \"bertscope") {
        return Err("its train.py is not bertscope's".into());
    }
    Ok(())
}

/// A JSON value as a Python literal (`None`, `True`, `False`; strings in JSON's
/// escapes, which Python reads the same), objects one key a line.
pub fn python_literal(value: &Value, indent: usize) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::String(_) => value.to_string(),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(|v| python_literal(v, indent)).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => object_literal(map, indent),
    }
}

fn object_literal(map: &Map<String, Value>, indent: usize) -> String {
    if map.is_empty() {
        return "{}".into();
    }
    let pad = " ".repeat(indent + 4);
    let lines: Vec<String> = map
        .iter()
        .map(|(k, v)| {
            format!(
                "{pad}{}: {},",
                Value::String(k.clone()),
                python_literal(v, indent + 4)
            )
        })
        .collect();
    format!("{{\n{}\n{}}}", lines.join("\n"), " ".repeat(indent))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_literals_of_json_values() {
        let v = json!({"a": null, "b": [true, false], "c": "tab\t\"q\" 中", "d": 2e-5, "e": 3});
        assert_eq!(
            python_literal(&v, 0),
            "{\n    \"a\": None,\n    \"b\": [True, False],\n    \"c\": \"tab\\t\\\"q\\\" 中\",\n    \"d\": 0.00002,\n    \"e\": 3,\n}"
        );
    }
}
