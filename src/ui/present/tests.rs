use super::keys::{classify, PresentKey as K};
use super::*;
use crate::lesson::Scene;

fn presenter(scenes: usize) -> Presenter {
    let scene = |i: usize| Scene {
        text_a: format!("sentence {i}"),
        caption: Some(format!("caption {i}")),
        notes: Some(format!("say {i}")),
        ..Default::default()
    };
    Presenter::new(LessonStart {
        lesson: Lesson {
            title: "t".into(),
            model: Some("m".into()),
            scenes: (0..scenes).map(scene).collect(),
        },
        scene: 0,
        look: PresentLook::default(),
    })
}

#[test]
fn next_and_previous_stop_at_the_ends() {
    let mut p = presenter(3);
    assert_eq!(p.press(K::Previous), None);
    assert_eq!(p.notice.as_deref(), Some("this is the first scene"));
    assert_eq!(p.press(K::Next), Some(Move::GoTo(1)));
    assert_eq!(p.notice, None);
    assert_eq!(p.press(K::Next), Some(Move::GoTo(2)));
    assert_eq!(p.press(K::Next), None);
    assert_eq!(p.position(), "scene 3 of 3");
    assert_eq!(p.press(K::Previous), Some(Move::GoTo(1)));
}

#[test]
fn digits_and_enter_jump_one_based() {
    let mut p = presenter(12);
    p.press(K::Digit(1));
    p.press(K::Digit(2));
    assert_eq!(p.typed, "12");
    assert_eq!(p.press(K::Enter), Some(Move::GoTo(11)));
    assert!(p.typed.is_empty());
    p.press(K::Digit(0));
    assert_eq!(p.press(K::Enter), None);
    assert_eq!(p.notice.as_deref(), Some("no scene 0: scenes 1 to 12"));
    p.press(K::Digit(4));
    p.press(K::Backspace);
    p.press(K::Digit(3));
    assert_eq!(p.press(K::Enter), Some(Move::GoTo(2)));
    // Enter alone does nothing; Esc first clears what was typed, then leaves.
    assert_eq!(p.press(K::Enter), None);
    p.press(K::Digit(5));
    assert_eq!(p.press(K::Escape), None);
    assert_eq!(p.scene, 2);
    assert_eq!(p.press(K::Escape), Some(Move::Leave));
}

#[test]
fn blank_toggles_and_a_move_ends_it() {
    let mut p = presenter(2);
    p.press(K::Blank);
    assert!(p.blank);
    p.press(K::Blank);
    assert!(!p.blank);
    p.press(K::Blank);
    p.press(K::Next);
    assert!(!p.blank);
}

#[test]
fn zoom_steps_and_is_bounded() {
    let mut p = presenter(1);
    assert_eq!(p.press(K::ZoomIn), Some(Move::Zoom));
    assert!((p.look.zoom - 1.7).abs() < 1e-6);
    for _ in 0..40 {
        p.press(K::ZoomOut);
    }
    assert!((p.look.zoom - 0.5).abs() < 1e-6);
}

#[test]
fn clicker_keys_are_recognised_and_ctrl_combinations_left_alone() {
    let key = |key, modifiers| egui::Event::Key {
        key,
        physical_key: None,
        pressed: true,
        repeat: false,
        modifiers,
    };
    let none = egui::Modifiers::NONE;
    assert_eq!(classify(&key(egui::Key::PageDown, none)), Some(K::Next));
    assert_eq!(classify(&key(egui::Key::Space, none)), Some(K::Next));
    assert_eq!(classify(&key(egui::Key::PageUp, none)), Some(K::Previous));
    assert_eq!(classify(&key(egui::Key::Num7, none)), Some(K::Digit(7)));
    assert_eq!(classify(&key(egui::Key::Period, none)), Some(K::Blank));
    assert_eq!(
        classify(&key(egui::Key::Plus, egui::Modifiers::SHIFT)),
        Some(K::ZoomIn)
    );
    assert_eq!(classify(&key(egui::Key::Plus, egui::Modifiers::CTRL)), None);
    assert_eq!(classify(&key(egui::Key::A, none)), None);
}

#[test]
fn notes_name_the_scene_and_views_map_both_ways() {
    let p = presenter(2);
    assert_eq!(p.notes_text(), "── scene 1 of 2 · caption 0\nsay 0");
    for view in LessonView::ALL {
        assert_eq!(lesson_view(view_of(view)), Some(view));
    }
    assert_eq!(view_of(LessonView::Tokens), View::Tokens);
}

#[test]
fn missing_models_say_what_to_run() {
    assert!(missing_model_hint("models/demo-mlm").contains("bash scripts/build-demo-mlm.sh"));
    assert!(missing_model_hint("bert-base-chinese").contains("hf download bert-base-chinese"));
    assert!(missing_model_hint("google-bert/bert-base-chinese").contains("Hugging Face cache"));
    assert!(missing_model_hint("/data/my-model").contains("config.json"));
}
