//! bertscope against `transformers` on tiny seeded checkpoints of every layout:
//! tokens, attention probabilities, masked-LM top-k and classifier probabilities,
//! through both the fused CPU path and the differentiable path.

mod common;

use bertscope::engine::LoadedModel;
use bertscope::model::{Compute, ModelInput};
use candle_core::Device;
use common::*;
use serde_json::Value;

const ATTENTION_TOL: f32 = 1e-5;
const SCORE_TOL: f32 = 1e-5;

fn load(name: &str) -> LoadedModel {
    LoadedModel::load_dir(name, &fixture_model(name), &Device::Cpu)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn text_b(case: &Value) -> Option<&str> {
    case.get("text_b").and_then(Value::as_str)
}

#[test]
fn tokens_match_transformers() {
    for name in FIXTURE_MODELS {
        let model = load(name);
        for case in expected(name)["cases"].as_array().unwrap() {
            let a = case["text_a"].as_str().unwrap();
            let enc = model.encode(a, text_b(case)).unwrap();
            assert_eq!(enc.tokens, strings(&case["tokens"]), "{name}: {a}");
            assert_eq!(enc.input_ids, u32s(&case["input_ids"]), "{name}: {a}");
            assert_eq!(
                enc.token_type_ids,
                u32s(&case["token_type_ids"]),
                "{name}: {a}"
            );
            assert_eq!(
                enc.truncated,
                case["truncated"].as_bool().unwrap(),
                "{name}: {a}"
            );
        }
    }
}

#[test]
fn attentions_match_transformers_on_both_paths() {
    for name in FIXTURE_MODELS {
        let model = load(name);
        let differentiable = built_for(&model, Compute::Differentiable);
        for case in expected(name)["cases"].as_array().unwrap() {
            let a = case["text_a"].as_str().unwrap();
            let want = floats(&case["attentions"]);
            let result = model
                .attention(a, text_b(case), &bertscope::Inspect::default())
                .unwrap();
            let shape = u32s(&case["attention_shape"]);
            assert_eq!(
                [
                    result.attentions.layers,
                    result.attentions.heads,
                    result.attentions.seq
                ],
                [shape[0] as usize, shape[1] as usize, shape[2] as usize]
            );
            let diff = max_abs_diff(&result.attentions.data, &want);
            assert!(diff < ATTENTION_TOL, "{name} fused: {a}: max diff {diff}");

            let encoded = model.encode(a, text_b(case)).unwrap();
            let out = differentiable
                .encode(&ModelInput::single(&encoded))
                .unwrap();
            let maps = out.attentions.into_maps(0).unwrap();
            let diff = max_abs_diff(&maps.data, &want);
            assert!(
                diff < ATTENTION_TOL,
                "{name} differentiable: {a}: max diff {diff}"
            );
        }
    }
}

#[test]
fn padded_batch_matches_transformers() {
    for name in FIXTURE_MODELS {
        let model = load(name);
        let batch = &expected(name)["batch"];
        let texts = strings(&batch["texts"]);
        let rows: Vec<_> = texts
            .iter()
            .map(|t| model.encode(t, None).unwrap())
            .collect();
        let input = ModelInput::batch(&rows, model.tokenizer.pad_id());
        let want_ids: Vec<u32> = batch["input_ids"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(u32s)
            .collect();
        assert_eq!(input.input_ids, want_ids, "{name}");
        let want = floats(&batch["attentions"]); // [layers, batch, heads, q, k]
        for compute in [Compute::FusedCpu, Compute::Differentiable] {
            let built = built_for(&model, compute);
            assert_eq!(built.compute(), compute);
            let out = built.encode(&input).unwrap();
            let got = out.attentions.to_flat().unwrap();
            let diff = max_abs_diff(&got, &want);
            assert!(
                diff < ATTENTION_TOL,
                "{name} {compute:?}: batch max diff {diff}"
            );
            if let Some(probs) = batch.get("probabilities") {
                let logits = built.classify_logits(&out, &input.mask).unwrap();
                let got = candle_nn::ops::softmax_last_dim(&logits).unwrap();
                let got = got.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                let want: Vec<f32> = probs.as_array().unwrap().iter().flat_map(floats).collect();
                let diff = max_abs_diff(&got, &want);
                assert!(
                    diff < SCORE_TOL,
                    "{name} {compute:?}: batch probabilities diff {diff}"
                );
            }
        }
    }
}

#[test]
fn fill_mask_matches_transformers() {
    let mut checked = 0;
    for name in ["mlm-safetensors", "pretraining-bin-legacy"] {
        let model = load(name);
        for case in expected(name)["cases"].as_array().unwrap() {
            let Some(masks) = case["masks"].as_array().filter(|m| !m.is_empty()) else {
                continue;
            };
            let a = case["text_a"].as_str().unwrap();
            let result = model
                .fill_mask(a, text_b(case), 5, &bertscope::Inspect::default())
                .unwrap();
            assert_eq!(result.masks.len(), masks.len(), "{name}: {a}");
            for (got, want) in result.masks.iter().zip(masks) {
                assert_eq!(got.index as u64, want["index"].as_u64().unwrap());
                let want_predictions = want["predictions"].as_array().unwrap();
                assert_eq!(got.predictions.len(), want_predictions.len(), "{name}: {a}");
                for (p, w) in got.predictions.iter().zip(want_predictions) {
                    assert_eq!(p.token as u64, w["token"].as_u64().unwrap(), "{name}: {a}");
                    assert_eq!(p.token_str, w["token_str"].as_str().unwrap());
                    let diff = (p.score - w["score"].as_f64().unwrap() as f32).abs();
                    assert!(diff < SCORE_TOL, "{name}: {a}: score diff {diff}");
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 4, "too few masks compared: {checked}");
}

/// The batched classification `predict` runs (every case in one padded
/// batch, through the forward that keeps no attention map) against
/// `transformers`' one-at-a-time probabilities, and against the forward
/// that keeps the maps.
#[test]
fn batched_classification_matches_transformers() {
    let model = load("classifier");
    let cases = expected("classifier")["cases"].as_array().unwrap().clone();
    let rows: Vec<_> = cases
        .iter()
        .map(|c| {
            model
                .encode(c["text_a"].as_str().unwrap(), text_b(c))
                .unwrap()
        })
        .collect();
    let lengths: Vec<usize> = rows.iter().map(|r| r.input_ids.len()).collect();
    assert!(
        lengths.iter().min() < lengths.iter().max(),
        "the batch is padded: {lengths:?}"
    );
    let scores = model
        .classify_batch(&rows, &bertscope::Inspect::default())
        .unwrap();
    let labels = &model.config().labels;
    for (case, row) in cases.iter().zip(&scores) {
        let a = case["text_a"].as_str().unwrap();
        for w in case["predictions"].as_array().unwrap() {
            let label = w["label"].as_str().unwrap();
            let at = labels.iter().position(|l| l == label).unwrap();
            let diff = (row[at] - w["score"].as_f64().unwrap() as f32).abs();
            assert!(diff < SCORE_TOL, "{a}: {label}: diff {diff}");
        }
    }
    let input = ModelInput::batch(&rows, model.tokenizer.pad_id());
    let with_maps = model.model.encode(&input).unwrap();
    let kept = model
        .model
        .classify_logits(&with_maps, &input.mask)
        .unwrap();
    let plain = model.model.classify_input(&input).unwrap();
    assert_eq!(
        plain.to_vec2::<f32>().unwrap(),
        kept.to_vec2::<f32>().unwrap(),
        "the same sums whether or not the maps are kept"
    );
}

#[test]
fn classify_matches_transformers() {
    let model = load("classifier");
    for case in expected("classifier")["cases"].as_array().unwrap() {
        let a = case["text_a"].as_str().unwrap();
        let result = model
            .classify(a, text_b(case), &bertscope::Inspect::default())
            .unwrap();
        let want = case["predictions"].as_array().unwrap();
        assert_eq!(result.predictions.len(), want.len());
        for (p, w) in result.predictions.iter().zip(want) {
            assert_eq!(p.label, w["label"].as_str().unwrap(), "{a}");
            let diff = (p.score - w["score"].as_f64().unwrap() as f32).abs();
            assert!(diff < SCORE_TOL, "{a}: diff {diff}");
        }
    }
}
