//! The app's side of head ablation, the neuron panel and the word toggle:
//! the `Inspect` each analysis asks for (a change re-runs the analysis
//! through the typing debounce), the head, model and matrix views drawn at
//! token or word level, and these features' intents.

use std::time::Instant;

use crate::ui::app::{AppOptions, BertscopeApp};
use crate::ui::intent::{Intent, TokenFocus};
use crate::ui::neuron_view::{self, NeuronPanel};
use crate::ui::state::{Settings, View};
use crate::ui::support::figure;
use crate::ui::word_level::{self, WordLevel};
use crate::ui::worker::ModelInfo;
use crate::ui::{ablation_bar, controls, head_view, matrix_view, model_view};
use crate::{HeadSet, Inspect};

/// What the app tracks for these features besides the settings.
#[derive(Default)]
pub(super) struct LiveInspect {
    /// What the latest analysis request asked for.
    sent: Inspect,
    /// The word-level maps of the shown analysis.
    pub(super) words: WordLevel,
    /// The neuron panel's query token: the last query token hovered or clicked.
    query: Option<usize>,
    /// The neuron panel's key row under the pointer.
    key: Option<usize>,
    /// The model loaded last in this session.
    loaded: Option<String>,
}

impl LiveInspect {
    /// `--mask-heads`, `--neurons`, `--query-token`, `--words`.
    pub(super) fn from_options(options: &AppOptions, settings: &mut Settings) -> LiveInspect {
        settings.inspect.ablated = options.ablate.clone();
        if let Some((layer, _)) = options.neurons {
            settings.inspect.neuron_view = true;
            settings.selection.layer = layer;
        }
        if options.words {
            settings.selection.words = true;
        }
        LiveInspect {
            query: options.query_token,
            ..Default::default()
        }
    }
}

impl BertscopeApp {
    /// The neuron panel's key row under the pointer (highlighted in the head view).
    pub fn neuron_key(&self) -> Option<usize> {
        self.live.key
    }

    /// The inspection the next analysis asks for, remembered as sent.
    pub(super) fn inspect_to_send(&mut self) -> Inspect {
        let heads = self.model_info().map_or(0, |i| i.heads);
        let inspect = self
            .settings
            .inspect
            .inspect(&self.settings.selection, heads);
        self.live.sent = inspect.clone();
        inspect
    }

    /// Heads switched off or on, or the neuron panel's head changed since
    /// the last request: run the analysis again (debounced, like typing).
    pub(super) fn sync_inspect(&mut self) {
        let Some(info) = self.model_info() else {
            return;
        };
        let wanted = self
            .settings
            .inspect
            .inspect(&self.settings.selection, info.heads);
        if wanted != self.live.sent && self.dirty_since.is_none() {
            self.dirty_since = Some(Instant::now());
        }
    }

    /// A model was loaded: keep the heads switched off that it has (none
    /// when it is another model than the one before).
    pub(super) fn inspect_model_loaded(&mut self, info: &ModelInfo) {
        let same = self.live.loaded.as_ref().is_none_or(|s| *s == info.spec);
        self.settings.inspect.fit(same, info.layers, info.heads);
        self.live.loaded = Some(info.spec.clone());
    }

    pub(super) fn apply_inspect(&mut self, intent: Intent) {
        let settings = &mut self.settings.inspect;
        match intent {
            Intent::ToggleAblation { layer, head } => settings.toggle(layer, head),
            Intent::ResetAblation => settings.ablated = HeadSet::new(),
            Intent::SetAblateMode(on) => settings.ablate_mode = on,
            Intent::ShowNeurons(on) => settings.neuron_view = on,
            Intent::NeuronKey(key) => self.live.key = key.filter(|_| self.screenshot.is_none()),
            Intent::SetWords(on) => self.settings.selection.words = on,
            _ => {}
        }
    }

    /// The head, model or matrix view with the controls, the ablation row
    /// and (head view) the neuron panel.
    pub(super) fn attention_views(&mut self, ui: &mut egui::Ui) -> Vec<Intent> {
        let Some(analysis) = self.analysis.as_ref() else {
            return Vec::new();
        };
        let tokens = &analysis.attention;
        let count = tokens.tokens.len();
        let focus = self.pinned.or(self.hover).filter(|f| match *f {
            TokenFocus::Query(t) | TokenFocus::Key(t) => t < count,
        });
        if let Some(TokenFocus::Query(q)) = focus {
            self.live.query = Some(q);
        }
        let (sel, view) = (&self.settings.selection, self.settings.view);
        let words = sel.words.then(|| self.live.words.get(tokens));
        let result = words.map_or(tokens, |w| w.1);
        let shown_focus = match words {
            Some((w, _)) => focus.map(|f| word_level::focus_to_words(f, w)),
            None => focus,
        };
        let ins = &self.settings.inspect;
        let maps = &result.attentions;
        let extras = controls::Extras {
            ablated: Some(&ins.ablated),
            words: true,
            contrast: view != View::Matrix,
        };
        let has_pair = result.token_type_ids.contains(&1);
        let mut intents = Vec::new();
        if !figure::only(ui.ctx()) {
            intents.extend(controls::show_with(
                ui,
                sel,
                (maps.layers, maps.heads),
                has_pair,
                extras,
            ));
            if view != View::Matrix {
                intents.extend(ablation_bar::show(
                    ui,
                    ins,
                    analysis.classes.as_deref(),
                    view,
                ));
            }
            ui.separator();
        }
        let drawn = match view {
            View::Model => {
                let ablation = model_view::Ablation {
                    ablated: &ins.ablated,
                    mode: ins.ablate_mode,
                };
                model_view::show(ui, result, sel, shown_focus, &mut self.thumbnails, ablation)
            }
            View::Matrix => matrix_view::show(ui, result, sel),
            _ => {
                let panel = ins.neuron_head(sel, maps.heads).map(|head| NeuronPanel {
                    result: tokens,
                    head,
                    query: self.live.query.unwrap_or(1).min(count.saturating_sub(1)),
                    highlight: match focus {
                        Some(TokenFocus::Key(k)) => match words {
                            Some((w, _)) => w.spans[word_level::word_of(w, k)].clone(),
                            None => k..k + 1,
                        },
                        _ => 0..0,
                    },
                });
                let mut drawn = Vec::new();
                let mut link = None;
                if let Some(panel) = &panel {
                    drawn.extend(neuron_panel(ui, panel));
                    let to_shown = |t| words.map_or(t, |(w, _)| word_level::word_of(w, t));
                    link = self.live.key.map(|k| (to_shown(panel.query), to_shown(k)));
                }
                let main = head_view::Panel::MAIN;
                drawn.extend(head_view::show_with(
                    ui,
                    result,
                    sel,
                    shown_focus,
                    main,
                    link,
                ));
                drawn
            }
        };
        intents.extend(match words {
            Some((w, _)) => drawn
                .into_iter()
                .map(|i| word_level::intent_to_tokens(i, w))
                .collect(),
            None => drawn,
        });
        intents
    }
}

/// The neuron panel on the right of the head view.
fn neuron_panel(ui: &mut egui::Ui, panel: &NeuronPanel) -> Vec<Intent> {
    egui::Panel::right("neuron-panel")
        .resizable(true)
        .default_size(640.0)
        .show(ui, |ui| neuron_view::show(ui, panel))
        .inner
}
