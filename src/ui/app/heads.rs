//! The Heads view's frame: its runs on the model worker, a head clicked
//! selected in the other views, a row clicked made the input.

use crate::ui::app::{BertscopeApp, ModelStatus};
use crate::ui::heads::HeadsAction;
use crate::ui::intent::Intent;
use crate::ui::state::View;

impl BertscopeApp {
    /// The Heads view; a head clicked is selected in the other views, a row
    /// clicked becomes the input, shown in the head view.
    pub(super) fn heads_tab(&mut self, ui: &mut egui::Ui) -> Vec<Intent> {
        if !matches!(self.status, ModelStatus::Ready(_)) {
            ui.label("Loading the model…");
            return Vec::new();
        }
        self.heads.poll_dialog();
        let mut intents = Vec::new();
        let ctx = ui.ctx().clone();
        let mut actions = crate::ui::heads::show(ui, &mut self.heads);
        if std::mem::take(&mut self.heads.compute_on_open) {
            actions.push(HeadsAction::Run);
        }
        for action in actions {
            self.heads
                .act(&action, &mut self.worker, &self.settings.train, &ctx);
            match action {
                HeadsAction::SelectHead { layer, head } => {
                    intents.push(Intent::CompareHead { layer, head })
                }
                HeadsAction::OpenRow { text_a, text_b } => {
                    let s = &mut self.settings;
                    s.text_a = text_a;
                    s.text_b = text_b.unwrap_or_default();
                    s.masked.clear();
                    self.pinned = None;
                    self.request_analysis();
                    intents.push(Intent::ShowView(View::Head));
                }
                HeadsAction::OpenHead => intents.push(Intent::ShowView(View::Head)),
                HeadsAction::Run | HeadsAction::Cancel | HeadsAction::Browse => {}
            }
        }
        intents
    }
}
