//! Head changes between two checkpoints against an independent reference:
//! `transformers` attentions and numpy's Jensen–Shannon divergence
//! (`tests/fixtures/make_compare_fixture.py`).

mod common;

use bertscope::compare::{compare_input, mean_changes};
use bertscope::{HeadSet, Inspect, LoadedModel};
use candle_core::Device;
use common::*;

fn load(name: &str) -> LoadedModel {
    LoadedModel::load_dir(name, &fixture_model(name), &Device::Cpu).unwrap()
}

#[test]
fn head_changes_match_transformers_and_numpy() {
    let none = HeadSet::new();
    let expected = read_json(&fixtures().join("compare_expected.json"));
    let base = load(expected["base"].as_str().unwrap());
    let tuned = load(expected["tuned"].as_str().unwrap());
    let mut inputs = Vec::new();
    let mut sum = [0f64; 8];
    for case in expected["cases"].as_array().unwrap() {
        let a = case["text_a"].as_str().unwrap();
        let b = case["text_b"].as_str();
        let analysis = base
            .analyze(a, b, &[], 3, &bertscope::Inspect::default())
            .unwrap();
        let cmp = compare_input((&base, &analysis), &tuned, None, (a, b), (&[], 3), &none).unwrap();
        let changes = cmp.changes.unwrap();
        assert_eq!((changes.layers, changes.heads), (2, 4));
        for (l, row) in case["changes"].as_array().unwrap().iter().enumerate() {
            for (h, want) in row.as_array().unwrap().iter().enumerate() {
                let want = want.as_f64().unwrap();
                let got = changes.get(l, h) as f64;
                assert!(
                    (got - want).abs() < 1e-5,
                    "layer {l} head {h}: {got} vs {want}"
                );
                sum[l * 4 + h] += want;
            }
        }
        // The base fixture has no classifier; the tuned one has.
        assert!(cmp.before.is_none());
        assert!(cmp.before_source.contains("no classifier"));
        assert!(cmp.after.is_some());
        inputs.push((a.to_string(), b.map(str::to_string)));
    }
    let mean = mean_changes(&base, &tuned, &inputs).unwrap().unwrap();
    assert_eq!(mean.inputs, inputs.len());
    for (i, s) in sum.iter().enumerate() {
        let want = s / inputs.len() as f64;
        assert!((mean.values[i] as f64 - want).abs() < 1e-5, "head {i}");
    }
    // The tuned side's probabilities are transformers' for that checkpoint.
    let recorded = common::expected("classifier");
    for case in recorded["cases"].as_array().unwrap() {
        let (a, b) = (case["text_a"].as_str().unwrap(), case["text_b"].as_str());
        let analysis = base
            .analyze(a, b, &[], 3, &bertscope::Inspect::default())
            .unwrap();
        let cmp = compare_input((&base, &analysis), &tuned, None, (a, b), (&[], 3), &none).unwrap();
        let after = cmp.after.unwrap().predictions;
        let want = case["predictions"].as_array().unwrap();
        assert_eq!(after.len(), want.len(), "{a}");
        for (p, w) in after.iter().zip(want) {
            assert_eq!(p.label, w["label"].as_str().unwrap(), "{a}");
            let diff = (p.score - w["score"].as_f64().unwrap() as f32).abs();
            assert!(diff < 1e-5, "{a}: tuned probability differs by {diff}");
        }
    }
    // A model compared with itself has not changed.
    let same = mean_changes(&base, &base, &inputs).unwrap().unwrap();
    assert!(same.max() < 1e-6);
}

#[test]
fn heads_switched_off_are_off_on_the_tuned_side_too() {
    // The base (masked LM) analysed with two heads off; the tuned classifier's
    // probabilities must be transformers' with `head_mask` on those heads
    // (recorded in the explanation fixture).
    let expected = read_json(&fixtures().join("explain_expected.json"));
    let case = expected["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["model"] == "classifier" && c.get("masked_probs").is_some())
        .unwrap();
    let (a, b) = (case["text_a"].as_str().unwrap(), case["text_b"].as_str());
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
    let base = load("mlm-safetensors");
    let tuned = load("classifier");
    let inspect = Inspect {
        ablate: ablate.clone(),
        neurons: None,
    };
    let analysis = base.analyze(a, b, &[], 3, &inspect).unwrap();
    let cmp = compare_input((&base, &analysis), &tuned, None, (a, b), (&[], 3), &ablate).unwrap();
    let labels = &tuned.config().labels;
    let want = floats(&case["masked_probs"]);
    for p in cmp.after.unwrap().predictions {
        let i = labels.iter().position(|l| *l == p.label).unwrap();
        assert!(
            (p.score - want[i]).abs() < 1e-5,
            "{}: {} vs {}",
            p.label,
            p.score,
            want[i]
        );
    }
}
