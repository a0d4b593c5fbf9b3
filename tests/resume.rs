//! `finetune --resume`: a run stopped after its first epoch and resumed ends
//! with the same weights as the same run done in one go (optimiser moments,
//! schedule, shuffle and dropout draws all restored), in the library and
//! through the CLI after a SIGKILL. A cancel during a checkpoint write keeps
//! what was there, and *Save as…* of an unsaved run copies its checkpoint only.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use bertscope::data::{self, Dataset, ReadOptions};
use bertscope::error::BertError;
use bertscope::train::{self, save, Event, TrainConfig, Trained};
use bertscope::write_guard;
use candle_core::Device;
use common::*;

const ROWS: [(&str, &str, &str); 8] = [
    ("the dog jumps", "the dog jumps", "agreed"),
    ("the fox is lazy", "the fox is not lazy", "disagreed"),
    ("news from paris", "a cat in a cafe", "unrelated"),
    ("the cat sleeps", "the cat sleeps", "agreed"),
    ("the river is wide", "the river is not wide", "disagreed"),
    ("a man buys a book", "the animal is tired", "unrelated"),
    ("it rains today", "it rains today", "agreed"),
    ("the sun is hot", "the sun is cold", "disagreed"),
];

/// The rows, `copies` times over.
fn write_tsv(path: &Path, copies: usize) {
    let mut text = String::from("id\ttext_a\ttext_b\tlabel\n");
    for (i, (a, b, l)) in ROWS.iter().cycle().take(ROWS.len() * copies).enumerate() {
        text.push_str(&format!("r{i}\t{a}\t{b}\t{l}\n"));
    }
    std::fs::write(path, text).unwrap();
}

fn dataset(dir: &Path) -> Dataset {
    let path = dir.join("train.tsv");
    write_tsv(&path, 1);
    data::read(
        &path,
        &ReadOptions {
            require_label: true,
            ..Default::default()
        },
    )
    .unwrap()
}

fn run(cfg: &TrainConfig, data: &Dataset, dev: &Dataset, stop_after: Option<usize>) -> Trained {
    let cancel = AtomicBool::new(false);
    let mut on_event = |e: Event| {
        if let (Event::Epoch { epoch, .. }, Some(stop)) = (&e, stop_after) {
            if *epoch == stop {
                cancel.store(true, Ordering::Relaxed);
            }
        }
    };
    train::train(
        &fixture_model("mlm-safetensors"),
        data,
        Some(dev),
        cfg,
        &Device::Cpu,
        &mut on_event,
        &cancel,
    )
    .unwrap()
}

fn assert_same_weights(a: &Trained, b: &Trained) {
    assert_eq!(a.tensors.len(), b.tensors.len());
    for ((na, ta), (nb, tb)) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!(na, nb);
        let diff = max_abs_diff(
            &ta.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            &tb.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert!(diff <= 1e-6, "{na}: resumed differs by {diff}");
    }
}

#[test]
fn resumed_run_ends_with_the_weights_of_an_uninterrupted_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let dev = data.clone();
    for save_last in [true, false] {
        let cfg = TrainConfig {
            epochs: 2,
            batch_size: 3,
            lr: 1e-3,
            save_last,
            ..Default::default()
        };
        let straight = run(
            &TrainConfig {
                run_dir: Some(tmp.path().join(format!("straight-{save_last}"))),
                ..cfg.clone()
            },
            &data,
            &dev,
            None,
        );
        let dir = tmp.path().join(format!("resumed-{save_last}"));
        let first = run(
            &TrainConfig {
                run_dir: Some(dir.clone()),
                ..cfg.clone()
            },
            &data,
            &dev,
            Some(1),
        );
        assert_eq!(first.report.outcome, train::Outcome::Cancelled);
        assert_eq!(first.report.epochs.len(), 1);
        let resumed = run(
            &TrainConfig {
                run_dir: Some(dir),
                resume: true,
                ..cfg.clone()
            },
            &data,
            &dev,
            None,
        );
        assert_eq!(resumed.report.outcome, train::Outcome::Finished);
        assert_eq!(resumed.report.steps, straight.report.steps);
        assert_eq!(resumed.report.best_epoch, straight.report.best_epoch);
        // Same steps, epochs and schedule; losses equal up to summation order.
        let (a, b) = (&straight.report.history, &resumed.report.history);
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!((x.step, x.epoch, x.lr), (y.step, y.epoch, y.lr));
            assert!((x.loss - y.loss).abs() < 1e-6, "{x:?} vs {y:?}");
        }
        assert_same_weights(&straight, &resumed);
    }
}

#[test]
fn the_training_data_must_be_the_same_to_resume() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let dir = tmp.path().join("run");
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: 4,
        run_dir: Some(dir.clone()),
        ..Default::default()
    };
    run(&cfg, &data, &data, Some(1));
    let mut fewer = data.clone();
    fewer.examples.truncate(5);
    let err = train::train(
        &fixture_model("mlm-safetensors"),
        &fewer,
        None,
        &TrainConfig {
            resume: true,
            ..cfg
        },
        &Device::Cpu,
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .err()
    .expect("resuming on other data must fail");
    assert!(err.to_string().contains("trained on 8 rows"), "{err}");
}

/// Through the CLI: kill the process once epoch 1 is reported, then
/// `--resume OUTPUT.partial` finishes it with the uninterrupted run's weights.
#[test]
fn cli_resume_after_sigkill() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path();
    // Long enough that epoch 2 is still running when the kill lands.
    write_tsv(&home.join("train.tsv"), 40);
    let model = fixture_model("mlm-safetensors").display().to_string();
    let args = |out: &'static str| {
        vec![
            "finetune".to_string(),
            "--model".into(),
            model.clone(),
            "--train".into(),
            "train.tsv".into(),
            "--output".into(),
            out.into(),
            "--epochs".into(),
            "2".into(),
            "--batch-size".into(),
            "2".into(),
            "--lr".into(),
            "1e-3".into(),
            "--device".into(),
            "cpu".into(),
        ]
    };
    let bin = env!("CARGO_BIN_EXE_bertscope");
    let straight = Command::new(bin)
        .args(args("straight"))
        .current_dir(home)
        .output()
        .unwrap();
    assert!(
        straight.status.success(),
        "{}",
        String::from_utf8_lossy(&straight.stderr)
    );

    // The interrupted run: wait for epoch 2 to begin (epoch 1's state is saved
    // before its line is printed), then SIGKILL.
    let mut child = Command::new(bin)
        .args(args("resumed"))
        .current_dir(home)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut seen = String::new();
    {
        use std::io::Read;
        let mut stderr = stderr;
        let mut buf = [0u8; 256];
        // Epoch 1's line, then the hint on how to resume it.
        while !(seen.contains("epoch 1:") && seen.contains("--resume")) {
            let n = stderr.read(&mut buf).unwrap();
            assert!(n > 0, "the run ended before epoch 1: {seen}");
            seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(
        seen.contains("--resume"),
        "the epoch line says how to resume: {seen}"
    );
    assert!(
        !home.join("resumed").exists(),
        "the kill came before the output was written"
    );
    let partial = home.join("resumed.partial");
    assert!(partial.join("last/trainer_state.json").is_file());

    // Restarting without --resume is refused rather than discarding the run.
    let again = Command::new(bin)
        .args(args("resumed"))
        .current_dir(home)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));

    let resumed = Command::new(bin)
        .args(["finetune", "--resume", "resumed.partial", "--json"])
        .current_dir(home)
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert!(!partial.exists(), "the run's state is removed once saved");
    let a = candle_core::safetensors::load(home.join("straight/model.safetensors"), &Device::Cpu)
        .unwrap();
    let b = candle_core::safetensors::load(home.join("resumed/model.safetensors"), &Device::Cpu)
        .unwrap();
    assert_eq!(a.len(), b.len());
    for (key, ta) in &a {
        let diff = max_abs_diff(
            &ta.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            &b[key].flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert!(diff <= 1e-6, "{key}: resumed differs by {diff}");
    }
}

/// A cancel lands in the data preparation and in the dev evaluation too, not
/// only between training steps.
#[test]
fn cancel_lands_while_preparing_and_while_evaluating() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: 4,
        ..Default::default()
    };
    let model = fixture_model("mlm-safetensors");
    let already = AtomicBool::new(true);
    let err = train::train(
        &model,
        &data,
        Some(&data),
        &cfg,
        &Device::Cpu,
        &mut |_| {},
        &already,
    )
    .err()
    .expect("cancelled before training");
    assert!(
        matches!(err, bertscope::error::BertError::Cancelled),
        "{err}"
    );

    // Set during the last step of epoch 1: the next check is the evaluation's.
    let cancel = AtomicBool::new(false);
    let steps_per_epoch = ROWS.len().div_ceil(4);
    let mut on_event = |e: Event| {
        if matches!(e, Event::Step { step, .. } if step == steps_per_epoch) {
            cancel.store(true, Ordering::Relaxed);
        }
    };
    let t = train::train(
        &model,
        &data,
        Some(&data),
        &cfg,
        &Device::Cpu,
        &mut on_event,
        &cancel,
    )
    .unwrap();
    assert_eq!(t.report.outcome, train::Outcome::Cancelled);
    assert!(
        t.report.epochs.is_empty(),
        "epoch 1's evaluation was cut short"
    );
    assert_eq!(t.report.steps, steps_per_epoch);
}

/// A run without dev data (no evaluation looks at the flag) whose cancel is
/// set at optimiser step `cancel_at`.
fn run_cancelled_at(cfg: &TrainConfig, data: &Dataset, cancel_at: Option<usize>) -> Trained {
    let cancel = AtomicBool::new(false);
    let mut on_event = |e: Event| {
        if matches!(e, Event::Step { step, .. } if Some(step) == cancel_at) {
            cancel.store(true, Ordering::Relaxed);
        }
    };
    let model = fixture_model("mlm-safetensors");
    train::train(
        &model,
        data,
        None,
        cfg,
        &Device::Cpu,
        &mut on_event,
        &cancel,
    )
    .unwrap()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Set during epoch 2's last step, the cancel's first check is in the write of
/// epoch 2's state: `last/` stays epoch 1's, and resuming from it ends as an
/// uninterrupted run.
#[test]
fn a_cancel_while_an_epoch_is_saved_keeps_the_previous_state() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let cfg = TrainConfig {
        epochs: 2,
        batch_size: 3,
        lr: 1e-3,
        ..Default::default()
    };
    let straight = run_cancelled_at(&cfg, &data, None);
    let dir = tmp.path().join("run");
    let in_dir = TrainConfig {
        run_dir: Some(dir.clone()),
        epochs_dir: Some(dir.join("epochs")),
        ..cfg.clone()
    };
    let steps = ROWS.len().div_ceil(3);
    let cancelled = run_cancelled_at(&in_dir, &data, Some(2 * steps));
    assert_eq!(cancelled.report.epochs.len(), 2, "epoch 2 was trained");
    let last = dir.join(train::run_dir::LAST);
    assert_eq!(train::run_dir::read_progress(&last).unwrap().epoch, 1);
    assert!(last.join(train::run_dir::OPTIMIZER_FILE).is_file());
    assert_eq!(names(&dir), ["epochs", "last"], "no staging left behind");
    assert_eq!(names(&dir.join("epochs")), ["epoch-0", "epoch-1"]);

    let resumed = run_cancelled_at(
        &TrainConfig {
            resume: true,
            ..in_dir
        },
        &data,
        None,
    );
    assert_eq!(resumed.report.outcome, train::Outcome::Finished);
    assert_same_weights(&straight, &resumed);
}

/// A cancelled save leaves the destination as it was, and nothing beside it.
#[test]
fn a_cancelled_checkpoint_write_leaves_the_old_one() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 4,
        ..Default::default()
    };
    let trained = run_cancelled_at(&cfg, &data, None);
    let (never, cancelled) = (AtomicBool::new(false), AtomicBool::new(true));
    let out = tmp.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let dir = out.join("epoch-1");
    save::write_dir(&trained, &cfg, &dir, &never).unwrap();
    let before = std::fs::read(dir.join("model.safetensors")).unwrap();
    let err = save::write_dir(&trained, &cfg, &dir, &cancelled).unwrap_err();
    assert!(matches!(err, BertError::Cancelled), "{err}");
    assert_eq!(
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        before
    );
    assert_eq!(names(&out), ["epoch-1"]);

    let saved = out.join("saved");
    let protected = write_guard::Protected::new();
    let err = save::save_to_cancellable(&trained, &cfg, &saved, &protected, false, &cancelled)
        .unwrap_err();
    assert!(matches!(err, BertError::Cancelled), "{err}");
    assert_eq!(names(&out), ["epoch-1"], "no output, no staging");
}

/// *Save as…* of an unsaved run's `last/`: the checkpoint without the AdamW
/// moments and trainer state, marked as ours, loading, and the progress
/// counting only what was copied.
#[test]
fn save_as_of_an_unsaved_run_copies_the_checkpoint_only() {
    let tmp = tempfile::tempdir().unwrap();
    let data = dataset(tmp.path());
    let dir = tmp.path().join("run");
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 4,
        run_dir: Some(dir.clone()),
        ..Default::default()
    };
    run_cancelled_at(&cfg, &data, None);
    let last = dir.join(train::run_dir::LAST);
    assert!(last.join(train::run_dir::OPTIMIZER_FILE).is_file());
    let to = tmp.path().join("saved");
    let mut seen = (0, 0);
    let base = fixture_model("mlm-safetensors");
    save::copy_checkpoint_with_progress(&last, &to, &base, false, &mut |copied, total| {
        seen = (copied, total)
    })
    .unwrap();
    let copied = names(&to);
    assert!(
        copied.contains(&"model.safetensors".to_string()),
        "{copied:?}"
    );
    for file in &copied {
        assert!(
            write_guard::CHECKPOINT_FILES.contains(&file.as_str())
                && file != train::run_dir::OPTIMIZER_FILE
                && file != train::run_dir::STATE_FILE,
            "{file} copied"
        );
    }
    let bytes: u64 = copied
        .iter()
        .map(|f| std::fs::metadata(to.join(f)).unwrap().len())
        .sum();
    assert_eq!(seen, (bytes, bytes));
    write_guard::ours(&to).unwrap();
    let model = bertscope::LoadedModel::load_dir("saved", &to, &Device::Cpu).unwrap();
    assert!(model
        .classify("the dog jumps", None, &bertscope::Inspect::default())
        .is_ok());
}
