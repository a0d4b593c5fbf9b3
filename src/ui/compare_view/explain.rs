//! The compare view's explanations before and after fine-tuning: the current
//! input explained by the "before" classifier (the run's epoch 0, else the
//! base's own) and by the tuned model, each as the Explain view's heat strip
//! with its target and summary. Computed on the model worker (progress per
//! side), cached per input and tuned model; errors shown in place.

use egui::RichText;

use crate::compare::{BeforeAfter, Side};
use crate::explain::Explanation;
use crate::ui::explain::{strip, Cache, Method};
use crate::ui::worker::{CompareKey, Request, TunedInfo, WorkerHandle};

type Answer = Result<BeforeAfter<Explanation>, String>;

/// The explanations being computed.
struct Pending {
    key: CompareKey,
    /// Integrated gradients' points done on a side, of all.
    progress: Option<(Side, usize, usize)>,
}

#[derive(Default)]
pub struct ExplainSides {
    cache: Cache<CompareKey, Answer>,
    pending: Option<Pending>,
}

impl ExplainSides {
    /// The key of an input on the tuned model shown.
    pub fn key(text_a: &str, text_b: &str, tuned: &TunedInfo) -> CompareKey {
        let b = text_b.trim();
        CompareKey {
            text_a: text_a.to_string(),
            text_b: (!b.is_empty()).then(|| b.to_string()),
            tuned: tuned.dir.clone(),
            epoch: tuned.shown_epoch,
        }
    }

    pub fn get(&self, key: &CompareKey) -> Option<&Answer> {
        self.cache.get(key)
    }

    /// Ask the worker for `key` unless it is cached or being computed.
    fn ensure(&mut self, key: &CompareKey, worker: &mut WorkerHandle) {
        if self.cache.get(key).is_some() || self.pending.as_ref().is_some_and(|p| p.key == *key) {
            return;
        }
        worker.send(Request::CompareExplain(key.clone()));
        self.pending = Some(Pending {
            key: key.clone(),
            progress: None,
        });
    }

    /// The worker's answer (to the newest request: the handle drops older
    /// ones), under the tuned model it was computed on.
    pub fn received(&mut self, key: CompareKey, result: Answer) {
        self.pending = None;
        self.cache.insert(key, result);
    }

    pub fn progress(&mut self, key: &CompareKey, side: Side, done: usize, total: usize) {
        let same_input =
            |p: &&mut Pending| p.key.text_a == key.text_a && p.key.text_b == key.text_b;
        if let Some(p) = self.pending.as_mut().filter(same_input) {
            p.progress = Some((side, done, total));
        }
    }

    /// A new base or tuned model: every explanation is out of date.
    pub fn clear(&mut self) {
        *self = ExplainSides::default();
    }

    /// Nothing is being computed.
    pub fn settled(&self) -> bool {
        self.pending.is_none()
    }
}

/// What the section draws from.
pub struct SidesInput<'a> {
    pub text_a: &'a str,
    pub text_b: &'a str,
    /// Typing has paused: the input may be sent to the worker.
    pub text_settled: bool,
    pub method: &'a mut Method,
    pub words: &'a mut bool,
}

/// Draw the section (asking the worker for what it lacks).
pub fn show(
    ui: &mut egui::Ui,
    state: &mut ExplainSides,
    input: &mut SidesInput,
    tuned: &TunedInfo,
    worker: &mut WorkerHandle,
) {
    ui.label(RichText::new("Explanations before and after fine-tuning").strong());
    ui.horizontal_wrapped(|ui| strip::method_bar(ui, input.method, input.words));
    let (method, words) = (*input.method, *input.words);
    ui.label(RichText::new(method.caption()).weak());
    ui.label("Each side explains its own predicted label.");
    let key = ExplainSides::key(input.text_a, input.text_b, tuned);
    if input.text_settled {
        state.ensure(&key, worker);
    }
    match state.get(&key) {
        None => waiting(ui, state.pending.as_ref()),
        Some(Err(e)) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        Some(Ok(sides)) => {
            ui.columns(2, |cols| {
                for (col, side) in cols.iter_mut().zip([Side::Before, Side::After]) {
                    side_column(col, sides, side, method, words);
                }
            });
        }
    }
}

fn waiting(ui: &mut egui::Ui, pending: Option<&Pending>) {
    ui.horizontal(|ui| {
        ui.add(egui::Spinner::new());
        match pending.and_then(|p| p.progress) {
            Some((side, done, total)) => {
                let bar = egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                    .desired_width(280.0)
                    .text(format!(
                        "{}: integrated gradients {done} of {total} points",
                        side.name()
                    ));
                ui.add(bar);
            }
            None if pending.is_some() => {
                ui.label("Explaining both models: gradients through each…");
            }
            None => {
                ui.label("Waiting for the input…");
            }
        }
    });
}

fn side_column(
    ui: &mut egui::Ui,
    sides: &BeforeAfter<Explanation>,
    side: Side,
    method: Method,
    words: bool,
) {
    let title = match side {
        Side::Before => format!("Before ({})", sides.before_source),
        Side::After => "After (tuned)".to_string(),
    };
    ui.label(RichText::new(title).strong());
    match sides.side(side) {
        None => {
            let why = match side {
                Side::Before => "No classifier before fine-tuning to explain.",
                Side::After => "The tuned model has no classifier to explain.",
            };
            ui.label(why);
        }
        Some(Err(e)) => {
            ui.colored_label(ui.visuals().error_fg_color, e);
        }
        Some(Ok(e)) => {
            ui.label(format!(
                "Target {} (predicted), logit {:.3}",
                e.target.label, e.target_logit
            ));
            let (names, scores) = strip::scored(e, method, words);
            strip::summary(ui, &e.target.label, &names, &scores);
            ui.add_space(4.0);
            strip::strip(ui, side.name(), (&names, &scores), method.signed(), words);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuned(epoch: Option<usize>) -> TunedInfo {
        TunedInfo {
            dir: "runs/x".into(),
            epochs: vec![0, 1],
            shown_epoch: epoch,
            report: None,
            has_mlm: false,
            labels: Vec::new(),
        }
    }

    #[test]
    fn answers_are_cached_per_input_and_tuned_model() {
        let mut state = ExplainSides::default();
        let k1 = ExplainSides::key("a", " ", &tuned(None));
        assert_eq!(k1.text_b, None);
        let k2 = ExplainSides::key("a", "", &tuned(Some(1)));
        assert_ne!(k1, k2, "another epoch is another key");
        state.pending = Some(Pending {
            key: k1.clone(),
            progress: None,
        });
        state.progress(&k2, Side::After, 3, 50);
        assert_eq!(
            state.pending.as_ref().and_then(|p| p.progress),
            Some((Side::After, 3, 50)),
            "progress follows the input whatever epoch the worker used"
        );
        // The worker answered for epoch 1: cached under it, nothing pending.
        state.received(k2.clone(), Err("x".into()));
        assert!(state.settled());
        assert!(state.get(&k2).is_some());
        assert!(state.get(&k1).is_none());
        state.clear();
        assert!(state.get(&k2).is_none());
    }
}
