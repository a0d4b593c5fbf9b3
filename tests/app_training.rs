//! The training view and the compare view driven through egui_kittest on the
//! tiny fixture model and a tiny TSV: load data, see the preview and its
//! problems, start, see progress, cancel, finish, compare, save; closing the
//! window during a run.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use bertscope::train::Outcome;
use bertscope::ui::close_guard::CloseGuard;
use bertscope::ui::training::run::RunStatus;
use bertscope::ui::state::View;
use bertscope::ui::{AppOptions, BertscopeApp};
use common::*;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;

/// Step the UI until `done` (the workers run on their own threads).
fn wait_until(
    harness: &mut Harness<'static, BertscopeApp>,
    what: &str,
    done: impl Fn(&BertscopeApp) -> bool,
) {
    let start = Instant::now();
    while !done(harness.state()) {
        let app = harness.state();
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}: run {:?}, log {:?}",
            app.tuning.run.status,
            app.tuning.run.log.iter().rev().take(3).collect::<Vec<_>>()
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.run_steps(3);
}

/// A file dropped on the window, as the windowing integration would hand it over.
#[derive(Debug)]
struct Dropped(std::path::PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

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
    let options = AppOptions {
        model: Some(fixture_model("mlm-safetensors").display().to_string()),
        text_a: Some("the dog is tired".into()),
        text_b: Some("the dog is tired".into()),
        view: Some(View::Train),
        fresh: true,
        bundled_font_only: true,
        runs_dir: Some(dir.join("runs")),
        ..Default::default()
    };
    let mut h = Harness::builder()
        .with_size(egui::Vec2::new(1280.0, 900.0))
        .build_eframe(move |cc| BertscopeApp::new(cc, options));
    wait_until(&mut h, "the model", |app| app.analysis.is_some());
    h
}

/// Scroll a widget into view (the views scroll), then click it.
fn click(h: &mut Harness<'static, BertscopeApp>, label: &str) {
    h.get_by_label(label).scroll_to_me();
    h.run_steps(15); // scrolling is animated
    h.get_by_label(label).click();
    h.run_steps(1);
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
    eprintln!("tmp {}", dir.path().display());

    // Load the data: columns guessed from the header, the bad row listed with its line.
    type_into(&mut h, "Training data", &data.display().to_string());
    click(&mut h, "Load data");
    wait_until(&mut h, "the preview", |app| app.tuning.preview.is_some());
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

    // A long run (1600 steps an epoch), cancelled before its first epoch ends:
    // nothing is kept, and the progress line keeps the run's real totals.
    let many = write_many(dir.path(), 4000);
    h.state_mut().settings.train.data_path = many.display().to_string();
    h.state_mut().settings.train.epochs = 10_000;
    h.state_mut().settings.train.batch_size = 2;
    h.state_mut().settings.train.dev_fraction = 0.2;
    click(&mut h, "Start training");
    wait_until(&mut h, "progress", |app| app.tuning.run.step >= 3);
    assert!(h.query_by_label_contains("examples/s").is_some());
    click(&mut h, "Cancel");
    wait_until(&mut h, "the cancelled run", |app| !app.tuning.training());
    settle(&mut h, Duration::from_secs(1)); // time to (wrongly) open it as the tuned model
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
    assert!(h
        .query_by_label_contains("Cancelled before the first epoch ended: nothing kept")
        .is_some());
    assert!(h
        .query_by_label_contains(&format!("step {step}/16000000 · epoch 1/10000 ·"))
        .is_some());
    let runs = std::fs::read_dir(dir.path().join("runs")).map_or(0, |d| d.count());
    assert_eq!(runs, 0, "nothing written, scratch removed");

    // A full run: 2 epochs of 4 steps (8 training rows, batch 2).
    h.state_mut().settings.train.data_path = data.display().to_string();
    h.state_mut().settings.train.epochs = 2;
    h.state_mut().settings.train.lr = 1e-3;
    click(&mut h, "Start training");
    wait_until(&mut h, "the finished run", |app| {
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

    // Compare: both models on the current input, the change map and the ranking.
    click(&mut h, "Compare with base");
    wait_until(&mut h, "the comparison", |app| {
        app.tuning.comparison.is_some()
    });
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
    click_contains(&mut h, "1. layer");
    h.run_steps(3);
    let sel = &h.state().settings.selection;
    assert_eq!((sel.layer, sel.focus_head), (layer, head));
    assert!(h.query_by_label("tuned query token 1: the").is_some());
    assert!(h
        .query_by_label_contains("Attention difference, tuned − base")
        .is_some());

    // Averaged over the data file.
    click_contains(&mut h, "Average over");
    wait_until(&mut h, "the averaged changes", |app| {
        app.tuning.mean_changes.is_some()
    });
    let (_, mean) = h.state().tuning.mean_changes.clone().unwrap();
    // Every row with text counts, the unlabelled one (line 6) included.
    assert_eq!(mean.unwrap().inputs, 11);

    // Save as…: a copy that loads as a classifier; the base model's directory is refused.
    click(&mut h, "Training");
    h.run_steps(3);
    let saved = dir.path().join("saved-model");
    type_into(&mut h, "Save path", &saved.display().to_string());
    click(&mut h, "Save as…");
    assert!(h.state().tuning.saving(), "the copy runs on its own thread");
    wait_until(&mut h, "the copy", |app| !app.tuning.saving());
    assert!(h.query_by_label_contains("saved the tuned model").is_some());
    let model =
        bertscope::LoadedModel::load_dir("saved", &saved, &candle_core::Device::Cpu).unwrap();
    assert_eq!(model.config().labels, vec!["agreed", "unrelated"]);
    let probs = model.classify("the dog", Some("the cat")).unwrap();
    assert_eq!(probs.predictions.len(), 2);

    let base = fixture_model("mlm-safetensors").display().to_string();
    h.state_mut().settings.train.save_path.clear();
    type_into(&mut h, "Save path", &base);
    click(&mut h, "Save as…");
    wait_until(&mut h, "the refused copy", |app| !app.tuning.saving());
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
        .push(std::sync::Arc::new(Dropped(data.clone())));
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
