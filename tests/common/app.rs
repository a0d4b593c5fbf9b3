//! The app in egui_kittest for the training-side tests: built on a fixture
//! model in the training view, stepped until something holds, clicked.

use std::path::Path;
use std::time::{Duration, Instant};

use bertscope::ui::state::View;
use bertscope::ui::{AppOptions, BertscopeApp};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;

pub type App = Harness<'static, BertscopeApp>;

/// The app on the tiny `mlm-safetensors` model in the training view, its
/// runs folder in `dir`, once the model has loaded.
pub fn training_app(dir: &Path, text_a: Option<&str>, text_b: Option<&str>) -> App {
    let options = AppOptions {
        model: Some(
            super::fixture_model("mlm-safetensors")
                .display()
                .to_string(),
        ),
        text_a: text_a.map(str::to_string),
        text_b: text_b.map(str::to_string),
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

/// Step the UI until `done` (the workers run on their own threads).
pub fn wait_until(h: &mut App, what: &str, done: impl Fn(&BertscopeApp) -> bool) {
    let start = Instant::now();
    while !done(h.state()) {
        let app = h.state();
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "timed out waiting for {what}: run {:?}, log {:?}",
            app.tuning.run.status,
            app.tuning.run.log.iter().rev().take(3).collect::<Vec<_>>()
        );
        h.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    h.run_steps(3);
}

/// Scroll a widget into view (the views scroll), then click it.
pub fn click(h: &mut App, label: &str) {
    h.get_by_label(label).scroll_to_me();
    h.run_steps(15); // scrolling is animated
    h.get_by_label(label).click();
    h.run_steps(1);
}
