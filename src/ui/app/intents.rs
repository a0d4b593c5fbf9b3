//! What the user asked for in a frame (views' intents, the keyboard), applied
//! to the app's state.

use std::path::PathBuf;

use crate::ui::app::BertscopeApp;
use crate::ui::intent::Intent;
use crate::ui::state::View;
use crate::ui::worker::Request;

impl BertscopeApp {
    pub(super) fn apply(&mut self, intent: Intent) {
        let sel = &mut self.settings.selection;
        match intent {
            Intent::SetLayer(l) => sel.layer = l,
            Intent::ToggleHead(h) => sel.toggle_head(h),
            Intent::IsolateHead(h) => sel.isolate_head(h),
            Intent::FocusHead(h) => sel.focus_head = h,
            Intent::SetFilter(f) => sel.filter = f,
            Intent::SetHideSpecial(v) => sel.hide_special = v,
            Intent::SetRenormalize(v) => sel.renormalize = v,
            Intent::SetContrast(c) => sel.contrast = c,
            Intent::FindSimilar(token) => self.find_similar(token),
            Intent::Hover(f) => self.hover = if self.screenshot.is_some() { None } else { f },
            // A click on the pinned token unpins it.
            Intent::Pin(f) => self.pinned = if f == self.pinned { None } else { f },
            Intent::OpenHead { layer, head } => {
                sel.layer = layer;
                sel.focus_head = head;
                sel.heads_on.iter_mut().for_each(|on| *on = false);
                if let Some(on) = sel.heads_on.get_mut(head) {
                    *on = true;
                }
                self.settings.view = View::Head;
            }
            Intent::ToggleMask(i) => {
                let masked = &mut self.settings.masked;
                match masked.iter().position(|&m| m == i) {
                    Some(pos) => {
                        masked.remove(pos);
                    }
                    None => masked.push(i),
                }
                self.request_analysis();
            }
            Intent::SetTopK(k) => {
                self.settings.top_k = k;
                self.request_analysis();
            }
            Intent::ShowView(v) => self.settings.view = v,
            Intent::CompareHead { layer, head } => {
                sel.layer = layer;
                sel.focus_head = head;
                for (i, on) in sel.heads_on.iter_mut().enumerate() {
                    *on = i == head;
                }
            }
            Intent::ShowEpoch(epoch) => {
                self.tuning.mean_changes = None;
                self.tuning.use_mean = false;
                self.worker.send(Request::ShowEpoch { epoch });
                self.request_analysis();
            }
            Intent::UseMeanChanges(on) => {
                self.tuning.use_mean = on;
                if on && self.tuning.mean_changes.is_none() {
                    self.tuning
                        .request_mean_changes(&self.settings.train, &mut self.worker);
                }
            }
            intent @ (Intent::ToggleAblation { .. }
            | Intent::ResetAblation
            | Intent::SetAblateMode(_)
            | Intent::ShowNeurons(_)
            | Intent::NeuronKey(_)
            | Intent::SetWords(_)) => self.apply_inspect(intent),
            Intent::Train(action) => {
                let base = self.model_info().map(|i| PathBuf::from(&i.path));
                let ctx = self.repaint.clone();
                if let Some(view) = self.tuning.act(
                    action,
                    &mut self.settings.train,
                    &mut self.worker,
                    base.as_deref(),
                    move || ctx.request_repaint(),
                ) {
                    self.settings.view = view;
                }
            }
        }
    }

    pub(super) fn keyboard(&mut self, ctx: &egui::Context) {
        if ctx.memory(|m| m.focused().is_some()) {
            return;
        }
        let Some(info) = self.model_info() else {
            return;
        };
        let (layers, heads) = (info.layers, info.heads);
        let sel = &mut self.settings.selection;
        ctx.input(|i| {
            if i.key_pressed(egui::Key::ArrowDown) {
                sel.layer = (sel.layer + 1).min(layers.saturating_sub(1));
            }
            if i.key_pressed(egui::Key::ArrowUp) {
                sel.layer = sel.layer.saturating_sub(1);
            }
            if i.key_pressed(egui::Key::ArrowRight) {
                sel.focus_head = (sel.focus_head + 1) % heads.max(1);
            }
            if i.key_pressed(egui::Key::ArrowLeft) {
                sel.focus_head = (sel.focus_head + heads.max(1) - 1) % heads.max(1);
            }
            if i.key_pressed(egui::Key::Space) {
                sel.toggle_head(sel.focus_head);
            }
            if i.key_pressed(egui::Key::Escape) {
                self.pinned = None;
            }
        });
    }
}
