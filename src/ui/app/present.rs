//! The app in presentation mode: a scene becomes the app's settings (text,
//! view, layer, heads, masks, words; its model loaded on the worker when it
//! differs), the keys move between scenes, and the frame is the caption bar
//! over the view, without the model bar and the input panel.

use crate::lesson::Scene;
use crate::ui::app::startup::Startup;
use crate::ui::app::{BertscopeApp, ModelStatus};
use crate::ui::inspect::InspectSettings;
use crate::ui::present::screen::{self, Status};
use crate::ui::present::{keys, view_of, Move, Pending, Presenter};
use crate::ui::selection::Selection;
use crate::ui::worker::Request;

impl BertscopeApp {
    /// The presentation, if the app shows one.
    pub fn presenter(&self) -> Option<&Presenter> {
        self.lessons.present.as_ref()
    }

    /// At start: the projector look (not for an export) and the first scene.
    pub(super) fn start_lesson(&mut self, ctx: &egui::Context) {
        let Some(p) = &self.lessons.present else {
            return;
        };
        if self.export.is_none() {
            screen::apply_look(ctx, &p.look);
        }
        self.go_to_scene(p.scene);
    }

    /// Whether the scene's settings that wait for its model are applied.
    pub(super) fn scene_settled(&self) -> bool {
        self.lessons
            .present
            .as_ref()
            .is_none_or(|p| p.pending.is_none())
    }

    /// Show scene `n` as the lesson gives it, whatever was changed on screen.
    fn go_to_scene(&mut self, n: usize) {
        let Some(p) = &mut self.lessons.present else {
            return;
        };
        let Some(scene) = p.lesson.scenes.get(n).cloned() else {
            return;
        };
        let spec = p.lesson.model_of(n).map(str::to_string);
        p.pending = Some(Pending {
            heads: scene.heads.clone(),
            tuned: scene.tuned.clone(),
            data: scene.data.clone(),
        });
        if let Some(dir) = &scene.tuned {
            p.notice = crate::lesson::tuned_missing(dir, spec.as_deref());
        }
        if self.export.is_none() {
            eprintln!("{}\n", p.notes_text());
        }
        self.apply_scene(scene);
        match spec {
            Some(spec) if self.needs_load(&spec) => self.load_model(spec),
            _ => self.request_analysis(),
        }
    }

    fn apply_scene(&mut self, scene: Scene) {
        let s = &mut self.settings;
        s.text_a = scene.text_a;
        s.text_b = scene.text_b.unwrap_or_default();
        s.view = view_of(scene.view);
        s.masked = scene.masked;
        s.selection = Selection {
            layer: scene.layer.unwrap_or(0),
            focus_head: scene.heads.first().copied().unwrap_or(0),
            words: scene.word_level,
            ..Selection::default()
        };
        s.inspect = InspectSettings::default();
        self.pinned = None;
        self.hover = None;
        self.dirty_since = None;
        self.analysis_error = None;
        self.set_analysis(None);
    }

    /// Whether `spec` is not the model loaded (or loading); a model that
    /// failed is tried again (the lecturer may have built it meanwhile).
    fn needs_load(&self, spec: &str) -> bool {
        match &self.status {
            ModelStatus::Ready(info) => info.spec != spec,
            ModelStatus::Loading(loading) => loading != spec,
            ModelStatus::None | ModelStatus::Failed { .. } => true,
        }
    }

    /// Once the scene's model is loaded: its heads, tuned model and data.
    pub(super) fn present_poll(&mut self) {
        let Some(p) = &mut self.lessons.present else {
            return;
        };
        let (layers, heads) = match &self.status {
            ModelStatus::Ready(info) => (info.layers, info.heads),
            ModelStatus::Failed { .. } => {
                p.pending = None;
                return;
            }
            ModelStatus::None | ModelStatus::Loading(_) => return,
        };
        let Some(pending) = p.pending.take() else {
            return;
        };
        let sel = &mut self.settings.selection;
        if sel.layer >= layers {
            p.notice = Some(format!("this model has layers 0 to {}", layers - 1));
            sel.layer = layers - 1;
        }
        let shown: Vec<usize> = pending
            .heads
            .iter()
            .copied()
            .filter(|&h| h < heads)
            .collect();
        if shown.len() < pending.heads.len() {
            p.notice = Some(format!("this model has heads 0 to {}", heads - 1));
        }
        if let Some(&first) = shown.first() {
            sel.heads_on = (0..heads).map(|h| shown.contains(&h)).collect();
            sel.focus_head = first;
        }
        self.scene_models(pending);
    }

    /// The tuned model and the training data a scene names, asked of the worker.
    fn scene_models(&mut self, pending: Pending) {
        let open = self.tuning.tuned.as_ref().map(|t| t.dir.clone());
        let tuned = match pending.tuned {
            Some(dir) if open.as_ref() != Some(&dir) => {
                self.settings.train.tuned_path = dir.display().to_string();
                self.tuning.comparison = None;
                self.tuning.mean_changes = None;
                self.worker.send(Request::LoadTuned { dir: Some(dir) });
                true
            }
            Some(_) => false,
            None => {
                if open.is_some() && !self.tuning.training() {
                    self.worker.send(Request::LoadTuned { dir: None });
                }
                false
            }
        };
        let preview = pending.data.is_some();
        if let Some(data) = pending.data {
            self.settings.train.data_path = data.display().to_string();
            self.tuning
                .load_data(&self.settings.train, &mut self.worker, true);
        }
        if tuned || preview {
            self.startup = Startup::Awaiting { tuned, preview };
        }
    }

    /// The keys of presentation mode, before the app's own.
    fn present_keys(&mut self, ctx: &egui::Context) {
        for key in keys::take(ctx) {
            let Some(p) = &mut self.lessons.present else {
                return;
            };
            match p.press(key) {
                Some(Move::GoTo(n)) => self.go_to_scene(n),
                Some(Move::Leave) => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
                Some(Move::Zoom) => ctx.set_zoom_factor(p.look.zoom),
                None => {}
            }
        }
    }

    /// One frame in presentation mode (not an export).
    pub(super) fn present_frame(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.present_keys(&ctx);
        self.keyboard(&ctx);
        let blank = self.lessons.present.as_ref().is_some_and(|p| p.blank);
        if blank {
            let black = egui::Frame::NONE.fill(egui::Color32::BLACK);
            egui::CentralPanel::default()
                .frame(black)
                .show(ui, screen::blank);
        } else {
            let progress = self.progress_line();
            if let Some(p) = &self.lessons.present {
                let status = Status {
                    progress: progress.as_deref(),
                };
                egui::Panel::top("lesson-caption")
                    .show(ui, |ui| screen::caption_bar(ui, p, &status));
            }
            return self.central_frame(ui, Vec::new());
        }
        let ready = self.result_ready();
        if let Some(job) = &mut self.screenshot {
            job.frame(&ctx, ready);
        }
    }

    /// "loading MODEL…" while the scene's model loads.
    fn progress_line(&self) -> Option<String> {
        match &self.status {
            ModelStatus::Loading(spec) => Some(format!("loading {spec}…")),
            ModelStatus::Ready(_) if self.busy() => Some("running the model…".into()),
            _ => None,
        }
    }

    /// Presentation mode's screen for a scene whose model failed to load;
    /// `false` when there is none to show.
    pub(super) fn present_model_screen(&self, ui: &mut egui::Ui) -> bool {
        match (&self.lessons.present, &self.status) {
            (Some(_), ModelStatus::Failed { spec, error }) => {
                screen::model_missing(ui, spec, error);
                true
            }
            _ => false,
        }
    }
}
