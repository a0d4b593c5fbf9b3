//! The selection controls shared by the attention views: layer, head swatches
//! (heads switched off are crossed out), sentence filter, special-token
//! options, the word-level toggle and the line contrast.

use egui::{Color32, RichText, Sense, Stroke, Vec2};

use crate::ui::intent::Intent;
use crate::ui::selection::{Selection, SentenceFilter};
use crate::ui::support::contrast::{Contrast, MIN_GAMMA};
use crate::ui::support::palette::head_color;
use crate::HeadSet;

/// What the head, model and matrix views add to the controls.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras<'a> {
    /// Heads switched off, crossed out in the swatches.
    pub ablated: Option<&'a HeadSet>,
    /// Offer the "Words" checkbox.
    pub words: bool,
    /// Offer the line contrast (head and model views).
    pub contrast: bool,
}

/// Layer picker, head swatches, filter, options and line contrast (for the
/// head views of the masked-LM and compare views). `has_pair`: sentence B exists.
pub fn show(
    ui: &mut egui::Ui,
    sel: &Selection,
    layers: usize,
    heads: usize,
    has_pair: bool,
) -> Vec<Intent> {
    let extras = Extras {
        contrast: true,
        ..Extras::default()
    };
    show_with(ui, sel, (layers, heads), has_pair, extras)
}

/// [`show`] with the ablated heads marked and, when asked, the word toggle.
pub fn show_with(
    ui: &mut egui::Ui,
    sel: &Selection,
    (layers, heads): (usize, usize),
    has_pair: bool,
    extras: Extras,
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
            let off = extras.ablated.is_some_and(|a| a.contains(sel.layer, h));
            intents.extend(head_swatch(ui, sel, h, off));
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
        if extras.words {
            ui.separator();
            let mut words = sel.words;
            let toggle = ui
                .checkbox(&mut words, "Words")
                .on_hover_text("merge ## pieces into words: attention to a word is summed over its pieces, from a word averaged");
            if toggle.changed() {
                intents.push(Intent::SetWords(words));
            }
        }
    });
    if extras.contrast {
        ui.horizontal_wrapped(|ui| intents.extend(contrast_row(ui, sel.contrast)));
    }
    intents
}

/// Per-head contrast and gamma, with what the opacity now means.
fn contrast_row(ui: &mut egui::Ui, contrast: Contrast) -> Option<Intent> {
    let mut c = contrast;
    ui.label("Lines:");
    ui.checkbox(&mut c.per_head, "Per-head contrast")
        .on_hover_text("a line's opacity is its weight divided by the largest weight the head shows: heads that spread their weight thinly (long inputs) become visible");
    let gamma = egui::Slider::new(&mut c.gamma, MIN_GAMMA..=1.0)
        .text("gamma")
        .fixed_decimals(2);
    ui.add(gamma)
        .on_hover_text("opacity raised to this power: below 1 lifts faint lines");
    ui.label(RichText::new(c.describe()).weak());
    if !contrast.is_raw() && ui.button("Reset").clicked() {
        c = Contrast::default();
    }
    (c != contrast).then_some(Intent::SetContrast(c))
}

/// One head's coloured swatch: click toggles, double-click (or shift-click)
/// isolates; `off`: the head is switched off (ablated), drawn crossed out.
fn head_swatch(ui: &mut egui::Ui, sel: &Selection, head: usize, off: bool) -> Vec<Intent> {
    let on = sel.head_on(head);
    let color = head_color(head);
    let (rect, response) = ui.allocate_exact_size(Vec2::new(22.0, 18.0), Sense::click());
    let ablated = if off {
        " It is switched off (ablated): its output is zeroed."
    } else {
        ""
    };
    let response = response.on_hover_text(format!(
        "Head {head}: click to toggle, double-click or shift-click to show only this head.{ablated}"
    ));
    let label = if off {
        format!("Head {head}, switched off")
    } else {
        format!("Head {head}")
    };
    response.widget_info(|| egui::WidgetInfo::selected(egui::Role::CheckBox, true, on, &label));
    let painter = ui.painter();
    let fill = if on { color } else { Color32::TRANSPARENT };
    painter.rect(
        rect.shrink(2.0),
        2.0,
        fill,
        Stroke::new(1.5, color),
        egui::StrokeKind::Inside,
    );
    if off {
        crate::ui::model_view::cross_out(painter, rect.shrink(2.0), 1.5);
    }
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
