//! `finetune --resume`: a run stopped after its first epoch and resumed ends
//! with the same weights as the same run done in one go (optimiser moments,
//! schedule, shuffle and dropout draws all restored), in the library and
//! through the CLI after a SIGKILL.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use bertscope::data::{self, Dataset, ReadOptions};
use bertscope::train::{self, Event, TrainConfig, Trained};
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
