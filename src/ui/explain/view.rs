//! The Explain view: method and target, the tokens (or words) as a heat strip
//! coloured by the method's score, the summary sentence, the target's logit
//! and integrated gradients' completeness gap, the rollout matrix, and the
//! head-importance section beside it.

use egui::{RichText, Vec2};

use super::importance::{self, ImportanceAction};
use super::strip;
use super::{asks_masked_lm, ExplainInput, ExplainState, Method};
use crate::explain::{words, Explanation};
use crate::tokenize::is_special;
use crate::ui::matrix_view;
use crate::ui::selection::VisibleTokens;
use crate::ui::support::palette::heat;
use crate::ui::worker::{ExplainKey, ModelInfo};

/// Draw the view for `key`; what the importance section asks for.
pub fn show(
    ui: &mut egui::Ui,
    state: &mut ExplainState,
    input: &ExplainInput,
    key: &ExplainKey,
) -> Vec<ImportanceAction> {
    let masked_lm = asks_masked_lm(input.info, input.text_a, input.text_b);
    toolbar(ui, state, input.info, masked_lm, key);
    ui.separator();
    let (method, words) = (state.method, state.words);
    let computing = state.computing(key);
    let mut actions = Vec::new();
    egui::ScrollArea::vertical()
        .id_salt("explain-scroll")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            let result = state.cache.get(key);
            match result {
                None => waiting(ui, computing),
                Some(Err(e)) => error(ui, e),
                Some(Ok(e)) => explanation(ui, e, method, words),
            }
            ui.separator();
            ui.columns(2, |cols| {
                if let Some(Ok(e)) = result {
                    rollout_matrix(&mut cols[0], e, words);
                }
                actions = importance::show(&mut cols[1], &mut state.importance, input.selected);
            });
        });
    actions
}

fn toolbar(
    ui: &mut egui::Ui,
    state: &mut ExplainState,
    info: &ModelInfo,
    masked_lm: bool,
    key: &ExplainKey,
) {
    ui.horizontal_wrapped(|ui| {
        strip::method_bar(ui, &mut state.method, &mut state.words);
        if crate::ui::support::figure::only(ui.ctx()) {
            return;
        }
        ui.separator();
        target_picker(ui, state, info, masked_lm, key);
    });
    ui.label(RichText::new(state.method.caption()).weak());
}

/// A classifier's labels in a combo, or for a masked-LM input the predicted
/// token and a field for another one; "prediction" by default.
fn target_picker(
    ui: &mut egui::Ui,
    state: &mut ExplainState,
    info: &ModelInfo,
    masked_lm: bool,
    key: &ExplainKey,
) {
    let default_key = ExplainKey {
        target: None,
        ..key.clone()
    };
    let prediction = match state.cache.get(&default_key) {
        Some(Ok(e)) => format!("prediction ({})", e.target.label),
        _ => "prediction".to_string(),
    };
    if masked_lm {
        ui.label("Target at the first [MASK]:");
        ui.selectable_value(&mut state.target, None, prediction);
        let field = ui.add(
            egui::TextEdit::singleline(&mut state.token_field)
                .desired_width(90.0)
                .hint_text("another token"),
        );
        field
            .widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, "Target token"));
        let enter = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
        let token = state.token_field.trim().to_string();
        if (ui.button("Explain this token").clicked() || enter) && !token.is_empty() {
            state.target = Some(token);
        }
        if let Some(t) = &state.target {
            ui.label(format!("(explaining {t})"));
        }
    } else if !info.labels.is_empty() {
        let shown = state.target.clone().unwrap_or_else(|| prediction.clone());
        egui::ComboBox::from_label("Target")
            .selected_text(shown)
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut state.target, None, prediction);
                for label in &info.labels {
                    ui.selectable_value(&mut state.target, Some(label.clone()), label);
                }
            });
    }
}

fn waiting(ui: &mut egui::Ui, computing: Option<Option<(usize, usize)>>) {
    ui.horizontal(|ui| {
        ui.add(egui::Spinner::new());
        match computing {
            Some(Some((done, total))) => {
                let bar = egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                    .desired_width(280.0)
                    .text(format!("integrated gradients: {done} of {total} points"));
                ui.add(bar);
            }
            Some(None) => {
                ui.label("Explaining: gradients through the model…");
            }
            None => {
                ui.label("Waiting for the input…");
            }
        }
    });
}

fn error(ui: &mut egui::Ui, error: &str) {
    ui.colored_label(ui.visuals().error_fg_color, error);
    if error.contains("nothing to explain") {
        ui.label(
            "Explanations need a classification head, or a masked-LM head and a [MASK] \
             typed into a sentence.",
        );
    }
}

fn explanation(ui: &mut egui::Ui, e: &Explanation, method: Method, words: bool) {
    let (names, scores) = strip::scored(e, method, words);
    strip::summary(ui, &e.target.label, &names, &scores);
    ui.label(format!(
        "Target {}: logit {:.3}. Integrated gradients' completeness gap {:+.4} \
         (Σ attributions − (logit − logit at the zero baseline); near 0 is good).",
        e.target.label, e.target_logit, e.ig_delta
    ));
    if e.truncated {
        let warn = ui.visuals().warn_fg_color;
        ui.colored_label(warn, "Input truncated to the model's maximum length.");
    }
    ui.add_space(6.0);
    strip::strip(ui, "explain", (&names, &scores), method.signed(), words);
}

/// The rollout of every position, as a heatmap (words merged with the toggle).
fn rollout_matrix(ui: &mut egui::Ui, e: &Explanation, words: bool) {
    let seq = e.tokens.len();
    let flat: Vec<f32> = e.rollout.concat();
    let (names, values) = if words {
        let grouped = words::group(&e.tokens);
        let merged = grouped.merge_matrix(&flat, seq);
        (grouped.words, merged)
    } else {
        (e.tokens.clone(), flat)
    };
    let n = names.len();
    // [CLS] and [SEP] columns dwarf the rest: the scale is the ordinary tokens'.
    let ordinary: Vec<f32> = values
        .iter()
        .enumerate()
        .filter(|(i, _)| !is_special(&names[i % n.max(1)]))
        .map(|(_, &v)| v)
        .collect();
    let max = ordinary.iter().fold(1e-6f32, |m, v| m.max(*v));
    ui.label(RichText::new("Attention rollout, every position").strong());
    ui.label(format!(
        "Row: a position; column: how much of that input token reaches it through all \
         layers (full colour {max:.3}; the special tokens' columns go beyond). The [CLS] \
         row is the rollout score above. Hover a cell for its value."
    ));
    let visible = VisibleTokens {
        queries: (0..n).collect(),
        keys: (0..n).collect(),
    };
    let side = ui.available_width().min(480.0);
    let color = |v: f32| heat(v / max);
    matrix_view::grid(
        ui,
        "explain-rollout",
        &names,
        &visible,
        &values,
        &color,
        Vec2::splat(side),
    );
}
