//! The watcher and `bertscope watch` on real Trainer runs recorded by
//! `tests/fixtures/make_trainer_kit_fixture.py`: the Trainer kit launched
//! with `torchrun --nproc_per_node 2` on the CPU, and a plain Trainer run
//! that deleted checkpoints as it went (save_total_limit). Each is replayed
//! as it was written: line by line, half lines included, checkpoint by
//! checkpoint.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bertscope::watch::{Source, WatchError, Watcher};
use serde_json::Value;

fn recorded(name: &str) -> PathBuf {
    common::fixtures().join("trainer_kit").join(name)
}

fn kit_lines() -> Vec<String> {
    let text = std::fs::read_to_string(recorded("kit-run/bertscope-log.jsonl")).unwrap();
    text.lines().map(str::to_string).collect()
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// The recorded run's epoch checkpoint `rel` (e.g. `epochs/epoch-1`) put in place.
fn place(dir: &Path, rel: &str) {
    common::copy_dir(&recorded("kit-run").join(rel), &dir.join(rel));
}

fn split_in_half(line: &str) -> (&str, &str) {
    let mut mid = line.len() / 2;
    while !line.is_char_boundary(mid) {
        mid += 1;
    }
    line.split_at(mid)
}

#[test]
fn the_kits_run_replayed_line_by_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("out");
    std::fs::create_dir(&dir).unwrap();
    let log = dir.join("bertscope-log.jsonl");
    let mut watcher = Watcher::new(&dir);
    let e = watcher.refresh().unwrap_err();
    assert!(matches!(e, WatchError::NotTrainerOutput { .. }), "{e}");

    let lines = kit_lines();
    let mut last_step = 0;
    for (i, line) in lines.iter().enumerate() {
        let record: Value = serde_json::from_str(line).unwrap();
        let (head, tail) = split_in_half(line);
        append(&log, head);
        let s = watcher.refresh().unwrap();
        assert_eq!(
            s.global_step,
            last_step,
            "half of line {} counts for nothing",
            i + 1
        );
        assert!(
            s.problems.is_empty(),
            "a half-written line is no error: {:?}",
            s.problems
        );
        if let Some(rel) = record.get("path").and_then(Value::as_str) {
            place(&dir, rel);
        }
        append(&log, &format!("{tail}\n"));
        if record.get("event").and_then(Value::as_str) == Some("start") {
            place(&dir, "epochs/epoch-0");
        }
        let s = watcher.refresh().unwrap();
        assert!(s.problems.is_empty(), "line {}: {:?}", i + 1, s.problems);
        assert!(s.global_step == last_step || s.global_step == last_step + 1);
        assert_eq!(s.finished, i + 1 == lines.len(), "line {}", i + 1);
        last_step = s.global_step;
    }
    let s = watcher.refresh().unwrap();
    assert_eq!(s.source, Source::Kit);
    assert_eq!((s.global_step, s.max_steps), (16, Some(16)));
    assert_eq!(s.log.len(), 16);
    assert_eq!(s.eval.len(), 2, "one evaluation per epoch");
    for eval in &s.eval {
        for metric in ["eval_accuracy", "eval_macro_f1", "eval_loss"] {
            assert!(eval.metric(metric).is_some_and(f64::is_finite), "{metric}");
        }
    }
    let checkpoints: Vec<(usize, bool)> = s.checkpoints.iter().map(|c| (c.step, c.gone)).collect();
    assert_eq!(checkpoints, [(0, false), (8, false), (16, false)]);
    assert!(
        s.progress_line().starts_with("step 16/16  epoch 2.00"),
        "{}",
        s.progress_line()
    );
}

#[test]
fn the_kits_schedule_is_bertscopes_step_for_step() {
    let flags: Vec<String> =
        serde_json::from_value(common::read_json(&recorded("flags.json"))).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("own");
    let (model, train, dev) = (
        common::fixture_model("mlm-safetensors"),
        recorded("train.tsv"),
        recorded("dev.tsv"),
    );
    let mut args: Vec<&str> = vec!["finetune", "--model", model.to_str().unwrap()];
    args.extend([
        "--train",
        train.to_str().unwrap(),
        "--dev",
        dev.to_str().unwrap(),
    ]);
    args.extend(["--output", out.to_str().unwrap(), "--json"]);
    args.extend(flags.iter().map(String::as_str));
    let run = common::bertscope(&args);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: Value = serde_json::from_slice(&run.stdout).unwrap();
    let ours = report["history"].as_array().unwrap();
    let kit: Vec<Value> = kit_lines()
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r.get("learning_rate").is_some())
        .collect();
    assert_eq!(ours.len(), kit.len(), "the same number of optimiser steps");
    for (a, b) in ours.iter().zip(&kit) {
        assert_eq!(a["step"], b["step"]);
        let (x, y) = (
            a["lr"].as_f64().unwrap(),
            b["learning_rate"].as_f64().unwrap(),
        );
        assert!(
            (x - y).abs() <= 1e-12 * x.abs().max(1e-30),
            "step {}: lr {x} vs the kit's {y}",
            a["step"]
        );
        let kit_epoch = (b["epoch"].as_f64().unwrap() - 1e-9).ceil() as u64;
        assert_eq!(a["epoch"].as_u64(), Some(kit_epoch), "step {}", a["step"]);
    }
    let summary = String::from_utf8_lossy(&run.stderr);
    assert!(!summary.contains("Some("), "{summary}");
}

#[test]
fn the_kits_output_opens_as_a_tuned_model_with_its_epochs() {
    let out = recorded("kit-run");
    let epochs: Vec<usize> = bertscope::train::save::epoch_checkpoints(&out)
        .into_iter()
        .map(|(e, _)| e)
        .collect();
    assert_eq!(epochs, [0, 1, 2]);
    let report = bertscope::train::Report::load(&out)
        .unwrap()
        .expect("metrics.json");
    assert_eq!(
        (report.steps, report.history.len(), report.epochs.len()),
        (16, 16, 2)
    );
    let best = report.best_epoch.unwrap();
    let accuracy = |e: usize| report.epochs[e - 1].dev.as_ref().unwrap().accuracy;
    assert!(report
        .epochs
        .iter()
        .all(|e| accuracy(e.epoch) <= accuracy(best)));
    let out_arg = out.display().to_string();
    let classify = common::bertscope(&[
        "classify",
        "--model",
        &out_arg,
        "--text-a",
        "the dog jumps",
        "--text-b",
        "not tired",
        "--json",
    ]);
    assert!(
        classify.status.success(),
        "{}",
        String::from_utf8_lossy(&classify.stderr)
    );
    let labels: Vec<String> = serde_json::from_slice::<Value>(&classify.stdout).unwrap()
        ["predictions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["label"].as_str().unwrap_or_default().to_string())
        .collect();
    let mut sorted = labels.clone();
    sorted.sort();
    assert_eq!(sorted, ["agreed", "disagreed", "unrelated"]);
    let base = common::fixture_model("mlm-safetensors")
        .display()
        .to_string();
    let compare = common::bertscope(&[
        "compare",
        "--base",
        &base,
        "--tuned",
        &out_arg,
        "--text-a",
        "the dog jumps",
        "--json",
    ]);
    assert!(
        compare.status.success(),
        "{}",
        String::from_utf8_lossy(&compare.stderr)
    );
}

#[test]
fn watch_once_prints_the_json_contract() {
    let out = common::bertscope(&[
        "watch",
        recorded("kit-run").to_str().unwrap(),
        "--once",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (v["global_step"].as_u64(), v["max_steps"].as_u64()),
        (Some(16), Some(16))
    );
    assert_eq!(v["finished"], true);
    assert!((v["epoch"].as_f64().unwrap() - 2.0).abs() < 1e-9);
    let log = v["log"].as_array().unwrap();
    assert_eq!(log.len(), 16);
    for key in ["step", "epoch", "loss", "learning_rate"] {
        assert!(log[0].get(key).is_some(), "log entries carry {key}");
    }
    let eval = v["eval"].as_array().unwrap();
    assert!(eval[0]["eval_accuracy"].is_number() && eval[0]["step"] == 8);
    let checkpoints = v["checkpoints"].as_array().unwrap();
    assert_eq!(checkpoints.len(), 3);
    assert!(checkpoints
        .iter()
        .all(|c| c["path"].is_string() && c["step"].is_number() && c["epoch"].is_number()));
}

#[test]
fn watch_follows_a_live_run_until_its_final_model() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("live");
    let writer_dir = dir.clone();
    // The run starts after the watcher: the folder appears, then line by line.
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        std::fs::create_dir(&writer_dir).unwrap();
        for line in kit_lines() {
            std::thread::sleep(Duration::from_millis(40));
            append(
                &writer_dir.join("bertscope-log.jsonl"),
                &format!("{line}\n"),
            );
        }
    });
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_bertscope"))
        .args([
            "watch",
            dir.to_str().unwrap(),
            "--json",
            "--interval",
            "0.2",
        ])
        .output()
        .unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snapshots: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        snapshots.len() >= 3,
        "one snapshot per change: {}",
        snapshots.len()
    );
    let steps: Vec<u64> = snapshots
        .iter()
        .map(|s| s["global_step"].as_u64().unwrap())
        .collect();
    assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
    let last = snapshots.last().unwrap();
    assert_eq!(
        (last["finished"].as_bool(), last["global_step"].as_u64()),
        (Some(true), Some(16))
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("waiting for"));
}

#[test]
fn a_plain_trainer_run_with_deleted_checkpoints_replayed() {
    let recorded_run = recorded("plain-run");
    let events = common::read_json(&recorded_run.join("events.json"));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("plain");
    std::fs::create_dir(&dir).unwrap();
    let mut watcher = Watcher::new(&dir);
    let mut saved: Vec<String> = Vec::new();
    for event in events["events"].as_array().unwrap() {
        let name = event["saved"].as_str().unwrap();
        std::fs::create_dir(dir.join(name)).unwrap();
        std::fs::copy(
            recorded_run.join(name).join("trainer_state.json"),
            dir.join(name).join("trainer_state.json"),
        )
        .unwrap();
        saved.push(name.to_string());
        let present: Vec<&str> = event["present"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        for old in &saved {
            if !present.contains(&old.as_str()) && dir.join(old).exists() {
                std::fs::remove_dir_all(dir.join(old)).unwrap();
            }
        }
        let s = watcher.refresh().unwrap();
        assert_eq!(s.source, Source::Trainer);
        let step: usize = name["checkpoint-".len()..].parse().unwrap();
        assert_eq!(s.global_step, step);
        assert!(!s.finished);
        for c in &s.checkpoints {
            let c_name = c.path.file_name().unwrap().to_str().unwrap();
            assert_eq!(c.gone, !present.contains(&c_name), "{c_name}");
        }
        assert_eq!(
            s.checkpoints.len(),
            saved.len(),
            "deleted checkpoints are still listed, as gone"
        );
    }
    let s = watcher.refresh().unwrap();
    assert_eq!((s.global_step, s.max_steps), (12, Some(12)));
    assert_eq!(s.log.len(), 12);
    assert_eq!(s.eval.len(), 2);
    // The Trainer's final save_model: the run is finished.
    for name in events["final_files"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
    {
        std::fs::write(dir.join(name), "x").unwrap();
    }
    assert!(watcher.refresh().unwrap().finished);
    let out = common::bertscope(&["watch", dir.to_str().unwrap(), "--once"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("step 12/12") && text.contains("finished") && text.contains("(gone)"),
        "{text}"
    );
}

#[test]
fn watch_says_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("notes.txt"), "not a run").unwrap();
    for args in [vec!["--once"], vec![]] {
        let mut all = vec!["watch", tmp.path().to_str().unwrap()];
        all.extend(args);
        let out = common::bertscope(&all);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("not a Trainer output folder") && err.contains("no bertscope-log.jsonl"),
            "{err}"
        );
    }
    let missing = tmp.path().join("missing");
    let out = common::bertscope(&["watch", missing.to_str().unwrap(), "--once"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such folder"));

    // A log cut short and a line that is not UTF-8: said, and the rest is read.
    let dir = tmp.path().join("damaged");
    std::fs::create_dir(&dir).unwrap();
    let lines = kit_lines();
    let log = dir.join("bertscope-log.jsonl");
    append(&log, &format!("{}\n{}\n", lines[0], &lines[1][..10]));
    std::fs::OpenOptions::new()
        .append(true)
        .open(&log)
        .unwrap()
        .write_all(b"\xff\xfe\n")
        .unwrap();
    append(&log, &format!("{}\n", lines[2]));
    let out = common::bertscope(&["watch", dir.to_str().unwrap(), "--once"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bertscope-log.jsonl:2: not JSON") && err.contains(":3: not valid UTF-8"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("step 2/16"));
}
