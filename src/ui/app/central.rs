//! The central panel: the view tabs, and which view draws there with the
//! notices above it (the training, Explain, Heads and Data tabs, or the
//! views of one analysis).

use egui::RichText;

use crate::engine::Analysis;
use crate::ui::app::{BertscopeApp, ModelStatus};
use crate::ui::explain::ExplainInput;
use crate::ui::intent::Intent;
use crate::ui::state::View;
use crate::ui::support::{figure, fonts};
use crate::ui::training::view::{self as train_view, TrainViewState};
use crate::ui::{controls, head_view, mlm_panel, tokens_view};

/// The first code point of the CJK blocks (CJK Radicals Supplement): tokens
/// from here on need a CJK font.
const CJK_FIRST: char = '\u{2E80}';

/// The view tabs across the top.
fn view_tabs(ui: &mut egui::Ui, current: View, export_open: &mut bool) -> Vec<Intent> {
    let mut intents = Vec::new();
    ui.horizontal(|ui| {
        for view in View::ALL {
            if ui.selectable_label(current == view, view.label()).clicked() {
                intents.push(Intent::ShowView(view));
            }
        }
        ui.separator();
        ui.toggle_value(export_open, "Export…")
            .on_hover_text("Save this view as SVG or PNG, or copy it as an image (Ctrl+Shift+C)");
    });
    intents
}

impl BertscopeApp {
    pub(super) fn central(&mut self, ui: &mut egui::Ui) -> Vec<Intent> {
        // A model missing or failing is what the picture shows.
        if !figure::marked_scope(ui, |ui| self.model_screen(ui)) {
            return Vec::new();
        }
        let mut intents = Vec::new();
        if self.export.is_none() {
            intents.extend(view_tabs(
                ui,
                self.settings.view,
                &mut self.export_panel.open,
            ));
            if self.export_panel.open {
                let ctx = self.repaint.clone();
                if let Some(action) = self.export_panel.show(ui, &ctx) {
                    self.start_export(action);
                }
            }
            ui.separator();
        }
        if self.settings.view == View::Train {
            intents.extend(self.train_tab(ui));
            return intents;
        }
        if self.settings.view == View::Explain {
            intents.extend(figure::marked_scope(ui, |ui| self.explain_tab(ui)));
            return intents;
        }
        if self.settings.view == View::Heads {
            intents.extend(figure::marked_scope(ui, |ui| self.heads_tab(ui)));
            return intents;
        }
        if self.settings.view == View::Data {
            intents.extend(figure::marked_scope(ui, |ui| self.data_tab(ui)));
            return intents;
        }
        if let Some(error) = &self.analysis_error {
            let shown = ui.colored_label(ui.visuals().error_fg_color, error);
            figure::mark(ui.ctx(), shown.rect);
        }
        let Some(analysis) = &self.analysis else {
            ui.label("Running the model…");
            return intents;
        };
        if !figure::only(ui.ctx()) {
            self.notices(ui, analysis);
        }
        intents.extend(self.analysis_views(ui));
        intents
    }

    fn train_tab(&mut self, ui: &mut egui::Ui) -> Vec<Intent> {
        let state = TrainViewState {
            preview: self.tuning.preview.as_ref(),
            preview_error: self.tuning.preview_error.as_deref(),
            run: &self.tuning.run,
            tuned: self.tuning.tuned.as_ref(),
            message: self.tuning.note(),
            model_ready: matches!(self.status, ModelStatus::Ready(_)),
        };
        train_view::show(ui, &mut self.settings.train, &state)
            .into_iter()
            .map(Intent::Train)
            .collect()
    }

    fn explain_tab(&mut self, ui: &mut egui::Ui) -> Vec<Intent> {
        let ModelStatus::Ready(info) = &self.status else {
            ui.label("Loading the model…");
            return Vec::new();
        };
        let s = &self.settings;
        let input = ExplainInput {
            text_a: &s.text_a,
            text_b: &s.text_b,
            text_settled: self.dirty_since.is_none(),
            info,
            train: &s.train,
            selected: (s.selection.layer, s.selection.focus_head),
        };
        self.explain.show(ui, &input, &mut self.worker)
    }

    /// Warnings about the input shown above the views.
    fn notices(&self, ui: &mut egui::Ui, analysis: &Analysis) {
        let warn = ui.visuals().warn_fg_color;
        if analysis.attention.truncated {
            ui.colored_label(warn, "Input truncated to the model's maximum length.");
        }
        let needs_cjk = |t: &String| t.chars().any(|c| c >= CJK_FIRST);
        if self.cjk_font == fonts::CjkFont::BundledSubset
            && analysis.attention.tokens.iter().any(needs_cjk)
        {
            ui.colored_label(
                warn,
                "No system CJK font found: characters outside the examples may show as boxes; install fonts-wqy-microhei or Noto Sans CJK.",
            );
        }
    }

    /// The head, model, matrix, masked-LM and compare views of one analysis.
    fn analysis_views(&mut self, ui: &mut egui::Ui) -> Vec<Intent> {
        let mut intents = Vec::new();
        let Some(analysis) = self.analysis.as_ref() else {
            return intents;
        };
        let result = &analysis.attention;
        let sel = &self.settings.selection;
        let focus = self.pinned.or(self.hover);
        let has_pair = result.token_type_ids.contains(&1);
        let (layers, heads) = (result.attentions.layers, result.attentions.heads);
        let main = head_view::Panel::MAIN;
        match self.settings.view {
            View::Head | View::Model | View::Matrix => intents.extend(self.attention_views(ui)),
            View::MaskedLm => {
                let masks = analysis.masks.as_deref();
                let top_k = self.settings.top_k;
                let models = &self.mlm_models;
                intents.extend(figure::marked_scope(ui, |ui| {
                    mlm_panel::show(ui, result, masks, top_k, models)
                }));
                if !figure::only(ui.ctx()) {
                    ui.separator();
                    ui.label(RichText::new("Attention for the masked input:").strong());
                    intents.extend(controls::show(ui, sel, layers, heads, has_pair));
                }
                intents.extend(head_view::show(ui, result, sel, focus, main));
            }
            View::Compare => intents.extend(figure::marked_scope(ui, |ui| self.compare_tab(ui))),
            View::Tokens => {
                intents.extend(figure::marked_scope(ui, |ui| tokens_view::show(ui, result)))
            }
            View::Train | View::Explain | View::Heads | View::Data => {}
        }
        intents
    }
}
