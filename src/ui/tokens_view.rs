//! The Tokens view: what the tokenizer hands the model, as the tutorial
//! prints it step by step — wordpieces (`##` marked), ids, segment ids and
//! attention mask, unknown tokens highlighted, truncation said, the two
//! sentences of a pair in two colours.

use egui::{Color32, RichText};

use crate::engine::AttentionResult;
use crate::tokenize::is_special;
use crate::ui::intent::Intent;

/// The unknown-token string BERT vocabularies use.
const UNK: &str = "[UNK]";

/// Counts shown above the tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenStats {
    pub tokens: usize,
    pub pieces: usize,
    pub unknown: usize,
    pub sentences: usize,
}

pub fn stats(result: &AttentionResult) -> TokenStats {
    TokenStats {
        tokens: result.tokens.len(),
        pieces: result.tokens.iter().filter(|t| t.starts_with("##")).count(),
        unknown: result.tokens.iter().filter(|t| *t == UNK).count(),
        sentences: if result.token_type_ids.contains(&1) {
            2
        } else {
            1
        },
    }
}

/// Right-click on a card offers *Find similar in data*.
pub fn show(ui: &mut egui::Ui, result: &AttentionResult) -> Vec<Intent> {
    let mut intents = Vec::new();
    let s = stats(result);
    ui.label(format!(
        "{} tokens from {} sentence{}: {} continue a word (##), {} unknown ([UNK]).",
        s.tokens,
        s.sentences,
        if s.sentences == 2 { "s" } else { "" },
        s.pieces,
        s.unknown
    ));
    if result.truncated {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            "Truncated: the input was longer than the model's maximum length, so its end was cut (longest sentence first for a pair).",
        );
    }
    ui.add_space(6.0);
    egui::ScrollArea::vertical()
        .id_salt("tokens-view")
        .show(ui, |ui| {
            cards(ui, result, &mut intents);
            ui.add_space(10.0);
            arrays(ui, result);
        });
    intents
}

/// One card per token: the piece, its id, its segment and mask.
fn cards(ui: &mut egui::Ui, result: &AttentionResult, intents: &mut Vec<Intent>) {
    let dark = ui.visuals().dark_mode;
    let segment_fill = |segment: u32| match (segment, dark) {
        (0, true) => Color32::from_rgb(30, 52, 80),
        (0, false) => Color32::from_rgb(214, 230, 250),
        (_, true) => Color32::from_rgb(70, 48, 24),
        (_, false) => Color32::from_rgb(252, 226, 196),
    };
    let width = ui.available_width();
    let mut rows: Vec<Vec<usize>> = vec![Vec::new()];
    let mut used = 0.0;
    for (i, token) in result.tokens.iter().enumerate() {
        let w = card_width(ui, token);
        if used + w > width && rows.last().is_some_and(|r| !r.is_empty()) {
            rows.push(Vec::new());
            used = 0.0;
        }
        used += w + 6.0;
        if let Some(row) = rows.last_mut() {
            row.push(i);
        }
    }
    for row in rows {
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = 6.0;
            for i in row {
                let response = card(ui, result, i, &segment_fill);
                if !is_special(&result.tokens[i]) {
                    response.context_menu(|ui| {
                        if ui.button("Find similar in data").clicked() {
                            intents.push(Intent::FindSimilar(i));
                            ui.close();
                        }
                    });
                }
            }
        });
        ui.add_space(4.0);
    }
}

/// The width a token's card takes: its piece or its id line, whichever is wider.
fn card_width(ui: &egui::Ui, token: &str) -> f32 {
    let font = egui::FontId::proportional(18.0);
    let text = ui
        .painter()
        .layout_no_wrap(token.to_string(), font, Color32::WHITE)
        .size()
        .x;
    text.max(92.0) + 12.0
}

fn card(
    ui: &mut egui::Ui,
    result: &AttentionResult,
    i: usize,
    fill: &dyn Fn(u32) -> Color32,
) -> egui::Response {
    let token = &result.tokens[i];
    let segment = result.token_type_ids.get(i).copied().unwrap_or(0);
    let id = result.input_ids.get(i).copied().unwrap_or(0);
    let unknown = token == UNK;
    let stroke = if unknown {
        egui::Stroke::new(2.0, ui.visuals().error_fg_color)
    } else {
        egui::Stroke::NONE
    };
    let response = egui::Frame::new()
        .fill(fill(segment))
        .stroke(stroke)
        .corner_radius(4.0)
        .inner_margin(egui::Margin::symmetric(6, 3))
        .show(ui, |ui| {
            ui.set_min_width(card_width(ui, token) - 12.0);
            ui.vertical(|ui| {
                piece(ui, token, unknown);
                ui.label(RichText::new(format!("id {id}")).small().monospace());
                let seg = if segment == 0 { "A" } else { "B" };
                ui.label(RichText::new(format!("seg {segment} ({seg}) · mask 1")).small());
            });
        })
        .response
        .interact(egui::Sense::click());
    let label = format!("token {i}: {token}");
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Button, true, &label));
    response.on_hover_text(format!(
        "position {i}; right-click to find similar tokens in the data"
    ))
}

fn piece(ui: &mut egui::Ui, token: &str, unknown: bool) {
    let strong = |t: &str| RichText::new(t).size(18.0).strong();
    if unknown {
        ui.label(strong(token).color(ui.visuals().error_fg_color))
            .on_hover_text("not in the vocabulary: the model sees [UNK]");
    } else if let Some(rest) = token.strip_prefix("##") {
        ui.horizontal(|ui| {
            ui.spacing_mut().item_spacing.x = 0.0;
            ui.label(strong("##").color(Color32::from_rgb(230, 140, 40)))
                .on_hover_text("## continues the previous word");
            ui.label(strong(rest));
        });
    } else if is_special(token) {
        ui.label(strong(token).color(ui.visuals().weak_text_color()));
    } else {
        ui.label(strong(token));
    }
}

/// The three arrays the model receives, as the tutorial prints them.
fn arrays(ui: &mut egui::Ui, result: &AttentionResult) {
    let list = |values: Vec<String>| format!("[{}]", values.join(", "));
    let rows = [
        (
            "tokens",
            list(result.tokens.iter().map(|t| format!("'{t}'")).collect()),
        ),
        (
            "input_ids",
            list(result.input_ids.iter().map(u32::to_string).collect()),
        ),
        (
            "token_type_ids",
            list(result.token_type_ids.iter().map(u32::to_string).collect()),
        ),
        (
            "attention_mask",
            list(result.tokens.iter().map(|_| "1".to_string()).collect()),
        ),
    ];
    for (name, values) in rows {
        ui.label(RichText::new(name).monospace().strong());
        ui.add(egui::Label::new(RichText::new(values).monospace()).wrap());
        ui.add_space(4.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attention_maps::AttentionMaps;

    #[test]
    fn counts_pieces_unknowns_and_sentences() {
        let tokens: Vec<String> = ["[CLS]", "anim", "##als", "[UNK]", "[SEP]", "x", "[SEP]"]
            .map(String::from)
            .to_vec();
        let result = AttentionResult {
            input_ids: vec![2, 10, 11, 1, 3, 12, 3],
            token_type_ids: vec![0, 0, 0, 0, 0, 1, 1],
            attentions: AttentionMaps::default(),
            truncated: false,
            neurons: None,
            tokens,
        };
        let s = stats(&result);
        assert_eq!(
            s,
            TokenStats {
                tokens: 7,
                pieces: 1,
                unknown: 1,
                sentences: 2
            }
        );
    }
}
