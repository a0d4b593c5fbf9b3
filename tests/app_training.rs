//! The training view and the compare view driven through egui_kittest on the
//! tiny fixture model and a tiny TSV: load data, see the preview and its
//! problems, start, see progress, cancel, finish, compare, save; closing the
//! window during a run; the runs panel (open with the run's hyperparameters,
//! compare, delete, prune to the budget) and a run whose save fails on a full
//! disk, kept and resumed.

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bertscope::data::{self, Columns, Dataset, ReadOptions};
use bertscope::train::{self, run_dir, save, Event, Outcome, TrainConfig};
use bertscope::ui::close_guard::CloseGuard;
use bertscope::ui::state::View;
use bertscope::ui::training::run::RunStatus;
use bertscope::ui::BertscopeApp;
use common::app::{click, training_app, wait_until};
use common::*;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;

/// Step the UI for `time` (gives a worker time to do what it should not).
fn settle(harness: &mut Harness<'static, BertscopeApp>, time: Duration) {
    let start = Instant::now();
    while start.elapsed() < time {
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Claim/headline pairs with their labels, half of each.
fn pairs() -> [(&'static str, &'static str, &'static str); 10] {
    [
        ("the dog is tired", "the dog is tired", "agreed"),
        ("the cat went back", "the cat came back", "agreed"),
        ("the fox jumps", "the fox jumps over the dog", "agreed"),
        (
            "paris is the capital of france",
            "the capital of france is paris",
            "agreed",
        ),
        (
            "the man hit the dog",
            "the dog was hit by the man",
            "agreed",
        ),
        (
            "the woman went to buy a book",
            "fake news : the book store is a cafe",
            "unrelated",
        ),
        ("the river is wide", "the quick brown fox", "unrelated"),
        (
            "the animal didn t cross the street",
            "the city is late",
            "unrelated",
        ),
        (
            "he is at the cafe",
            "this rumor says the river is fake",
            "unrelated",
        ),
        ("she went to paris", "the lazy cat jumps", "unrelated"),
    ]
}

/// `rows` good rows (the pairs over and over) in `many.tsv`.
fn write_many(dir: &Path, rows: usize) -> std::path::PathBuf {
    let mut text = String::from("id\ttitle1_en\ttitle2_en\tlabel\n");
    for (i, (a, b, l)) in pairs().iter().cycle().take(rows).enumerate() {
        text.push_str(&format!("{i}\t{a}\t{b}\t{l}\n"));
    }
    let path = dir.join("many.tsv");
    std::fs::write(&path, text).unwrap();
    path
}

/// A claim/headline pair file in the seed's Kaggle naming, with one bad row (line 6).
fn write_tsv(dir: &Path) -> std::path::PathBuf {
    let pairs = pairs();
    let mut text = String::from("id\ttitle1_en\ttitle2_en\tlabel\n");
    for (i, (a, b, l)) in pairs.iter().enumerate() {
        text.push_str(&format!("{i}\t{a}\t{b}\t{l}\n"));
        if i == 3 {
            text.push_str("x\tthe dog\tthe cat\t\n"); // line 6: no label
        }
    }
    let path = dir.join("pairs.tsv");
    std::fs::write(&path, text).unwrap();
    path
}

fn app(dir: &Path) -> Harness<'static, BertscopeApp> {
    training_app(dir, Some("the dog is tired"), Some("the dog is tired"))
}

fn click_contains(h: &mut Harness<'static, BertscopeApp>, label: &str) {
    h.get_by_label_contains(label).scroll_to_me();
    h.run_steps(15);
    h.get_by_label_contains(label).click();
    h.run_steps(1);
}

fn type_into(h: &mut Harness<'static, BertscopeApp>, label: &str, text: &str) {
    click(h, label);
    h.run_steps(2);
    h.get_by_label(label).type_text(text);
    h.run_steps(2);
}

#[test]
fn train_cancel_finish_compare_and_save() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_tsv(dir.path());
    let mut h = app(dir.path());
    load_and_preview(&mut h, &data);
    cancel_before_the_first_epoch(&mut h, dir.path());
    train_two_epochs(&mut h, &data);
    compare_with_base(&mut h);
    save_as_and_refuse_the_base(&mut h, dir.path());
}

/// Load the data and see its preview.
fn load_and_preview(h: &mut Harness<'static, BertscopeApp>, data: &Path) {
    // Load the data: columns guessed from the header, the bad row listed with its line.
    type_into(h, "Training data", &data.display().to_string());
    click(h, "Load data");
    wait_until(h, "the preview", |app| app.tuning.preview.is_some());
    {
        let p = h.state().tuning.preview.as_ref().unwrap();
        assert_eq!(p.columns.text_a, "title1_en");
        assert_eq!(p.columns.text_b.as_deref(), Some("title2_en"));
        assert_eq!(p.rows, 10);
        assert_eq!(p.problems.len(), 1);
        assert_eq!(p.problems[0].line, 6);
        assert!(p.length_histogram.iter().map(|b| b.1).sum::<usize>() == 10);
    }
    assert!(h
        .query_by_label_contains("majority baseline 50.0%")
        .is_some());
    assert!(h.query_by_label_contains("pairs.tsv:6:").is_some());
    assert!(h.query_by_label("the woman went to buy a book").is_some());
}

/// A run cancelled before its first epoch ended keeps nothing.
fn cancel_before_the_first_epoch(h: &mut Harness<'static, BertscopeApp>, dir: &Path) {
    // A long run (1600 steps an epoch), cancelled before its first epoch ends:
    // nothing is kept, and the progress line keeps the run's real totals.
    let many = write_many(dir, 4000);
    h.state_mut().settings.train.data_path = many.display().to_string();
    h.state_mut().settings.train.epochs = 10_000;
    h.state_mut().settings.train.batch_size = 2;
    h.state_mut().settings.train.dev_fraction = 0.2;
    click(h, "Start training");
    wait_until(h, "progress", |app| app.tuning.run.step >= 3);
    assert!(h.query_by_label_contains("examples/s").is_some());
    click(h, "Cancel");
    wait_until(h, "the cancelled run", |app| !app.tuning.training());
    settle(h, Duration::from_secs(1)); // time to (wrongly) open it as the tuned model
    let step = {
        let run = &h.state().tuning.run;
        assert_eq!(run.status, RunStatus::Done(Outcome::Cancelled));
        assert!(run.epochs.is_empty() && run.step < 1600, "{}", run.step);
        assert_eq!(run.total_steps, 1600 * 10_000);
        assert_eq!(run.output, None);
        assert!(
            run.log
                .iter()
                .any(|l| l.starts_with("cancelled before the first epoch ended: nothing kept")),
            "{:?}",
            run.log
        );
        run.step
    };
    assert!(h.state().tuning.tuned.is_none());
    assert!(h.query_by_label("Compare with base").is_none());
    assert!(h.query_by_label("Resume").is_none(), "nothing to resume");
    assert!(h
        .query_by_label_contains("Cancelled before the first epoch ended: nothing kept")
        .is_some());
    assert!(h
        .query_by_label_contains(&format!("step {step}/16000000 · epoch 1/10000 ·"))
        .is_some());
    let runs = std::fs::read_dir(dir.join("runs")).map_or(0, |d| d.count());
    assert_eq!(runs, 0, "nothing written, scratch removed");
}

/// A full run becomes the tuned model, with its epochs.
fn train_two_epochs(h: &mut Harness<'static, BertscopeApp>, data: &Path) {
    // A full run: 2 epochs of 4 steps (8 training rows, batch 2).
    h.state_mut().settings.train.data_path = data.display().to_string();
    h.state_mut().settings.train.epochs = 2;
    h.state_mut().settings.train.lr = 1e-3;
    click(h, "Start training");
    wait_until(h, "the finished run", |app| {
        app.tuning.run.status == RunStatus::Done(Outcome::Finished)
            && app
                .tuning
                .tuned
                .as_ref()
                .is_some_and(|t| app.tuning.run.output.as_ref() == Some(&t.dir))
    });
    let run_dir = {
        let run = &h.state().tuning.run;
        assert_eq!(run.epochs.len(), 2);
        assert_eq!(run.losses.len(), 8);
        assert_eq!(run.total_steps, 8);
        assert!(run.epochs.iter().all(|e| e.dev.is_some()));
        run.output.clone().unwrap()
    };
    assert!(h
        .query_by_label_contains("Confusion matrix, epoch 2")
        .is_some());
    let tuned = h.state().tuning.tuned.clone().unwrap();
    assert_eq!(tuned.epochs, vec![0, 1, 2]);
    assert_eq!(tuned.labels, vec!["agreed", "unrelated"]);
    assert!(run_dir.join("model.safetensors").is_file());
    assert!(run_dir.join("epochs/epoch-0/model.safetensors").is_file());
}

/// The compare view on the run just trained.
fn compare_with_base(h: &mut Harness<'static, BertscopeApp>) {
    // Compare: both models on the current input, the change map and the ranking.
    click(h, "Compare with base");
    wait_until(h, "the comparison", |app| app.tuning.comparison.is_some());
    assert_eq!(h.state().settings.view, View::Compare);
    {
        let cmp = h.state().tuning.comparison.as_ref().unwrap();
        let changes = cmp.changes.as_ref().unwrap();
        assert_eq!((changes.layers, changes.heads), (2, 4));
        assert!(changes.max() > 0.0, "training at lr 1e-3 moves some head");
        assert!(cmp.before_source.contains("epoch 0"));
        assert_eq!(cmp.before.as_ref().unwrap().predictions.len(), 2);
        assert_eq!(cmp.after.as_ref().unwrap().predictions.len(), 2);
    }
    let (layer, head, _) = h
        .state()
        .tuning
        .comparison
        .as_ref()
        .unwrap()
        .changes
        .as_ref()
        .unwrap()
        .ranked()[0];
    click_contains(h, "1. layer");
    h.run_steps(3);
    let sel = &h.state().settings.selection;
    assert_eq!((sel.layer, sel.focus_head), (layer, head));
    assert!(h.query_by_label("tuned query token 1: the").is_some());
    assert!(h
        .query_by_label_contains("Attention difference, tuned − base")
        .is_some());

    // Averaged over the data file.
    click_contains(h, "Average over");
    wait_until(h, "the averaged changes", |app| {
        app.tuning.mean_changes.is_some()
    });
    let (_, mean) = h.state().tuning.mean_changes.clone().unwrap();
    // Every row with text counts, the unlabelled one (line 6) included.
    assert_eq!(mean.unwrap().inputs, 11);
}

/// *Save as…* copies the tuned model, never over the base model.
fn save_as_and_refuse_the_base(h: &mut Harness<'static, BertscopeApp>, dir: &Path) {
    // Save as…: a copy that loads as a classifier; the base model's directory is refused.
    click(h, "Training");
    h.run_steps(3);
    let saved = dir.join("saved-model");
    type_into(h, "Save path", &saved.display().to_string());
    click(h, "Save as…");
    assert!(h.state().tuning.saving(), "the copy runs on its own thread");
    wait_until(h, "the copy", |app| !app.tuning.saving());
    assert!(h.query_by_label_contains("saved the tuned model").is_some());
    let model =
        bertscope::LoadedModel::load_dir("saved", &saved, &candle_core::Device::Cpu).unwrap();
    assert_eq!(model.config().labels, vec!["agreed", "unrelated"]);
    let probs = model
        .classify("the dog", Some("the cat"), &bertscope::Inspect::default())
        .unwrap();
    assert_eq!(probs.predictions.len(), 2);

    let base = fixture_model("mlm-safetensors").display().to_string();
    h.state_mut().settings.train.save_path.clear();
    type_into(h, "Save path", &base);
    click(h, "Save as…");
    wait_until(h, "the refused copy", |app| !app.tuning.saving());
    assert!(h.query_by_label_contains("not saved").is_some());
    assert!(fixture_model("mlm-safetensors")
        .join("expected.json")
        .is_file());
}

#[test]
fn open_tuned_shows_the_run_and_bad_paths_say_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path());
    type_into(&mut h, "Tuned path", "/no/such/tuned-dir");
    click(&mut h, "Open tuned…");
    wait_until(&mut h, "the error", |app| {
        app.tuning
            .message
            .as_deref()
            .is_some_and(|m| m.contains("cannot open"))
    });
    assert!(h.query_by_label_contains("/no/such/tuned-dir").is_some());

    // The compare view without a tuned model says how to get one.
    click(&mut h, "Compare");
    h.run_steps(3);
    assert!(h.query_by_label("No tuned model to compare with").is_some());

    // A bad data file: its problem is shown in the view, nothing else is lost.
    click(&mut h, "Training");
    h.run_steps(3);
    let bad = dir.path().join("bad.tsv");
    std::fs::write(&bad, "").unwrap();
    type_into(&mut h, "Training data", &bad.display().to_string());
    click(&mut h, "Load data");
    wait_until(&mut h, "the preview error", |app| {
        app.tuning.preview_error.is_some()
    });
    assert!(h.query_by_label_contains("bad.tsv:1:").is_some());
    assert!(h.state().analysis.is_some());

    // Dropping a TSV on the window (from any view) loads it in the training view.
    click(&mut h, "Head view");
    let data = write_tsv(dir.path());
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(common::Dropped(data.clone())));
    wait_until(&mut h, "the dropped file's preview", |app| {
        app.tuning.preview.as_ref().is_some_and(|p| p.path == data)
    });
    assert_eq!(h.state().settings.view, View::Train);
    assert_eq!(
        h.state().settings.train.data_path,
        data.display().to_string()
    );
}

/// Ask the window to close, as the window manager would; true when the app
/// held the close back.
fn request_close(h: &mut Harness<'static, BertscopeApp>) -> bool {
    h.input_mut()
        .viewports
        .entry(egui::ViewportId::ROOT)
        .or_default()
        .events
        .push(egui::ViewportEvent::Close);
    h.step();
    let held = sent(h, |c| matches!(c, egui::ViewportCommand::CancelClose));
    h.run_steps(2);
    held
}

/// Did the last frame send this viewport command?
fn sent(h: &Harness<'static, BertscopeApp>, which: fn(&egui::ViewportCommand) -> bool) -> bool {
    h.output()
        .viewport_output
        .get(&egui::ViewportId::ROOT)
        .is_some_and(|v| v.commands.iter().any(which))
}

#[test]
fn closing_the_window_during_a_run_asks_first() {
    let dir = tempfile::tempdir().unwrap();
    let data = write_tsv(dir.path());
    let mut h = app(dir.path());
    type_into(&mut h, "Training data", &data.display().to_string());
    click(&mut h, "Load data"); // the columns are guessed from the header
    wait_until(&mut h, "the preview", |app| app.tuning.preview.is_some());
    h.state_mut().settings.train.epochs = 10_000;
    h.state_mut().settings.train.batch_size = 2;
    h.state_mut().settings.train.dev_fraction = 0.2;
    click(&mut h, "Start training");
    wait_until(&mut h, "the first epoch", |app| {
        !app.tuning.run.epochs.is_empty()
    });

    // Asked, and the close is held back; "Keep training" goes on.
    assert!(request_close(&mut h), "the close was not held back");
    assert_eq!(h.state().close, CloseGuard::Asking);
    assert!(h
        .query_by_label("Stop and keep the best checkpoint")
        .is_some());
    assert!(h.query_by_label("Quit now").is_some());
    click(&mut h, "Keep training");
    h.run_steps(2);
    assert_eq!(h.state().close, CloseGuard::Open);
    assert!(h.query_by_label("Keep training").is_none());
    assert!(h.state().tuning.training());

    // Asked again: stop, keep the best checkpoint, and then close.
    assert!(request_close(&mut h));
    click(&mut h, "Stop and keep the best checkpoint");
    let start = Instant::now();
    while !sent(&h, |c| matches!(c, egui::ViewportCommand::Close)) {
        assert!(start.elapsed() < Duration::from_secs(60), "never closed");
        assert!(
            h.state().tuning.training(),
            "the run ended but the window did not close"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    let run = &h.state().tuning.run;
    assert_eq!(run.status, RunStatus::Done(Outcome::Cancelled));
    let saved = run.output.clone().expect("the best checkpoint was kept");
    assert!(saved.join("model.safetensors").is_file());
    assert_eq!(h.state().close, CloseGuard::Closing);

    // Opened as the tuned model, the run keeps its live totals (4 steps an epoch).
    wait_until(&mut h, "the tuned model", |app| app.tuning.tuned.is_some());
    let run = &h.state().tuning.run;
    assert_eq!(
        (run.total_steps, run.planned_epochs),
        (40_000, Some(10_000))
    );
    let line = format!("step {}/40000 · epoch {}/10000 ·", run.step, run.epoch);
    assert!(h.query_by_label_contains(&line).is_some(), "{line}");

    // A close while idle goes through.
    assert!(!request_close(&mut h));
}

/// The pair file as the app reads it (bad rows skipped), split as a dev
/// fraction of 0.2 is.
fn read_pairs(path: &Path, seed: u64) -> (Dataset, Dataset) {
    let options = ReadOptions {
        delimiter: None,
        columns: Columns {
            text_a: "title1_en".into(),
            text_b: Some("title2_en".into()),
            label: "label".into(),
            id: "id".into(),
        },
        require_label: true,
        skip_bad_rows: true,
    };
    let mut train_data = data::read(path, &options).unwrap();
    let dev = train::split_dev(&mut train_data, 0.2, seed);
    (train_data, dev)
}

/// Train with the engine; `stop_after`: cancel once that epoch has ended.
fn train_with(cfg: &TrainConfig, data: &Path, stop_after: Option<usize>) -> train::Trained {
    let (train_data, dev) = read_pairs(data, cfg.seed);
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
        &train_data,
        Some(&dev),
        cfg,
        &candle_core::Device::Cpu,
        &mut on_event,
        &cancel,
    )
    .unwrap()
}

/// A run saved by the engine in `runs/NAME`, with its epoch checkpoints.
fn saved_run(dir: &Path, name: &str, cfg: TrainConfig, data: &Path) -> PathBuf {
    let cfg = TrainConfig {
        epochs_dir: Some(dir.join(format!("epochs-of-{name}"))),
        ..cfg
    };
    let trained = train_with(&cfg, data, None);
    save::save(&trained, &cfg, &dir.join("runs").join(name), false).unwrap()
}

fn epochs_of(dir: &Path) -> Vec<usize> {
    save::epoch_checkpoints(dir).iter().map(|e| e.0).collect()
}

fn wait_for_runs(h: &mut Harness<'static, BertscopeApp>, count: usize) {
    wait_until(h, "the runs panel", |app| {
        let runs = &app.tuning.runs;
        runs.scanned && !runs.busy() && runs.entries.len() == count
    });
}

#[test]
fn runs_panel_opens_compares_prunes_and_deletes_only_bertscope_runs() {
    let dir = tempfile::tempdir().unwrap();
    let [old, new, mine] = runs_in(dir.path());
    let mut h = app(dir.path());
    runs_are_listed(&mut h, &old);
    opening_a_run_puts_its_hyperparameters_in_the_form(&mut h, &old, &new);
    epochs_are_pruned_to_the_budget(&mut h, &old, &new);
    delete_asks_first_and_removes_only_bertscope_runs(&mut h, &old, &new, &mine);
}

/// Two runs saved by the engine (`old-run` written a day before `new-run`)
/// and a folder of the user's, in `dir/runs`.
fn runs_in(dir: &Path) -> [PathBuf; 3] {
    let data = write_tsv(dir);
    let cfg = |epochs, lr, seed| TrainConfig {
        epochs,
        batch_size: 2,
        lr,
        seed,
        ..TrainConfig::default()
    };
    let old = saved_run(dir, "old-run", cfg(2, 1e-3, 7), &data);
    let new = saved_run(dir, "new-run", cfg(2, 5e-4, 11), &data);
    // `old-run` was written a day earlier.
    let day_ago = std::time::SystemTime::now() - Duration::from_secs(86_400);
    std::fs::File::options()
        .write(true)
        .open(old.join("training_args.json"))
        .unwrap()
        .set_modified(day_ago)
        .unwrap();
    let mine = dir.join("runs/my-notes");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("todo.txt"), "keep me").unwrap();
    [old, new, mine]
}

/// Listed with model, task and best metric; the user's folder without a Delete.
fn runs_are_listed(h: &mut Harness<'static, BertscopeApp>, old: &Path) {
    wait_for_runs(h, 3);
    let names: Vec<String> = h
        .state()
        .tuning
        .runs
        .entries
        .iter()
        .map(|e| e.name.clone())
        .collect();
    assert_eq!(names, ["my-notes", "new-run", "old-run"], "newest first");
    let report = train::Report::load(old).unwrap().unwrap();
    let best = report.best_epoch.unwrap();
    let accuracy = report.epochs[best - 1].dev.as_ref().unwrap().accuracy;
    let metric = format!("accuracy {:.1}% (epoch {best})", accuracy * 100.0);
    // Both runs may reach the same metric: at least old-run's is shown.
    assert!(h.query_all_by_label(&metric).count() >= 1, "{metric}");
    assert!(h.query_all_by_label("mlm-safetensors").count() >= 2);
    assert!(h.query_by_label("Delete old-run").is_some());
    assert!(h.query_by_label("Delete my-notes").is_none());
    assert!(h.query_by_label_contains("not a bertscope run").is_some());
}

/// *Open* puts the run's hyperparameters in the form; *Compare* opens it in the compare view.
fn opening_a_run_puts_its_hyperparameters_in_the_form(
    h: &mut Harness<'static, BertscopeApp>,
    old: &Path,
    new: &Path,
) {
    assert_eq!(
        (h.state().settings.train.lr, h.state().settings.train.seed),
        (2e-5, 42)
    );
    click(h, "Open old-run");
    wait_until(h, "old-run's hyperparameters", |app| {
        app.tuning.opened.shown().is_some_and(|o| o.dir == *old)
    });
    let form = &h.state().settings.train;
    assert_eq!(
        (form.epochs, form.batch_size, form.lr, form.seed),
        (2, 2, 1e-3, 7)
    );
    assert!(h.query_by_label("The hyperparameters of old-run").is_some());
    assert!(h.query_by_label("Train again with these").is_some());
    click(h, "Restore my settings");
    assert_eq!(
        (h.state().settings.train.lr, h.state().settings.train.seed),
        (2e-5, 42)
    );

    // Compare: the run opened and the compare view shown.
    click(h, "Compare new-run");
    assert_eq!(h.state().settings.view, View::Compare);
    wait_until(h, "new-run as the tuned model", |app| {
        app.tuning.tuned.as_ref().is_some_and(|t| t.dir == *new)
    });
    assert_eq!(h.state().settings.train.lr, 5e-4);
    click(h, "Training");
    h.run_steps(3);
}

/// A tiny budget prunes the older run's epoch checkpoints first.
fn epochs_are_pruned_to_the_budget(h: &mut Harness<'static, BertscopeApp>, old: &Path, new: &Path) {
    // A budget for two epoch checkpoints and a half: the older run loses its
    // epochs 0 and 1 (not 2, its last); the newer (also the tuned model) none.
    let one = bertscope::ui::training::disk::dir_size(&old.join("epochs/epoch-0"));
    h.state_mut().settings.train.epochs_budget_gb = (one * 5 / 2) as f64 / 1e9;
    click(h, "Refresh");
    wait_for_runs(h, 3);
    assert_eq!(epochs_of(old), vec![2]);
    assert_eq!(epochs_of(new), vec![0, 1, 2]);
    assert!(old.join("model.safetensors").is_file());
    assert!(h
        .query_by_label_contains("removed 2 old epoch checkpoints")
        .is_some());
}

/// *Delete* asks first, removes that run only, and refuses what is not only bertscope's.
fn delete_asks_first_and_removes_only_bertscope_runs(
    h: &mut Harness<'static, BertscopeApp>,
    old: &Path,
    new: &Path,
    mine: &Path,
) {
    // Delete asks first, then removes that run only.
    click(h, "Delete old-run");
    h.run_steps(2);
    assert!(h.query_by_label_contains("Delete old-run (").is_some());
    click(h, "Keep it");
    h.run_steps(2);
    assert!(old.is_dir() && h.query_by_label("Delete for good").is_none());
    click(h, "Delete old-run");
    h.run_steps(2);
    click(h, "Delete for good");
    wait_for_runs(h, 2);
    assert!(!old.exists());
    assert!(new.join("model.safetensors").is_file());
    assert!(mine.join("todo.txt").is_file());

    // A run the user has put a file into since it was listed is not deleted.
    std::fs::write(new.join("notes.txt"), "mine now").unwrap();
    click(h, "Delete new-run");
    h.run_steps(2);
    click(h, "Delete for good");
    wait_until(h, "the refusal", |app| {
        app.tuning
            .runs
            .message
            .as_deref()
            .is_some_and(|m| m.contains("not deleted"))
    });
    assert!(new.join("model.safetensors").is_file() && new.join("notes.txt").is_file());
    assert!(h.query_by_label_contains("not deleted").is_some());
}

/// An interrupted run made by the engine: `runs/tiny-1.partial`, 3 epochs
/// planned, stopped after the first, with the `run.json` the app (and the
/// CLI) restart it from.
fn interrupted_run(dir: &Path, data: &Path) -> (PathBuf, PathBuf) {
    let output = dir.join("runs/tiny-1");
    std::fs::create_dir_all(dir.join("runs")).unwrap();
    let partial = run_dir::partial_path(&output);
    let config = TrainConfig {
        epochs: 3,
        batch_size: 2,
        lr: 1e-3,
        ..TrainConfig::default()
    };
    let info = serde_json::json!({
        "base_model": fixture_model("mlm-safetensors"),
        "train": data,
        "dev": null,
        "dev_fraction": 0.2,
        "output": output,
        "overwrite": false,
        "keep_epochs": true,
        "config": config,
        "data": {
            "text_a_column": "title1_en", "text_b_column": "title2_en",
            "label_column": "label", "id_column": "id",
            "delimiter": null, "skip_bad_rows": true
        }
    });
    run_dir::create(&partial, &info).unwrap();
    let cfg = TrainConfig {
        run_dir: Some(partial.clone()),
        epochs_dir: Some(partial.join("epochs")),
        ..config
    };
    let trained = train_with(&cfg, data, Some(1));
    assert_eq!(trained.report.outcome, Outcome::Cancelled);
    (output, partial)
}

/// Set by [`a_failed_save_keeps_the_run_and_resume_saves_it`] for the child
/// process it runs [`resume_on_a_full_disk`] in.
const CHILD_DIR: &str = "BERTSCOPE_TEST_FULL_DISK_DIR";

#[test]
fn a_failed_save_keeps_the_run_and_resume_saves_it() {
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let data = write_tsv(dir.path());
    let (output, partial) = interrupted_run(dir.path(), &data);

    // Resumed in a process whose files cannot grow past 60 kB (a full disk):
    // checkpoints fail while it trains, then the final save.
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "resume_on_a_full_disk",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env(CHILD_DIR, dir.path());
    // SAFETY: setrlimit and signal are async-signal-safe; nothing else runs
    // between fork and exec.
    unsafe {
        child.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 60_000,
                rlim_max: 60_000,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = child.output().unwrap();
    let log =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the full-disk run:\n{log}");
    assert!(
        log.contains("1 passed"),
        "the child test did not run:\n{log}"
    );
    // Bertscope's run still (the epoch checkpoints cut short by the full disk
    // are removed when it is resumed), with its first epoch to resume from.
    assert!(bertscope::ui::training::partial::check(&partial).is_ok());
    assert!(run_dir::latest_state(&partial).is_some());
    assert!(!output.exists());

    // With room again, Resume finishes the run and it becomes the tuned model.
    let mut h = app(dir.path());
    wait_for_runs(&mut h, 1);
    assert!(h
        .query_by_label_contains("interrupted after epoch 1 of 3")
        .is_some());
    click(&mut h, "Resume tiny-1.partial");
    wait_until(&mut h, "the resumed run as the tuned model", |app| {
        app.tuning.tuned.as_ref().is_some_and(|t| t.dir == output)
    });
    let run = &h.state().tuning.run;
    assert_eq!(
        run.status,
        RunStatus::Done(Outcome::Finished),
        "{:?}",
        run.log
    );
    assert_eq!(
        run.epochs.len(),
        3,
        "epoch 1 from before the resume, then 2 and 3"
    );
    assert_eq!(run.partial, None);
    assert!(!partial.exists(), "the run's state is removed once saved");
    assert!(bertscope::write_guard::ours(&output).is_ok());
    assert_eq!(
        h.state().tuning.tuned.as_ref().unwrap().epochs,
        vec![0, 1, 2, 3]
    );
    wait_for_runs(&mut h, 1);
    assert!(h.query_by_label("Open tiny-1").is_some());
}

/// The child of [`a_failed_save_keeps_the_run_and_resume_saves_it`]: under a
/// file-size limit, Resume trains on with warnings in the window, then cannot
/// save and says why; the run stays resumable.
#[test]
#[ignore = "run by a_failed_save_keeps_the_run_and_resume_saves_it, under a file-size limit"]
fn resume_on_a_full_disk() {
    let Some(dir) = std::env::var_os(CHILD_DIR).map(PathBuf::from) else {
        return;
    };
    let partial = dir.join("runs/tiny-1.partial");
    let mut h = app(&dir);
    wait_for_runs(&mut h, 1);
    click(&mut h, "Resume tiny-1.partial");
    wait_until(&mut h, "the run's end", |app| {
        !app.tuning.training() && app.tuning.run.status != RunStatus::Idle
    });
    let run = &h.state().tuning.run;
    let RunStatus::NotSaved(error) = &run.status else {
        panic!("{:?}\n{:?}", run.status, run.log)
    };
    assert!(
        error.contains("model.safetensors: cannot write: File too large"),
        "{error}"
    );
    assert_eq!(run.partial.as_ref(), Some(&partial));
    assert_eq!(
        run.epochs.len(),
        3,
        "training went on past the failed checkpoints"
    );
    assert!(run
        .warnings
        .iter()
        .any(|w| w.contains("epoch 2's checkpoint was not saved")));
    // Shown in the window, not only in the log.
    assert!(h.query_by_label(&format!("not saved: {error}")).is_some());
    let warning = run
        .warnings
        .iter()
        .find(|w| w.starts_with("epoch 2's"))
        .unwrap();
    assert!(h.query_by_label(&format!("Warning: {warning}")).is_some());
    assert!(h.query_by_label("Resume").is_some());
    assert!(h.state().tuning.tuned.is_none());
}

/// Set by [`quitting_mid_run_leaves_only_runs_the_app_can_resume_or_delete`]
/// for the child process it kills.
const KILL_DIR: &str = "BERTSCOPE_TEST_KILL_DIR";

#[test]
fn quitting_mid_run_leaves_only_runs_the_app_can_resume_or_delete() {
    use bertscope::ui::training::runs::{self, RunKind, ScanRules};
    // From before the first step to after the save (a run takes about a
    // second here): each kill lands somewhere else in it.
    for (i, delay_ms) in [0u64, 150, 300, 450, 600, 750, 1000, 1300]
        .into_iter()
        .enumerate()
    {
        let dir = tempfile::tempdir().unwrap();
        write_many(dir.path(), 120);
        // "Quit now": the app's process killed at some moment of its run.
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["train_until_killed", "--exact", "--ignored"])
            .env(KILL_DIR, dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let runs_dir = dir.path().join("runs");
        let start = Instant::now();
        let started = || {
            std::fs::read_dir(&runs_dir).is_ok_and(|mut d| {
                d.any(|e| e.is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".partial")))
            })
        };
        while !started() && child.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the run never started"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();

        // Everything left is a run the panel can resume or delete, and
        // deleting them all leaves nothing behind.
        let found = runs::scan(&runs_dir, &ScanRules::default()).unwrap();
        assert!(!found.entries.is_empty(), "kill {i}: the run vanished");
        for entry in &found.entries {
            assert!(
                !matches!(entry.kind, RunKind::NotOurs(_)),
                "kill {i} after {delay_ms} ms left {}: {:?}",
                entry.name,
                entry.kind
            );
            runs::remove_run(&entry.path).unwrap();
        }
        runs::scan(&runs_dir, &ScanRules::default()).unwrap();
        let left: Vec<_> = std::fs::read_dir(&runs_dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(
            left.is_empty(),
            "kill {i} after {delay_ms} ms: {left:?} left"
        );
    }
}

/// The child of [`quitting_mid_run_leaves_only_runs_the_app_can_resume_or_delete`]:
/// trains three epochs on `many.tsv` until it is killed.
#[test]
#[ignore = "run (and killed) by quitting_mid_run_leaves_only_runs_the_app_can_resume_or_delete"]
fn train_until_killed() {
    let Some(dir) = std::env::var_os(KILL_DIR).map(PathBuf::from) else {
        return;
    };
    let mut h = app(&dir);
    let train = &mut h.state_mut().settings.train;
    train.data_path = dir.join("many.tsv").display().to_string();
    train.text_a_column = "title1_en".into();
    train.text_b_column = "title2_en".into();
    train.epochs = 3;
    train.batch_size = 2;
    train.dev_fraction = 0.2;
    click(&mut h, "Start training");
    wait_until(&mut h, "the end of the run", |app| !app.tuning.training());
}
