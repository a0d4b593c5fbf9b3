//! The masked-LM explorer: click tokens to mask them and read the top-k
//! predictions for every masked position, with probability bars.

use egui::{RichText, Vec2};

use crate::engine::{AttentionResult, MaskResult};
use crate::tokenize::is_special;
use crate::ui::intent::Intent;

/// `masks`: `None` when the model has no MLM head; `mlm_models`: models found that have one.
pub fn show(
    ui: &mut egui::Ui,
    result: &AttentionResult,
    masks: Option<&[MaskResult]>,
    top_k: usize,
    mlm_models: &[String],
) -> Vec<Intent> {
    let mut intents = Vec::new();
    let Some(masks) = masks else {
        ui.heading("This model has no masked-LM head");
        ui.label("Its checkpoint carries no `cls.predictions.*` weights, so it cannot predict masked tokens.");
        if mlm_models.is_empty() {
            ui.label(
                "No model with a masked-LM head was found in ./models or the Hugging Face cache.",
            );
        } else {
            ui.label("Models found on this machine that have one:");
            for name in mlm_models {
                ui.monospace(name);
            }
        }
        return intents;
    };
    ui.horizontal(|ui| {
        if crate::ui::support::figure::only(ui.ctx()) {
            return;
        }
        ui.label("Click a token to mask it (or type [MASK] in a sentence).");
        let mut k = top_k;
        if ui
            .add(egui::Slider::new(&mut k, 1..=20).text("Top k"))
            .changed()
        {
            intents.push(Intent::SetTopK(k));
        }
    });
    ui.horizontal_wrapped(|ui| {
        for (i, token) in result.tokens.iter().enumerate() {
            if is_special(token) && token != "[MASK]" {
                ui.label(RichText::new(token).weak());
                continue;
            }
            let masked = masks.iter().any(|m| m.index == i);
            let button = egui::Button::selectable(masked, token);
            if ui
                .add(button)
                .on_hover_text(format!("token {i}: click to mask or unmask"))
                .clicked()
            {
                intents.push(Intent::ToggleMask(i));
            }
        }
    });
    ui.separator();
    if masks.is_empty() {
        ui.label("No masked positions yet.");
        return intents;
    }
    egui::ScrollArea::vertical()
        .id_salt("mlm-scroll")
        .show(ui, |ui| {
            for mask in masks {
                ui.label(RichText::new(format!("Position {}", mask.index)).strong());
                egui::Grid::new(("mlm-grid", mask.index))
                    .striped(true)
                    .show(ui, |ui| {
                        for p in &mask.predictions {
                            ui.label(&p.token_str);
                            let (rect, _) = ui
                                .allocate_exact_size(Vec2::new(200.0, 14.0), egui::Sense::hover());
                            ui.painter()
                                .rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
                            let mut bar = rect;
                            bar.set_width(rect.width() * p.score.clamp(0.0, 1.0));
                            ui.painter()
                                .rect_filled(bar, 2.0, ui.visuals().selection.bg_fill);
                            ui.label(format!("{:.2}%", p.score * 100.0));
                            ui.end_row();
                        }
                    });
                ui.add_space(8.0);
            }
        });
    intents
}
