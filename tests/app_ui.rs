//! The app driven through egui_kittest by accessible labels, on the tiny fixture
//! models: layers, heads, filters, token focus, masking with predictions checked
//! against `transformers`, view switching, a bad model path, a model worker that
//! panics or dies, and a rendered snapshot of the head view.

mod common;

use std::time::{Duration, Instant};

use bertscope::ui::app::ModelStatus;
use bertscope::ui::intent::TokenFocus;
use bertscope::ui::selection::SentenceFilter;
use bertscope::ui::state::View;
use bertscope::ui::worker::Fault;
use bertscope::ui::{AppOptions, BertscopeApp};
use common::*;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;

fn harness(
    model: &str,
    text_a: &str,
    text_b: Option<&str>,
    view: Option<View>,
) -> Harness<'static, BertscopeApp> {
    let options = AppOptions {
        model: Some(model.to_string()),
        text_a: Some(text_a.to_string()),
        text_b: text_b.map(str::to_string),
        view,
        fresh: true,
        bundled_font_only: true,
        ..Default::default()
    };
    let mut harness = Harness::builder()
        .with_size(egui::Vec2::new(1280.0, 800.0))
        .build_eframe(move |cc| BertscopeApp::new(cc, options));
    wait_until(&mut harness, |app| {
        !app.busy() && (app.analysis.is_some() || matches!(app.status, ModelStatus::Failed { .. }))
    });
    harness
}

/// Step the UI until the worker has answered (the worker runs on its own thread).
fn wait_until(harness: &mut Harness<'static, BertscopeApp>, done: impl Fn(&BertscopeApp) -> bool) {
    let start = Instant::now();
    while !done(harness.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the app did not settle"
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.run_steps(3);
}

fn pair_app() -> Harness<'static, BertscopeApp> {
    let m = fixture_model("mlm-safetensors").display().to_string();
    harness(&m, "the quick fox", Some("the lazy dog"), Some(View::Head))
}

#[test]
fn layer_and_heads_are_driven_by_labels() {
    let mut h = pair_app();
    assert_eq!(h.state().settings.selection.heads_on, vec![true; 4]);
    h.get_by_label("Layer").click();
    h.run_steps(2);
    h.get_by_label("Layer 1").click();
    h.run_steps(2);
    assert_eq!(h.state().settings.selection.layer, 1);

    h.get_by_label("Head 1").click();
    h.run_steps(2);
    assert_eq!(
        h.state().settings.selection.heads_on,
        vec![true, false, true, true]
    );

    h.get_by_label("Head 2")
        .click_modifiers(egui::Modifiers::SHIFT);
    h.run_steps(2);
    assert_eq!(
        h.state().settings.selection.heads_on,
        vec![false, false, true, false]
    );
    assert_eq!(h.state().settings.selection.focus_head, 2);
}

#[test]
fn sentence_filter_and_special_tokens() {
    let mut h = pair_app();
    h.get_by_label("A→B").click();
    h.run_steps(2);
    assert_eq!(h.state().settings.selection.filter, SentenceFilter::AToB);
    // A→B: sentence A's tokens on the left, B's on the right only.
    assert!(h.query_by_label("query token 1: the").is_some());
    assert!(h.query_by_label("key token 1: the").is_none());
    assert!(h.query_by_label("key token 5: the").is_some());

    h.get_by_label("Hide [CLS]/[SEP]").click();
    h.run_steps(2);
    assert!(h.state().settings.selection.hide_special);
    assert!(h.query_by_label("query token 0: [CLS]").is_none());
    assert!(h.query_by_label("key token 8: [SEP]").is_none());
}

#[test]
fn hovering_and_clicking_tokens_focus_them() {
    let mut h = pair_app();
    h.get_by_label("query token 2: quick").hover();
    h.run_steps(2);
    assert_eq!(h.state().focus(), Some(TokenFocus::Query(2)));
    h.get_by_label("key token 6: lazy").click();
    h.run_steps(2);
    assert_eq!(h.state().focus(), Some(TokenFocus::Key(6)));
}

#[test]
fn model_view_opens_a_head() {
    let mut h = pair_app();
    h.get_by_label("Model view").click();
    h.run_steps(2);
    assert_eq!(h.state().settings.view, View::Model);
    h.get_by_label("Layer 1 head 3").click();
    h.run_steps(2);
    let state = h.state();
    assert_eq!(state.settings.view, View::Head);
    assert_eq!(state.settings.selection.layer, 1);
    assert_eq!(state.settings.selection.focus_head, 3);
    assert_eq!(
        state.settings.selection.heads_on,
        vec![false, false, false, true]
    );
    h.get_by_label("Matrix view").click();
    h.run_steps(2);
    assert_eq!(h.state().settings.view, View::Matrix);
    assert!(h.query_by_label("Matrix head").is_some());
}

#[test]
fn masked_lm_predictions_match_transformers() {
    let case = &expected("mlm-safetensors")["cases"][3];
    let m = fixture_model("mlm-safetensors").display().to_string();
    let mut h = harness(
        &m,
        case["text_a"].as_str().unwrap(),
        case["text_b"].as_str(),
        Some(View::MaskedLm),
    );
    let masks = h.state().analysis.as_ref().unwrap().masks.clone().unwrap();
    let want = case["masks"].as_array().unwrap();
    assert_eq!(masks.len(), want.len());
    for (got, w) in masks.iter().zip(want) {
        let best = &w["predictions"][0];
        assert_eq!(
            got.predictions[0].token_str,
            best["token_str"].as_str().unwrap()
        );
        assert!((got.predictions[0].score as f64 - best["score"].as_f64().unwrap()).abs() < 1e-5);
    }
    // Each prediction is on screen with its probability.
    let top = want[0]["predictions"][0]["score"].as_f64().unwrap() * 100.0;
    assert!(h.query_by_label(&format!("{top:.2}%")).is_some());

    // Clicking a token masks it; the worker answers with a prediction there too.
    h.get_by_label("quick").click();
    wait_until(&mut h, |app| {
        !app.busy()
            && app
                .analysis
                .as_ref()
                .and_then(|a| a.masks.as_ref())
                .is_some_and(|m| m.len() == 3)
    });
    assert_eq!(h.state().settings.masked, vec![11]);
    assert_eq!(
        h.state().analysis.as_ref().unwrap().attention.tokens[11],
        "[MASK]"
    );
}

#[test]
fn examples_the_vocabulary_cannot_represent_are_disabled() {
    let h = pair_app();
    let info = match &h.state().status {
        ModelStatus::Ready(info) => info.clone(),
        other => panic!("{other:?}"),
    };
    // The fixture vocabulary has the Chinese pair's characters but no kana.
    assert_eq!(info.example_unknown[2], 0.0);
    assert!(info.example_unknown[5] > 0.34, "{:?}", info.example_unknown);
    assert!(!h
        .get_by_label("Coreference (Chinese): 他 → 胖虎")
        .accesskit_node()
        .is_disabled());
    assert!(h
        .get_by_label("Accents and Japanese")
        .accesskit_node()
        .is_disabled());
}

#[test]
fn model_without_mlm_head_says_so() {
    let m = fixture_model("classifier").display().to_string();
    let h = harness(&m, "the dog", None, Some(View::MaskedLm));
    assert!(h
        .query_by_label("This model has no masked-LM head")
        .is_some());
}

#[test]
fn bad_model_path_shows_the_error_in_the_window() {
    let h = harness("/no/such/model-dir", "the dog", None, None);
    assert!(h
        .query_by_label("Could not load /no/such/model-dir")
        .is_some());
    assert!(h
        .query_by_label_contains("model `/no/such/model-dir` not found")
        .is_some());
}

#[test]
fn typing_reruns_the_model() {
    let mut h = pair_app();
    h.get_by_label("Sentence A").click();
    h.run_steps(2);
    h.get_by_label("Sentence A").type_text(" jumps");
    wait_until(&mut h, |app| {
        !app.busy()
            && app
                .analysis
                .as_ref()
                .is_some_and(|a| a.attention.tokens.contains(&"jumps".to_string()))
    });
    assert_eq!(h.state().settings.text_a, "the quick fox jumps");
}

/// Type into sentence A and wait for the analysis of the new text.
fn type_and_wait(h: &mut Harness<'static, BertscopeApp>, text: &str, token: &str) {
    h.get_by_label("Sentence A").click();
    h.run_steps(2);
    h.get_by_label("Sentence A").type_text(text);
    wait_until(h, |app| {
        !app.busy()
            && app
                .analysis
                .as_ref()
                .is_some_and(|a| a.attention.tokens.contains(&token.to_string()))
    });
}

#[test]
fn a_worker_panic_is_shown_and_the_next_analysis_works() {
    let mut h = pair_app();
    h.state_mut().inject_worker_fault(Fault::Panic);
    wait_until(&mut h, |app| app.thread_error.is_some());
    assert!(h
        .query_by_label("the model worker crashed: a fault injected by a test; restarted")
        .is_some());
    assert!(!h.state().busy());

    type_and_wait(&mut h, " jumps", "jumps");
    assert!(h.state().analysis_error.is_none());
    h.get_by_label("Dismiss").click();
    h.run_steps(2);
    assert!(h.query_by_label_contains("crashed").is_none());
}

#[test]
fn a_worker_thread_that_is_gone_is_restarted_and_nothing_spins_forever() {
    let mut h = pair_app();
    // The thread ends; the analysis typed next goes to a worker that is gone.
    h.state_mut().inject_worker_fault(Fault::Exit);
    type_and_wait(&mut h, " jumps", "jumps");
    assert!(h
        .query_by_label("the model worker stopped unexpectedly; restarted")
        .is_some());
    assert!(matches!(h.state().status, ModelStatus::Ready(_)));
    // The restarted worker serves the next request as the first did.
    type_and_wait(&mut h, " over", "over");
}

#[test]
fn head_view_snapshot() {
    // A path relative to the package root (the test's working directory), so the
    // model bar reads the same on every checkout.
    let m = "tests/fixtures/models/mlm-safetensors".to_string();
    let mut h = Harness::builder()
        .with_size(egui::Vec2::new(1280.0, 800.0))
        .wgpu()
        .build_eframe(move |cc| {
            BertscopeApp::new(
                cc,
                AppOptions {
                    model: Some(m),
                    text_a: Some("胖虎叫大雄去買漫畫，".into()),
                    text_b: Some("回來慢了就打他。".into()),
                    view: Some(View::Head),
                    layer: Some(1),
                    head: Some(2),
                    fresh: true,
                    bundled_font_only: true,
                    ..Default::default()
                },
            )
        });
    wait_until(&mut h, |app| !app.busy() && app.analysis.is_some());
    h.snapshot("head_view_chinese_pair");
}
