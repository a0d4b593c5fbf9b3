//! *Export…* and *Copy image*: the current view drawn again headless
//! (`crate::export`, on a job thread) to an SVG or PNG file, or to the
//! clipboard as an image for a slide.

use std::path::PathBuf;

use egui::RichText;

use crate::export::{self, frame, Format};
use crate::ui::app::AppOptions;
use crate::ui::support::job::Job;
use crate::write_guard::Protected;

/// The panel's choices and its jobs.
#[derive(Default)]
pub struct ExportPanel {
    pub open: bool,
    /// Where *Save* writes (`.svg` or `.png`).
    pub path: String,
    /// Pixels per point: 1, 2 or 4.
    pub scale: u8,
    pub light: bool,
    pub transparent: bool,
    pub no_caption: bool,
    /// The whole frame with its control rows (default: the figure alone).
    pub with_controls: bool,
    dialog: Option<Job<Option<PathBuf>>>,
    job: Option<Job<Result<String, String>>>,
    /// What the last export did.
    pub message: Option<Result<String, String>>,
}

/// What the user asked the panel for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportAction {
    Save,
    Copy,
}

impl ExportPanel {
    /// Closed, 2×, dark, with a caption.
    pub fn new() -> Self {
        ExportPanel {
            scale: 2,
            ..Default::default()
        }
    }

    pub fn busy(&self) -> bool {
        self.job.is_some()
    }

    pub fn scale(&self) -> f32 {
        match self.scale {
            1 | 2 | 4 => self.scale as f32,
            _ => 2.0,
        }
    }

    /// Pick up finished dialogs and exports.
    pub fn poll(&mut self) {
        if let Some(result) = self.dialog.as_ref().and_then(Job::poll) {
            self.dialog = None;
            match result {
                Ok(Some(path)) => self.path = path.display().to_string(),
                Ok(None) => {}
                Err(e) => self.message = Some(Err(e)),
            }
        }
        if let Some(result) = self.job.as_ref().and_then(Job::poll) {
            self.job = None;
            self.message = Some(result.and_then(|r| r));
        }
    }

    /// The panel under the view tabs; an action when *Save* or *Copy* is pressed.
    pub fn show(&mut self, ui: &mut egui::Ui, repaint: &egui::Context) -> Option<ExportAction> {
        let mut action = None;
        ui.horizontal_wrapped(|ui| {
            ui.label(RichText::new("Export this view:").strong());
            let field = ui.add(
                egui::TextEdit::singleline(&mut self.path)
                    .desired_width(260.0)
                    .hint_text("picture.svg, .png or .pdf"),
            );
            field.widget_info(|| {
                egui::WidgetInfo::labeled(egui::Role::TextInput, true, "Export file")
            });
            if ui.button("Browse…").clicked() && self.dialog.is_none() {
                let ctx = repaint.clone();
                let pick = || {
                    rfd::FileDialog::new()
                        .set_title("Export the view")
                        .add_filter("SVG (vector, editable)", &["svg"])
                        .add_filter("PNG", &["png"])
                        .add_filter("PDF (vector, for LaTeX)", &["pdf"])
                        .save_file()
                };
                self.dialog = Some(Job::spawn("export dialog", pick, move || {
                    ctx.request_repaint()
                }));
            }
            egui::ComboBox::from_label("Scale")
                .selected_text(format!("{}×", self.scale()))
                .show_ui(ui, |ui| {
                    for s in [1u8, 2, 4] {
                        ui.selectable_value(&mut self.scale, s, format!("{s}×"));
                    }
                });
            ui.checkbox(&mut self.light, "Light background");
            ui.checkbox(&mut self.transparent, "Transparent (PNG)");
            ui.checkbox(&mut self.no_caption, "No caption");
            ui.checkbox(&mut self.with_controls, "With controls")
                .on_hover_text(
                    "the whole frame, control rows included, instead of the figure alone",
                );
            let idle = !self.busy();
            if ui.add_enabled(idle, egui::Button::new("Save")).clicked() {
                action = Some(ExportAction::Save);
            }
            if ui
                .add_enabled(idle, egui::Button::new("Copy image"))
                .on_hover_text("Ctrl+Shift+C: the view as a PNG on the clipboard")
                .clicked()
            {
                action = Some(ExportAction::Copy);
            }
            if self.busy() {
                ui.add(egui::Spinner::new());
                ui.label("drawing…");
            }
        });
        match &self.message {
            Some(Ok(m)) => {
                ui.label(m);
            }
            Some(Err(e)) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            None => {}
        }
        action
    }

    /// Start `action` for the view `options` describe, `size` points large.
    pub fn start(
        &mut self,
        action: ExportAction,
        options: AppOptions,
        size: egui::Vec2,
        protected: Protected,
        repaint: &egui::Context,
    ) {
        if self.busy() {
            return;
        }
        let scale = self.scale();
        let notify = {
            let ctx = repaint.clone();
            move || ctx.request_repaint()
        };
        self.message = None;
        match action {
            ExportAction::Save => {
                let path = PathBuf::from(self.path.trim());
                let Some(format) = Format::of(&path) else {
                    self.message = Some(Err(
                        "name the export file .svg (vector), .png (pixels) or .pdf (vector)".into(),
                    ));
                    return;
                };
                let work = move || save(options, size, scale, format, &path, &protected);
                self.job = Some(Job::spawn("export", work, notify));
            }
            ExportAction::Copy => {
                let work = move || copy(options, size, scale);
                self.job = Some(Job::spawn("copy image", work, notify));
            }
        }
    }
}

fn save(
    options: AppOptions,
    size: egui::Vec2,
    scale: f32,
    format: Format,
    path: &std::path::Path,
    protected: &Protected,
) -> Result<String, String> {
    let picture = frame::render(options, size, scale)?;
    let bytes = export::encode(&picture, format).map_err(|e| e.to_string())?;
    export::write(path, &bytes, protected).map_err(|e| e.to_string())?;
    Ok(format!("saved {}", path.display()))
}

fn copy(options: AppOptions, size: egui::Vec2, scale: f32) -> Result<String, String> {
    let picture = frame::render(options, size, scale)?;
    let png = picture.png()?;
    let image = image::load_from_memory(&png)
        .map_err(|e| format!("cannot read back the picture: {e}"))?
        .to_rgba8();
    let (width, height) = image.dimensions();
    let mut clipboard = arboard::Clipboard::new().map_err(|e| format!("no clipboard here: {e}"))?;
    clipboard
        .set_image(arboard::ImageData {
            width: width as usize,
            height: height as usize,
            bytes: image.into_raw().into(),
        })
        .map_err(|e| format!("cannot put the image on the clipboard: {e}"))?;
    Ok(format!("copied a {width}×{height} image"))
}
