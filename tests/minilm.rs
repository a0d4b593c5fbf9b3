//! The real all-MiniLM-L6-v2 (fetched by `scripts/fetch-demo-model.sh`) against
//! `transformers`: tokens and every attention map, single inputs and a padded batch.
//! The model is part of the test set-up (the README's first command, and
//! `.ci/run`, fetch it): without it these tests fail, saying how to get it.

mod common;

use std::path::PathBuf;

use bertscope::model::{Compute, ModelInput};
use bertscope::LoadedModel;
use candle_core::Device;
use common::*;
use serde_json::Value;

fn demo_model() -> LoadedModel {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    assert!(
        dir.join("model.safetensors").is_file(),
        "{} is missing: run `bash scripts/fetch-demo-model.sh` first (the README's first command does)",
        dir.display()
    );
    LoadedModel::load_dir("all-MiniLM-L6-v2", &dir, &Device::Cpu).expect("load MiniLM")
}

#[test]
fn minilm_matches_transformers() {
    let model = demo_model();
    let expected = read_json(&fixtures().join("minilm_expected.json"));
    for case in expected["cases"].as_array().unwrap() {
        let a = case["text_a"].as_str().unwrap();
        let b = case.get("text_b").and_then(Value::as_str);
        let result = model
            .attention(a, b, &bertscope::Inspect::default())
            .unwrap();
        assert_eq!(result.tokens, strings(&case["tokens"]), "{a}");
        assert_eq!(result.input_ids, u32s(&case["input_ids"]), "{a}");
        assert_eq!(result.token_type_ids, u32s(&case["token_type_ids"]), "{a}");
        let diff = max_abs_diff(&result.attentions.data, &floats(&case["attentions"]));
        assert!(diff < 1e-5, "{a}: attention max diff {diff}");
    }
}

#[test]
fn minilm_padded_batch_matches_transformers() {
    let model = demo_model();
    let expected = read_json(&fixtures().join("minilm_expected.json"));
    let batch = &expected["batch"];
    let rows: Vec<_> = strings(&batch["texts"])
        .iter()
        .map(|t| model.encode(t, None).unwrap())
        .collect();
    let input = ModelInput::batch(&rows, model.tokenizer.pad_id());
    let want = floats(&batch["attentions"]);
    for compute in [Compute::FusedCpu, Compute::Differentiable] {
        let out = built_for(&model, compute).encode(&input).unwrap();
        let got = out.attentions.to_flat().unwrap();
        let diff = max_abs_diff(&got, &want);
        assert!(diff < 1e-5, "{compute:?}: batch max diff {diff}");
    }
}
