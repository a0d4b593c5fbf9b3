//! The explanation commands of the `bertscope` binary against the PyTorch,
//! `transformers` and Captum fixtures: `explain` (per input and
//! `--head-importance`), `classify`/`fill-mask --mask-heads`, `attention
//! --neurons --words` and `compare` (with each side's explanation and head
//! importance, checked against `explain` on that side's model); and their bad
//! inputs (one `error:` line naming the flag or the file and line, exit code
//! 1, no panic).

mod common;

use std::path::Path;
use std::process::Output;

use common::*;
use serde_json::Value;

fn json_ok(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON on stdout")
}

fn assert_error(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{needle:?} not in: {stderr}");
    }
}

fn expected() -> Value {
    read_json(&fixtures().join("explain_expected.json"))
}

fn flat(v: &Value) -> Vec<f32> {
    let mut out = Vec::new();
    flatten_numbers(v, &mut out);
    out
}

fn tiny_cases() -> Vec<Value> {
    let all = expected()["cases"].as_array().unwrap().clone();
    all.into_iter()
        .filter(|c| c["model"] != "minilm-head")
        .collect()
}

fn input_args(case: &Value) -> Vec<String> {
    let model = fixture_model(case["model"].as_str().unwrap());
    let mut args = vec![
        "--model".to_string(),
        model.display().to_string(),
        "--text-a".into(),
        case["text_a"].as_str().unwrap().into(),
    ];
    if let Some(b) = case["text_b"].as_str() {
        args.extend(["--text-b".into(), b.into()]);
    }
    args
}

fn run(command: &str, case: &Value, extra: &[&str]) -> Output {
    let mut args = vec![command.to_string()];
    args.extend(input_args(case));
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    bertscope(&refs)
}

fn heads_arg(case: &Value) -> String {
    let pairs: Vec<String> = case["mask_heads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}:{}", p[0], p[1]))
        .collect();
    pairs.join(",")
}

#[test]
fn explain_json_matches_the_reference() {
    for case in tiny_cases() {
        let mut extra = vec!["--json"];
        let target = case["target_arg"].as_str().map(String::from);
        if let Some(t) = &target {
            extra.extend(["--target", t.as_str()]);
        }
        let out = json_ok(&run("explain", &case, &extra));
        let what = case["text_a"].as_str().unwrap();
        assert_eq!(out["tokens"], case["tokens"], "{what}");
        assert_eq!(out["target"], case["target"], "{what}");
        let d = max_abs_diff(&flat(&out["rollout"]), &flat(&case["rollout"]));
        assert!(d < 1e-5, "{what}: rollout {d}");
        for key in ["grad_attention", "integrated_gradients"] {
            let theirs = floats(&case[key]);
            let scale = theirs.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
            let d = max_abs_diff(&floats(&out[key]), &theirs) / scale;
            assert!(d < 2e-3, "{what}: {key} {d}");
        }
        assert!(out["ig_delta"].is_number(), "{what}");
    }
}

#[test]
fn mask_heads_matches_transformers_head_mask() {
    for case in tiny_cases() {
        let heads = heads_arg(&case);
        let what = case["text_a"].as_str().unwrap();
        if let Some(probs) = case.get("masked_probs") {
            let out = json_ok(&run("classify", &case, &["--mask-heads", &heads, "--json"]));
            let config = read_json(&fixture_model("classifier").join("config.json"));
            for p in out["predictions"].as_array().unwrap() {
                let label = p["label"].as_str().unwrap();
                let index: usize = config["label2id"][label].as_u64().unwrap() as usize;
                let want = probs[index].as_f64().unwrap();
                let got = p["score"].as_f64().unwrap();
                assert!((got - want).abs() < 1e-5, "{what}: {label} {got} vs {want}");
            }
        }
        if let Some(fill) = case.get("masked_fill") {
            let out = json_ok(&run(
                "fill-mask",
                &case,
                &["--mask-heads", &heads, "--json"],
            ));
            for (ours, theirs) in out["masks"]
                .as_array()
                .unwrap()
                .iter()
                .zip(fill.as_array().unwrap())
            {
                let ids = |v: &Value| -> Vec<u64> {
                    v["predictions"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|p| p["token"].as_u64().unwrap())
                        .collect()
                };
                assert_eq!(ids(ours), ids(theirs), "{what}");
            }
        }
    }
}

#[test]
fn attention_neurons_and_words_match_the_reference() {
    for case in tiny_cases() {
        let n = &case["neurons"];
        let pair = format!("{}:{}", n["layer"], n["head"]);
        let out = json_ok(&run(
            "attention",
            &case,
            &["--neurons", &pair, "--words", "--json"],
        ));
        let what = case["text_a"].as_str().unwrap();
        assert_eq!(out["words"], case["words"], "{what}");
        let d = max_abs_diff(
            &flat(&out["word_attentions"]),
            &flat(&case["word_attentions"]),
        );
        assert!(d < 1e-5, "{what}: word attention {d}");
        for key in ["queries", "keys"] {
            let d = max_abs_diff(&flat(&out[key]), &flat(&n[key]));
            assert!(d < 1e-4, "{what}: {key} {d}");
        }
        // Plain `attention --json` keeps its contract: no extra keys.
        let plain = json_ok(&run("attention", &case, &["--json"]));
        assert!(plain.get("queries").is_none() && plain.get("words").is_none());
    }
}

#[test]
fn explain_head_importance_matches_pytorch() {
    let entry = &expected()["head_importance"][0];
    assert_eq!(entry["model"], "classifier");
    let model = fixture_model("classifier");
    let rows = entry["max_rows"].to_string();
    let out = json_ok(&bertscope(&[
        "explain",
        "--model",
        &model.display().to_string(),
        "--head-importance",
        entry["data"].as_str().unwrap(),
        "--max-rows",
        &rows,
        "--json",
    ]));
    let theirs = flat(&entry["values"]);
    let scale = theirs.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let d = max_abs_diff(&flat(&out["head_importance"]), &theirs) / scale;
    assert!(d < 1e-3, "head importance {d}");
    assert_eq!(out["head_importance"].as_array().unwrap().len(), 2);
}

#[test]
fn compare_json_matches_transformers_and_numpy() {
    let expected = read_json(&fixtures().join("compare_expected.json"));
    let base = fixture_model(expected["base"].as_str().unwrap());
    let tuned = fixture_model(expected["tuned"].as_str().unwrap());
    for case in expected["cases"].as_array().unwrap() {
        let mut args = vec![
            "compare".to_string(),
            "--base".into(),
            base.display().to_string(),
            "--tuned".into(),
            tuned.display().to_string(),
            "--text-a".into(),
            case["text_a"].as_str().unwrap().into(),
            "--json".into(),
        ];
        if let Some(b) = case["text_b"].as_str() {
            args.extend(["--text-b".into(), b.into()]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = json_ok(&bertscope(&refs));
        let d = max_abs_diff(&flat(&out["head_changes"]), &flat(&case["changes"]));
        assert!(d < 1e-5, "{}: head changes {d}", case["text_a"]);
        let ranking = out["ranking"].as_array().unwrap();
        assert_eq!(ranking.len(), 8);
        let top = ranking[0]["change"].as_f64().unwrap() as f32;
        assert_eq!(
            top,
            flat(&out["head_changes"]).into_iter().fold(0.0, f32::max)
        );
    }
}

/// `compare --json` with an input and `--head-importance`, on `base` and `tuned`.
fn compare_sides(base: &Path, tuned: &Path, case: &Value, data: &str, rows: &str) -> Value {
    let mut args = vec![
        "compare".to_string(),
        "--base".into(),
        base.display().to_string(),
        "--tuned".into(),
        tuned.display().to_string(),
        "--text-a".into(),
        case["text_a"].as_str().unwrap().into(),
        "--head-importance".into(),
        data.into(),
        "--max-rows".into(),
        rows.into(),
        "--json".into(),
    ];
    if let Some(b) = case["text_b"].as_str() {
        args.extend(["--text-b".into(), b.into()]);
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    json_ok(&bertscope(&refs))
}

/// `explain --json` and `explain --head-importance --json` on one model.
fn explain_alone(model: &Path, case: &Value, data: &str, rows: &str) -> (Value, Value) {
    let model = model.display().to_string();
    let mut args = vec![
        "explain",
        "--model",
        &model,
        "--text-a",
        case["text_a"].as_str().unwrap(),
    ];
    if let Some(b) = case["text_b"].as_str() {
        args.extend(["--text-b", b]);
    }
    args.push("--json");
    let explained = json_ok(&bertscope(&args));
    let importance = json_ok(&bertscope(&[
        "explain",
        "--model",
        &model,
        "--head-importance",
        data,
        "--max-rows",
        rows,
        "--json",
    ]));
    (explained, importance["head_importance"].clone())
}

/// Two explanations (or importance maps) from separate runs are the same.
fn assert_same(ours: &Value, theirs: &Value, what: &str) {
    assert!(ours.is_object() || ours.is_array(), "{what}: missing");
    let numbers = |v: &Value| -> Vec<f32> {
        if v.is_array() {
            return flat(v);
        }
        let keys = ["rollout", "grad_attention", "integrated_gradients"];
        let mut all: Vec<f32> = keys.iter().flat_map(|k| flat(&v[*k])).collect();
        all.extend(["ig_delta", "target_logit"].map(|k| v[k].as_f64().unwrap() as f32));
        all
    };
    if ours.is_object() {
        for key in ["tokens", "target", "words", "truncated"] {
            assert_eq!(ours[key], theirs[key], "{what}: {key}");
        }
    }
    let (a, b) = (numbers(ours), numbers(theirs));
    let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let d = max_abs_diff(&a, &b) / scale;
    assert!(d < 1e-5, "{what}: {d}");
}

#[test]
fn compare_json_explains_each_side_as_explain_does() {
    let expected = read_json(&fixtures().join("compare_expected.json"));
    let base = fixture_model(expected["base"].as_str().unwrap());
    let tuned = fixture_model(expected["tuned"].as_str().unwrap());
    let entry = &expected_importance();
    let (data, rows) = (
        entry["data"].as_str().unwrap(),
        entry["max_rows"].to_string(),
    );
    let case = &expected["cases"][0];
    let out = compare_sides(&base, &tuned, case, data, &rows);
    // The tuned side: what `explain` says of the tuned model alone.
    let (explained, importance) = explain_alone(&tuned, case, data, &rows);
    assert_same(&out["explain_after"], &explained, "explain_after");
    assert_same(
        &out["head_importance_after"],
        &importance,
        "head_importance_after",
    );
    assert_eq!(out["head_importance_after"].as_array().unwrap().len(), 2);
    // The base has no classifier and the run no epoch 0: no "before" side.
    assert!(out.get("explain_before").is_none());
    assert!(out.get("head_importance_before").is_none());
    assert_eq!(out["before_source"], "the base model has no classifier");
    // The keys that were there before are still there.
    for key in ["tokens", "head_changes", "ranking", "before", "after"] {
        assert!(out.get(key).is_some(), "{key}");
    }

    // A run with `epochs/epoch-0`: "before" is that checkpoint.
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    copy_dir(&tuned, &run);
    copy_dir(&tuned, &run.join("epochs/epoch-0"));
    let out = compare_sides(&base, &run, case, data, &rows);
    assert!(out["before_source"].as_str().unwrap().contains("epoch 0"));
    assert_same(&out["explain_before"], &explained, "explain_before");
    assert_same(
        &out["head_importance_before"],
        &importance,
        "head_importance_before",
    );

    // A base with a classifier of its own and no epoch 0: the base's.
    let out = compare_sides(&tuned, &tuned, case, data, &rows);
    assert_eq!(out["before_source"], "the base model's own classifier");
    assert_same(
        &out["explain_before"],
        &out["explain_after"],
        "own classifier",
    );
}

fn expected_importance() -> Value {
    let entry = expected()["head_importance"][0].clone();
    assert_eq!(entry["model"], "classifier");
    entry
}

#[test]
fn bad_explanation_inputs_name_the_flag_or_the_line() {
    let classifier = fixture_model("classifier").display().to_string();
    let mlm = fixture_model("mlm-safetensors").display().to_string();
    let m = |model: &str, rest: &[&str]| {
        let mut args = vec![rest[0], "--model", model];
        args.extend(&rest[1..]);
        bertscope(&args)
    };
    assert_error(
        &m(
            &classifier,
            &["classify", "--text-a", "x", "--mask-heads", "9:0"],
        ),
        &["--mask-heads", "9:0", "2 layers"],
    );
    assert_error(
        &m(
            &classifier,
            &["classify", "--text-a", "x", "--mask-heads", "0-1"],
        ),
        &["--mask-heads", "LAYER:HEAD"],
    );
    assert_error(
        &m(
            &mlm,
            &["fill-mask", "--text-a", "a [MASK]", "--mask-heads", "0:4"],
        ),
        &["--mask-heads", "0:4"],
    );
    assert_error(
        &m(
            &classifier,
            &["attention", "--text-a", "x", "--neurons", "1:9"],
        ),
        &["--neurons", "1:9"],
    );
    assert_error(
        &m(
            &classifier,
            &["explain", "--text-a", "x", "--target", "maybe"],
        ),
        &["\"maybe\"", "labels:"],
    );
    assert_error(
        &m(&mlm, &["explain", "--text-a", "no mask here"]),
        &["nothing to explain"],
    );
    assert_error(&m(&classifier, &["explain"]), &["--text-a"]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("rows.tsv");
    std::fs::write(&data, "text_a\tlabel\nthe dog\tagreed\nthe cat\t\n").unwrap();
    let path = data.display().to_string();
    assert_error(
        &m(&classifier, &["explain", "--head-importance", &path]),
        &["rows.tsv:3"],
    );
    std::fs::write(&data, "text_a\tlabel\nthe dog\tsomething\n").unwrap();
    assert_error(
        &m(&classifier, &["explain", "--head-importance", &path]),
        &["rows.tsv:2", "\"something\""],
    );
    assert_error(
        &m(&mlm, &["explain", "--head-importance", &path]),
        &["classification head"],
    );
    assert_error(
        &m(
            &classifier,
            &["explain", "--head-importance", "/nonexistent/rows.tsv"],
        ),
        &["/nonexistent/rows.tsv"],
    );
    assert_error(
        &bertscope(&[
            "compare",
            "--base",
            &classifier,
            "--tuned",
            "/nonexistent",
            "--text-a",
            "x",
        ]),
        &["--tuned", "/nonexistent"],
    );
    assert_error(
        &bertscope(&[
            "compare",
            "--base",
            &classifier,
            "--tuned",
            &classifier,
            "--text-a",
            "x",
            "--head-importance",
            "/nonexistent/rows.tsv",
        ]),
        &["--head-importance", "/nonexistent/rows.tsv"],
    );
}
