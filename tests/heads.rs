//! `bertscope heads` and `bertscope coref` against `transformers`: the head
//! statistics and the coreference probe recorded by
//! `tests/fixtures/make_heads_fixture.py` from `output_attentions`, on the
//! tiny checkpoints and on MiniLM with the bundled sets.

mod common;

use std::path::{Path, PathBuf};

use serde_json::Value;

fn expected() -> Value {
    common::read_json(&common::fixtures().join("heads_expected.json"))
}

fn model_dir(name: &str) -> Option<PathBuf> {
    if name == "minilm" {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
        assert!(
            dir.join("model.safetensors").is_file(),
            "the demo model is missing: run scripts/fetch-demo-model.sh"
        );
        return Some(dir);
    }
    Some(common::fixture_model(name))
}

fn data_path(name: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match name {
        "explain_rows" => common::fixtures().join("explain_rows.tsv"),
        "coref_tiny" => common::fixtures().join("coref_tiny.tsv"),
        "claims-dev" => root.join("assets/demo/claims-dev.tsv"),
        other => root.join(format!("assets/data/{other}.tsv")),
    }
}

#[test]
fn head_statistics_match_transformers() {
    let expected = expected();
    for (model, sets) in expected.as_object().unwrap() {
        let dir = model_dir(model).unwrap().display().to_string();
        for (set, want) in sets["heads"].as_object().unwrap() {
            let data = data_path(set).display().to_string();
            let got = common::run_json(&["heads", "--model", &dir, "--data", &data, "--json"]);
            for key in ["rows", "tokens", "layers", "heads"] {
                assert_eq!(got[key], want[key], "{model} {set} {key}");
            }
            for stat in ["cls", "sep", "punct", "self", "prev", "next", "entropy"] {
                let (mut a, mut b) = (Vec::new(), Vec::new());
                common::flatten_numbers(&got[stat], &mut a);
                common::flatten_numbers(&want[stat], &mut b);
                assert_eq!(a.len(), b.len(), "{model} {set} {stat}");
                let diff = common::max_abs_diff(&a, &b);
                assert!(diff <= 1e-5, "{model} {set} {stat}: max |diff| {diff}");
            }
        }
    }
}

#[test]
fn coreference_accuracies_match_transformers_exactly() {
    let expected = expected();
    for (model, sets) in expected.as_object().unwrap() {
        let dir = model_dir(model).unwrap().display().to_string();
        for (set, want) in sets["coref"].as_object().unwrap() {
            let data = data_path(set).display().to_string();
            let got = common::run_json(&["coref", "--model", &dir, "--data", &data, "--json"]);
            let rows = want["rows"].as_u64().unwrap();
            assert_eq!(got["rows"].as_u64(), Some(rows), "{model} {set}");
            let (layers, heads) = (
                want["layers"].as_u64().unwrap() as usize,
                want["heads"].as_u64().unwrap() as usize,
            );
            for l in 0..layers {
                for h in 0..heads {
                    let correct = want["correct"][l][h].as_u64().unwrap();
                    let accuracy = got["accuracy"][l][h].as_f64().unwrap();
                    assert_eq!(
                        (accuracy * rows as f64).round() as u64,
                        correct,
                        "{model} {set} head {l}-{h}"
                    );
                    assert!((accuracy - correct as f64 / rows as f64).abs() < 1e-12);
                }
            }
            for key in ["nearest", "chance"] {
                let (a, b) = (
                    got["baselines"][key].as_f64().unwrap(),
                    want[key].as_f64().unwrap(),
                );
                assert!((a - b).abs() < 1e-12, "{model} {set} {key}: {a} vs {b}");
            }
            // The best heads, and the best head's choice on every row.
            let best = &got["best"][0];
            let lh = (best["layer"].as_u64().unwrap() * heads as u64
                + best["head"].as_u64().unwrap()) as usize;
            let top = (0..layers * heads)
                .map(|i| want["correct"][i / heads][i % heads].as_u64().unwrap())
                .max()
                .unwrap();
            assert_eq!(
                want["correct"][lh / heads][lh % heads].as_u64(),
                Some(top),
                "{model} {set}: the best head"
            );
            assert_eq!(got["best"].as_array().unwrap().len(), 5.min(layers * heads));
            for (p, row) in got["predictions"]
                .as_array()
                .unwrap()
                .iter()
                .zip(want["row_choices"].as_array().unwrap())
            {
                let chosen = row["choices"][lh].as_u64().unwrap() as usize;
                let candidates = row["candidates"].as_array().unwrap();
                assert_eq!(
                    p["predicted"], candidates[chosen],
                    "{model} {set} row {}",
                    p["row"]
                );
                let antecedent = row["antecedent"].as_u64().unwrap() as usize;
                assert_eq!(p["antecedent"], candidates[antecedent]);
                assert_eq!(p["correct"].as_bool(), Some(chosen == antecedent));
            }
        }
    }
}

#[test]
fn bad_rows_are_refused_with_their_line_or_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("bad.tsv");
    std::fs::write(
        &data,
        "text\nthe [animal] didn t cross the <street> because {it} was too tired .\nthe [dog] jumps {it} {he}\nthe [dog <cat>] {it}\nthe dog and {it}\nthe [cat] ran {it\n",
    )
    .unwrap();
    let model = common::fixture_model("mlm-safetensors")
        .display()
        .to_string();
    let d = data.display().to_string();
    let out = common::bertscope(&["coref", "--model", &model, "--data", &d]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("bad.tsv:3: 2 pronouns"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = common::bertscope(&[
        "coref",
        "--model",
        &model,
        "--data",
        &d,
        "--skip-bad-rows",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("skipped 4 bad rows (lines 3, 4, 5, 6)"),
        "{err}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["rows"], 1);
    // A mark cut off by truncation.
    let long = tmp.path().join("long.txt");
    std::fs::write(
        &long,
        "the [animal] didn t cross the street because it was too tired and the {dog} was not\n",
    )
    .unwrap();
    let out = common::bertscope(&[
        "coref",
        "--model",
        &model,
        "--data",
        &long.display().to_string(),
        "--max-length",
        "8",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("long.txt:1: the pronoun `dog` is cut off by truncation to 8 tokens"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn max_rows_and_max_length_limit_the_pass() {
    let model = common::fixture_model("mlm-safetensors")
        .display()
        .to_string();
    let data = data_path("explain_rows").display().to_string();
    let all = common::run_json(&["heads", "--model", &model, "--data", &data, "--json"]);
    let some = common::run_json(&[
        "heads",
        "--model",
        &model,
        "--data",
        &data,
        "--max-rows",
        "3",
        "--max-length",
        "6",
        "--json",
    ]);
    assert_eq!(some["rows"], 3);
    assert!(some["tokens"].as_u64().unwrap() <= 18);
    assert!(all["rows"].as_u64().unwrap() > 3);
}

#[test]
fn a_cancel_stops_the_pass_within_its_batches() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let model = bertscope::LoadedModel::load_dir(
        "tiny",
        &common::fixture_model("mlm-safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("many.tsv");
    let mut text = String::from("text_a\n");
    for i in 0..3000 {
        text.push_str(&format!(
            "the dog {} jumps over the lazy cat\n",
            "the ".repeat(i % 40)
        ));
    }
    std::fs::write(&path, text).unwrap();
    let options = bertscope::data::ReadOptions::default();
    let data = bertscope::data::read(&path, &options).unwrap();
    let cancel = AtomicBool::new(false);
    let mut batches = 0;
    let mut progress = |_: usize, _: usize| {
        batches += 1;
        cancel.store(true, Ordering::Relaxed);
    };
    let limits = bertscope::dataset::PassLimits::default();
    let result = bertscope::dataset::head_stats(&model, &data, limits, 0, &mut progress, &cancel);
    assert!(
        matches!(result, Err(bertscope::BertError::Cancelled)),
        "{result:?}"
    );
    assert_eq!(batches, 1, "stopped after the batch that was running");
}
