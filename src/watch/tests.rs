use std::io::Write;

use super::*;

fn append(path: &Path, bytes: &[u8]) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(bytes).unwrap();
}

#[test]
fn a_half_written_line_is_read_once_complete() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join(KIT_LOG);
    append(&log, b"{\"event\": \"start\", \"max_steps\": 4}\n{\"step\": 1, \"epoch\": 0.25, \"loss\": 1.5, \"learn");
    let mut w = Watcher::new(dir.path());
    let s = w.refresh().unwrap();
    assert_eq!((s.global_step, s.max_steps, s.log.len()), (0, Some(4), 0));
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    append(&log, b"ing_rate\": 1e-5, \"grad_norm\": 2.0}\n");
    let s = w.refresh().unwrap();
    assert_eq!(
        s.log,
        vec![LogPoint {
            step: 1,
            epoch: 0.25,
            loss: 1.5,
            learning_rate: 1e-5,
            grad_norm: Some(2.0)
        }]
    );
    assert!(!s.finished);
}

#[test]
fn bad_lines_are_reported_and_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join(KIT_LOG);
    append(
        &log,
        b"{\"step\": 1, \"epoch\": 0.5, \"loss\": 1.0, \"learning_rate\": 0.1}\n",
    );
    append(&log, b"{\"step\": 2, \"epo\n");
    append(&log, b"\xff\xfe{}\n");
    append(
        &log,
        b"{\"step\": 2, \"epoch\": 1.0, \"loss\": 0.5, \"learning_rate\": 0.05}\n",
    );
    append(
        &log,
        b"{\"step\": 2, \"epoch\": 1.0, \"eval_accuracy\": 0.75, \"eval_loss\": 0.4}\n",
    );
    append(&log, b"{\"event\": \"finished\", \"step\": 2}\n");
    let s = Watcher::new(dir.path()).refresh().unwrap();
    assert_eq!(s.log.len(), 2);
    assert_eq!(s.problems.len(), 2, "{:?}", s.problems);
    assert!(s.problems[0].contains(":2: not JSON"), "{}", s.problems[0]);
    assert!(
        s.problems[1].contains(":3: not valid UTF-8"),
        "{}",
        s.problems[1]
    );
    assert_eq!(s.eval[0].metric("eval_accuracy"), Some(0.75));
    assert!(s.finished);
    assert!(
        s.progress_line().contains("dev accuracy 75.00%"),
        "{}",
        s.progress_line()
    );
}

#[test]
fn a_folder_that_is_not_a_trainer_output_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let e = Watcher::new(dir.path()).refresh().unwrap_err().to_string();
    assert!(
        e.contains("no bertscope-log.jsonl, no trainer_state.json and no checkpoint-N"),
        "{e}"
    );
    std::fs::create_dir(dir.path().join("checkpoint-5")).unwrap();
    let e = Watcher::new(dir.path()).refresh().unwrap_err().to_string();
    assert!(
        e.contains("none of its 1 checkpoint-N folders holds a trainer_state.json"),
        "{e}"
    );
    let e = Watcher::new(&dir.path().join("nope"))
        .refresh()
        .unwrap_err()
        .to_string();
    assert!(e.ends_with("nope: no such folder"), "{e}");
}

fn state(step: usize, checkpoints: &[usize]) -> String {
    let history: Vec<String> = (1..=step)
        .map(|s| {
            format!(
                "{{\"step\": {s}, \"epoch\": {}, \"loss\": {}, \"learning_rate\": 0.001}}",
                s as f64 / 4.0,
                1.0 / s as f64
            )
        })
        .collect();
    let best = checkpoints
        .first()
        .map_or("null".to_string(), |c| format!("\"out/checkpoint-{c}\""));
    format!("{{\"global_step\": {step}, \"max_steps\": 8, \"epoch\": {}, \"best_model_checkpoint\": {best}, \"log_history\": [{}]}}", step as f64 / 4.0, history.join(", "))
}

#[test]
fn a_plain_trainer_run_deleted_checkpoints_and_a_truncated_state() {
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = |n: usize| dir.path().join(format!("checkpoint-{n}"));
    for n in [2, 4] {
        std::fs::create_dir(checkpoint(n)).unwrap();
        std::fs::write(checkpoint(n).join(STATE_FILE), state(n, &[2])).unwrap();
    }
    let mut w = Watcher::new(dir.path());
    let s = w.refresh().unwrap();
    assert_eq!(
        (s.source, s.global_step, s.max_steps, s.log.len()),
        (Source::Trainer, 4, Some(8), 4)
    );
    assert_eq!(
        s.checkpoints
            .iter()
            .map(|c| (c.step, c.gone))
            .collect::<Vec<_>>(),
        [(2, false), (4, false)]
    );

    // save_total_limit removes checkpoint-2 as checkpoint-6 is written; the
    // newest state is caught half written at first.
    std::fs::remove_dir_all(checkpoint(2)).unwrap();
    std::fs::create_dir(checkpoint(6)).unwrap();
    let full = state(6, &[2]);
    std::fs::write(checkpoint(6).join(STATE_FILE), &full[..full.len() / 2]).unwrap();
    let s = w.refresh().unwrap();
    assert_eq!(s.global_step, 4, "the last complete state is kept");
    assert!(
        s.problems.is_empty(),
        "a file being written is no error: {:?}",
        s.problems
    );
    assert_eq!(
        s.checkpoints
            .iter()
            .map(|c| (c.step, c.gone))
            .collect::<Vec<_>>(),
        [(2, true), (4, false), (6, false)]
    );
    // Still truncated on later reads: now it is said.
    w.refresh().unwrap();
    let s = w.refresh().unwrap();
    assert!(
        s.problems
            .iter()
            .any(|p| p.contains("truncated or not JSON")),
        "{:?}",
        s.problems
    );
    std::fs::write(checkpoint(6).join(STATE_FILE), &full).unwrap();
    let s = w.refresh().unwrap();
    assert_eq!((s.global_step, s.problems.len()), (6, 0));
    assert!(!s.finished);

    // Not UTF-8.
    std::fs::write(checkpoint(6).join(STATE_FILE), b"{\"global_step\": \xff}").unwrap();
    for _ in 0..3 {
        w.refresh().unwrap();
    }
    assert!(w
        .refresh()
        .unwrap()
        .problems
        .iter()
        .any(|p| p.contains("not valid UTF-8")));

    // The final model appears.
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    std::fs::write(dir.path().join("model.safetensors"), "x").unwrap();
    assert!(w.refresh().unwrap().finished);
}

#[test]
fn durations_in_words() {
    assert_eq!(human_duration(12.4), "12s");
    assert_eq!(human_duration(185.0), "3m 05s");
    assert_eq!(human_duration(3720.0), "1h 02m");
}

#[test]
fn a_run_that_stopped_logging_says_for_how_long() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join(KIT_LOG);
    append(&log, b"{\"event\": \"start\", \"max_steps\": 9}\n{\"step\": 1, \"epoch\": 0.1, \"loss\": 1.0, \"learning_rate\": 0.1, \"time\": 100.0}\n{\"step\": 2, \"epoch\": 0.2, \"loss\": 1.0, \"learning_rate\": 0.1, \"time\": 102.0}\n");
    let mut w = Watcher::new(dir.path());
    assert!(
        w.refresh().unwrap().problems.is_empty(),
        "a fresh log is fine"
    );
    let an_hour_ago = SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .append(true)
        .open(&log)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    let s = w.refresh().unwrap();
    assert!(s.idle_s.is_some_and(|i| i >= 3599.0));
    assert_eq!(
        s.problems,
        ["no new log entry for 1h 00m: the run may have stopped"]
    );
    assert_eq!(s.eta_s, Some(14.0), "7 steps left at the recent 2 s a step");
}
