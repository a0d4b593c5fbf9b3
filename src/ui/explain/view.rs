//! The Explain view: method and target, the tokens (or words) as a heat strip
//! coloured by the method's score, the summary sentence, the target's logit
//! and integrated gradients' completeness gap, the rollout matrix, and the
//! head-importance section beside it.

use egui::text::LayoutJob;
use egui::{Color32, FontId, RichText, Sense, Stroke, TextFormat, Vec2};

use super::importance::{self, ImportanceAction};
use super::{asks_masked_lm, ExplainInput, ExplainState, Method};
use crate::explain::{summary, words, Explanation};
use crate::tokenize::is_special;
use crate::ui::matrix_view;
use crate::ui::selection::VisibleTokens;
use crate::ui::support::palette::{diverging, heat};
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
        ui.label("Method:");
        for m in Method::ALL {
            ui.selectable_value(&mut state.method, m, m.label());
        }
        ui.separator();
        ui.checkbox(&mut state.words, "Whole words");
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
    let token_scores = method.scores(e);
    let (names, scores) = if words {
        (e.words.clone(), e.word_scores(&token_scores))
    } else {
        (e.tokens.clone(), token_scores)
    };
    let sentence = summary::sentence(&e.target.label, &names, &scores, 3);
    ui.label(emphasised(&capitalised(&sentence), ui.visuals()));
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
    strip(ui, &names, &scores, method.signed(), words);
}

/// Each token (or word) on a chip of its score's colour; the score on hover.
fn strip(ui: &mut egui::Ui, names: &[String], scores: &[f32], signed: bool, words: bool) {
    let scale = scale_of(names, scores);
    let what = if words { "word" } else { "token" };
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing = Vec2::new(3.0, 6.0);
        for (i, (name, &score)) in names.iter().zip(scores).enumerate() {
            let fill = if signed {
                diverging(score / scale)
            } else {
                heat(score / scale)
            };
            chip(
                ui,
                &format!("explain {what} {i}: {name}"),
                name,
                score,
                fill,
            );
        }
    });
    let legend = if signed {
        format!("Red: for the target, blue: against it; full colour ±{scale:.3}.")
    } else {
        format!("Darker: more; full colour {scale:.3} (special tokens may go beyond).")
    };
    ui.label(RichText::new(format!("{legend} Hover a {what} for its score.")).weak());
}

/// The colour scale's full value: the largest magnitude among ordinary
/// tokens ([CLS] and [SEP] often dwarf them), else among all.
fn scale_of(names: &[String], scores: &[f32]) -> f32 {
    let largest = |special: bool| {
        names
            .iter()
            .zip(scores)
            .filter(|(n, _)| special || !is_special(n))
            .fold(0f32, |m, (_, s)| m.max(s.abs()))
    };
    let ordinary = largest(false);
    if ordinary > 0.0 {
        ordinary
    } else {
        largest(true).max(1e-6)
    }
}

fn chip(ui: &mut egui::Ui, label: &str, text: &str, score: f32, fill: Color32) {
    let luminance = 0.299 * fill.r() as f32 + 0.587 * fill.g() as f32 + 0.114 * fill.b() as f32;
    let ink = if luminance < 140.0 {
        Color32::WHITE
    } else {
        Color32::BLACK
    };
    let galley = ui
        .painter()
        .layout_no_wrap(text.to_string(), FontId::proportional(16.0), ink);
    let (rect, response) =
        ui.allocate_exact_size(galley.size() + Vec2::new(12.0, 8.0), Sense::hover());
    let painter = ui.painter();
    painter.rect_filled(rect, 4.0, fill);
    let border = Stroke::new(1.0, Color32::from_gray(170));
    painter.rect_stroke(rect, 4.0, border, egui::StrokeKind::Inside);
    painter.galley(rect.center() - galley.size() / 2.0, galley, ink);
    let label = label.to_string();
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, true, &label));
    response.on_hover_text(format!("{text}: {score:+.4}"));
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

/// The summary's `*emphasised*` words in the strong text colour, underlined.
fn emphasised(text: &str, visuals: &egui::Visuals) -> LayoutJob {
    let plain = TextFormat {
        font_id: FontId::proportional(18.0),
        color: visuals.text_color(),
        ..Default::default()
    };
    let strong = TextFormat {
        color: visuals.strong_text_color(),
        underline: Stroke::new(1.5, visuals.strong_text_color()),
        ..plain.clone()
    };
    let mut job = LayoutJob::default();
    for (i, part) in text.split('*').enumerate() {
        let format = if i % 2 == 1 { &strong } else { &plain };
        job.append(part, 0.0, format.clone());
    }
    job
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scale_ignores_special_tokens_unless_they_are_all_there_is() {
        let names: Vec<String> = ["[CLS]", "a", "b", "[SEP]"].map(String::from).to_vec();
        assert_eq!(scale_of(&names, &[5.0, -0.5, 0.25, 3.0]), 0.5);
        assert_eq!(scale_of(&names, &[5.0, 0.0, 0.0, 3.0]), 5.0);
    }

    #[test]
    fn emphasis_drops_the_asterisks() {
        let job = emphasised("the prediction *x* rests on *a*", &egui::Visuals::light());
        assert_eq!(job.text, "the prediction x rests on a");
        assert_eq!(capitalised("the x"), "The x");
    }
}
