//! Nothing of the user's is ever lost: every way `finetune --overwrite` and
//! `predict --output` once destroyed files (issue 8) is refused with a message
//! naming what is in the way, and a run killed at any moment or refused a
//! write by the file-size limit leaves the old output complete.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

const ROWS: [(&str, &str, &str); 6] = [
    ("the dog jumps", "the dog jumps", "agreed"),
    ("the fox is lazy", "the fox is not lazy", "disagreed"),
    ("news from paris", "a cat in a cafe", "unrelated"),
    ("the cat sleeps", "the cat sleeps", "agreed"),
    ("the river is wide", "the river is not wide", "disagreed"),
    ("a man buys a book", "the animal is tired", "unrelated"),
];

fn write_tsv(path: &Path) {
    let mut text = String::from("id\ttext_a\ttext_b\tlabel\n");
    for (i, (a, b, l)) in ROWS.iter().enumerate() {
        text.push_str(&format!("r{i}\t{a}\t{b}\t{l}\n"));
    }
    std::fs::write(path, text).unwrap();
}

fn bertscope_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bertscope"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn refused(out: &Output, needles: &[&str]) {
    let err = stderr(out);
    assert!(!out.status.success(), "should have been refused: {err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in: {err}");
    }
}

/// Every file under `dir` with its contents.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let kind = e.file_type().unwrap();
            if kind.is_symlink() {
                let target = std::fs::read_link(&p).unwrap();
                out.push((p, target.into_os_string().into_encoded_bytes()));
            } else if kind.is_dir() {
                stack.push(p);
            } else {
                out.push((p.clone(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// A folder of the user's: notes, the training data and a copy of the base model.
fn user_folder() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("work");
    std::fs::create_dir_all(home.join("models")).unwrap();
    copy_dir(&fixture_model("mlm-safetensors"), &home.join("models/base"));
    std::fs::write(home.join("notes.txt"), "my notes").unwrap();
    std::fs::write(home.join("thesis.md"), "# chapter 1").unwrap();
    write_tsv(&home.join("train.tsv"));
    (tmp, home)
}

fn finetune_args<'a>(output: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "finetune",
        "--model",
        "models/base",
        "--train",
        "train.tsv",
        "--output",
        output,
        "--epochs",
        "1",
        "--batch-size",
        "3",
        "--device",
        "cpu",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn output_dot_overwrite_is_refused_and_nothing_is_deleted() {
    let (_tmp, home) = user_folder();
    let before = snapshot(&home);
    let out = bertscope_in(&home, &finetune_args(".", &["--overwrite"]));
    refused(&out, &["is the current directory"]);
    assert_eq!(snapshot(&home), before);
}

#[test]
fn an_ancestor_of_the_current_directory_is_refused() {
    let (_tmp, home) = user_folder();
    let sub = home.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let before = snapshot(&home);
    let mut args = finetune_args("..", &["--overwrite"]);
    args[2] = "../models/base";
    args[4] = "../train.tsv";
    let out = bertscope_in(&sub, &args);
    refused(&out, &["contains the current directory"]);
    assert_eq!(snapshot(&home), before);
}

#[test]
fn a_folder_holding_the_base_model_is_refused() {
    let (_tmp, home) = user_folder();
    let before = snapshot(&home);
    let out = bertscope_in(&home, &finetune_args("models", &["--overwrite"]));
    refused(&out, &["models", "contains the base model"]);
    // The base model itself, and a folder inside it.
    let out = bertscope_in(&home, &finetune_args("models/base", &["--overwrite"]));
    refused(&out, &["is the base model"]);
    let out = bertscope_in(&home, &finetune_args("models/base/tuned", &[]));
    refused(&out, &["is inside the base model"]);
    assert_eq!(snapshot(&home), before);
}

#[test]
fn a_folder_holding_the_training_data_is_refused() {
    let (_tmp, home) = user_folder();
    let data = home.join("data");
    std::fs::create_dir(&data).unwrap();
    write_tsv(&data.join("train.tsv"));
    let before = snapshot(&home);
    let mut args = finetune_args("data", &["--overwrite"]);
    args[4] = "data/train.tsv";
    let out = bertscope_in(&home, &args);
    refused(&out, &["contains the training data"]);
    assert_eq!(snapshot(&home), before);
}

#[test]
fn a_folder_of_documents_is_not_overwritten() {
    let (_tmp, home) = user_folder();
    let docs = home.join("docs");
    std::fs::create_dir(&docs).unwrap();
    std::fs::write(docs.join("letter.txt"), "dear").unwrap();
    std::fs::write(docs.join("config.json"), "{}").unwrap();
    let before = snapshot(&home);
    let out = bertscope_in(&home, &finetune_args("docs", &["--overwrite"]));
    refused(&out, &["not a checkpoint bertscope wrote", "letter.txt"]);
    let out = bertscope_in(&home, &finetune_args("docs", &[]));
    refused(&out, &["is not empty", "pass --overwrite"]);
    assert_eq!(snapshot(&home), before);
}

#[test]
fn a_symbolic_link_output_is_refused() {
    let (_tmp, home) = user_folder();
    std::os::unix::fs::symlink(home.join("models"), home.join("link")).unwrap();
    let out = bertscope_in(&home, &finetune_args("link/base", &["--overwrite"]));
    refused(&out, &["is the base model"]);
    let out = bertscope_in(&home, &finetune_args("link", &["--overwrite"]));
    refused(&out, &["contains the base model"]);
    // A link to a checkpoint of ours: replacing it would replace the link, so no.
    let tuned = bertscope_in(&home, &finetune_args("tuned", &[]));
    assert!(tuned.status.success(), "{}", stderr(&tuned));
    std::os::unix::fs::symlink(home.join("tuned"), home.join("to-tuned")).unwrap();
    let before = snapshot(&home);
    let out = bertscope_in(&home, &finetune_args("to-tuned", &["--overwrite"]));
    refused(&out, &["is a symbolic link"]);
    assert_eq!(snapshot(&home), before);
}

#[test]
fn our_own_checkpoint_is_replaced_but_not_once_the_user_adds_a_file() {
    let (_tmp, home) = user_folder();
    let first = bertscope_in(&home, &finetune_args("tuned", &["--seed", "1"]));
    assert!(first.status.success(), "{}", stderr(&first));
    let old = std::fs::read(home.join("tuned/model.safetensors")).unwrap();
    let second = bertscope_in(
        &home,
        &finetune_args("tuned", &["--seed", "2", "--overwrite"]),
    );
    assert!(second.status.success(), "{}", stderr(&second));
    let new = std::fs::read(home.join("tuned/model.safetensors")).unwrap();
    assert_ne!(old, new, "the second run replaced the first");
    let leftovers: Vec<String> = std::fs::read_dir(&home)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("bertscope") || n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");

    std::fs::write(home.join("tuned/my-notes.txt"), "keep me").unwrap();
    let before = snapshot(&home);
    let third = bertscope_in(&home, &finetune_args("tuned", &["--overwrite"]));
    refused(&third, &["my-notes.txt"]);
    assert_eq!(snapshot(&home), before);
}

fn predict_setup() -> (tempfile::TempDir, PathBuf) {
    let (tmp, home) = user_folder();
    let run = bertscope_in(&home, &finetune_args("tuned", &[]));
    assert!(run.status.success(), "{}", stderr(&run));
    write_tsv(&home.join("test.tsv"));
    (tmp, home)
}

#[test]
fn predict_never_writes_over_its_input_however_spelled() {
    let (_tmp, home) = predict_setup();
    std::fs::create_dir(home.join("sub")).unwrap();
    std::os::unix::fs::symlink(home.join("test.tsv"), home.join("alias.tsv")).unwrap();
    std::fs::hard_link(home.join("test.tsv"), home.join("hard.tsv")).unwrap();
    let before = snapshot(&home);
    for output in ["test.tsv", "./sub/../test.tsv", "alias.tsv", "hard.tsv"] {
        let out = bertscope_in(
            &home,
            &[
                "predict", "--model", "tuned", "--input", "test.tsv", "--output", output,
            ],
        );
        refused(&out, &["is the input file"]);
    }
    let out = bertscope_in(
        &home,
        &[
            "predict",
            "--model",
            "tuned",
            "--input",
            "test.tsv",
            "--output",
            "tuned/config.json",
        ],
    );
    refused(&out, &["is inside the model"]);
    assert_eq!(snapshot(&home), before);
}

#[test]
fn predict_replaces_an_existing_output_in_one_step() {
    let (_tmp, home) = predict_setup();
    std::fs::write(home.join("preds.csv"), "old").unwrap();
    let args = [
        "predict",
        "--model",
        "tuned",
        "--input",
        "test.tsv",
        "--output",
        "preds.csv",
    ];
    let out = bertscope_in(&home, &args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(home.join("preds.csv")).unwrap();
    assert_eq!(text.lines().count(), ROWS.len() + 1, "{text}");
    let help = bertscope_in(&home, &["predict", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("An existing file is replaced"));
}

/// A run killed with SIGKILL at any moment leaves the output either the old
/// checkpoint or the new one, complete.
#[test]
fn killed_at_any_moment_the_output_is_old_or_new() {
    let (_tmp, home) = user_folder();
    let first = bertscope_in(&home, &finetune_args("tuned", &["--seed", "1"]));
    assert!(first.status.success(), "{}", stderr(&first));
    let old = snapshot(&home.join("tuned"));
    let (mut saw_new, mut kills) = (false, 0);
    // Kills every 2 ms from the start: most land while the model loads or
    // trains, some while the checkpoint is written or swapped in.
    for delay_ms in (0..500).map(|i| i * 2) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bertscope"))
            .args(finetune_args("tuned", &["--seed", "2", "--overwrite"]))
            .current_dir(&home)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        if child.kill().is_ok() && child.try_wait().ok().flatten().is_none() {
            kills += 1;
        }
        let _ = child.wait();
        let now = snapshot(&home.join("tuned"));
        if now != old {
            bertscope::LoadedModel::load_dir("t", &home.join("tuned"), &candle_core::Device::Cpu)
                .unwrap_or_else(|e| panic!("after a kill at {delay_ms} ms: {e}"));
            let args = read_json(&home.join("tuned/training_args.json"));
            assert_eq!(args["seed"], 2, "after a kill at {delay_ms} ms");
            saw_new = true;
            break;
        }
    }
    assert!(
        saw_new,
        "no run finished within a second; the loop tested nothing"
    );
    assert!(
        kills > 3,
        "only {kills} kills landed before the run finished"
    );
    // What the killed runs left beside it (staging folders, the interrupted
    // run's state) is cleaned up by the next run.
    let last = bertscope_in(
        &home,
        &finetune_args("tuned", &["--seed", "4", "--overwrite"]),
    );
    assert!(last.status.success(), "{}", stderr(&last));
    let names: Vec<String> = std::fs::read_dir(&home)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| !n.contains("bertscope") && !n.ends_with(".partial")),
        "left behind: {names:?}"
    );
}

/// A write refused by the file-size limit (as a full disk would) is an error
/// that names the file and says *write*; the old output stays complete, and
/// the run's state is kept for --resume.
#[test]
fn a_refused_write_keeps_the_old_output() {
    let (_tmp, home) = user_folder();
    let first = bertscope_in(&home, &finetune_args("tuned", &[]));
    assert!(first.status.success(), "{}", stderr(&first));
    let old = snapshot(&home.join("tuned"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bertscope"));
    cmd.args(finetune_args("tuned", &["--overwrite", "--seed", "3"]))
        .current_dir(&home);
    // SAFETY: only async-signal-safe libc calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 50_000,
                rlim_max: 50_000,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    refused(
        &out,
        &["cannot write", "File too large", "tuned/model.safetensors"],
    );
    let err = stderr(&out);
    assert!(
        !err.contains(".bertscope-"),
        "the error names the output, not a staging folder: {err}"
    );
    assert_eq!(snapshot(&home.join("tuned")), old);
}
