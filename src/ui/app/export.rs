//! The app's side of *Export…* / *Copy image*: the options that redraw the
//! current view headless, and the keyboard shortcut.

use crate::ui::app::{AppOptions, BertscopeApp, ExportLook, ModelStatus};
use crate::ui::export_panel::ExportAction;
use crate::ui::intent::TokenFocus;
use crate::write_guard::Protected;

impl BertscopeApp {
    /// The export panel's last answer ("saved …", or what went wrong), once
    /// no export is running.
    pub fn export_message(&self) -> Option<String> {
        if self.export_panel.busy() {
            return None;
        }
        self.export_panel
            .message
            .clone()
            .map(|m| m.unwrap_or_else(|e| e))
    }

    /// The file *Save* writes to (as typed in the panel).
    pub fn set_export_path(&mut self, path: &str) {
        self.export_panel.path = path.to_string();
    }

    /// Ctrl+Shift+C copies the view as an image.
    pub(super) fn export_keys(&mut self, ctx: &egui::Context) {
        let copy = ctx.input_mut(|i| {
            i.consume_key(egui::Modifiers::CTRL | egui::Modifiers::SHIFT, egui::Key::C)
        });
        if copy {
            self.start_export(ExportAction::Copy);
        }
    }

    /// Draw the current view again, headless, for `action`.
    pub(super) fn start_export(&mut self, action: ExportAction) {
        let Some((options, protected)) = self.export_options() else {
            self.export_panel.message = Some(Err("load a model first".into()));
            return;
        };
        let size = self.view_size;
        let ctx = self.repaint.clone();
        self.export_panel
            .start(action, options, size, protected, &ctx);
    }

    /// Everything that makes the view look as it does now, for a fresh app
    /// in export mode; and the paths an export must not write over.
    fn export_options(&self) -> Option<(AppOptions, Protected)> {
        let ModelStatus::Ready(info) = &self.status else {
            return None;
        };
        let s = &self.settings;
        let panel = &self.export_panel;
        let tuned = self.tuning.tuned.as_ref().map(|t| t.dir.clone());
        let mut protected = Protected::new().with("the model", std::path::Path::new(&info.path));
        if let Some(dir) = &tuned {
            protected.add("the tuned model", dir);
        }
        let shown: Vec<usize> = (0..info.heads)
            .filter(|&h| s.selection.head_on(h))
            .collect();
        let text_b = (!s.text_b.trim().is_empty()).then_some(s.text_b.as_str());
        let caption = crate::export::caption(&crate::export::CaptionParts {
            model: &info.spec,
            view: s.view.label(),
            layer: Some(s.selection.layer),
            heads: Some(&shown),
            all_heads: info.heads,
            text_a: &s.text_a,
            text_b,
        });
        let heads = info.heads;
        let heads_shown = match (&self.heads.result, s.view) {
            (Some((measure, source, Ok(answer))), crate::ui::state::View::Heads) => {
                Some(crate::ui::app::options::HeadsShown {
                    measure: *measure,
                    source: source.clone(),
                    answer: answer.clone(),
                    selected: self.heads.selected,
                })
            }
            _ => None,
        };
        let data_shown = match (&self.data_view.result, s.view) {
            (Some(Ok(projected)), crate::ui::state::View::Data) => {
                Some(crate::ui::app::options::DataShown {
                    projected: projected.clone(),
                    stage: self.data_view.stage,
                    colour: self.data_view.colour,
                })
            }
            _ => None,
        };
        let options = AppOptions {
            heads_shown,
            data_shown,
            model: Some(info.path.clone()),
            text_a: Some(s.text_a.clone()),
            text_b: (!s.text_b.trim().is_empty()).then(|| s.text_b.clone()),
            view: Some(s.view),
            selection: Some(s.selection.clone()),
            ablate: s.inspect.ablated.clone(),
            neurons: s.inspect.neuron_head(&s.selection, heads),
            query_token: match self.pinned {
                Some(TokenFocus::Query(q)) => Some(q),
                _ => None,
            },
            words: s.selection.words,
            masked: s.masked.clone(),
            tuned,
            fresh: true,
            export: Some(ExportLook {
                caption: (!panel.no_caption).then_some(caption),
                with_controls: panel.with_controls,
                light: panel.light,
                transparent: panel.transparent,
            }),
            ..Default::default()
        };
        Some((options, protected))
    }
}
