//! The model bar's *Lesson* menu: *Add this view to lesson* (the scene on
//! screen appended to an in-memory lesson) and *Save lesson…*.

use std::path::PathBuf;

use crate::lesson::{LessonView, Scene};
use crate::ui::app::BertscopeApp;
use crate::ui::present::lesson_view;
use crate::ui::state::View;
use crate::write_guard::Protected;

impl BertscopeApp {
    pub(super) fn lesson_menu(&mut self, ui: &mut egui::Ui) {
        self.lessons.draft.poll();
        let count = self.lessons.draft.lesson.scenes.len();
        let title = if count == 0 {
            "Lesson".to_string()
        } else {
            format!("Lesson ({count})")
        };
        ui.menu_button(title, |ui| {
            let can_add = self.model_info().is_some();
            let add = ui.add_enabled(can_add, egui::Button::new("Add this view to lesson"));
            if add.clicked() {
                let scene = self.scene_on_screen();
                let model = self.model_info().map(|i| i.spec.clone());
                self.lessons.draft.add(scene, model);
            }
            let draft = &self.lessons.draft;
            let can_save = count > 0 && !draft.saving();
            if ui
                .add_enabled(can_save, egui::Button::new("Save lesson…"))
                .clicked()
            {
                let ctx = self.repaint.clone();
                let protected = self.lesson_protected();
                self.lessons
                    .draft
                    .start_save(protected, move || ctx.request_repaint());
            }
            if let Some(message) = &self.lessons.draft.message {
                ui.label(message);
            }
            ui.weak("Present it: bertscope present LESSON.toml");
        });
    }

    /// The lesson *Add this view to lesson* builds.
    pub fn lesson_draft(&self) -> &crate::lesson::Lesson {
        &self.lessons.draft.lesson
    }

    /// The scene on screen: input, view, layer, heads drawn, masks, words.
    pub fn scene_on_screen(&self) -> Scene {
        let s = &self.settings;
        let sel = &s.selection;
        let heads_total = self.model_info().map_or(sel.heads_on.len(), |i| i.heads);
        let heads: Vec<usize> = (0..heads_total).filter(|&h| sel.head_on(h)).collect();
        let view = lesson_view(s.view).unwrap_or(LessonView::Head);
        let absolute = |p: &str| -> Option<PathBuf> {
            let p = p.trim();
            (!p.is_empty()).then(|| std::path::absolute(p).unwrap_or_else(|_| PathBuf::from(p)))
        };
        let tuned = self
            .tuning
            .tuned
            .as_ref()
            .map(|t| t.dir.display().to_string());
        let attention = matches!(s.view, View::Head | View::Model | View::Matrix);
        Scene {
            text_a: s.text_a.clone(),
            text_b: Some(s.text_b.clone()).filter(|b| !b.trim().is_empty()),
            view,
            model: None,
            layer: Some(sel.layer),
            heads: if heads.len() == heads_total {
                Vec::new()
            } else {
                heads
            },
            masked: s.masked.clone(),
            word_level: sel.words && attention,
            caption: Some(format!("{}, layer {}", s.view.label(), sel.layer)),
            notes: None,
            tuned: tuned
                .filter(|_| view.takes_tuned())
                .and_then(|t| absolute(&t)),
            data: (view == LessonView::Train)
                .then(|| absolute(&s.train.data_path))
                .flatten(),
        }
    }

    /// What a saved lesson must not overwrite: the model loaded, the tuned one.
    fn lesson_protected(&self) -> Protected {
        let mut protected = Protected::new();
        if let Some(info) = self.model_info() {
            protected.add("the model", std::path::Path::new(&info.path));
        }
        if let Some(tuned) = &self.tuning.tuned {
            protected.add("the tuned model", &tuned.dir);
        }
        protected
    }
}
