//! The native window (eframe/egui). UI code draws plain data from the engine
//! (tokens, `AttentionMaps`, predictions) and never touches a tensor: a worker
//! thread owns the models and runs every forward pass.

// The frame and its state.
pub mod app;
pub mod close_guard;
pub mod inspect;
pub mod intent;
pub mod selection;
pub mod state;
// One file per view, and the panels around them.
pub mod ablation_bar;
pub mod compare_view;
pub mod controls;
pub mod examples;
pub mod export_panel;
pub mod head_view;
pub mod input_panel;
pub mod matrix_view;
pub mod mlm_panel;
pub mod model_view;
pub mod neuron_view;
pub mod tokens_view;
pub mod word_level;
// Multi-file capabilities, one folder each.
pub mod data;
pub mod explain;
pub mod heads;
pub mod present;
pub mod training;
pub mod worker;
// Drawing and window helpers.
pub mod support;

pub use app::{AppOptions, BertscopeApp};

/// Open the window and run until it is closed; with `--screenshot`, returns
/// where the PNG was saved (or why it was not).
pub fn run(
    mut options: AppOptions,
) -> Result<Option<Result<std::path::PathBuf, String>>, eframe::Error> {
    let sink = support::screenshot::ScreenshotSink::default();
    options.screenshot_sink = sink.clone();
    let size = if options.screenshot.is_some() {
        [1440.0, 900.0]
    } else {
        [1400.0, 900.0]
    };
    let mut viewport = egui::ViewportBuilder::default()
        .with_title("bertscope")
        .with_inner_size(size)
        .with_min_inner_size([800.0, 500.0])
        .with_drag_and_drop(true);
    // Presentation mode fills the screen (a screenshot keeps its fixed size).
    let presenting = options.lesson.is_some();
    if presenting && options.screenshot.is_none() {
        viewport = viewport.with_fullscreen(true);
    }
    let native = eframe::NativeOptions {
        viewport,
        persist_window: options.screenshot.is_none() && !presenting,
        ..Default::default()
    };
    eframe::run_native(
        "bertscope",
        native,
        Box::new(move |cc| Ok(Box::new(BertscopeApp::new(cc, options)))),
    )?;
    let outcome = sink.lock().ok().and_then(|mut s| s.take());
    Ok(outcome)
}
