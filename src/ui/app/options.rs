//! What the app is opened with: the command line's start-up options, and the
//! look of a headless export.

use std::path::PathBuf;

use candle_core::Device;

use crate::ui::state::{Settings, View};
use crate::ui::support::screenshot::ScreenshotSink;

/// Start-up options from the command line.
#[derive(Debug, Clone, Default)]
pub struct AppOptions {
    pub model: Option<String>,
    pub text_a: Option<String>,
    pub text_b: Option<String>,
    pub view: Option<View>,
    pub layer: Option<usize>,
    pub head: Option<usize>,
    pub screenshot: Option<PathBuf>,
    /// Receives the screenshot's outcome.
    pub screenshot_sink: ScreenshotSink,
    /// Ignore remembered settings (tests, screenshots).
    pub fresh: bool,
    /// Use only the bundled CJK font subset (tests: identical rendering everywhere).
    pub bundled_font_only: bool,
    pub device: Option<Device>,
    /// `--tuned`: a fine-tuned directory to compare with the base.
    pub tuned: Option<PathBuf>,
    /// `--train-data`: a data file to preview in the training view.
    pub train_data: Option<PathBuf>,
    /// `--watch`: a Trainer output folder to follow in the training view.
    pub watch: Option<PathBuf>,
    /// `--stage`: the Data view's stage once projected (default: the last).
    pub stage: Option<f32>,
    /// An export of the Heads view draws this run's answer, as on screen.
    pub heads_shown: Option<HeadsShown>,
    /// An export of the Data view draws this projection, as on screen.
    pub data_shown: Option<DataShown>,
    /// Where runs started in the app are written (default: the user's cache).
    pub runs_dir: Option<PathBuf>,
    /// `--mask-heads`: heads switched off.
    pub ablate: crate::HeadSet,
    /// `--neurons`: open the neuron panel on this (layer, head).
    pub neurons: Option<(usize, usize)>,
    /// `--query-token`: the neuron panel's query token.
    pub query_token: Option<usize>,
    /// `--words`: draw words instead of tokens.
    pub words: bool,
    /// Token positions to mask (the masked-LM view) once the model is loaded.
    pub masked: Vec<usize>,
    /// Drawn for a headless export: the view alone, no window furniture.
    pub export: Option<ExportLook>,
    /// The views' selection (layer, heads, filters) to start from.
    pub selection: Option<crate::ui::selection::Selection>,
    /// `bertscope present`: a lesson, shown from this scene on.
    pub lesson: Option<crate::ui::present::LessonStart>,
}

impl AppOptions {
    /// The command line's choices over the remembered settings.
    pub(crate) fn apply_to(&self, settings: &mut Settings) {
        if let Some(a) = &self.text_a {
            settings.text_a = a.clone();
            settings.text_b = self.text_b.clone().unwrap_or_default();
            settings.masked.clear();
        } else if let Some(b) = &self.text_b {
            settings.text_b = b.clone();
        }
        if let Some(view) = &self.view {
            settings.view = *view;
        }
        if let Some(selection) = self.selection.clone() {
            settings.selection = selection;
        }
        if let Some(layer) = self.layer {
            settings.selection.layer = layer;
        }
        if let Some(head) = self.head {
            settings.selection.focus_head = head;
        }
        if let Some(data) = &self.train_data {
            settings.train.data_path = data.display().to_string();
        }
        if let Some(dir) = &self.watch {
            settings.train.watch_path = dir.display().to_string();
            if self.view.is_none() {
                settings.view = View::Train;
            }
        }
    }
}

/// How a headless export (`bertscope export`, *Export…*) draws the window:
/// no model bar, inputs or view tabs; a caption line above the view if any.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportLook {
    pub caption: Option<String>,
    /// The whole frame with its control rows, not the figure alone.
    pub with_controls: bool,
    pub light: bool,
    /// No background at all (PNG).
    pub transparent: bool,
}

/// The Heads view's answer and the head selected, for an export.
#[derive(Debug, Clone)]
pub struct HeadsShown {
    pub measure: crate::ui::heads::Measure,
    pub source: String,
    pub answer: crate::ui::worker::HeadsAnswer,
    pub selected: Option<(usize, usize)>,
}

/// The Data view's projection, stage and colouring, for an export.
#[derive(Debug, Clone)]
pub struct DataShown {
    pub projected: crate::ui::data::jobs::Projected,
    pub stage: f32,
    pub colour: crate::ui::data::ColourBy,
}

/// Light or dark visuals for an export, or none at all for a transparent PNG.
pub(super) fn apply_export_look(ctx: &egui::Context, look: &ExportLook) {
    let mut visuals = if look.light {
        egui::Visuals::light()
    } else {
        egui::Visuals::dark()
    };
    if look.transparent {
        visuals.panel_fill = egui::Color32::TRANSPARENT;
        visuals.window_fill = egui::Color32::TRANSPARENT;
    }
    ctx.set_visuals(visuals);
    ctx.all_styles_mut(|style| style.interaction.tooltip_delay = f32::INFINITY);
}
