//! What the Explain view and the compare view's before/after explanations
//! share: the method selector and word toggle, the summary sentence, and the
//! heat strip (each token or word on a chip of its score's colour).

use egui::text::LayoutJob;
use egui::{Color32, FontId, RichText, Sense, Stroke, TextFormat, Vec2};

use super::Method;
use crate::explain::{summary, Explanation};
use crate::tokenize::is_special;
use crate::ui::support::palette::{diverging, heat};

/// The methods as selectable buttons and the "Whole words" toggle (in the
/// caller's horizontal layout).
pub fn method_bar(ui: &mut egui::Ui, method: &mut Method, words: &mut bool) {
    if crate::ui::support::figure::only(ui.ctx()) {
        let unit = if *words { "words" } else { "tokens" };
        ui.label(format!("Method: {} ({unit})", method.label()));
        return;
    }
    ui.label("Method:");
    for m in Method::ALL {
        ui.selectable_value(method, m, m.label());
    }
    ui.separator();
    ui.checkbox(words, "Whole words");
}

/// The method's scores of an explanation, per token or per word, with the names.
pub fn scored(e: &Explanation, method: Method, words: bool) -> (Vec<String>, Vec<f32>) {
    let token_scores = method.scores(e);
    if words {
        (e.words.clone(), e.word_scores(&token_scores))
    } else {
        (e.tokens.clone(), token_scores)
    }
}

/// "The prediction X rests mostly on a, b, c", the named tokens emphasised.
pub fn summary(ui: &mut egui::Ui, target: &str, names: &[String], scores: &[f32]) {
    let sentence = summary::sentence(target, names, scores, 3);
    ui.label(emphasised(&capitalised(&sentence), ui.visuals()));
}

/// Each token (or word) on a chip of its score's colour; the score on hover.
/// A chip's accessible label is "`prefix` token `i`: `name`" (or word).
pub fn strip(
    ui: &mut egui::Ui,
    prefix: &str,
    (names, scores): (&[String], &[f32]),
    signed: bool,
    words: bool,
) {
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
                &format!("{prefix} {what} {i}: {name}"),
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
