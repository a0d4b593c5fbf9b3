//! The compare view's frame: the layer/head controls, then the view, its
//! before/after explanations and head importance wired to the model worker
//! (the Explain view's method and word toggle, its importance file and rows).

use crate::ui::app::{BertscopeApp, ModelStatus};
use crate::ui::compare_view::explain::SidesInput;
use crate::ui::compare_view::importance::DataSource;
use crate::ui::compare_view::{self, BeforeAfterInput, Changes, CompareInput};
use crate::ui::controls;
use crate::ui::intent::Intent;

impl BertscopeApp {
    pub(super) fn compare_tab(&mut self, ui: &mut egui::Ui) -> Vec<Intent> {
        let mut intents = Vec::new();
        let Some(analysis) = self.analysis.as_ref() else {
            return intents;
        };
        let result = &analysis.attention;
        let s = &self.settings;
        let sel = &s.selection;
        let has_pair = result.token_type_ids.contains(&1);
        let (layers, heads) = (result.attentions.layers, result.attentions.heads);
        if !crate::ui::support::figure::only(ui.ctx()) {
            intents.extend(controls::show(ui, sel, layers, heads, has_pair));
            ui.separator();
        }
        let base_name = match &self.status {
            ModelStatus::Ready(info) => info.spec.as_str(),
            _ => "",
        };
        // The Explain view's importance file when one is set, else the training view's.
        let importance = &self.explain.importance;
        let path = match importance.path.trim() {
            "" => s.train.data_path.as_str(),
            chosen => chosen,
        };
        let t = &mut self.tuning;
        let before_after = BeforeAfterInput {
            state: &mut t.before_after,
            sides: SidesInput {
                text_a: &s.text_a,
                text_b: &s.text_b,
                text_settled: self.dirty_since.is_none(),
                method: &mut self.explain.method,
                words: &mut self.explain.words,
            },
            data: DataSource {
                path,
                max_rows: importance.max_rows,
                train: &s.train,
            },
            worker: &mut self.worker,
        };
        let input = CompareInput {
            base_name,
            base: result,
            base_masks: analysis.masks.as_deref(),
            tuned: t.tuned.as_ref(),
            comparison: t.comparison.as_ref(),
            changes: Changes {
                mean: t.mean_changes.as_ref().map(|(s, c)| (s.as_str(), c)),
                use_mean: t.use_mean,
            },
            sel,
            focus: self.pinned.or(self.hover),
            before_after: Some(before_after),
        };
        intents.extend(compare_view::show(ui, input));
        intents
    }
}
