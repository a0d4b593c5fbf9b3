//! What presentation mode draws around the views: the projector theme and
//! zoom, the caption bar (caption, "scene k of n", progress, a jump being
//! typed), the blank screen and the screen of a scene whose model is missing.

use egui::{Color32, RichText};

use crate::ui::present::{missing_model_hint, PresentLook, Presenter};

/// Caption size in points (before the zoom).
const CAPTION_SIZE: f32 = 26.0;

/// The zoom and the theme: light is black on white (high contrast for
/// projectors), dark brightens the text.
pub fn apply_look(ctx: &egui::Context, look: &PresentLook) {
    ctx.set_zoom_factor(look.zoom);
    let mut visuals = if look.light {
        let mut v = egui::Visuals::light();
        v.override_text_color = Some(Color32::BLACK);
        v.panel_fill = Color32::WHITE;
        v.window_fill = Color32::WHITE;
        v.extreme_bg_color = Color32::WHITE;
        v
    } else {
        let mut v = egui::Visuals::dark();
        v.override_text_color = Some(Color32::from_gray(235));
        v
    };
    visuals.widgets.noninteractive.bg_stroke.width = 1.5;
    ctx.set_visuals(visuals);
}

/// What the caption bar shows besides the scene's own text.
pub struct Status<'a> {
    /// "loading models/demo-mlm…", "running the model…".
    pub progress: Option<&'a str>,
}

/// The caption bar's contents: caption large, "scene k of n" and the title.
pub fn caption_bar(ui: &mut egui::Ui, presenter: &Presenter, status: &Status) {
    let scene = &presenter.lesson.scenes[presenter.scene];
    ui.add_space(6.0);
    ui.horizontal(|ui| {
        ui.label(RichText::new(presenter.position()).strong());
        ui.separator();
        ui.label(RichText::new(&presenter.lesson.title).weak());
        if let Some(progress) = status.progress {
            ui.separator();
            ui.add(egui::Spinner::new());
            ui.label(progress);
        }
        if !presenter.typed.is_empty() {
            ui.separator();
            let prompt = format!("go to scene {} (Enter)", presenter.typed);
            ui.label(RichText::new(prompt).strong());
        }
        if let Some(notice) = &presenter.notice {
            ui.separator();
            ui.colored_label(ui.visuals().warn_fg_color, notice);
        }
    });
    if let Some(caption) = scene.caption.as_deref().filter(|c| !c.trim().is_empty()) {
        ui.add_space(4.0);
        ui.label(RichText::new(caption).size(CAPTION_SIZE).strong());
    }
    ui.add_space(6.0);
}

/// B: the whole window black (B again, or a move, brings the scene back).
pub fn blank(ui: &mut egui::Ui) {
    let rect = ui.max_rect();
    ui.painter().rect_filled(rect, 0.0, Color32::BLACK);
    // An invisible label so that tests (and screen readers) can tell.
    ui.add(egui::Label::new(
        RichText::new("blank screen").color(Color32::BLACK),
    ));
}

/// A scene whose model could not be loaded: what is missing and what to run.
pub fn model_missing(ui: &mut egui::Ui, spec: &str, error: &str) {
    ui.add_space(12.0);
    ui.heading(
        RichText::new(format!(
            "This scene needs the model {spec}, which is not here."
        ))
        .size(CAPTION_SIZE),
    );
    ui.add_space(8.0);
    ui.label(
        RichText::new(missing_model_hint(spec))
            .size(CAPTION_SIZE * 0.8)
            .strong(),
    );
    ui.add_space(8.0);
    ui.label(
        RichText::new(error)
            .color(ui.visuals().error_fg_color)
            .monospace(),
    );
    ui.add_space(8.0);
    ui.label(
        "→ or PageDown: next scene · PageUp: previous · a number and Enter jumps · Esc leaves",
    );
}
