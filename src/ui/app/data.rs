//! The Data view's frame: its jobs polled, its actions applied (a row made
//! the input, *Find similar in data* started from a token of another view).

use crate::ui::app::{BertscopeApp, ModelStatus};
use crate::ui::data::jobs::FindQuery;
use crate::ui::data::view::DataAction;
use crate::ui::data::{find::FindAction, Models};
use crate::ui::intent::Intent;
use crate::ui::state::View;

impl BertscopeApp {
    /// The models the Data view's jobs run: the base model's folder and the
    /// open tuned run's.
    fn data_models(&self) -> Option<(Models, usize)> {
        let ModelStatus::Ready(info) = &self.status else {
            return None;
        };
        let models = Models {
            base: std::path::PathBuf::from(&info.path),
            tuned: self.tuning.tuned.as_ref().map(|t| t.dir.clone()),
        };
        Some((models, info.layers))
    }

    pub(super) fn data_tab(&mut self, ui: &mut egui::Ui) -> Vec<Intent> {
        let Some((models, layers)) = self.data_models() else {
            ui.label("Loading the model…");
            return Vec::new();
        };
        let ctx = ui.ctx().clone();
        self.data_view.poll(&ctx);
        // At start-up, once the tuned model asked for is open too.
        if self.startup.settled() && std::mem::take(&mut self.data_view.compute_on_open) {
            self.data_view
                .run(&models, layers, &self.settings.train, &ctx);
        }
        let mut intents = Vec::new();
        for action in crate::ui::data::show(ui, &mut self.data_view, layers) {
            match action {
                DataAction::Run => self
                    .data_view
                    .run(&models, layers, &self.settings.train, &ctx),
                DataAction::Cancel => self.data_view.cancel(),
                DataAction::Browse => self.data_view.browse(&ctx),
                DataAction::OpenRow { text_a, text_b }
                | DataAction::Find(FindAction::OpenRow { text_a, text_b }) => {
                    let s = &mut self.settings;
                    s.text_a = text_a;
                    s.text_b = text_b.unwrap_or_default();
                    s.masked.clear();
                    self.pinned = None;
                    self.request_analysis();
                    intents.push(Intent::ShowView(View::Head));
                }
                DataAction::Find(FindAction::Layer(layer)) => {
                    self.data_view.find_layer(layer, &ctx);
                }
                DataAction::Find(FindAction::Close) => self.data_view.find = None,
                DataAction::Find(FindAction::CancelBuild) => self.data_view.cancel(),
            }
        }
        intents
    }

    /// *Find similar in data* for token `token` of the current input, at
    /// the layer shown (its output: `hidden_states[layer + 1]`).
    pub(super) fn find_similar(&mut self, token: usize) {
        let Some((models, layers)) = self.data_models() else {
            return;
        };
        let Some(analysis) = &self.analysis else {
            return;
        };
        let text = analysis
            .attention
            .tokens
            .get(token)
            .cloned()
            .unwrap_or_default();
        let s = &self.settings;
        let query = FindQuery {
            text_a: s.text_a.clone(),
            text_b: (!s.text_b.trim().is_empty()).then(|| s.text_b.clone()),
            token,
            layer: (s.selection.layer + 1).min(layers),
        };
        let budget = crate::ui::training::disk::gb(s.train.epochs_budget_gb);
        let ctx = self.repaint.clone();
        self.data_view.find_similar(
            query,
            text,
            layers,
            &models,
            &self.settings.train,
            budget,
            &ctx,
        );
        self.settings.view = View::Data;
    }
}
