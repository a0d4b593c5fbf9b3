//! The `bertscope` binary: JSON contracts of every command against the
//! `transformers` fixtures, the Hub-cache lookup, and every error case
//! (one-line message naming the culprit, non-zero exit, no panic).

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;
use serde_json::Value;

fn bertscope(args: &[&str]) -> Output {
    bertscope_in(Path::new(env!("CARGO_MANIFEST_DIR")), args, &[])
}

fn bertscope_in(dir: &Path, args: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bertscope"));
    cmd.args(args).current_dir(dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run bertscope")
}

fn json_ok(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("valid JSON on stdout")
}

/// A failure: exit code 1, one `error:` line on stderr containing every `needles`.
fn assert_error(out: &Output, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line in {stderr}"));
    for needle in needles {
        assert!(line.contains(needle), "`{needle}` not in `{line}`");
    }
    line.to_string()
}

fn model_arg(name: &str) -> String {
    fixture_model(name).display().to_string()
}

#[test]
fn attention_json_contract() {
    let case = &expected("mlm-safetensors")["cases"][1];
    let m = model_arg("mlm-safetensors");
    let out = bertscope(&[
        "attention",
        "--model",
        &m,
        "--text-a",
        case["text_a"].as_str().unwrap(),
        "--text-b",
        case["text_b"].as_str().unwrap(),
        "--json",
    ]);
    let v = json_ok(&out);
    assert_eq!(v["tokens"], case["tokens"]);
    assert_eq!(v["input_ids"], case["input_ids"]);
    assert_eq!(v["token_type_ids"], case["token_type_ids"]);
    assert_eq!(v["truncated"], Value::Bool(false));
    let mut got = Vec::new();
    flatten_numbers(&v["attentions"], &mut got);
    let layers = v["attentions"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(layers[0].as_array().unwrap().len(), 4);
    assert!(max_abs_diff(&got, &floats(&case["attentions"])) < 1e-5);
}

#[test]
fn truncation_warns_and_reports() {
    let case = &expected("classifier")["cases"][6];
    let m = model_arg("classifier");
    let out = bertscope(&[
        "attention",
        "--model",
        &m,
        "--text-a",
        case["text_a"].as_str().unwrap(),
        "--text-b",
        case["text_b"].as_str().unwrap(),
        "--json",
    ]);
    let v = json_ok(&out);
    assert_eq!(v["truncated"], Value::Bool(true));
    assert_eq!(v["tokens"], case["tokens"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: input truncated to 40 tokens"));
}

#[test]
fn fill_mask_json_contract() {
    let case = &expected("pretraining-bin-legacy")["cases"][3];
    let m = model_arg("pretraining-bin-legacy");
    let out = bertscope(&[
        "fill-mask",
        "--model",
        &m,
        "--text-a",
        case["text_a"].as_str().unwrap(),
        "--text-b",
        case["text_b"].as_str().unwrap(),
        "--top-k",
        "5",
        "--json",
    ]);
    let v = json_ok(&out);
    assert_eq!(v["tokens"], case["tokens"]);
    let masks = v["masks"].as_array().unwrap();
    let want = case["masks"].as_array().unwrap();
    assert_eq!(masks.len(), 2);
    for (g, w) in masks.iter().zip(want) {
        assert_eq!(g["index"], w["index"]);
        for (p, q) in g["predictions"]
            .as_array()
            .unwrap()
            .iter()
            .zip(w["predictions"].as_array().unwrap())
        {
            assert_eq!(p["token"], q["token"]);
            assert_eq!(p["token_str"], q["token_str"]);
            assert!((p["score"].as_f64().unwrap() - q["score"].as_f64().unwrap()).abs() < 1e-5);
        }
    }
}

#[test]
fn classify_json_contract() {
    let case = &expected("classifier")["cases"][1];
    let m = model_arg("classifier");
    let out = bertscope(&[
        "classify",
        "--model",
        &m,
        "--text-a",
        case["text_a"].as_str().unwrap(),
        "--text-b",
        case["text_b"].as_str().unwrap(),
        "--json",
    ]);
    let v = json_ok(&out);
    let preds = v["predictions"].as_array().unwrap();
    let want = case["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 3);
    for (p, w) in preds.iter().zip(want) {
        assert_eq!(p["label"], w["label"]);
        assert!((p["score"].as_f64().unwrap() - w["score"].as_f64().unwrap()).abs() < 1e-5);
    }
}

#[test]
fn hub_id_resolves_in_cache_and_models_lists_it() {
    let scratch = tempfile::tempdir().unwrap();
    let cache = scratch.path().join("hub");
    let repo = cache.join("models--tiny-org--tiny-mlm");
    copy_dir(
        &fixture_model("mlm-safetensors"),
        &repo.join("snapshots/abc123"),
    );
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "abc123").unwrap();
    let work = scratch.path().join("work");
    copy_dir(
        &fixture_model("classifier"),
        &work.join("models/tiny-classifier"),
    );
    let home = scratch.path().join("home");
    let env = [("HF_HUB_CACHE", cache.as_path()), ("HOME", home.as_path())];

    let out = bertscope_in(
        &work,
        &[
            "fill-mask",
            "--model",
            "tiny-org/tiny-mlm",
            "--text-a",
            "the [MASK] dog",
            "--json",
        ],
        &env,
    );
    let v = json_ok(&out);
    assert_eq!(v["masks"][0]["index"], 2);

    let out = bertscope_in(
        &work,
        &[
            "classify",
            "--model",
            "tiny-classifier",
            "--text-a",
            "the dog",
            "--json",
        ],
        &env,
    );
    assert_eq!(json_ok(&out)["predictions"].as_array().unwrap().len(), 3);

    let out = bertscope_in(&work, &["models", "--json"], &env);
    let v = json_ok(&out);
    let list = v.as_array().unwrap();
    let names: Vec<&str> = list.iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"tiny-org/tiny-mlm"), "{names:?}");
    assert!(
        names.iter().any(|n| n.ends_with("tiny-classifier")),
        "{names:?}"
    );
    let mlm = list
        .iter()
        .find(|m| m["name"] == "tiny-org/tiny-mlm")
        .unwrap();
    assert_eq!(mlm["layers"], 2);
    assert_eq!(mlm["heads"], 4);
    assert_eq!(mlm["has_mlm_head"], true);
    let cls = list
        .iter()
        .find(|m| m["name"].as_str().unwrap().ends_with("tiny-classifier"))
        .unwrap();
    assert_eq!(
        cls["classifier_labels"],
        serde_json::json!(["agreed", "disagreed", "unrelated"])
    );

    let out = bertscope_in(
        &work,
        &[
            "attention",
            "--model",
            "nobody/missing-model",
            "--text-a",
            "x",
        ],
        &env,
    );
    let line = assert_error(
        &out,
        &[
            "nobody/missing-model",
            "models--nobody--missing-model",
            "hf download",
        ],
    );
    assert!(line.contains(&cache.display().to_string()), "{line}");
}

#[test]
fn bench_reports_each_length() {
    let m = model_arg("mlm-safetensors");
    let v = json_ok(&bertscope(&[
        "bench", "--model", &m, "--seq", "8,32", "--runs", "2", "--json",
    ]));
    assert!(v["forward_ms"]["8"].as_f64().unwrap() > 0.0);
    assert!(v["forward_ms"]["32"].as_f64().unwrap() > 0.0);
    let out = bertscope(&[
        "bench", "--model", &m, "--seq", "100", "--runs", "1", "--json",
    ]);
    assert_error(&out, &["--seq 100", "max_position_embeddings"]);
}

fn scratch_copy(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join(name);
    copy_dir(&fixture_model(name), &dir);
    (scratch, dir)
}

fn run_attention(dir: &Path) -> Output {
    bertscope(&[
        "attention",
        "--model",
        &dir.display().to_string(),
        "--text-a",
        "the dog",
        "--json",
    ])
}

#[test]
fn error_missing_directory() {
    let out = bertscope(&["attention", "--model", "/no/such/model", "--text-a", "x"]);
    assert_error(&out, &["/no/such/model"]);
}

#[test]
fn error_directory_without_config() {
    let scratch = tempfile::tempdir().unwrap();
    let out = run_attention(scratch.path());
    assert_error(&out, &["config.json", "file not found"]);
}

#[test]
fn error_invalid_config_json() {
    let (_s, dir) = scratch_copy("mlm-safetensors");
    std::fs::write(
        dir.join("config.json"),
        "{\n  \"hidden_size\": 32,\n  \"num_attention_heads\": \n}",
    )
    .unwrap();
    let out = run_attention(&dir);
    assert_error(&out, &["config.json:4:"]);
}

#[test]
fn error_config_field_of_wrong_type() {
    let (_s, dir) = scratch_copy("mlm-safetensors");
    std::fs::write(
        dir.join("config.json"),
        "{\n  \"hidden_size\": \"large\"\n}",
    )
    .unwrap();
    assert_error(&run_attention(&dir), &["config.json:2:", "invalid type"]);
}

#[test]
fn error_shapes_disagree_with_config() {
    let (_s, dir) = scratch_copy("classifier");
    let path = dir.join("config.json");
    let mut config = read_json(&path);
    config["intermediate_size"] = 48.into();
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    let out = run_attention(&dir);
    assert_error(
        &out,
        &[
            "model.safetensors",
            "encoder.layer.0.intermediate.dense.weight",
            "[64, 32]",
            "[48, 32]",
        ],
    );
}

#[test]
fn error_truncated_safetensors() {
    let (_s, dir) = scratch_copy("mlm-safetensors");
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert_error(
        &run_attention(&dir),
        &["model.safetensors", "truncated or corrupt"],
    );
}

#[test]
fn error_garbage_pytorch_bin() {
    let (_s, dir) = scratch_copy("pretraining-bin-legacy");
    std::fs::write(dir.join("pytorch_model.bin"), b"not a zip").unwrap();
    assert_error(&run_attention(&dir), &["pytorch_model.bin", "zip format"]);
}

#[test]
fn error_missing_weights_and_tokenizer() {
    let (_s, dir) = scratch_copy("mlm-safetensors");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    assert_error(&run_attention(&dir), &["no weights found"]);
    std::fs::remove_file(dir.join("tokenizer.json")).unwrap();
    std::fs::remove_file(dir.join("vocab.txt")).unwrap();
    assert_error(&run_attention(&dir), &["no tokenizer found"]);
}

#[test]
fn error_missing_shard() {
    let (_s, dir) = scratch_copy("base-sharded");
    std::fs::remove_file(dir.join("model-00002-of-00006.safetensors")).unwrap();
    assert_error(
        &run_attention(&dir),
        &["model-00002-of-00006.safetensors", "not found"],
    );
}

#[test]
fn error_fill_mask_without_head_or_mask() {
    let m = model_arg("classifier");
    let out = bertscope(&["fill-mask", "--model", &m, "--text-a", "the [MASK] dog"]);
    assert_error(&out, &["no masked-LM head"]);
    let m = model_arg("mlm-safetensors");
    let out = bertscope(&["fill-mask", "--model", &m, "--text-a", "the dog"]);
    assert_error(&out, &["no [MASK] token"]);
}

#[test]
fn error_classify_without_classifier() {
    let m = model_arg("mlm-safetensors");
    let out = bertscope(&["classify", "--model", &m, "--text-a", "the dog"]);
    assert_error(&out, &["no classification head", "classifier.weight"]);
}

/// `cpu --json` against Linux's own reading of the CPU (`/proc/cpuinfo`):
/// the same name and instruction sets; a bf16 kernel exactly where the CPU
/// has bf16 products, and then the measured verdict; without AMX, the
/// reason the tiles are not taken says so. The plain report names the CPU.
#[test]
fn cpu_reports_what_linux_reads_of_the_cpu() {
    let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") else {
        eprintln!("no /proc/cpuinfo here: `cpu` not checked against it");
        return;
    };
    let field = |name: &str| {
        info.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>())
            .unwrap_or_default()
    };
    let flags = field("flags");
    let has = |flag: &str| flags.contains(&flag);
    let r = json_ok(&bertscope(&["cpu", "--json"]));
    for (key, flag) in [
        ("avx2", "avx2"),
        ("fma", "fma"),
        ("avx512f", "avx512f"),
        ("avx512_bf16", "avx512_bf16"),
        ("amx_bf16", "amx_bf16"),
    ] {
        assert_eq!(r["features"][key].as_bool(), Some(has(flag)), "{key}");
    }
    let name = field("model name").join(" ");
    assert_eq!(r["model"].as_str(), Some(name.as_str()));
    assert!(r["threads"].as_u64().is_some_and(|n| n >= 1));
    assert_eq!(r["lanes16"].as_bool(), Some(has("avx512f")));
    let kernel = r["bf16_kernel"].as_str();
    if has("avx512_bf16") && has("avx512f") {
        assert!(kernel.is_some(), "{r}");
    }
    if !has("avx512_bf16") && !has("amx_bf16") {
        assert_eq!(kernel, None, "{r}");
    }
    assert_eq!(r["bf16_vs_fp32"]["verdict"].is_string(), kernel.is_some());
    let why = r["amx_not_taken_because"].as_str();
    if !has("amx_bf16") {
        assert!(why.is_some_and(|w| w.contains("no AMX-BF16")), "{r}");
        assert_ne!(kernel, Some("AMX tiles"));
    }
    assert_eq!(why.is_none(), kernel == Some("AMX tiles"), "{r}");

    let plain = bertscope(&["cpu"]);
    assert!(plain.status.success());
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(text.starts_with(&format!("CPU: {name}, ")), "{text}");
}
