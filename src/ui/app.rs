//! The application: state, the worker conversation, debouncing, and the frame
//! layout (model bar, input panel, views); `app/responses.rs` applies the
//! worker's answers and `app/intents.rs` the user's requests. Closing the
//! window during a run asks first (`close_guard.rs`).

mod central;
mod compare;
mod data;
mod export;
mod heads;
mod inspect;
mod intents;
mod lesson_menu;
mod model_bar;
mod options;
mod present;
mod responses;
mod startup;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use candle_core::Device;
use egui::RichText;

use crate::catalog;
use crate::engine::Analysis;
use crate::ui::close_guard::{CloseAction, CloseGuard};
use crate::ui::explain::ExplainState;
use crate::ui::export_panel::ExportPanel;
use crate::ui::intent::{Intent, TokenFocus};
use crate::ui::state::{Settings, View, STORAGE_KEY};
use crate::ui::support::job::Job;
use crate::ui::support::screenshot::ScreenshotJob;
use crate::ui::support::{figure, fonts};
use crate::ui::training::Tuning;
use crate::ui::worker::{AnalyzeRequest, Fault, ModelInfo, Request, Slot, WorkerHandle};
use crate::ui::{examples, input_panel, model_view};
use options::apply_export_look;
pub use options::{AppOptions, ExportLook};
use startup::Startup;

/// Typing pauses this long before the model runs.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Where the model stands.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelStatus {
    /// No model found: the welcome screen.
    None,
    Loading(String),
    Ready(ModelInfo),
    Failed {
        spec: String,
        error: String,
    },
}

pub struct BertscopeApp {
    pub settings: Settings,
    pub status: ModelStatus,
    pub analysis: Option<Analysis>,
    pub analysis_error: Option<String>,
    worker: WorkerHandle,
    /// A background thread crashed or stopped (the model worker, a file
    /// dialog): shown under the model bar until dismissed.
    pub thread_error: Option<String>,
    dirty_since: Option<Instant>,
    hover: Option<TokenFocus>,
    pinned: Option<TokenFocus>,
    mlm_models: Vec<String>,
    cjk_font: fonts::CjkFont,
    model_field: String,
    folder_dialog: Option<Job<Option<PathBuf>>>,
    screenshot: Option<ScreenshotJob>,
    /// Set when the window is drawn for an export.
    export: Option<ExportLook>,
    /// *Export…* / *Copy image*.
    export_panel: ExportPanel,
    /// The central panel's size, which an export draws at.
    view_size: egui::Vec2,
    thumbnails: model_view::ThumbnailCache,
    /// `--head`: show only this head once the model's shape is known.
    pub tuning: Tuning,
    /// Wakes the UI from worker threads.
    repaint: egui::Context,
    /// `--head`/`--tuned`/`--train-data`, sent once a model is loaded.
    startup: Startup,
    /// Closing the window while a run trains asks first.
    pub close: CloseGuard,
    /// Ablation, neuron panel and word level: what was sent, caches.
    live: inspect::LiveInspect,
    /// The Explain view's state and cached explanations.
    pub explain: ExplainState,
    /// The Heads view: head statistics and the coreference probe over a file.
    pub heads: crate::ui::heads::HeadsState,
    /// The Data view: the projection and *Find similar in data*.
    pub data_view: crate::ui::data::DataState,
    /// The lesson presented, the one being built.
    lessons: crate::ui::present::Lessons,
}

impl BertscopeApp {
    pub fn new(cc: &eframe::CreationContext<'_>, options: AppOptions) -> Self {
        let cjk_font = fonts::install(&cc.egui_ctx, !options.bundled_font_only);
        let mut settings: Settings = if options.fresh {
            Settings::default()
        } else {
            cc.storage
                .and_then(|s| eframe::get_value(s, STORAGE_KEY))
                .unwrap_or_default()
        };
        let live = inspect::LiveInspect::from_options(&options, &mut settings);
        // Whether bf16 pays on this CPU, measured off the UI thread for the
        // training form's Precision row.
        if crate::model::grad_kernels::bf16_available() && options.export.is_none() {
            let ctx = cc.egui_ctx.clone();
            let _ = std::thread::Builder::new()
                .name("bertscope-bf16-speed".into())
                .spawn(move || {
                    crate::model::bf16_speed::measure();
                    ctx.request_repaint();
                });
        }
        let runs_dir = options
            .runs_dir
            .clone()
            .unwrap_or_else(crate::ui::training::worker::default_runs_dir);
        options.apply_to(&mut settings);
        // The tuned model of the last session comes back with it.
        let remembered_tuned = (!options.fresh)
            .then(|| PathBuf::from(settings.train.tuned_path.trim()))
            .filter(|dir| dir.join("config.json").is_file());
        let tuned = options.tuned.clone().or(remembered_tuned);
        let ctx = cc.egui_ctx.clone();
        let worker = WorkerHandle::spawn(
            options.device.unwrap_or(Device::Cpu),
            examples::example_inputs(),
            move || ctx.request_repaint(),
        );
        let model = options
            .model
            .or_else(|| settings.model.clone())
            .or_else(|| catalog::candidates().first().map(|(name, _)| name.clone()));
        let mut app = BertscopeApp {
            settings,
            status: ModelStatus::None,
            analysis: None,
            analysis_error: None,
            worker,
            thread_error: None,
            dirty_since: None,
            hover: None,
            pinned: options.query_token.map(TokenFocus::Query),
            mlm_models: Vec::new(),
            cjk_font,
            model_field: model.clone().unwrap_or_default(),
            folder_dialog: None,
            thumbnails: match options.export {
                Some(_) => model_view::ThumbnailCache::vector(),
                None => Default::default(),
            },
            tuning: Tuning::new(runs_dir.clone()),
            repaint: cc.egui_ctx.clone(),
            startup: Startup::BeforeModel {
                head: options.head.or(options.neurons.map(|(_, head)| head)),
                tuned,
                preview: options.train_data.is_some(),
                wait_for_tuned: options.tuned.is_some(),
            },
            close: CloseGuard::default(),
            live,
            explain: ExplainState::default(),
            heads: Default::default(),
            data_view: crate::ui::data::DataState::new(indexes_dir(&runs_dir)),
            screenshot: options
                .screenshot
                .map(|path| ScreenshotJob::new(path, options.screenshot_sink.clone())),
            export: options.export.clone(),
            export_panel: ExportPanel::new(),
            view_size: egui::vec2(1100.0, 800.0),
            lessons: crate::ui::present::Lessons::new(options.lesson.clone()),
        };
        if let Some(look) = &options.export {
            apply_export_look(&cc.egui_ctx, look);
        }
        if !options.masked.is_empty() {
            app.settings.masked = options.masked.clone();
        }
        // `--view heads`: the bundled English coreference set at once.
        app.heads.compute_on_open = app.settings.view == View::Heads;
        if app.heads.compute_on_open {
            app.heads.selected = options.layer.zip(options.head);
        }
        // `--view data --train-data FILE`: the projection at once.
        app.data_view.compute_on_open = app.settings.view == View::Data;
        app.data_view.still = app.screenshot.is_some() || app.export.is_some();
        app.data_view.start_stage = options.stage;
        if let Some(shown) = options.heads_shown.clone() {
            app.heads.compute_on_open = false;
            app.heads.measure = shown.measure;
            app.heads.selected = shown.selected;
            app.heads.result = Some((shown.measure, shown.source, Ok(shown.answer)));
        }
        if let Some(shown) = options.data_shown.clone() {
            app.data_view.compute_on_open = false;
            app.data_view
                .show_projected(shown.projected, shown.stage, shown.colour);
        }
        // `--view explain --train-data FILE`: head importance over FILE at once.
        app.explain.importance.compute_on_open =
            options.train_data.is_some() && app.settings.view == View::Explain;
        // `--view compare --train-data FILE`: importance before and after at once.
        app.tuning.before_after.importance.compute_on_open =
            options.train_data.is_some() && app.settings.view == View::Compare;
        if let Some(spec) = model {
            app.load_model(spec);
        }
        if options.watch.is_some() {
            let ctx = cc.egui_ctx.clone();
            app.tuning
                .watch(&app.settings.train, move || ctx.request_repaint());
        }
        app.start_lesson(&cc.egui_ctx);
        app
    }

    /// The central panel's views, then what follows them every frame: the
    /// intents applied (`before`'s first), the export panel, the inspection
    /// synced, the screenshot job.
    pub(super) fn central_frame(&mut self, ui: &mut egui::Ui, before: Vec<Intent>) {
        let ctx = ui.ctx().clone();
        let mut intents = before;
        let central = egui::CentralPanel::default().show(ui, |ui| intents.extend(self.central(ui)));
        self.view_size = central.response.rect.size();
        self.export_panel.poll();
        self.export_keys(&ctx);
        for intent in intents {
            self.apply(intent);
        }
        self.sync_inspect();
        let ready = self.result_ready();
        if let Some(job) = &mut self.screenshot {
            job.frame(&ctx, ready);
        }
    }

    /// Whether the window shows its final content: the model loaded (or
    /// failed) and every answer the current view waits for is in.
    pub fn result_ready(&self) -> bool {
        match &self.status {
            ModelStatus::Ready(_) => {
                !self.busy()
                    && (self.analysis.is_some() || self.analysis_error.is_some())
                    && self.startup.settled()
                    && (self.tuning.tuned.is_none()
                        || self.tuning.comparison.is_some()
                        || self.analysis_error.is_some())
                    && (self.settings.view != View::Explain || self.explain.settled())
                    && (self.settings.view != View::Heads || self.heads.settled())
                    && (self.settings.view != View::Data || self.data_view.settled())
                    && (self.settings.view != View::Compare
                        || self.tuning.tuned.is_none()
                        || self.tuning.before_after.settled())
                    && (self.settings.view != View::Model || self.thumbnails.settled())
                    && self.scene_settled()
            }
            ModelStatus::Failed { .. } | ModelStatus::None => true,
            ModelStatus::Loading(_) => false,
        }
    }

    /// The token the views focus on: pinned by a click, else hovered.
    pub fn focus(&self) -> Option<TokenFocus> {
        self.pinned.or(self.hover)
    }

    pub fn busy(&self) -> bool {
        match self.status {
            ModelStatus::Loading(_) => true,
            ModelStatus::Ready(_) => {
                self.worker.waiting(Slot::Analyze) || self.dirty_since.is_some()
            }
            ModelStatus::None | ModelStatus::Failed { .. } => false,
        }
    }

    /// Tests only: make the model worker panic, or end its thread.
    #[doc(hidden)]
    pub fn inject_worker_fault(&mut self, fault: Fault) {
        self.worker.send(Request::InjectFault(fault));
    }

    /// Show a new analysis (or none).
    fn set_analysis(&mut self, analysis: Option<Analysis>) {
        self.analysis = analysis;
        self.thumbnails.data_changed();
        self.live.words.data_changed();
    }

    fn load_model(&mut self, spec: String) {
        self.status = ModelStatus::Loading(spec.clone());
        self.model_field = spec.clone();
        self.worker.send(Request::Load { spec });
    }

    fn request_analysis(&mut self) {
        self.dirty_since = None;
        if !matches!(self.status, ModelStatus::Ready(_)) {
            return;
        }
        let inspect = self.inspect_to_send();
        let s = &self.settings;
        let b = s.text_b.trim();
        self.worker.send(Request::Analyze(AnalyzeRequest {
            text_a: s.text_a.clone(),
            text_b: (!b.is_empty()).then(|| s.text_b.clone()),
            masked: s.masked.clone(),
            top_k: s.top_k,
            inspect,
        }));
    }

    fn model_info(&self) -> Option<&ModelInfo> {
        match &self.status {
            ModelStatus::Ready(info) => Some(info),
            _ => None,
        }
    }

    /// A close of the window during a run is held back and asked about.
    fn guard_close(&mut self, ctx: &egui::Context) {
        let training = self.tuning.training();
        if ctx.input(|i| i.viewport().close_requested()) && self.close.close_requested(training) {
            ctx.send_viewport_cmd(egui::ViewportCommand::CancelClose);
        }
        let mut close = self.close.tick(training);
        if let Some(choice) = self.close.show(ctx) {
            match self.close.choose(choice) {
                CloseAction::Nothing => {}
                CloseAction::CancelRun => self.tuning.cancel_run(),
                CloseAction::Close => close = true,
            }
        }
        if close {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }

    fn receive_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if let Some(path) = dropped.into_iter().next() {
            if Tuning::is_data_file(&path) {
                self.settings.train.data_path = path.display().to_string();
                self.settings.view = View::Train;
                self.tuning
                    .load_data(&self.settings.train, &mut self.worker, true);
                return;
            }
            let dir = if path.is_file() {
                path.parent().map(PathBuf::from).unwrap_or(path)
            } else {
                path
            };
            // A run's output folder that is no model yet: follow the run.
            if crate::watch::looks_like_run(&dir) && !dir.join("config.json").is_file() {
                self.settings.train.watch_path = dir.display().to_string();
                self.settings.view = View::Train;
                let ctx = ctx.clone();
                self.tuning
                    .watch(&self.settings.train, move || ctx.request_repaint());
                return;
            }
            self.load_model(dir.display().to_string());
        }
        let chosen = self.folder_dialog.as_ref().and_then(Job::poll);
        if let Some(choice) = chosen {
            self.folder_dialog = None;
            match choice {
                Ok(Some(dir)) => self.load_model(dir.display().to_string()),
                Ok(None) => {}
                Err(e) => self.thread_error = Some(e),
            }
        }
    }
}

impl eframe::App for BertscopeApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        for response in self.worker.poll() {
            self.handle(response);
        }
        self.present_poll();
        self.tuning.poll(&mut self.settings.train, &mut self.worker);
        if let Some(after) = self.tuning.repaint_after() {
            ctx.request_repaint_after(after);
        }
        self.guard_close(&ctx);
        self.receive_files(&ctx);
        if let Some(since) = self.dirty_since {
            let left = DEBOUNCE.saturating_sub(since.elapsed());
            if left.is_zero() {
                self.request_analysis();
            } else {
                ctx.request_repaint_after(left);
            }
        }
        if self.lessons.present.is_some() && self.export.is_none() {
            return self.present_frame(ui);
        }
        self.keyboard(&ctx);

        let mut intents = Vec::new();
        if let Some(look) = &self.export {
            figure::begin(&ctx, !look.with_controls);
            if let Some(caption) = &look.caption {
                let figure_only = !look.with_controls;
                egui::Panel::top("caption").show(ui, |ui| {
                    ui.add_space(4.0);
                    if figure_only {
                        // Room on the right for a renderer whose font is wider.
                        ui.set_max_width(ui.available_width() * 0.8);
                    }
                    let label = ui.label(RichText::new(caption).strong());
                    figure::mark(ui.ctx(), label.rect);
                });
            }
            egui::CentralPanel::default().show(ui, |ui| intents = self.central(ui));
            intents.into_iter().for_each(|i| self.apply(i));
            return;
        }
        egui::Panel::top("model-bar").show(ui, |ui| self.model_bar(ui));
        let unknown = self
            .model_info()
            .map(|i| i.example_unknown.clone())
            .unwrap_or_default();
        egui::Panel::left("inputs")
            .default_size(320.0)
            .show(ui, |ui| {
                let s = &mut self.settings;
                match input_panel::show(ui, &mut s.text_a, &mut s.text_b, &unknown) {
                    Some(input_panel::InputAction::Edited) => {
                        s.masked.clear();
                        self.pinned = None;
                        self.dirty_since = Some(Instant::now());
                    }
                    Some(input_panel::InputAction::Example(e)) => {
                        s.text_a = e.text_a.to_string();
                        s.text_b = e.text_b.unwrap_or_default().to_string();
                        s.masked.clear();
                        self.pinned = None;
                        self.request_analysis();
                    }
                    None => {}
                }
            });
        self.central_frame(ui, intents);
    }

    /// egui's own memory (zoom, window positions) is the user's too: the
    /// presentation zoom or a screenshot's state must not come back in the
    /// next ordinary session.
    fn persist_egui_memory(&self) -> bool {
        self.screenshot.is_none() && self.lessons.present.is_none() && self.export.is_none()
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        // A lesson's scenes are not the user's own settings.
        if self.screenshot.is_none() && self.lessons.present.is_none() {
            eframe::set_value(storage, STORAGE_KEY, &self.settings);
        }
    }
}

/// Where the Data view keeps its indexes: beside the runs.
fn indexes_dir(runs_dir: &std::path::Path) -> std::path::PathBuf {
    match runs_dir.parent() {
        Some(parent) => parent.join("indexes"),
        None => runs_dir.join("indexes"),
    }
}
