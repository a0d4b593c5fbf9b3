//! `bertscope index`/`search` and `bertscope project` against `transformers`
//! and numpy: brute-force cosine search over float64 hidden states, and
//! numpy's PCA of pooled states for a base model and each stage of a
//! fine-tuned run, recorded by `tests/fixtures/make_embeddings_fixture.py`.
//! Also the index's resume after a stopped build and its write guards.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;

use bertscope::data::{self, Columns, ReadOptions};
use bertscope::dataset::PassLimits;
use bertscope::index::{self, BuildOptions, DataSource};
use bertscope::write_guard::Protected;
use bertscope::{BertError, LoadedModel};

fn expected() -> Value {
    common::read_json(&common::fixtures().join("embeddings_expected.json"))
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run_err(args: &[&str]) -> String {
    let out = common::bertscope(args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn model_arg(case: &Value) -> String {
    let model = case["model"].as_str().unwrap();
    if model.contains("MiniLM") {
        assert!(
            root().join(model).join("model.safetensors").is_file(),
            "the demo model is missing: run scripts/fetch-demo-model.sh"
        );
    }
    root().join(model).display().to_string()
}

fn build_index(case: &Value, out: &Path) {
    let data = root().join(case["data"].as_str().unwrap());
    let model = model_arg(case);
    let args = [
        "index",
        "--model",
        &model,
        "--data",
        data.to_str().unwrap(),
        "--text-a-column",
        case["text_a_column"].as_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--json",
    ];
    let manifest = common::run_json(&args);
    assert_eq!(manifest["tokens"], case["tokens"], "stored tokens");
    assert_eq!(manifest["complete"], true);
}

#[test]
fn search_hits_and_scores_match_brute_force_cosine_over_transformers_states() {
    let tmp = tempfile::tempdir().unwrap();
    let mut built: Vec<(String, PathBuf)> = Vec::new();
    for (n, case) in expected()["search"].as_array().unwrap().iter().enumerate() {
        let key = format!("{} {}", case["model"], case["data"]);
        let dir = match built.iter().find(|(k, _)| *k == key) {
            Some((_, dir)) => dir.clone(),
            None => {
                let dir = tmp.path().join(format!("index-{n}"));
                build_index(case, &dir);
                built.push((key, dir.clone()));
                dir
            }
        };
        let query = &case["query"];
        let token = query["token"].to_string();
        let layer = case["layer"].to_string();
        let mut args = vec![
            "search",
            "--index",
            dir.to_str().unwrap(),
            "--text-a",
            query["text_a"].as_str().unwrap(),
            "--token",
            &token,
            "--layer",
            &layer,
            "--json",
        ];
        if let Some(b) = query["text_b"].as_str() {
            args.extend(["--text-b", b]);
        }
        let got = common::run_json(&args);
        assert_eq!(got["query"]["token"], case["query_token"]);
        assert!(got["search_ms"].as_f64().unwrap() >= 0.0);
        check_hits(case, got["hits"].as_array().unwrap());
    }
}

/// Our top 10 against the exact one: the same tokens with scores within
/// 2e-3, except that tokens whose exact scores lie within 2e-3 of the cut
/// may trade places with the next one (f16 storage).
fn check_hits(case: &Value, got: &[Value]) {
    const TOL: f64 = 2e-3;
    let want = case["hits"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    let key = |h: &Value| {
        (
            h["row"].as_u64().unwrap(),
            h["token_index"].as_u64().unwrap(),
        )
    };
    let cut = case["next_score"].as_f64().unwrap_or(f64::NEG_INFINITY);
    let last = want.last().unwrap()["score"].as_f64().unwrap();
    for w in want {
        let score = w["score"].as_f64().unwrap();
        match got.iter().find(|g| key(g) == key(w)) {
            Some(g) => {
                let ours = g["score"].as_f64().unwrap();
                assert!((ours - score).abs() < TOL, "{case}: {w} scored {ours}");
            }
            None => assert!(score - cut < TOL, "{}: missing hit {w}", case["query"]),
        }
    }
    for g in got {
        if !want.iter().any(|w| key(w) == key(g)) {
            let ours = g["score"].as_f64().unwrap();
            assert!(last - ours < TOL, "{}: extra hit {g}", case["query"]);
        }
    }
    for pair in got.windows(2) {
        assert!(pair[0]["score"].as_f64() >= pair[1]["score"].as_f64());
    }
    // Each hit names its token and the text around it.
    for g in got {
        let text = g["text"].as_str().unwrap();
        let [s, e] = [
            g["chars"][0].as_u64().unwrap(),
            g["chars"][1].as_u64().unwrap(),
        ];
        let span: String = text
            .chars()
            .skip(s as usize)
            .take((e - s) as usize)
            .collect();
        let token = g["token"].as_str().unwrap().trim_start_matches("##");
        assert!(
            span.to_lowercase().contains(&token.to_lowercase()) || token == "[UNK]",
            "{g}: the span `{span}` is not the token"
        );
        assert!(g["word"].as_str().unwrap().contains(token) || token == "[UNK]");
    }
}

/// `a` equals `b` axis by axis up to each axis's sign.
fn same_up_to_sign(a: &[[f64; 2]], b: &[[f64; 2]], what: &str) {
    let scale = b.iter().flatten().fold(0f64, |m, x| m.max(x.abs()));
    for axis in 0..2 {
        let sign = if a.iter().zip(b).map(|(p, q)| p[axis] * q[axis]).sum::<f64>() < 0.0 {
            -1.0
        } else {
            1.0
        };
        for (p, q) in a.iter().zip(b) {
            assert!(
                (sign * p[axis] - q[axis]).abs() < 1e-3 * scale,
                "{what}, axis {axis}: {p:?} vs {q:?}"
            );
        }
    }
}

fn points(v: &Value) -> Vec<[f64; 2]> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|p| match p.as_array() {
            Some(xy) => [xy[0].as_f64().unwrap(), xy[1].as_f64().unwrap()],
            None => [p["x"].as_f64().unwrap(), p["y"].as_f64().unwrap()],
        })
        .collect()
}

fn distances(p: &[[f64; 2]]) -> Vec<f64> {
    let mut out = Vec::new();
    for a in p {
        for b in p {
            out.push((a[0] - b[0]).hypot(a[1] - b[1]));
        }
    }
    out
}

#[test]
fn projection_matches_numpy_pca_and_aligned_stages_keep_their_own_distances() {
    for case in expected()["project"].as_array().unwrap() {
        let model = model_arg(case);
        let data = root().join(case["data"].as_str().unwrap());
        let layer = case["layer"].to_string();
        let mut args = vec![
            "project",
            "--model",
            &model,
            "--data",
            data.to_str().unwrap(),
            "--layer",
            &layer,
            "--pool",
            case["pool"].as_str().unwrap(),
            "--json",
        ];
        let single = !case["data"].as_str().unwrap().contains("train.tsv");
        if single {
            args.extend(["--text-a-column", "text"]);
        }
        let tuned = case["tuned"].as_str().map(|t| root().join(t));
        if let Some(t) = &tuned {
            args.extend(["--tuned", t.to_str().unwrap()]);
        }
        let got = common::run_json(&args);
        let stages = case["stages"].as_array().unwrap();
        let last = stages.last().unwrap();
        let what = format!("{} layer {} {}", case["model"], case["layer"], case["pool"]);
        same_up_to_sign(&points(&got["points"]), &points(&last["points"]), &what);
        for (g, w) in got["explained_variance_ratio"]
            .as_array()
            .unwrap()
            .iter()
            .zip(last["explained_variance_ratio"].as_array().unwrap())
        {
            assert!(
                (g.as_f64().unwrap() - w.as_f64().unwrap()).abs() < 1e-4,
                "{what}"
            );
        }
        let labels: Vec<&Value> = got["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| &p["label"])
            .collect();
        let want: Vec<&Value> = case["labels"].as_array().unwrap().iter().collect();
        assert_eq!(labels, want);
        if tuned.is_none() {
            assert!(got.get("checkpoints").is_none());
            continue;
        }
        let checkpoints = got["checkpoints"].as_array().unwrap();
        assert_eq!(
            checkpoints.len(),
            stages.len(),
            "{what}: base, kept epochs, tuned"
        );
        assert_eq!(checkpoints[0]["epoch"], 0);
        let epochs: Vec<u64> = checkpoints[1..checkpoints.len() - 1]
            .iter()
            .map(|c| c["epoch"].as_u64().unwrap())
            .collect();
        assert_eq!(epochs, vec![1, 2]);
        assert_eq!(checkpoints.last().unwrap()["tuned"], true);
        for (c, w) in checkpoints.iter().zip(stages) {
            let (ours, theirs) = (points(&c["points"]), points(&w["points"]));
            let scale = theirs.iter().flatten().fold(0f64, |m, x| m.max(x.abs()));
            for (a, b) in distances(&ours).iter().zip(distances(&theirs)) {
                assert!((a - b).abs() < 2e-3 * scale, "{what}: {} moved", w["model"]);
            }
        }
        // The tuned model's own layout is its aligned one.
        assert_eq!(checkpoints.last().unwrap()["points"], got["points"]);
        // Predictions come with a classifier.
        assert!(got["points"][0]["predicted"].is_string());
    }
}

fn pairs() -> (LoadedModel, data::Dataset) {
    let model = LoadedModel::load_dir(
        "mlm-safetensors",
        &common::fixture_model("mlm-safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let options = ReadOptions {
        delimiter: None,
        columns: Columns {
            text_a: "text_a".into(),
            text_b: None,
            label: "label".into(),
            id: "id".into(),
        },
        require_label: false,
        skip_bad_rows: false,
    };
    let data = data::read(&common::fixtures().join("trainer_kit/train.tsv"), &options).unwrap();
    (model, data)
}

fn source(data: &data::Dataset) -> DataSource {
    DataSource {
        path: data.path.clone(),
        digest: index::fingerprint::of_file(&data.path).unwrap(),
        text_a: "text_a".into(),
        text_b: Some("text_b".into()),
        label: Some("label".into()),
    }
}

fn options(data: &data::Dataset, chunk_rows: usize, overwrite: bool) -> BuildOptions {
    BuildOptions {
        source: source(data),
        layers: Some(vec![0, 2]),
        limits: PassLimits::default(),
        overwrite,
        chunk_rows: Some(chunk_rows),
        model_fingerprint: None,
        precision: Default::default(),
    }
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn a_stopped_build_resumes_where_it_stopped_and_ends_byte_identical() {
    let (model, data) = pairs();
    let tmp = tempfile::tempdir().unwrap();
    let whole = tmp.path().join("whole");
    let protected = Protected::new();
    let never = AtomicBool::new(false);
    let built = index::build(
        &model,
        &data,
        &whole,
        &protected,
        &options(&data, 7, false),
        &mut |_, _| {},
        &never,
    )
    .unwrap();
    assert_eq!(built.resumed_at, 0);
    assert_eq!(built.manifest.rows, 60);

    let stopped = tmp.path().join("stopped");
    let cancel = AtomicBool::new(false);
    let mut stop_after = |done: usize, _: usize| {
        if done >= 20 {
            cancel.store(true, Ordering::Relaxed);
        }
    };
    let err = index::build(
        &model,
        &data,
        &stopped,
        &protected,
        &options(&data, 7, false),
        &mut stop_after,
        &cancel,
    )
    .unwrap_err();
    assert!(matches!(err, BertError::Cancelled), "{err}");
    let partial = index::Manifest::read(&stopped).unwrap();
    assert!(
        !partial.complete && partial.rows >= 14 && partial.rows.is_multiple_of(7),
        "{partial:?}"
    );
    let err = index::Index::open(&stopped).unwrap_err().to_string();
    assert!(
        err.contains("not complete") && err.contains("resume"),
        "{err}"
    );

    let resumed = index::build(
        &model,
        &data,
        &stopped,
        &protected,
        &options(&data, 7, false),
        &mut |_, _| {},
        &never,
    )
    .unwrap();
    assert_eq!(resumed.resumed_at, partial.rows);
    let strip = |mut f: Vec<(String, Vec<u8>)>| {
        f.retain(|(n, _)| n != "index.json");
        f
    };
    assert_eq!(strip(files(&stopped)), strip(files(&whole)));

    // A complete index is not built again without --overwrite; with it, it is.
    let err = index::build(
        &model,
        &data,
        &whole,
        &protected,
        &options(&data, 7, false),
        &mut |_, _| {},
        &never,
    )
    .unwrap_err();
    assert!(matches!(err, BertError::OutputExists { .. }), "{err}");
    let again = index::build(
        &model,
        &data,
        &whole,
        &protected,
        &options(&data, 60, true),
        &mut |_, _| {},
        &never,
    )
    .unwrap();
    assert_eq!((again.resumed_at, again.manifest.rows), (0, 60));
}

#[test]
fn an_index_never_replaces_what_is_not_an_index() {
    let (model, data) = pairs();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("notes");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("thesis.tex"), "keep me").unwrap();
    let never = AtomicBool::new(false);
    let protected = Protected::new();
    let err = index::build(
        &model,
        &data,
        &dir,
        &protected,
        &options(&data, 60, true),
        &mut |_, _| {},
        &never,
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("not a bertscope index") && message.contains("thesis.tex"),
        "{message}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("thesis.tex")).unwrap(),
        "keep me"
    );

    // The data file itself is refused as an output.
    let mut guarded = Protected::new();
    guarded.add("the data file", &data.path);
    let err = index::build(
        &model,
        &data,
        &data.path,
        &guarded,
        &options(&data, 60, true),
        &mut |_, _| {},
        &never,
    )
    .unwrap_err();
    assert!(err.to_string().contains("the data file"), "{err}");
}

#[test]
fn bad_queries_and_layers_are_refused_with_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("idx");
    let model = common::fixture_model("mlm-safetensors");
    let data = common::fixtures().join("trainer_kit/train.tsv");
    common::run_json(&[
        "index",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--output",
        dir.to_str().unwrap(),
        "--layers",
        "0,2",
        "--json",
    ]);
    let idx = dir.to_str().unwrap();
    let not_an_index = tmp.path().display().to_string();
    let err = run_err(&[
        "search",
        "--index",
        &not_an_index,
        "--text-a",
        "x",
        "--token",
        "1",
        "--layer",
        "2",
    ]);
    assert!(
        err.contains("is not a bertscope index") && err.contains("bertscope index"),
        "{err}"
    );
    let err = run_err(&[
        "search", "--index", idx, "--text-a", "the dog", "--token", "9", "--layer", "2",
    ]);
    assert!(
        err.contains("--token 9") && err.contains("4 tokens"),
        "{err}"
    );
    let err = run_err(&[
        "search", "--index", idx, "--text-a", "the dog", "--token", "1", "--layer", "1",
    ]);
    assert!(
        err.contains("layer 1 is not in the index") && err.contains("0, 2"),
        "{err}"
    );
    let err = run_err(&[
        "index",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--output",
        idx,
        "--layers",
        "0,9",
    ]);
    assert!(err.contains("layer 9 does not exist"), "{err}");
    let err = run_err(&[
        "index",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--output",
        idx,
        "--layers",
        "0,two",
    ]);
    assert!(err.contains("`two` is not a layer number"), "{err}");
    let err = run_err(&[
        "index",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--output",
        idx,
        "--layers",
        "0,2",
    ]);
    assert!(
        err.contains("already a complete index") && err.contains("--overwrite"),
        "{err}"
    );
    let err = run_err(&[
        "project",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--layer",
        "7",
        "--pool",
        "cls",
    ]);
    assert!(err.contains("--layer 7 does not exist"), "{err}");
}

#[test]
fn a_build_never_resumes_over_a_changed_data_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("rows.tsv");
    std::fs::copy(common::fixtures().join("trainer_kit/train.tsv"), &data).unwrap();
    let model = common::fixture_model("mlm-safetensors");
    let out = tmp.path().join("idx");
    let args = |overwrite: bool| {
        let mut a = vec![
            "index".to_string(),
            "--model".into(),
            model.display().to_string(),
            "--data".into(),
            data.display().to_string(),
            "--output".into(),
            out.display().to_string(),
            "--layers".into(),
            "1".into(),
        ];
        if overwrite {
            a.push("--overwrite".into());
        }
        a
    };
    let run = |a: Vec<String>| common::bertscope(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(run(args(false)).status.success());
    // Stop-and-resume state with other bytes in the file: refused, not mixed.
    let mut manifest: Value = common::read_json(&out.join("index.json"));
    manifest["complete"] = Value::Bool(false);
    std::fs::write(out.join("index.json"), manifest.to_string()).unwrap();
    let text = std::fs::read_to_string(&data)
        .unwrap()
        .replace("cat", "dog");
    std::fs::write(&data, text).unwrap();
    let refused = run(args(false));
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        !refused.status.success() && err.contains("the data file changed since"),
        "{err}"
    );
    assert!(run(args(true)).status.success());
}
