//! A checkpoint written by `bertscope finetune` loads in `transformers` with
//! the same probabilities: `tests/fixtures/make_saved_fixture.py` had
//! `transformers` load `tests/fixtures/saved_by_bertscope/` (written by
//! bertscope) and recorded its outputs. Here bertscope must give the same
//! numbers for it, and today's `finetune` must still write that checkpoint.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

use bertscope::LoadedModel;
use candle_core::Device;
use common::*;
use serde_json::Value;

fn recorded() -> Value {
    read_json(&fixtures().join("saved_by_bertscope.json"))
}

fn saved_dir() -> std::path::PathBuf {
    fixtures().join("saved_by_bertscope")
}

#[test]
fn bertscope_reads_its_checkpoint_as_transformers_does() {
    let expected = recorded();
    let model = LoadedModel::load_dir("saved", &saved_dir(), &Device::Cpu).unwrap();
    let labels = strings(&expected["labels"]);
    assert_eq!(model.config().labels, labels);
    let cases = expected["cases"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let a = case["text_a"].as_str().unwrap();
        let result = model
            .classify(a, case["text_b"].as_str(), &bertscope::Inspect::default())
            .unwrap();
        let want = floats(&case["probabilities"]);
        assert_eq!(result.predictions.len(), want.len(), "{a}");
        for p in &result.predictions {
            let index = labels.iter().position(|l| *l == p.label).unwrap();
            let diff = (p.score - want[index]).abs();
            assert!(
                diff < 1e-5,
                "{a}: {} differs from transformers by {diff}",
                p.label
            );
        }
    }
}

/// The metadata of a safetensors file (`__metadata__` in its JSON header).
fn safetensors_metadata(path: &Path) -> Value {
    let bytes = std::fs::read(path).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    header["__metadata__"].clone()
}

#[test]
fn finetune_still_writes_what_transformers_loaded() {
    let expected = recorded();
    let tmp = tempfile::tempdir().unwrap();
    let train = tmp.path().join("train.tsv");
    let mut text = String::from("id\ttext_a\ttext_b\tlabel\n");
    for (i, row) in expected["rows"].as_array().unwrap().iter().enumerate() {
        let r = strings(row);
        text.push_str(&format!("r{i}\t{}\t{}\t{}\n", r[0], r[1], r[2]));
    }
    std::fs::write(&train, text).unwrap();
    let out = tmp.path().join("saved");
    let base = fixture_model("mlm-safetensors");
    let run = Command::new(env!("CARGO_BIN_EXE_bertscope"))
        .args(["finetune", "--model"])
        .arg(&base)
        .arg("--train")
        .arg(&train)
        .arg("--output")
        .arg(&out)
        .args(strings(&expected["args"]))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    // transformers 4.x refuses safetensors without {"format": "pt"}.
    let meta = safetensors_metadata(&out.join("model.safetensors"));
    assert_eq!(meta["format"], "pt");
    for key in [
        "architectures",
        "num_labels",
        "id2label",
        "label2id",
        "model_type",
    ] {
        assert_eq!(
            read_json(&out.join("config.json"))[key],
            read_json(&saved_dir().join("config.json"))[key],
            "config.json: {key}"
        );
    }
    let load = |dir: &Path| -> HashMap<String, candle_core::Tensor> {
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap()
    };
    let (now, then) = (load(&out), load(&saved_dir()));
    let mut keys: Vec<&String> = now.keys().collect();
    keys.sort();
    let mut want_keys: Vec<&String> = then.keys().collect();
    want_keys.sort();
    assert_eq!(keys, want_keys);
    for key in keys {
        let (a, b) = (&now[key], &then[key]);
        assert_eq!(a.dims(), b.dims(), "{key}");
        let diff = max_abs_diff(
            &a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            &b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert!(
            diff < 1e-4,
            "{key}: differs by {diff} from the checkpoint transformers loaded"
        );
    }
}
