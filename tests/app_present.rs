//! Presentation mode driven by keys through egui_kittest over a lesson on the
//! tiny fixture models: next, previous, a number + Enter, blank, Esc; what is
//! on screen checked by its labels (scene k of n, the caption, the view), a
//! scene's settings restored on return, a missing model shown with the keys
//! still working.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use bertscope::lesson::Lesson;
use bertscope::ui::app::ModelStatus;
use bertscope::ui::present::{LessonStart, PresentLook};
use bertscope::ui::state::View;
use bertscope::ui::{AppOptions, BertscopeApp};
use common::*;
use egui::Key;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;

fn lesson() -> Lesson {
    let classifier = fixture_model("classifier").display().to_string();
    let mlm = fixture_model("mlm-safetensors").display().to_string();
    let text = format!(
        r#"title = "Fixture lesson"
model = "{classifier}"

[[scene]]
text_a = "the quick fox"
view = "head"
layer = 1
heads = [2]
caption = "First: one head"
notes = "say something"

[[scene]]
text_a = "the quick brown fox"
view = "mlm"
model = "{mlm}"
masked = [2]
caption = "Second: fill the mask"

[[scene]]
text_a = "the lazy dog"
text_b = "sleeps"
view = "model"
word_level = true
caption = "Third: every head"

[[scene]]
text_a = "nothing to see"
view = "head"
model = "tests/fixtures/models/no-such-model"
caption = "Fourth: a model that is not here"
"#
    );
    Lesson::parse(&text, Path::new("fixture.toml"), Path::new(".")).expect("the test lesson")
}

fn presenting() -> Harness<'static, BertscopeApp> {
    let runs = tempfile::tempdir().expect("tempdir").keep();
    let lesson = lesson();
    let options = AppOptions {
        model: lesson.model_of(0).map(str::to_string),
        fresh: true,
        bundled_font_only: true,
        runs_dir: Some(runs),
        lesson: Some(LessonStart {
            lesson,
            scene: 0,
            look: PresentLook::default(),
        }),
        ..Default::default()
    };
    let mut harness = Harness::builder()
        .with_size(egui::Vec2::new(1600.0, 1000.0))
        .build_eframe(move |cc| BertscopeApp::new(cc, options));
    settle(&mut harness);
    harness
}

/// Step until the scene is shown (its model loaded or failed, its analysis in).
fn settle(harness: &mut Harness<'static, BertscopeApp>) {
    let start = Instant::now();
    harness.run_steps(2);
    while !harness.state().result_ready() {
        assert!(start.elapsed() < Duration::from_secs(30), "no settling");
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.run_steps(3);
}

fn press(harness: &mut Harness<'static, BertscopeApp>, keys: &[Key]) {
    for &key in keys {
        harness.key_press(key);
        harness.step();
    }
    settle(harness);
}

/// The scene on screen: "scene k of n" and its caption are labels.
fn shows(harness: &Harness<'static, BertscopeApp>, position: &str, caption: &str) {
    harness.get_by_label(position);
    harness.get_by_label(caption);
}

#[test]
fn keys_move_through_the_lesson_and_reset_each_scene() {
    let mut h = presenting();
    shows(&h, "scene 1 of 4", "First: one head");
    let sel = &h.state().settings.selection;
    assert_eq!(
        (sel.layer, sel.heads_on.clone()),
        (1, vec![false, false, true, false])
    );
    assert_eq!(h.state().settings.view, View::Head);
    assert!(h.query_by_label("Model").is_none(), "no model bar");

    // Change what is shown; the next visit of the scene restores it.
    press(&mut h, &[Key::ArrowUp]);
    assert_eq!(h.state().settings.selection.layer, 0);

    press(&mut h, &[Key::ArrowRight]);
    shows(&h, "scene 2 of 4", "Second: fill the mask");
    let app = h.state();
    assert_eq!(app.settings.view, View::MaskedLm);
    assert_eq!(app.settings.masked, vec![2]);
    assert!(matches!(&app.status, ModelStatus::Ready(i) if i.spec.contains("mlm-safetensors")));
    h.get_by_label("Attention for the masked input:");

    press(&mut h, &[Key::PageDown]);
    shows(&h, "scene 3 of 4", "Third: every head");
    assert_eq!(h.state().settings.view, View::Model);
    assert!(h.state().settings.selection.words);

    press(&mut h, &[Key::ArrowLeft, Key::PageUp]);
    shows(&h, "scene 1 of 4", "First: one head");
    let sel = &h.state().settings.selection;
    assert_eq!(
        (sel.layer, sel.heads_on.clone()),
        (1, vec![false, false, true, false])
    );
    assert!(matches!(&h.state().status, ModelStatus::Ready(i) if i.spec.contains("classifier")));

    // Space is "next" too, as clickers send it.
    press(&mut h, &[Key::Space]);
    shows(&h, "scene 2 of 4", "Second: fill the mask");
}

#[test]
fn a_number_and_enter_jump_and_a_missing_model_keeps_the_keys() {
    let mut h = presenting();
    press(&mut h, &[Key::Num4]);
    h.get_by_label("go to scene 4 (Enter)");
    press(&mut h, &[Key::Enter]);
    shows(&h, "scene 4 of 4", "Fourth: a model that is not here");
    h.get_by_label_contains("which is not here");
    assert!(matches!(h.state().status, ModelStatus::Failed { .. }));

    press(&mut h, &[Key::ArrowRight]);
    h.get_by_label("this is the last scene");
    press(&mut h, &[Key::Num9, Key::Enter]);
    h.get_by_label("no scene 9: scenes 1 to 4");

    press(&mut h, &[Key::Num2, Key::Enter]);
    shows(&h, "scene 2 of 4", "Second: fill the mask");
    assert!(matches!(h.state().status, ModelStatus::Ready(_)));
}

#[test]
fn b_blanks_the_screen_and_escape_leaves() {
    let mut h = presenting();
    press(&mut h, &[Key::B]);
    h.get_by_label("blank screen");
    assert!(h.query_by_label("scene 1 of 4").is_none());
    press(&mut h, &[Key::B]);
    shows(&h, "scene 1 of 4", "First: one head");
    assert!(h.query_by_label("blank screen").is_none());

    // Esc asks the window to close (the close guard still asks during a run).
    h.event(egui::Event::Key {
        key: Key::Escape,
        physical_key: None,
        pressed: true,
        repeat: false,
        modifiers: egui::Modifiers::NONE,
    });
    h.step();
    let commands = &h.output().viewport_output[&egui::ViewportId::ROOT].commands;
    assert!(
        commands.contains(&egui::ViewportCommand::Close),
        "{commands:?}"
    );
    assert!(h.state().presenter().is_some_and(|p| p.left));
}

#[test]
fn zoom_keys_scale_everything() {
    let mut h = presenting();
    assert!((h.ctx.zoom_factor() - 1.6).abs() < 1e-6);
    press(&mut h, &[Key::Plus]);
    assert!((h.ctx.zoom_factor() - 1.7).abs() < 1e-6);
    press(&mut h, &[Key::Minus, Key::Minus]);
    assert!((h.ctx.zoom_factor() - 1.5).abs() < 1e-6);
}

/// The app without a lesson: the model bar's Lesson menu.
fn plain_app(model: &str, text_a: &str) -> Harness<'static, BertscopeApp> {
    let options = AppOptions {
        model: Some(model.to_string()),
        text_a: Some(text_a.to_string()),
        fresh: true,
        bundled_font_only: true,
        runs_dir: Some(tempfile::tempdir().expect("tempdir").keep()),
        ..Default::default()
    };
    let mut harness = Harness::builder()
        .with_size(egui::Vec2::new(1600.0, 1000.0))
        .build_eframe(move |cc| BertscopeApp::new(cc, options));
    settle(&mut harness);
    harness
}

#[test]
fn add_this_view_builds_a_lesson_that_saves_and_presents() {
    let model = fixture_model("classifier").display().to_string();
    let mut h = plain_app(&model, "the quick fox");
    press(&mut h, &[Key::ArrowDown]);
    h.get_by_label("Head 1").click();
    h.run_steps(2);
    h.get_by_label("Lesson").click();
    h.run_steps(2);
    h.get_by_label("Add this view to lesson").click();
    h.run_steps(2);
    h.get_by_label("Lesson (1)").click();
    h.run_steps(2);
    h.get_by_label("scene 1 added");

    let lesson = h.state().lesson_draft().clone();
    assert_eq!(lesson.model.as_deref(), Some(model.as_str()));
    let scene = &lesson.scenes[0];
    assert_eq!(scene.text_a, "the quick fox");
    assert_eq!((scene.layer, scene.heads.clone()), (Some(1), vec![0, 2, 3]));
    assert_eq!(scene.model, None);

    // Saved, read back, and a file that is not a lesson is left alone.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("built.toml");
    let protected = bertscope::write_guard::Protected::default();
    bertscope::ui::present::draft::save(&path, &lesson, &protected).expect("save");
    assert_eq!(Lesson::load(&path).expect("read back"), lesson);
    bertscope::ui::present::draft::save(&path, &lesson, &protected).expect("a lesson is replaced");
    let notes = dir.path().join("notes.toml");
    std::fs::write(&notes, "[server]\nport = 80\n").expect("write");
    let refused = bertscope::ui::present::draft::save(&notes, &lesson, &protected).unwrap_err();
    assert!(
        refused.contains("is not a lesson bertscope can read"),
        "{refused}"
    );
    assert_eq!(
        std::fs::read_to_string(&notes).expect("read"),
        "[server]\nport = 80\n"
    );
}
