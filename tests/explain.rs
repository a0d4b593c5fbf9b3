//! Explanations against independent PyTorch/`transformers`/Captum code
//! (`tests/fixtures/make_explain_fixture.py`): rollout, gradient-weighted
//! attention, integrated gradients (and their completeness), head ablation
//! on both compute paths, head importance, the neuron view's queries and
//! keys, and word-level attention — on the tiny fixtures and on the real
//! MiniLM with a recorded classifier head.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

use bertscope::data::ReadOptions;
use bertscope::explain::{self, words};
use bertscope::model::Compute;
use bertscope::{HeadSet, Inspect, LoadedModel};
use candle_core::Device;
use common::*;
use serde_json::Value;

fn expected() -> &'static Value {
    static EXPECTED: OnceLock<Value> = OnceLock::new();
    EXPECTED.get_or_init(|| read_json(&fixtures().join("explain_expected.json")))
}

fn flat(v: &Value) -> Vec<f32> {
    let mut out = Vec::new();
    flatten_numbers(v, &mut out);
    out
}

/// MiniLM with the recorded classifier head: a directory of its config, the
/// demo model's tokenizer, and a two-shard index over the demo model's
/// weights (linked) and the head.
fn minilm_head_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
        assert!(
            demo.join("model.safetensors").is_file(),
            "{} is missing: run `bash scripts/fetch-demo-model.sh` first (the README's first command does)",
            demo.display()
        );
        let dir = std::env::temp_dir().join(format!("bertscope-minilm-head-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let head = fixtures().join("minilm_head");
        std::fs::copy(head.join("config.json"), dir.join("config.json")).unwrap();
        for name in ["tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"] {
            std::fs::copy(demo.join(name), dir.join(name)).unwrap();
        }
        let body = dir.join("model-00001-of-00002.safetensors");
        if std::fs::hard_link(demo.join("model.safetensors"), &body).is_err() {
            std::fs::copy(demo.join("model.safetensors"), &body).unwrap();
        }
        std::fs::copy(head.join("head.safetensors"), dir.join("model-00002-of-00002.safetensors")).unwrap();
        let mut map = serde_json::Map::new();
        for (file, shard) in [(&body, "model-00001-of-00002.safetensors"), (&dir.join("model-00002-of-00002.safetensors"), "model-00002-of-00002.safetensors")] {
            let bytes = std::fs::read(file).unwrap();
            let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
            let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
            for key in header.as_object().unwrap().keys().filter(|k| *k != "__metadata__") {
                map.insert(key.clone(), Value::String(shard.into()));
            }
        }
        let index = serde_json::json!({"metadata": {}, "weight_map": map});
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
        dir
    })
}

fn model_dir(name: &str) -> PathBuf {
    match name {
        "minilm-head" => minilm_head_dir().to_path_buf(),
        other => fixture_model(other),
    }
}

fn load(name: &str) -> LoadedModel {
    LoadedModel::load_dir(name, &model_dir(name), &Device::Cpu).unwrap()
}

fn cases() -> Vec<&'static Value> {
    expected()["cases"].as_array().unwrap().iter().collect()
}

fn text_b(case: &Value) -> Option<&str> {
    case["text_b"].as_str()
}

/// Largest difference relative to the reference's largest magnitude.
fn rel_diff(ours: &[f32], theirs: &[f32]) -> f32 {
    let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    max_abs_diff(ours, theirs) / scale
}

#[test]
fn explanations_match_pytorch_and_captum() {
    for case in cases() {
        let model = load(case["model"].as_str().unwrap());
        let a = case["text_a"].as_str().unwrap();
        let target = case["target_arg"].as_str();
        let e = explain::explain(&model, a, text_b(case), target, &mut |_, _| {}).unwrap();
        let what = format!("{} / {a} / target {target:?}", case["model"]);
        assert_eq!(e.tokens, strings(&case["tokens"]), "{what}");
        assert_eq!(
            e.target.label,
            case["target"]["label"].as_str().unwrap(),
            "{what}"
        );
        assert_eq!(
            e.target.index as u64,
            case["target"]["index"].as_u64().unwrap(),
            "{what}"
        );
        let logit = case["target_logit"].as_f64().unwrap() as f32;
        assert!(
            (e.target_logit - logit).abs() < 1e-4,
            "{what}: y {} vs {logit}",
            e.target_logit
        );

        let rollout: Vec<f32> = e.rollout.concat();
        let d = max_abs_diff(&rollout, &flat(&case["rollout"]));
        assert!(d < 1e-5, "{what}: rollout differs by {d}");
        let d = rel_diff(&e.grad_attention, &floats(&case["grad_attention"]));
        assert!(d < 1e-3, "{what}: grad_attention differs by {d} (relative)");
        let d = rel_diff(
            &e.integrated_gradients,
            &floats(&case["integrated_gradients"]),
        );
        assert!(
            d < 2e-3,
            "{what}: integrated gradients differ by {d} (relative)"
        );
        let delta = case["ig_delta"].as_f64().unwrap() as f32;
        let gap = (case["ig_logits"]["input"].as_f64().unwrap()
            - case["ig_logits"]["baseline"].as_f64().unwrap())
        .abs() as f32;
        assert!(
            (e.ig_delta - delta).abs() < 2e-3 * gap.max(1.0),
            "{what}: ig_delta {} vs Captum's {delta}",
            e.ig_delta
        );
        assert_eq!(e.words, strings(&case["words"]), "{what}");
    }
}

#[test]
fn integrated_gradients_are_complete_on_smooth_models() {
    // Completeness: the attributions add up to y(x) − y(0), up to the
    // quadrature error. The GELU models are smooth, so 50 points are
    // enough for a small gap (the ReLU classifier's kinks leave a few %,
    // in Captum too — checked against its value above).
    for case in cases().into_iter().filter(|c| c["model"] != "classifier") {
        let model = load(case["model"].as_str().unwrap());
        let a = case["text_a"].as_str().unwrap();
        let e = explain::explain(
            &model,
            a,
            text_b(case),
            case["target_arg"].as_str(),
            &mut |_, _| {},
        )
        .unwrap();
        let total: f32 = e.integrated_gradients.iter().sum();
        let gap = total - e.ig_delta;
        assert!(
            e.ig_delta.abs() < 2e-3 * gap.abs().max(1.0),
            "{a}: |ig_delta| {} for y(x) − y(0) = {gap}",
            e.ig_delta
        );
    }
}

#[test]
fn word_attention_neurons_and_ablation_match_transformers() {
    for case in cases() {
        let name = case["model"].as_str().unwrap();
        let a = case["text_a"].as_str().unwrap();
        let what = format!("{name} / {a}");
        let n = &case["neurons"];
        let pair = (
            n["layer"].as_u64().unwrap() as usize,
            n["head"].as_u64().unwrap() as usize,
        );
        let ablate: HeadSet = case["mask_heads"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p[0].as_u64().unwrap() as usize,
                    p[1].as_u64().unwrap() as usize,
                )
            })
            .collect();
        for compute in [Compute::FusedCpu, Compute::Differentiable] {
            let dir = model_dir(name);
            let mut model = load(name);
            let config = model.model.config.clone();
            model.model =
                bertscope::model::BertModel::load_with(&dir, config, &Device::Cpu, compute)
                    .unwrap();
            let what = format!("{what} ({compute:?})");
            let inspect = Inspect {
                ablate: HeadSet::new(),
                neurons: Some(pair),
            };
            let result = model.attention(a, text_b(case), &inspect).unwrap();
            let grouped = words::group(&result.tokens);
            assert_eq!(grouped.words, strings(&case["words"]), "{what}");
            let merged = grouped.merge_maps(&result.attentions);
            let d = max_abs_diff(&merged.data, &flat(&case["word_attentions"]));
            assert!(d < 1e-5, "{what}: word attention differs by {d}");
            let neurons = result.neurons.expect("neurons");
            let d = max_abs_diff(&neurons.queries, &flat(&n["queries"]));
            assert!(d < 1e-4, "{what}: queries differ by {d}");
            let d = max_abs_diff(&neurons.keys, &flat(&n["keys"]));
            assert!(d < 1e-4, "{what}: keys differ by {d}");

            let masked = Inspect {
                ablate: ablate.clone(),
                neurons: None,
            };
            if let Some(probs) = case.get("masked_probs") {
                let labels = &model.config().labels;
                let ranked = model
                    .classify(a, text_b(case), &masked)
                    .unwrap()
                    .predictions;
                let mut ours = vec![0f32; labels.len()];
                for p in ranked {
                    ours[labels.iter().position(|l| *l == p.label).unwrap()] = p.score;
                }
                let d = max_abs_diff(&ours, &floats(probs));
                assert!(d < 1e-5, "{what}: ablated probabilities differ by {d}");
                let plain = model
                    .classify(a, text_b(case), &Inspect::default())
                    .unwrap();
                assert!(
                    (plain.predictions[0].score - ours.iter().cloned().fold(0.0, f32::max)).abs()
                        > 1e-6
                        || max_abs_diff(&floats(&case["probs"]), &floats(probs)) < 1e-6,
                    "{what}: ablation changed nothing"
                );
            }
            if let Some(fill) = case.get("masked_fill") {
                let result = model.fill_mask(a, text_b(case), 5, &masked).unwrap();
                for (ours, theirs) in result.masks.iter().zip(fill.as_array().unwrap()) {
                    assert_eq!(
                        ours.index as u64,
                        theirs["index"].as_u64().unwrap(),
                        "{what}"
                    );
                    let ids: Vec<u32> = ours.predictions.iter().map(|p| p.token).collect();
                    let want: Vec<u32> = theirs["predictions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p["token"].as_u64().unwrap() as u32)
                        .collect();
                    assert_eq!(ids, want, "{what}: ablated top-5");
                    let scores: Vec<f32> = ours.predictions.iter().map(|p| p.score).collect();
                    let want: Vec<f32> = theirs["predictions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p["score"].as_f64().unwrap() as f32)
                        .collect();
                    assert!(
                        max_abs_diff(&scores, &want) < 1e-5,
                        "{what}: ablated scores"
                    );
                }
                assert_eq!(result.masks.len(), fill.as_array().unwrap().len(), "{what}");
            }
        }
    }
}

#[test]
fn head_importance_matches_pytorch() {
    for entry in expected()["head_importance"].as_array().unwrap() {
        let name = entry["model"].as_str().unwrap();
        let model = load(name);
        let data = Path::new(env!("CARGO_MANIFEST_DIR")).join(entry["data"].as_str().unwrap());
        let max_rows = entry["max_rows"].as_u64().unwrap() as usize;
        let cancel = AtomicBool::new(false);
        let mut seen = Vec::new();
        let result = explain::head_importance_of_file(
            &model,
            &data,
            &ReadOptions::default(),
            max_rows,
            &cancel,
            &mut |done, total| seen.push((done, total)),
        )
        .unwrap();
        assert_eq!(
            result.rows as u64,
            entry["rows_used"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(
            seen.last().copied(),
            Some((result.rows, result.rows)),
            "{name}"
        );
        let d = rel_diff(&result.values, &flat(&entry["values"]));
        assert!(
            d < 1e-3,
            "{name}: head importance differs by {d} (relative)"
        );
    }
}

#[test]
fn bad_targets_and_heads_are_refused_with_a_reason() {
    let classifier = load("classifier");
    let err = explain::explain(&classifier, "the dog", None, Some("nope"), &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"nope\"") && err.contains("labels:"), "{err}");
    let mlm = load("mlm-safetensors");
    let err = explain::explain(&mlm, "the dog", None, None, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("no [MASK]"), "{err}");
    let err = explain::explain(
        &mlm,
        "the [MASK] dog",
        None,
        Some("zzzz-not-a-token"),
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("vocabulary"), "{err}");
    let inspect = Inspect {
        ablate: HeadSet::parse("2:0").unwrap(),
        neurons: None,
    };
    let err = classifier
        .classify("the dog", None, &inspect)
        .unwrap_err()
        .to_string();
    assert!(err.contains("2:0") && err.contains("2 layers"), "{err}");
}

#[test]
fn head_importance_names_the_line_of_an_unknown_label() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rows.tsv");
    std::fs::write(&path, "text_a\tlabel\nthe dog\tagreed\nthe cat\tmaybe\n").unwrap();
    let model = load("classifier");
    let err = explain::head_importance_of_file(
        &model,
        &path,
        &ReadOptions::default(),
        usize::MAX,
        &AtomicBool::new(false),
        &mut |_, _| {},
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("rows.tsv:3") && err.contains("\"maybe\""),
        "{err}"
    );
}
