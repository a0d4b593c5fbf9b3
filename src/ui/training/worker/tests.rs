use std::time::{Duration, Instant};

use super::*;
use crate::ui::training::run::{RunState, RunStatus};

/// Apply the handle's messages until the run is no longer active.
fn finish(handle: &mut TrainerHandle, run: &mut RunState) {
    let start = Instant::now();
    while run.is_active() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the run never ended: {:?}",
            run.log
        );
        for msg in handle.poll() {
            run.apply(msg);
        }
        thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_panic_in_the_run_fails_it_with_the_message() {
    let mut handle = TrainerHandle::spawn(|_, _| panic!("index out of bounds"), || {});
    let mut run = RunState::running(1);
    finish(&mut handle, &mut run);
    assert_eq!(
        run.status,
        RunStatus::Failed("the training worker crashed: index out of bounds".into())
    );
}

#[test]
fn a_thread_gone_without_its_final_message_fails_the_run() {
    let (tx, rx) = channel();
    let _ = tx.send(TrainMsg::Skipped(vec!["a.tsv:3: no label".into()]));
    drop(tx);
    let mut handle = TrainerHandle {
        cancel: Arc::default(),
        messages: rx,
        ended: false,
    };
    let mut run = RunState::running(1);
    finish(&mut handle, &mut run);
    assert!(
        matches!(&run.status, RunStatus::Failed(e) if e.contains("stopped without finishing")),
        "{:?}",
        run.status
    );
    assert!(handle.poll().is_empty(), "said once");
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(name)
}

/// A two-epoch job on eight labelled pairs, written to `runs/NAME`.
fn job(dir: &Path, name: &str) -> TrainJob {
    let data = dir.join("train.tsv");
    let mut text = String::from("text_a\ttext_b\tlabel\n");
    for i in 0..8 {
        let label = if i % 2 == 0 { "agreed" } else { "unrelated" };
        text.push_str(&format!("the dog {i}\tthe cat\t{label}\n"));
    }
    std::fs::write(&data, text).unwrap();
    TrainJob {
        base_dir: fixture("mlm-safetensors"),
        train_path: data,
        dev: DevSource::Fraction(0.25),
        columns: Columns {
            text_a: "text_a".into(),
            text_b: Some("text_b".into()),
            label: "label".into(),
            id: "id".into(),
        },
        delimiter: None,
        config: TrainConfig {
            epochs: 2,
            batch_size: 2,
            ..TrainConfig::default()
        },
        device: DeviceChoice::Cpu,
        output: dir.join("runs").join(name),
        keep_epochs: true,
        resume: false,
    }
}

#[test]
fn a_run_lives_in_its_partial_directory_until_it_is_saved() {
    let tmp = tempfile::tempdir().unwrap();
    // A name with dots: the run's scratch is NAME.partial, not a new extension.
    let job = job(tmp.path(), "bge-small-en-v1.5-1");
    let partial = job.partial();
    let seen_partial = std::sync::Mutex::new(false);
    let end = run(&job, &AtomicBool::new(false), &|msg| {
        if matches!(msg, TrainMsg::Event(Event::Epoch { .. })) {
            *seen_partial.lock().unwrap() |= run_dir::latest_state(&partial).is_some();
        }
    });
    assert!(
        matches!(&end, TrainMsg::Finished { dir, .. } if dir == &job.output),
        "{end:?}"
    );
    assert!(
        *seen_partial.lock().unwrap(),
        "epochs were saved in {}",
        partial.display()
    );
    assert!(!partial.exists(), "the run directory is removed once saved");
    assert!(write_guard::ours(&job.output).is_ok());
    let epochs: Vec<usize> = save::epoch_checkpoints(&job.output)
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(epochs, vec![0, 1, 2]);
    let names: Vec<String> = std::fs::read_dir(tmp.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["bge-small-en-v1.5-1"],
        "nothing else left behind"
    );
}

#[test]
fn an_unsaved_run_keeps_its_state_and_resume_saves_it() {
    let tmp = tempfile::tempdir().unwrap();
    let job = job(tmp.path(), "m-1");
    // Where the checkpoint goes, a file: the final save fails.
    std::fs::create_dir_all(job.output.parent().unwrap()).unwrap();
    let cancel = AtomicBool::new(false);
    let end = {
        let output = job.output.clone();
        run(&job, &cancel, &move |msg| {
            if let TrainMsg::Event(Event::Epoch { epoch: 2, .. }) = msg {
                std::fs::write(&output, "in the way").unwrap();
            }
        })
    };
    let TrainMsg::NotSaved { partial, error, .. } = end else {
        panic!("{end:?}")
    };
    assert_eq!(partial, job.partial());
    assert!(error.contains("exists and is not a directory"), "{error}");
    assert!(run_dir::latest_state(&partial).is_some());
    assert!(run_dir::ours(&partial).is_ok());

    std::fs::remove_file(&job.output).unwrap();
    let mut handle = TrainerHandle::resume(partial.clone(), DeviceChoice::Cpu, || {});
    let mut state = RunState::resuming(&partial);
    finish(&mut handle, &mut state);
    assert_eq!(
        state.status,
        RunStatus::Done(Outcome::Finished),
        "{:?}",
        state.log
    );
    assert_eq!(state.output.as_ref(), Some(&job.output));
    assert_eq!(
        state.epochs.len(),
        2,
        "the epochs before the resume are shown"
    );
    assert!(!partial.exists());
    assert!(write_guard::ours(&job.output).is_ok());
}

#[test]
fn a_run_the_disk_cannot_hold_is_refused_with_the_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let mut job = job(tmp.path(), "huge");
    job.config.epochs = 1 << 40; // a checkpoint per epoch: more than any disk
    let end = run(&job, &AtomicBool::new(false), &|_| {});
    let TrainMsg::Failed { error, resumable } = end else {
        panic!("{end:?}")
    };
    assert!(error.starts_with("not started: "), "{error}");
    assert!(
        error.contains("needs about") && error.contains("is free"),
        "{error}"
    );
    assert_eq!(resumable, None);
    assert!(!job.partial().exists() && !job.output.exists());
}

#[test]
fn a_cancel_during_the_final_save_or_a_resume_keeps_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let job = job(tmp.path(), "m-1");
    let (partial, protected) = (job.partial(), job.protected());
    start_dir(&job, &partial, &protected, &|_| {}).unwrap();
    let config = TrainConfig {
        epochs_dir: Some(partial.join(EPOCHS_DIR)),
        run_dir: Some(partial.clone()),
        ..job.config.clone()
    };
    let (data, dev) = read_data(&job, &|_| {}).unwrap();
    let never = AtomicBool::new(false);
    let cpu = candle_core::Device::Cpu;
    let trained = train::train(
        &job.base_dir,
        &data,
        dev.as_ref(),
        &config,
        &cpu,
        &mut |_| {},
        &never,
    )
    .unwrap();
    // The cancel comes while the checkpoint is being written.
    let cancel = AtomicBool::new(true);
    let end = save_run(
        &job,
        &partial,
        &protected,
        &trained,
        &config,
        &cancel,
        &|_| {},
    );
    let TrainMsg::NotSaved {
        partial: kept,
        error,
        ..
    } = end
    else {
        panic!("{end:?}")
    };
    assert_eq!(
        (kept.as_path(), error.as_str()),
        (partial.as_path(), "the save was cancelled")
    );
    assert!(!job.output.exists());
    assert!(run_dir::ours(&partial).is_ok());
    let epochs: Vec<usize> = save::epoch_checkpoints(&partial)
        .iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(
        epochs,
        [0, 1, 2],
        "the epoch checkpoints are back in the run"
    );
    let names: Vec<String> = std::fs::read_dir(tmp.path().join("runs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["m-1.partial"], "no staging left behind");

    // Cancelled again while a resume prepares the data: still kept.
    let info = RunInfo::read(&partial).unwrap();
    let end = run(&info.resume_job(DeviceChoice::Cpu), &cancel, &|_| {});
    assert!(matches!(&end, TrainMsg::NotSaved { .. }), "{end:?}");
    assert!(run_dir::latest_state(&partial).is_some());

    let mut handle = TrainerHandle::resume(partial.clone(), DeviceChoice::Cpu, || {});
    let mut state = RunState::resuming(&partial);
    finish(&mut handle, &mut state);
    assert_eq!(
        state.status,
        RunStatus::Done(Outcome::Finished),
        "{:?}",
        state.log
    );
    assert!(write_guard::ours(&job.output).is_ok() && !partial.exists());
}
