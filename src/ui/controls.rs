//! The selection controls shared by the attention views: layer, head swatches,
//! sentence filter and special-token options.

use egui::{Color32, RichText, Sense, Stroke, Vec2};

use crate::ui::intent::Intent;
use crate::ui::selection::{Selection, SentenceFilter};
use crate::ui::support::palette::head_color;

/// Layer picker, head swatches, filter and options. `has_pair`: sentence B exists.
pub fn show(
    ui: &mut egui::Ui,
    sel: &Selection,
    layers: usize,
    heads: usize,
    has_pair: bool,
) -> Vec<Intent> {
    let mut intents = Vec::new();
    ui.horizontal_wrapped(|ui| {
        let mut layer = sel.layer;
        egui::ComboBox::from_label("Layer")
            .selected_text(format!("{layer}"))
            .show_ui(ui, |ui| {
                for l in 0..layers {
                    ui.selectable_value(&mut layer, l, format!("Layer {l}"));
                }
            });
        if layer != sel.layer {
            intents.push(Intent::SetLayer(layer));
        }
        ui.separator();
        ui.label("Heads:");
        for h in 0..heads {
            intents.extend(head_swatch(ui, sel, h));
        }
    });
    ui.horizontal_wrapped(|ui| {
        ui.label("Sentences:");
        for filter in SentenceFilter::ALL {
            let enabled =
                has_pair || filter == SentenceFilter::All || filter == SentenceFilter::AToA;
            let button = egui::Button::selectable(sel.filter == filter, filter.label());
            let response = ui
                .add_enabled(enabled, button)
                .on_hover_text("which sentence's tokens (left) attend to which (right)");
            if response.clicked() {
                intents.push(Intent::SetFilter(filter));
            }
        }
        ui.separator();
        let mut hide = sel.hide_special;
        if ui.checkbox(&mut hide, "Hide [CLS]/[SEP]").changed() {
            intents.push(Intent::SetHideSpecial(hide));
        }
        let mut renorm = sel.renormalize;
        let response = ui.add_enabled(
            sel.hide_special,
            egui::Checkbox::new(&mut renorm, "Renormalise rows"),
        );
        if response.changed() {
            intents.push(Intent::SetRenormalize(renorm));
        }
        let note = match (sel.hide_special, sel.renormalize) {
            (false, _) => "weights as computed",
            (true, true) => "[CLS]/[SEP] hidden, rows rescaled to sum to 1",
            (true, false) => "[CLS]/[SEP] hidden, weights not rescaled",
        };
        ui.label(RichText::new(note).weak());
    });
    intents
}

/// One head's coloured swatch: click toggles, double-click (or shift-click) isolates.
fn head_swatch(ui: &mut egui::Ui, sel: &Selection, head: usize) -> Vec<Intent> {
    let on = sel.head_on(head);
    let color = head_color(head);
    let (rect, response) = ui.allocate_exact_size(Vec2::new(22.0, 18.0), Sense::click());
    let response = response.on_hover_text(format!(
        "Head {head}: click to toggle, double-click or shift-click to show only this head"
    ));
    response.widget_info(|| {
        egui::WidgetInfo::selected(egui::Role::CheckBox, true, on, format!("Head {head}"))
    });
    let painter = ui.painter();
    let fill = if on { color } else { Color32::TRANSPARENT };
    painter.rect(
        rect.shrink(2.0),
        2.0,
        fill,
        Stroke::new(1.5, color),
        egui::StrokeKind::Inside,
    );
    if sel.focus_head == head {
        painter.rect_stroke(
            rect,
            2.0,
            Stroke::new(1.0, ui.visuals().strong_text_color()),
            egui::StrokeKind::Outside,
        );
    }
    let shift = ui.input(|i| i.modifiers.shift);
    if response.double_clicked() || (response.clicked() && shift) {
        vec![Intent::IsolateHead(head)]
    } else if response.clicked() {
        vec![Intent::ToggleHead(head)]
    } else {
        vec![]
    }
}
