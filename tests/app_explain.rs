//! The Explain view driven through egui_kittest by accessible labels, on the
//! tiny fixture models: the explanation of the classifier's prediction against
//! Captum's numbers (`tests/fixtures/explain_expected.json`), the heat strip,
//! methods, words and targets, the cache, head importance over a data file
//! against PyTorch's, and the error of a masked-LM model without a [MASK];
//! and the compare view's explanations and head importance before and after
//! fine-tuning, on a run trained here (its epoch 0 is the "before"), against
//! the engine on each checkpoint alone.

mod common;

use std::time::{Duration, Instant};

use bertscope::explain::{summary, Explanation};
use bertscope::tokenize::is_special;
use bertscope::ui::explain::Method;
use bertscope::ui::state::View;
use bertscope::ui::{AppOptions, BertscopeApp};
use common::*;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use serde_json::Value;

type App = Harness<'static, BertscopeApp>;

fn app(model: &str, text_a: &str, text_b: Option<&str>) -> App {
    let options = AppOptions {
        model: Some(fixture_model(model).display().to_string()),
        text_a: Some(text_a.to_string()),
        text_b: text_b.map(str::to_string),
        view: Some(View::Explain),
        fresh: true,
        bundled_font_only: true,
        ..Default::default()
    };
    let mut h = Harness::builder()
        .with_size(egui::Vec2::new(1280.0, 900.0))
        .build_eframe(move |cc| BertscopeApp::new(cc, options));
    wait_until(&mut h, "the explanation", |app| app.explain.settled());
    h
}

/// Step the UI until `done` (the model worker runs on its own thread).
fn wait_until(h: &mut App, what: &str, done: impl Fn(&BertscopeApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "timed out waiting for {what}"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    h.run_steps(3);
}

fn click(h: &mut App, label: &str) {
    h.get_by_label(label).scroll_to_me();
    h.run_steps(15); // scrolling is animated
    h.get_by_label(label).click();
    h.run_steps(2);
}

/// The explanation of the current input and target.
fn shown(h: &App) -> Result<Explanation, String> {
    let app = h.state();
    let s = &app.settings;
    let key = app.explain.key(&s.text_a, &s.text_b);
    app.explain
        .cache
        .get(&key)
        .cloned()
        .expect("an explanation for the current input")
}

/// The summary as the view shows it: emphasis dropped, first letter upper case.
fn summary_label(target: &str, names: &[String], scores: &[f32]) -> String {
    let plain = summary::sentence(target, names, scores, 3).replace('*', "");
    let mut chars = plain.chars();
    let first = chars.next().map(|c| c.to_uppercase().to_string());
    first.unwrap_or_default() + chars.as_str()
}

fn max_rel_diff(ours: &[f32], theirs: &[f32]) -> f32 {
    let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    max_abs_diff(ours, theirs) / scale
}

fn explain_expected() -> Value {
    read_json(&fixtures().join("explain_expected.json"))
}

#[test]
fn the_classifier_prediction_is_explained_token_by_token() {
    let case = explain_expected()["cases"][0].clone();
    let (a, b) = (case["text_a"].as_str().unwrap(), case["text_b"].as_str());
    let mut h = app("classifier", a, b);
    let e = shown(&h).unwrap();
    // The same numbers as Captum/PyTorch on this input.
    assert_eq!(e.tokens, strings(&case["tokens"]));
    assert_eq!(e.target.label, case["target"]["label"].as_str().unwrap());
    let ig = floats(&case["integrated_gradients"]);
    assert!(max_rel_diff(&e.integrated_gradients, &ig) < 2e-3);

    // Integrated gradients by default: the summary names the strongest tokens.
    let want = summary_label(&e.target.label, &e.tokens, &e.integrated_gradients);
    assert!(h.query_by_label(&want).is_some(), "no summary {want:?}");
    for (i, token) in e.tokens.iter().enumerate() {
        let label = format!("explain token {i}: {token}");
        assert!(h.query_by_label(&label).is_some(), "{label}");
    }

    // Rollout: the [CLS] row, another summary.
    click(&mut h, "Attention rollout");
    assert_eq!(h.state().explain.method, Method::Rollout);
    let want = summary_label(&e.target.label, &e.tokens, &e.rollout[0]);
    assert!(h.query_by_label(&want).is_some(), "no summary {want:?}");

    // Whole words: "animals" is one chip, its pieces' scores summed.
    click(&mut h, "Gradient-weighted attention");
    click(&mut h, "Whole words");
    assert!(h.state().explain.words);
    let words = e.word_scores(&e.grad_attention);
    assert_eq!(words.len(), e.words.len());
    assert!(h.query_by_label("explain word 2: animals").is_some());
    assert!(h.query_by_label("explain token 3: ##s").is_none());
    let want = summary_label(&e.target.label, &e.words, &words);
    assert!(h.query_by_label(&want).is_some(), "no summary {want:?}");
}

#[test]
fn another_target_is_computed_once_and_cached() {
    let case = explain_expected()["cases"][0].clone();
    let (a, b) = (case["text_a"].as_str().unwrap(), case["text_b"].as_str());
    let mut h = app("classifier", a, b);
    let predicted = shown(&h).unwrap();
    click(&mut h, "Target");
    click(&mut h, "agreed");
    wait_until(&mut h, "the second target", |app| app.explain.settled());
    let agreed = shown(&h).unwrap();
    assert_eq!(agreed.target.label, "agreed");
    assert_ne!(agreed.integrated_gradients, predicted.integrated_gradients);
    assert_eq!(
        agreed.rollout, predicted.rollout,
        "rollout ignores the target"
    );

    // Back to the prediction, and away and back: nothing is computed again.
    click(&mut h, "Target");
    click(&mut h, &format!("prediction ({})", predicted.target.label));
    assert!(h.state().explain.settled());
    click(&mut h, "Head view");
    click(&mut h, "Explain");
    assert!(
        h.state().explain.settled(),
        "the cached explanation is shown"
    );
    assert_eq!(shown(&h).unwrap(), predicted);
}

#[test]
fn head_importance_over_a_data_file_matches_pytorch() {
    let expected = explain_expected()["head_importance"][0].clone();
    assert_eq!(expected["model"], "classifier");
    let mut h = app("classifier", "the dog jumps", None);
    let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(expected["data"].as_str().unwrap())
        .display()
        .to_string();
    click(&mut h, "Importance data file");
    h.get_by_label("Importance data file").type_text(&data);
    h.run_steps(2);
    h.state_mut().explain.importance.max_rows = expected["max_rows"].as_u64().unwrap() as usize;
    click(&mut h, "Compute importance");
    assert!(h.state().explain.importance.running());
    wait_until(&mut h, "head importance", |app| {
        !app.explain.importance.running()
    });
    let (source, result) = h.state().explain.importance.result.clone().unwrap();
    assert_eq!(source, data);
    let importance = result.unwrap();
    assert_eq!((importance.layers, importance.heads), (2, 4));
    assert_eq!(
        importance.rows as u64,
        expected["rows_used"].as_u64().unwrap()
    );
    let mut want = Vec::new();
    flatten_numbers(&expected["values"], &mut want);
    assert!(max_rel_diff(&importance.values, &want) < 1e-3);
    assert!(h
        .query_by_label(&format!("Over {} rows of {data}.", importance.rows))
        .is_some());

    // A click on the map selects that head for the other views.
    click(&mut h, "Head importance map");
    let sel = &h.state().settings.selection;
    assert_eq!((sel.layer, sel.focus_head), (0, 1), "the map's centre cell");
    assert_eq!(sel.heads_on, vec![false, true, false, false]);
}

#[test]
fn a_missing_data_file_is_an_error_in_the_section() {
    let mut h = app("classifier", "the dog jumps", None);
    click(&mut h, "Compute importance");
    assert!(h
        .query_by_label("choose a labelled data file first")
        .is_some());
    click(&mut h, "Importance data file");
    h.get_by_label("Importance data file")
        .type_text("/nonexistent/rows.tsv");
    h.run_steps(2);
    click(&mut h, "Compute importance");
    wait_until(&mut h, "the error", |app| !app.explain.importance.running());
    assert!(h.query_by_label_contains("/nonexistent/rows.tsv").is_some());
}

#[test]
fn a_masked_lm_without_a_mask_says_why_there_is_nothing_to_explain() {
    let h = app("mlm-safetensors", "the quick fox", Some("the lazy dog"));
    let error = shown(&h).unwrap_err();
    assert!(error.contains("nothing to explain"), "{error}");
    assert!(h.query_by_label(&error).is_some());
    assert!(h.query_by_label_contains("explain token").is_none());
}

#[test]
fn a_masked_lm_explains_the_token_at_its_mask_or_another() {
    let case = explain_expected()["cases"][2].clone();
    let mut h = app("mlm-safetensors", case["text_a"].as_str().unwrap(), None);
    let top = shown(&h).unwrap();
    assert_eq!(top.target.label, case["target"]["label"].as_str().unwrap());
    assert!(h
        .query_by_label(&format!("prediction ({})", top.target.label))
        .is_some());
    click(&mut h, "Target token");
    h.get_by_label("Target token").type_text("cat");
    h.run_steps(2);
    click(&mut h, "Explain this token");
    wait_until(&mut h, "the other token", |app| app.explain.settled());
    let cat = shown(&h).unwrap();
    let want = &explain_expected()["cases"][3];
    assert_eq!(cat.target.label, "cat");
    let ig = floats(&want["integrated_gradients"]);
    assert!(max_rel_diff(&cat.integrated_gradients, &ig) < 2e-3);
    let ordinary = cat.tokens.iter().filter(|t| !is_special(t)).count();
    assert!(ordinary > 0);
}

/// A run fine-tuned from the masked-LM fixture on `rows` for one epoch,
/// saved with its epoch checkpoints (`epochs/epoch-0`: the fresh head).
fn trained_run(dir: &std::path::Path, rows: &std::path::Path) -> std::path::PathBuf {
    use bertscope::data::{self, ReadOptions};
    use bertscope::train::{self, save, TrainConfig};
    let cfg = TrainConfig {
        epochs: 1,
        batch_size: 4,
        lr: 1e-3,
        seed: 3,
        epochs_dir: Some(dir.join("epochs-of-run")),
        ..TrainConfig::default()
    };
    let options = ReadOptions {
        require_label: true,
        ..Default::default()
    };
    let rows = data::read(rows, &options).unwrap();
    let cancel = std::sync::atomic::AtomicBool::new(false);
    let base = fixture_model("mlm-safetensors");
    let device = candle_core::Device::Cpu;
    let trained = train::train(&base, &rows, None, &cfg, &device, &mut |_| {}, &cancel).unwrap();
    save::save(&trained, &cfg, &dir.join("run"), false).unwrap()
}

#[test]
fn the_compare_view_explains_and_weighs_heads_before_and_after() {
    use bertscope::compare::Side;
    use bertscope::ui::compare_view::explain::ExplainSides;
    use bertscope::LoadedModel;

    let dir = tempfile::tempdir().unwrap();
    let rows = fixtures().join("explain_rows.tsv");
    let run = trained_run(dir.path(), &rows);
    let options = AppOptions {
        model: Some(fixture_model("mlm-safetensors").display().to_string()),
        tuned: Some(run.clone()),
        text_a: Some("the dog jumps over the lazy cat".into()),
        text_b: Some("the quick brown fox jumps".into()),
        view: Some(View::Compare),
        fresh: true,
        bundled_font_only: true,
        ..Default::default()
    };
    let mut h = Harness::builder()
        .with_size(egui::Vec2::new(1280.0, 1400.0))
        .build_eframe(move |cc| BertscopeApp::new(cc, options));
    let key = |app: &BertscopeApp| {
        let s = &app.settings;
        let tuned = app.tuning.tuned.as_ref()?;
        Some(ExplainSides::key(&s.text_a, &s.text_b, tuned))
    };
    wait_until(&mut h, "both explanations", |app| {
        key(app).is_some_and(|k| app.tuning.before_after.explain.get(&k).is_some())
    });
    let app = h.state();
    let k = key(app).unwrap();
    let sides = app
        .tuning
        .before_after
        .explain
        .get(&k)
        .cloned()
        .unwrap()
        .unwrap();
    assert!(
        sides.before_source.contains("epoch 0"),
        "{}",
        sides.before_source
    );

    // Each side is what the engine says of that checkpoint alone.
    let device = candle_core::Device::Cpu;
    let load = |d: &std::path::Path| LoadedModel::load_dir("m", d, &device).unwrap();
    let (a, b) = (k.text_a.as_str(), k.text_b.as_deref());
    let alone = |d: &std::path::Path| {
        bertscope::explain::explain(&load(d), a, b, None, &mut |_, _| {}).unwrap()
    };
    let before = sides.before.clone().unwrap().unwrap();
    let after = sides.after.clone().unwrap().unwrap();
    for (ours, dir) in [(&before, run.join("epochs/epoch-0")), (&after, run.clone())] {
        let theirs = alone(&dir);
        assert_eq!(ours.target, theirs.target);
        assert!(max_rel_diff(&ours.integrated_gradients, &theirs.integrated_gradients) < 1e-5);
        assert!(max_rel_diff(&ours.grad_attention, &theirs.grad_attention) < 1e-5);
    }

    // Both heat strips, each with its target and summary sentence.
    for (side, e) in [(Side::Before, &before), (Side::After, &after)] {
        for (i, token) in e.tokens.iter().enumerate() {
            let label = format!("{} token {i}: {token}", side.name());
            assert!(h.query_by_label(&label).is_some(), "{label}");
        }
        let want = summary_label(&e.target.label, &e.tokens, &e.integrated_gradients);
        assert!(
            h.query_all_by_label(&want).next().is_some(),
            "no summary {want:?}"
        );
        let target = format!(
            "Target {} (predicted), logit {:.3}",
            e.target.label, e.target_logit
        );
        assert!(h.query_all_by_label(&target).next().is_some(), "{target}");
    }

    // The Explain view's method selector and word toggle drive both sides.
    click(&mut h, "Attention rollout");
    assert_eq!(h.state().explain.method, Method::Rollout);
    for e in [&before, &after] {
        let want = summary_label(&e.target.label, &e.tokens, &e.rollout[0]);
        assert!(
            h.query_all_by_label(&want).next().is_some(),
            "no summary {want:?}"
        );
    }
    click(&mut h, "Whole words");
    assert!(h.query_by_label("before word 0: [CLS]").is_some());
    assert!(h.query_by_label("after word 0: [CLS]").is_some());
    assert!(h.query_by_label("after token 0: [CLS]").is_none());

    // Head importance over a missing file: the error in place.
    h.state_mut().settings.train.data_path = "/nonexistent/rows.tsv".into();
    click(&mut h, "Compute importance before and after");
    wait_until(&mut h, "the error", |app| {
        !app.tuning.before_after.importance.running()
    });
    assert!(h
        .query_all_by_label_contains("/nonexistent/rows.tsv")
        .next()
        .is_some());

    // Over the rows: both maps, and the heads whose importance grew.
    let data = rows.display().to_string();
    h.state_mut().settings.train.data_path = data.clone();
    h.state_mut().explain.importance.max_rows = 8;
    click(&mut h, "Compute importance before and after");
    assert!(h.state().tuning.before_after.importance.running());
    wait_until(&mut h, "head importance", |app| {
        !app.tuning.before_after.importance.running()
    });
    let (source, result) = h
        .state()
        .tuning
        .before_after
        .importance
        .result
        .clone()
        .unwrap();
    assert_eq!(source, data);
    let maps = result.unwrap();
    let options = bertscope::data::ReadOptions::default();
    let no_cancel = std::sync::atomic::AtomicBool::new(false);
    for (ours, dir) in [
        (&maps.before, run.join("epochs/epoch-0")),
        (&maps.after, run.clone()),
    ] {
        let ours = ours.clone().unwrap().unwrap();
        let theirs = bertscope::explain::head_importance_of_file(
            &load(&dir),
            &rows,
            &options,
            8,
            &no_cancel,
            &mut |_, _| {},
        )
        .unwrap();
        assert_eq!(ours.rows, 8);
        assert!(max_rel_diff(&ours.values, &theirs.values) < 1e-5);
    }
    assert!(h.query_by_label("Head importance before").is_some());
    assert!(h.query_by_label("Head importance after").is_some());
    assert!(h
        .query_by_label_contains("normalised per layer on screen")
        .is_some());
    assert!(h.query_by_label("Heads the task came to rely on").is_some());
    // The first listed head is the one whose raw importance grew most; a click selects it.
    let (b, a) = (maps.before.unwrap().unwrap(), maps.after.unwrap().unwrap());
    let (layer, head, gain) = bertscope::compare::importance_gains(&b, &a)[0];
    assert!(
        gain > 0.0,
        "one epoch at lr 1e-3 makes some head matter more"
    );
    click_contains(&mut h, &format!("layer {layer}, head {head}: +"));
    let sel = &h.state().settings.selection;
    assert_eq!((sel.layer, sel.focus_head), (layer, head));
}

fn click_contains(h: &mut App, label: &str) {
    h.get_by_label_contains(label).scroll_to_me();
    h.run_steps(15);
    h.get_by_label_contains(label).click();
    h.run_steps(2);
}
