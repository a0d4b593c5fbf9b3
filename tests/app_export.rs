//! *Export…* in the app, driven by labels: the current view (its layer,
//! head selection and input) saved as SVG through the headless renderer, a
//! file that is not a picture refused and kept, a bad file name explained.

mod common;

use std::time::{Duration, Instant};

use bertscope::ui::app::ModelStatus;
use bertscope::ui::state::View;
use bertscope::ui::{AppOptions, BertscopeApp};
use common::*;
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;

fn app() -> Harness<'static, BertscopeApp> {
    let model = fixture_model("classifier").display().to_string();
    let options = AppOptions {
        model: Some(model),
        text_a: Some("the animals crossed the street".into()),
        view: Some(View::Head),
        layer: Some(1),
        fresh: true,
        bundled_font_only: true,
        ..Default::default()
    };
    let mut h = Harness::builder()
        .with_size(egui::Vec2::new(1280.0, 800.0))
        .build_eframe(move |cc| BertscopeApp::new(cc, options));
    wait(&mut h, |app| {
        !app.busy() && (app.analysis.is_some() || matches!(app.status, ModelStatus::Failed { .. }))
    });
    h
}

fn wait(h: &mut Harness<'static, BertscopeApp>, done: impl Fn(&BertscopeApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the app did not settle"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
    h.run_steps(2);
}

/// Set the export file, press Save and wait for the panel's answer.
fn save_to(h: &mut Harness<'static, BertscopeApp>, path: &str) -> String {
    h.state_mut().set_export_path(path);
    h.run_steps(1);
    h.get_by_label("Save").click();
    h.run_steps(2);
    let start = Instant::now();
    loop {
        if let Some(m) = h.state().export_message() {
            return m;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no export answer"
        );
        h.step();
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn the_current_view_is_saved_as_svg_and_foreign_files_are_kept() {
    let mut h = app();
    h.get_by_label("Export…").click();
    h.run_steps(2);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("view.svg");
    let message = save_to(&mut h, out.to_str().unwrap());
    assert!(message.starts_with("saved"), "{message}");
    let svg = std::fs::read_to_string(&out).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    assert!(
        texts.iter().any(|t| t.contains("layer 1")),
        "caption names layer 1"
    );
    assert!(texts.iter().any(|t| t.trim() == "street"), "tokens drawn");
    assert!(
        !texts.iter().any(|t| t.contains("Open folder")),
        "no window furniture"
    );
    assert!(
        !texts.iter().any(|t| t.contains("Hide [CLS]/[SEP]")),
        "the figure alone by default"
    );

    let notes = dir.path().join("notes.png");
    std::fs::write(&notes, "mine").unwrap();
    let message = save_to(&mut h, notes.to_str().unwrap());
    assert!(message.contains("not an SVG, PNG or PDF"), "{message}");
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "mine");

    // *With controls*: the whole frame, control rows included.
    h.get_by_label("With controls").click();
    h.run_steps(2);
    let whole = dir.path().join("whole.svg");
    let message = save_to(&mut h, whole.to_str().unwrap());
    assert!(message.starts_with("saved"), "{message}");
    let svg = std::fs::read_to_string(&whole).unwrap();
    assert!(
        svg.contains("Hide [CLS]/[SEP]"),
        "control rows in a with-controls export"
    );

    let message = save_to(&mut h, "picture.jpg");
    assert!(message.contains(".svg"), "{message}");
}
