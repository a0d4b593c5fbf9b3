//! The row under the head and model views' controls: heads switched off
//! (ablation) with a reset, the model view's ablate mode, the head view's
//! neuron-panel toggle, and the classifier's probabilities as bars, which
//! change as heads are switched off.

use egui::{RichText, Sense, Vec2};

use crate::engine::LabelScore;
use crate::ui::inspect::InspectSettings;
use crate::ui::intent::Intent;
use crate::ui::state::View;

/// Labels beyond this many are summed up in words, not drawn.
const MAX_BARS: usize = 8;

/// The row for `view` (head or model view).
pub fn show(
    ui: &mut egui::Ui,
    settings: &InspectSettings,
    classes: Option<&[LabelScore]>,
    view: View,
) -> Vec<Intent> {
    let mut intents = Vec::new();
    ui.horizontal_wrapped(|ui| {
        match view {
            View::Model => {
                let mut mode = settings.ablate_mode;
                let toggle = ui
                    .checkbox(&mut mode, "Ablate mode")
                    .on_hover_text("a click switches a head off (or on again) instead of opening it; a right-click always does");
                if toggle.changed() {
                    intents.push(Intent::SetAblateMode(mode));
                }
            }
            View::Head => {
                let mut open = settings.neuron_view;
                let toggle = ui.checkbox(&mut open, "Neuron view").on_hover_text(
                    "the first shown head's query and key vectors for the query token you hover or click",
                );
                if toggle.changed() {
                    intents.push(Intent::ShowNeurons(open));
                }
            }
            _ => {}
        }
        ui.separator();
        intents.extend(ablation(ui, settings));
    });
    if let Some(classes) = classes {
        class_bars(ui, classes, !settings.ablated.is_empty());
    }
    intents
}

/// Which heads are off, and the reset.
fn ablation(ui: &mut egui::Ui, settings: &InspectSettings) -> Option<Intent> {
    let off = &settings.ablated;
    if off.is_empty() {
        ui.label(
            RichText::new(
                "All heads on. Right-click a thumbnail in the model view to switch a head off.",
            )
            .weak(),
        );
        return None;
    }
    let warn = ui.visuals().warn_fg_color;
    ui.colored_label(warn, format!("Switched off (layer:head): {off}"));
    ui.button(format!("Reset ablation ({} off)", off.len()))
        .on_hover_text("switch every head on again")
        .clicked()
        .then_some(Intent::ResetAblation)
}

/// The classifier's label probabilities, highest first, as a compact bar list.
pub fn class_bars(ui: &mut egui::Ui, classes: &[LabelScore], ablated: bool) {
    ui.horizontal_wrapped(|ui| {
        let title = if ablated {
            "Classifier (heads off):"
        } else {
            "Classifier:"
        };
        ui.label(RichText::new(title).strong());
        for class in classes.iter().take(MAX_BARS) {
            class_bar(ui, class);
        }
        if classes.len() > MAX_BARS {
            ui.label(RichText::new(format!("+{} more", classes.len() - MAX_BARS)).weak());
        }
    });
}

/// One label: its name, a bar and the percentage; its accessible label
/// reads "LABEL: 12.34%".
fn class_bar(ui: &mut egui::Ui, class: &LabelScore) {
    let text = format!("{}: {:.2}%", class.label, class.score * 100.0);
    let response = ui.horizontal(|ui| {
        ui.label(&class.label);
        let (rect, _) = ui.allocate_exact_size(Vec2::new(80.0, 12.0), Sense::hover());
        let painter = ui.painter();
        painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
        let mut fill = rect;
        fill.set_width(rect.width() * class.score.clamp(0.0, 1.0));
        painter.rect_filled(fill, 2.0, ui.visuals().selection.bg_fill);
        ui.label(format!("{:.1}%", class.score * 100.0));
    });
    let response = response.response.interact(Sense::hover());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Label, true, &text));
    response.on_hover_text(text.clone());
}
