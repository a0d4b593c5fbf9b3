//! Shared helpers for the integration tests: fixture paths and expected outputs
//! recorded from `transformers` by `tests/fixtures/make_fixtures.py`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;

pub mod app;
pub mod training;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn fixture_model(name: &str) -> PathBuf {
    fixtures().join("models").join(name)
}

pub const FIXTURE_MODELS: [&str; 4] = [
    "mlm-safetensors",
    "pretraining-bin-legacy",
    "classifier",
    "base-sharded",
];

pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn expected(name: &str) -> Value {
    read_json(&fixture_model(name).join("expected.json"))
}

pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

pub fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("integer") as u32)
        .collect()
}

pub fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_str().expect("string").to_string())
        .collect()
}

/// Largest absolute difference; panics on length mismatch.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// Recursively copy a directory (fixtures into a scratch dir for error cases).
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Flatten nested JSON arrays of numbers.
pub fn flatten_numbers(v: &Value, out: &mut Vec<f32>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| flatten_numbers(i, out)),
        Value::Number(n) => out.push(n.as_f64().expect("number") as f32),
        other => panic!("unexpected {other}"),
    }
}

/// The model of `loaded` built again for one compute path (the fused CPU
/// encoder or the differentiable one), to test both against the same numbers.
pub fn built_for(
    loaded: &bertscope::LoadedModel,
    compute: bertscope::model::Compute,
) -> bertscope::model::BertModel {
    bertscope::model::BertModel::load_with(
        &loaded.dir,
        loaded.model.config.clone(),
        &candle_core::Device::Cpu,
        compute,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", loaded.dir.display()))
}

/// Run the `bertscope` binary in the crate's directory, with no display
/// (the CLI never needs one, and the export/present tests prove it).
pub fn bertscope(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bertscope"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .output()
        .expect("run bertscope")
}

/// A file dropped on the window, as the windowing integration would hand it over.
#[derive(Debug)]
pub struct Dropped(pub PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

/// `bertscope ARGS` that must succeed, its stdout parsed as JSON.
pub fn run_json(args: &[&str]) -> Value {
    let out = bertscope(args);
    assert!(
        out.status.success(),
        "{:?}: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}
