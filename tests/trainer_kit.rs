//! `finetune --export-trainer`: the kit's files and settings, its guards, and
//! its data reading against bertscope's own (the same `file:line` errors;
//! these paths run before torch is imported, so plain python3 checks them).
//! Also the tutorial's own submission file from `predict`, byte for byte.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn python3() -> Option<PathBuf> {
    let found = Command::new("python3").arg("--version").output().ok()?;
    found.status.success().then(|| PathBuf::from("python3"))
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

fn export(dir: &Path, extra: &[&str]) -> Output {
    let model = s(&common::fixture_model("mlm-safetensors"));
    let train = s(&common::fixtures().join("trainer_kit/train.tsv"));
    let out = s(&dir.join("runs/x"));
    let kit = s(&dir.join("kit"));
    let mut args = vec![
        "finetune", "--model", &model, "--train", &train, "--output", &out,
    ];
    args.extend(extra);
    args.extend(["--export-trainer", &kit]);
    common::bertscope(&args)
}

/// The `RUN` settings written into a kit's train.py, read by Python's own parser.
fn run_settings(python: &Path, train_py: &Path) -> Value {
    let code = "import ast, json, sys\n\
                tree = ast.parse(open(sys.argv[1], encoding='utf-8').read())\n\
                node = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == 'RUN')\n\
                print(json.dumps(ast.literal_eval(node.value)))";
    let out = Command::new(python)
        .args(["-c", code, &s(train_py)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_kit_holds_the_run_its_flags_describe() {
    let tmp = tempfile::tempdir().unwrap();
    let out = export(
        tmp.path(),
        &[
            "--epochs",
            "4",
            "--batch-size",
            "16",
            "--lr",
            "3e-5",
            "--labels",
            "unrelated,agreed,disagreed",
            "--no-bucketing",
            "--dropout",
            "0.2",
            "--save-last",
            "--skip-bad-rows",
            "--delimiter",
            "\\t",
            "--max-length",
            "64",
            "--warmup-ratio",
            "0.06",
            "--max-steps",
            "90",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let kit = tmp.path().join("kit");
    for file in [
        "train.py",
        "requirements.txt",
        "accelerate.yaml",
        "README.md",
    ] {
        assert!(kit.join(file).is_file(), "{file}");
    }
    let readme = std::fs::read_to_string(kit.join("README.md")).unwrap();
    assert!(
        readme.contains("torchrun --nproc_per_node N train.py")
            && readme.contains("--export-trainer")
    );
    let requirements = std::fs::read_to_string(kit.join("requirements.txt")).unwrap();
    assert!(["torch>=", "transformers>=", "accelerate>="]
        .iter()
        .all(|r| requirements.contains(r)));
    let Some(python) = python3() else {
        eprintln!("skipped the settings check: no python3 on this machine");
        return;
    };
    let run = run_settings(&python, &kit.join("train.py"));
    assert_eq!(run["epochs"], 4);
    assert_eq!(run["batch_size"], 16);
    assert_eq!(run["lr"], 3e-5);
    assert_eq!(
        run["labels"],
        serde_json::json!(["unrelated", "agreed", "disagreed"])
    );
    assert_eq!(
        (run["shuffle"].as_bool(), run["bucketing"].as_bool()),
        (Some(true), Some(false))
    );
    assert_eq!(
        (run["dropout"].as_f64(), run["save_last"].as_bool()),
        (Some(0.2), Some(true))
    );
    assert_eq!(
        (run["skip_bad_rows"].as_bool(), run["delimiter"].as_str()),
        (Some(true), Some("\\t"))
    );
    assert_eq!(
        (run["max_length"].as_u64(), run["max_steps"].as_u64()),
        (Some(64), Some(90))
    );
    assert_eq!(run["warmup_ratio"], 0.06);
    assert_eq!(run["task"], "classification");
    assert!(Path::new(run["model"].as_str().unwrap()).is_absolute());
    assert!(run["output"].as_str().unwrap().ends_with("runs/x"));
    let help = Command::new(&python)
        .args([&s(&kit.join("train.py")), "--help"])
        .output()
        .unwrap();
    assert!(
        help.status.success(),
        "{}",
        String::from_utf8_lossy(&help.stderr)
    );
    assert!(String::from_utf8_lossy(&help.stdout).contains("--per-device-batch-size"));
}

#[test]
fn a_hub_id_stays_a_hub_id_and_nothing_is_trained() {
    let tmp = tempfile::tempdir().unwrap();
    let train = s(&common::fixtures().join("trainer_kit/train.tsv"));
    let kit = s(&tmp.path().join("kit"));
    let out = s(&tmp.path().join("out"));
    let run = common::bertscope(&[
        "finetune",
        "--model",
        "bert-base-chinese",
        "--train",
        &train,
        "--output",
        &out,
        "--export-trainer",
        &kit,
    ]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        !tmp.path().join("out").exists(),
        "--export-trainer trains nothing"
    );
    if let Some(python) = python3() {
        assert_eq!(
            run_settings(&python, &tmp.path().join("kit/train.py"))["model"],
            "bert-base-chinese"
        );
    }
}

#[test]
fn the_kit_folder_is_guarded() {
    let tmp = tempfile::tempdir().unwrap();
    let kit = tmp.path().join("kit");
    std::fs::create_dir(&kit).unwrap();
    std::fs::write(kit.join("notes.txt"), "mine").unwrap();
    for extra in [&[][..], &["--overwrite"][..]] {
        let out = export(tmp.path(), extra);
        assert!(!out.status.success());
        assert_eq!(
            std::fs::read_to_string(kit.join("notes.txt")).unwrap(),
            "mine"
        );
    }
    std::fs::remove_file(kit.join("notes.txt")).unwrap();
    assert!(export(tmp.path(), &[]).status.success());
    let again = export(tmp.path(), &["--epochs", "5"]);
    assert!(
        !again.status.success(),
        "an existing kit is replaced only with --overwrite"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("--overwrite"));
    assert!(export(tmp.path(), &["--epochs", "5", "--overwrite"])
        .status
        .success());
    let model = s(&common::fixture_model("mlm-safetensors"));
    let inside = s(&common::fixture_model("mlm-safetensors").join("kit"));
    let train = s(&common::fixtures().join("trainer_kit/train.tsv"));
    let refused = common::bertscope(&[
        "finetune",
        "--model",
        &model,
        "--train",
        &train,
        "--output",
        "x",
        "--export-trainer",
        &inside,
    ]);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("the base model"));
    let bad_column = export(tmp.path(), &["--text-a-column", "title1_zh", "--overwrite"]);
    assert!(String::from_utf8_lossy(&bad_column.stderr).contains("no column \"title1_zh\""));
}

/// `finetune` on a data file, and the kit exported for the same flags run on
/// it: their stderr (the kit's exit status is checked by the caller).
fn run_both(python: &Path, data: &Path, extra: &[&str]) -> (Output, Output) {
    let tmp = tempfile::tempdir().unwrap();
    let model = s(&common::fixture_model("mlm-safetensors"));
    let (d, o, k) = (
        s(data),
        s(&tmp.path().join("o")),
        s(&tmp.path().join("kit")),
    );
    let mut args = vec![
        "finetune", "--model", &model, "--train", &d, "--output", &o, "--epochs", "1",
    ];
    args.extend(extra);
    let ours = common::bertscope(&args);
    args.extend(["--export-trainer", &k]);
    let exported = common::bertscope(&args);
    assert!(
        exported.status.success(),
        "{}",
        String::from_utf8_lossy(&exported.stderr)
    );
    let kit = Command::new(python)
        .arg(tmp.path().join("kit/train.py"))
        .args(["--output", &s(&tmp.path().join("kit-out"))])
        .output()
        .unwrap();
    (ours, kit)
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn the_kit_reads_data_as_bertscope_does() {
    let Some(python) = python3() else {
        eprintln!("skipped: no python3 on this machine");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let bad_rows = tmp.path().join("bad.tsv");
    std::fs::write(
        &bad_rows,
        "text_a\ttext_b\tlabel\na b\tc d\tx\nonly two\tfields\n\n\"quoted\ttab\"\t\te\n",
    )
    .unwrap();
    let (ours, kit) = run_both(&python, &bad_rows, &[]);
    let needle = "bad.tsv:3: row has 2 fields but the header has 3";
    assert!(
        !ours.status.success() && stderr(&ours).contains(needle),
        "bertscope: {}",
        stderr(&ours)
    );
    assert_eq!(kit.status.code(), Some(2));
    assert!(stderr(&kit).contains(needle), "the kit: {}", stderr(&kit));

    // Skipped instead: the same rows named in the same words.
    let (ours, kit) = run_both(&python, &bad_rows, &["--skip-bad-rows"]);
    let needle = "skipped 2 bad rows (lines 3, 5); first: row has 2 fields but the header has 3";
    assert!(
        stderr(&ours).contains(needle),
        "bertscope: {}",
        stderr(&ours)
    );
    assert!(stderr(&kit).contains(needle), "the kit: {}", stderr(&kit));

    // A BOM, CRLF line ends and a label outside --labels.
    let unknown = tmp.path().join("unknown.csv");
    std::fs::write(&unknown, "\u{feff}text_a,label\r\none,a\r\ntwo,b\r\n").unwrap();
    let (ours, kit) = run_both(&python, &unknown, &["--labels", "a"]);
    let needle = "unknown.csv:3: label \"b\" does not occur in the training data (labels: a)";
    assert!(
        stderr(&ours).contains(needle),
        "bertscope: {}",
        stderr(&ours)
    );
    assert_eq!(kit.status.code(), Some(2));
    assert!(stderr(&kit).contains(needle), "the kit: {}", stderr(&kit));
}

#[test]
fn a_global_batch_that_processes_cannot_share_is_refused() {
    let Some(python) = python3() else {
        eprintln!("skipped: no python3 on this machine");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    assert!(export(tmp.path(), &["--batch-size", "8"]).status.success());
    let kit = Command::new(&python)
        .arg(tmp.path().join("kit/train.py"))
        .env("WORLD_SIZE", "3")
        .output()
        .unwrap();
    assert_eq!(kit.status.code(), Some(2));
    let err = String::from_utf8_lossy(&kit.stderr);
    assert!(
        err.contains("--batch-size 8 cannot be split evenly over 3 processes")
            && err.contains("e.g. 6 or 9"),
        "{err}"
    );
    let uneven = Command::new(&python)
        .args([
            &s(&tmp.path().join("kit/train.py")),
            "--per-device-batch-size",
            "3",
        ])
        .env("WORLD_SIZE", "2")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&uneven.stderr)
        .contains("--per-device-batch-size 3 does not divide the 4 rows"));
}

#[test]
fn predict_writes_the_tutorials_submission_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let test = tmp.path().join("test.tsv");
    let rows = [
        (
            "苏有朋要结婚了，但网友觉得他还是和林心如比较合适",
            "好闺蜜结婚给不婚族的秦岚扔花球",
            "321187",
        ),
        (
            "谣言：北京将启动单双号限行",
            "北京市政府辟谣：不会",
            "321190",
        ),
        (
            "the dog jumps over the lazy cat",
            "the quick brown fox",
            "321193",
        ),
    ];
    let mut text = String::from("text_a\ttext_b\tId\n");
    for (a, b, id) in rows {
        text.push_str(&format!("{a}\t{b}\t{id}\n"));
    }
    std::fs::write(&test, text).unwrap();
    let model = s(&common::fixtures().join("trainer_kit/kit-run"));
    let csv = tmp.path().join("submission.csv");
    let (input, output) = (s(&test), s(&csv));
    let predict = |extra: &[&str]| {
        let mut args = vec![
            "predict", "--model", &model, "--input", &input, "--output", &output,
        ];
        args.extend(["--id-column", "Id", "--label-header", "Category"]);
        args.extend(extra);
        common::bertscope(&args)
    };
    let out = predict(&["--no-score"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What pandas' to_csv(index=False) writes for the Id and Category columns.
    let mut expected = String::from("Id,Category\n");
    for (a, b, id) in rows {
        let classify = common::bertscope(&[
            "classify", "--model", &model, "--text-a", a, "--text-b", b, "--json",
        ]);
        let v: Value = serde_json::from_slice(&classify.stdout).unwrap();
        expected.push_str(&format!(
            "{id},{}\n",
            v["predictions"][0]["label"].as_str().unwrap()
        ));
    }
    assert_eq!(std::fs::read(&csv).unwrap(), expected.into_bytes());
    // With the score, the header still follows the input's id column.
    let scored = predict(&[]);
    assert!(scored.status.success());
    assert!(std::fs::read_to_string(&csv)
        .unwrap()
        .starts_with("Id,Category,score\n"));
}
