//! *Watch a run…* and the runs panel's watched runs, driven through
//! egui_kittest: the Trainer kit's recorded 2-process run
//! (`tests/fixtures/trainer_kit/kit-run`) written into a folder line by line
//! while the app follows it; then its epochs opened in Compare; and a plain
//! Trainer run's folder dropped on the window.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use bertscope::ui::state::View;
use bertscope::ui::training::run::RunStatus;
use common::app::{click, training_app, wait_until};
use egui_kittest::kittest::Queryable;

fn recorded(name: &str) -> PathBuf {
    common::fixtures().join("trainer_kit").join(name)
}

/// The recorded kit run written into `dir` as the kit wrote it, one line a
/// call: the log a line at a time, each epoch's checkpoint before the line
/// that names it, the final model before the last line. The line written.
fn write_line(dir: &Path, line: &str) -> serde_json::Value {
    std::fs::create_dir_all(dir).unwrap();
    let record: serde_json::Value = serde_json::from_str(line).unwrap();
    let event = record.get("event").and_then(|e| e.as_str());
    if let Some(rel) = record.get("path").and_then(|p| p.as_str()) {
        common::copy_dir(&recorded("kit-run").join(rel), &dir.join(rel));
    }
    if event == Some("finished") {
        for file in [
            "config.json",
            "model.safetensors",
            "tokenizer.json",
            "tokenizer_config.json",
            "metrics.json",
            "training_args.json",
        ] {
            std::fs::copy(recorded("kit-run").join(file), dir.join(file)).unwrap();
        }
    }
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("bertscope-log.jsonl"))
        .unwrap();
    log.write_all(format!("{line}\n").as_bytes()).unwrap();
    if event == Some("start") {
        common::copy_dir(
            &recorded("kit-run/epochs/epoch-0"),
            &dir.join("epochs/epoch-0"),
        );
    }
    record
}

#[test]
fn watch_a_run_live_then_compare_its_epochs() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = training_app(tmp.path(), Some("the dog jumps"), None);
    let out = tmp.path().join("cluster-run");
    click(&mut h, "Run folder");
    h.get_by_label("Run folder")
        .type_text(&out.display().to_string());
    h.run_steps(2);
    click(&mut h, "Watch a run…");
    assert_eq!(h.state().tuning.watched.len(), 1);
    // The run writes a line; the app shows it (woken by the watcher) before the next.
    let log = std::fs::read_to_string(recorded("kit-run/bertscope-log.jsonl")).unwrap();
    for line in log.lines() {
        let record = write_line(&out, line);
        if let Some(step) = record.get("learning_rate").and(record["step"].as_u64()) {
            wait_until(&mut h, "the step", |app| {
                app.tuning.watched[0].state.losses.len() == step as usize
            });
            let run = &h.state().tuning.watched[0];
            assert_eq!(run.state.status, RunStatus::Running, "step {step}");
            assert_eq!(run.state.step, step as usize);
        }
    }
    wait_until(&mut h, "the end of the run", |app| {
        app.tuning.watched[0].finished()
    });
    {
        let run = &h.state().tuning.watched[0];
        assert_eq!(run.state.losses.len(), 16, "every step on the loss curve");
        assert_eq!(run.state.epochs.len(), 2, "each epoch's dev metrics");
        assert!(run
            .state
            .epochs
            .iter()
            .all(|e| e.dev.as_ref().is_some_and(|d| d.confusion.len() == 3)));
        assert_eq!(
            run.state.status,
            RunStatus::Done(bertscope::train::Outcome::Finished)
        );
        assert_eq!(run.openable().as_deref(), Some(out.as_path()));
    }
    assert!(h.query_all_by_label_contains("step 16/16").next().is_some());
    assert!(
        h.query_by_label("cluster-run (watched)").is_some(),
        "the runs panel lists it"
    );

    click(&mut h, "Compare this run");
    wait_until(&mut h, "the tuned model", |app| app.tuning.tuned.is_some());
    assert_eq!(h.state().settings.view, View::Compare);
    let tuned = h.state().tuning.tuned.clone().unwrap();
    assert_eq!(tuned.dir, out);
    assert_eq!(
        tuned.epochs,
        [0, 1, 2],
        "the epoch slider walks the run's checkpoints"
    );
    assert_eq!(tuned.labels, ["agreed", "disagreed", "unrelated"]);
}

#[test]
fn a_dropped_run_folder_is_watched_and_a_stray_one_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = training_app(tmp.path(), Some("the dog jumps"), None);
    let plain = tmp.path().join("plain");
    for name in ["checkpoint-9", "checkpoint-12"] {
        common::copy_dir(&recorded("plain-run").join(name), &plain.join(name));
    }
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(common::Dropped(plain.clone())));
    h.run_steps(2);
    wait_until(&mut h, "the plain run", |app| {
        app.tuning
            .watched
            .first()
            .is_some_and(|w| w.snapshot.is_some())
    });
    let run = &h.state().tuning.watched[0];
    let s = run.snapshot.as_ref().unwrap();
    assert_eq!((s.global_step, s.max_steps), (12, Some(12)));
    let gone: Vec<usize> = s
        .checkpoints
        .iter()
        .filter(|c| c.gone)
        .map(|c| c.step)
        .collect();
    assert_eq!(gone, [3, 6], "deleted by save_total_limit");
    assert!(h
        .query_by_label_contains("Checkpoints deleted since they were written")
        .is_some());

    let stray = tmp.path().join("stray");
    std::fs::create_dir(&stray).unwrap();
    std::fs::write(stray.join("notes.txt"), "x").unwrap();
    h.state_mut().settings.train.watch_path = stray.display().to_string();
    click(&mut h, "Watch a run…");
    wait_until(&mut h, "the error", |app| {
        app.tuning.watched.iter().any(|w| w.error.is_some())
    });
    assert!(h
        .query_all_by_label_contains("not a Trainer output folder")
        .next()
        .is_some());
    let stop = h
        .get_all_by_label("Stop watching")
        .nth(1)
        .expect("two watched runs");
    stop.click();
    h.run_steps(2);
    assert_eq!(h.state().tuning.watched.len(), 1);
    assert_eq!(h.state().tuning.watched[0].dir, plain);
}

#[test]
fn run_elsewhere_writes_the_forms_run_as_a_kit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut form = bertscope::ui::training::form::TrainForm {
        data_path: recorded("train.tsv").display().to_string(),
        dev_path: String::new(),
        dev_fraction: 0.25,
        epochs: 5,
        batch_size: 12,
        max_steps: 40,
        ..Default::default()
    };
    form.text_b_column = "text_b".into();
    let base = common::fixture_model("mlm-safetensors");
    let run = form.kit_run(&base, tmp.path().join("runs/x"));
    let kit = tmp.path().join("kit");
    let protected = bertscope::write_guard::Protected::new().with("the base model", &base);
    bertscope::train::kit::write(&kit, &run, "the form", &protected, false).unwrap();
    let settings = run.settings();
    assert_eq!(
        (settings["epochs"].as_u64(), settings["batch_size"].as_u64()),
        (Some(5), Some(12))
    );
    assert_eq!(
        (settings["dev"].is_null(), settings["dev_fraction"].as_f64()),
        (true, Some(0.25))
    );
    assert_eq!(settings["max_steps"], 40);
    assert_eq!(settings["text_b_column"], "text_b");
    assert_eq!(settings["model"], base.display().to_string());
    let script = std::fs::read_to_string(kit.join("train.py")).unwrap();
    assert!(script.contains("\"epochs\": 5,") && script.contains("\"dev_fraction\": 0.25,"));
}
