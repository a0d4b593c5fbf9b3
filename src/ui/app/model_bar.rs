//! The model bar (load a model, its summary, the spinner) and the screens
//! shown while there is no model to draw.

use egui::RichText;

use crate::ui::app::{BertscopeApp, ModelStatus};
use crate::ui::support::job::Job;

impl BertscopeApp {
    pub(super) fn model_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.strong("bertscope");
            ui.separator();
            let field = ui.add(
                egui::TextEdit::singleline(&mut self.model_field)
                    .desired_width(320.0)
                    .hint_text("model directory or Hub id in the cache"),
            );
            field.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, "Model"));
            let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui.button("Load").clicked() || enter {
                let spec = self.model_field.trim().to_string();
                if !spec.is_empty() {
                    self.load_model(spec);
                }
            }
            if ui.button("Open folder…").clicked() && self.folder_dialog.is_none() {
                let ctx = self.repaint.clone();
                let pick = || {
                    rfd::FileDialog::new()
                        .set_title("Open a BERT model folder")
                        .pick_folder()
                };
                let notify = move || ctx.request_repaint();
                self.folder_dialog = Some(Job::spawn("folder dialog", pick, notify));
            }
            self.lesson_menu(ui);
            ui.separator();
            match &self.status {
                ModelStatus::Ready(info) => {
                    ui.label(format!(
                        "{}: {} layers × {} heads, vocabulary {}{}",
                        info.spec,
                        info.layers,
                        info.heads,
                        info.vocab_size,
                        if info.has_mlm { ", masked-LM head" } else { "" }
                    ));
                }
                ModelStatus::Loading(spec) => {
                    ui.label(format!("loading {spec}…"));
                }
                ModelStatus::Failed { .. } => {
                    ui.colored_label(ui.visuals().error_fg_color, "model failed to load");
                }
                ModelStatus::None => {
                    ui.label("no model");
                }
            }
            if self.busy() {
                ui.add(egui::Spinner::new()).on_hover_text("working");
            }
        });
        if let Some(error) = &self.thread_error {
            let mut dismiss = false;
            ui.horizontal(|ui| {
                ui.colored_label(ui.visuals().error_fg_color, error);
                dismiss = ui.button("Dismiss").clicked();
            });
            if dismiss {
                self.thread_error = None;
            }
        }
    }

    fn welcome(&mut self, ui: &mut egui::Ui) {
        ui.heading("Welcome to bertscope");
        ui.label("No model is loaded. To get one:");
        ui.label(
            "• click “Open folder…” and pick a folder with config.json, weights and a tokenizer;",
        );
        ui.label("• drag and drop a model folder onto this window;");
        ui.label("• type a directory or a Hugging Face Hub id from your cache (e.g. bert-base-chinese) above and press Load;");
        ui.label("• or fetch the demo model: bash scripts/fetch-demo-model.sh");
    }

    /// The welcome or failure screen when no model is there to show; `true`
    /// when the views can be drawn.
    pub(super) fn model_screen(&mut self, ui: &mut egui::Ui) -> bool {
        if self.present_model_screen(ui) {
            return false;
        }
        match &self.status {
            ModelStatus::None => self.welcome(ui),
            ModelStatus::Failed { spec, error } => {
                ui.heading(format!("Could not load {spec}"));
                ui.label(
                    RichText::new(error)
                        .color(ui.visuals().error_fg_color)
                        .monospace(),
                );
                ui.add_space(8.0);
                self.welcome(ui);
            }
            ModelStatus::Loading(_) | ModelStatus::Ready(_) => return true,
        }
        false
    }
}
