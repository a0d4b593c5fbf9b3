//! The left panel: sentence inputs (scrolling past a few rows) and the
//! example gallery.

use egui::RichText;

use crate::ui::examples::{Example, EXAMPLES};

/// The sentence boxes grow up to this many rows, then scroll (a 512-token
/// text would otherwise push the examples off the panel).
pub const SENTENCE_A_ROWS: usize = 8;
pub const SENTENCE_B_ROWS: usize = 5;

/// What the user did in the input panel.
pub enum InputAction {
    Edited,
    Example(Example),
}

/// `unknown`: per example, the share of its tokens the model cannot represent.
pub fn show(
    ui: &mut egui::Ui,
    text_a: &mut String,
    text_b: &mut String,
    unknown: &[f32],
) -> Option<InputAction> {
    let mut action = None;
    ui.heading("Input");
    ui.label("First sentence (A)");
    let hint = "type a sentence; [MASK] marks a token to predict";
    let a = sentence_box(ui, text_a, (3, SENTENCE_A_ROWS), hint, "Sentence A");
    ui.label("Sentence B (optional)");
    let hint = "a second sentence makes a pair: [CLS] A [SEP] B [SEP]";
    let b = sentence_box(ui, text_b, (2, SENTENCE_B_ROWS), hint, "Sentence B");
    if a.changed() || b.changed() {
        action = Some(InputAction::Edited);
    }
    ui.add_space(12.0);
    ui.heading("Examples");
    for (i, example) in EXAMPLES.iter().enumerate() {
        let unk = unknown.get(i).copied().unwrap_or(0.0);
        let usable = unk < 0.34;
        let response = ui
            .add_enabled(usable, egui::Button::new(example.name).wrap())
            .on_disabled_hover_text(format!(
                "{:.0}% of its tokens are [UNK] in this model's vocabulary",
                unk * 100.0
            ));
        if response.clicked() {
            action = Some(InputAction::Example(*example));
        }
        if usable && unk > 0.0 {
            ui.label(
                RichText::new(format!("  {:.0}% [UNK] in this vocabulary", unk * 100.0))
                    .weak()
                    .small(),
            );
        }
    }
    action
}

/// A multi-line box of `rows.0` rows that grows to `rows.1` rows, then scrolls.
fn sentence_box(
    ui: &mut egui::Ui,
    text: &mut String,
    (rows, max_rows): (usize, usize),
    hint: &str,
    label: &str,
) -> egui::Response {
    let row_height = ui.text_style_height(&egui::TextStyle::Body);
    let margin = 2.0 * ui.spacing().button_padding.y + 4.0;
    egui::ScrollArea::vertical()
        .id_salt(label)
        .max_height(row_height * max_rows as f32 + margin)
        .show(ui, |ui| {
            let edit = egui::TextEdit::multiline(text)
                .desired_rows(rows)
                .desired_width(f32::INFINITY)
                .hint_text(hint);
            let response = ui.add(edit);
            response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, label));
            response
        })
        .inner
}

#[cfg(test)]
mod tests {
    use egui_kittest::kittest::Queryable;
    use egui_kittest::Harness;

    use super::*;

    #[test]
    fn a_long_text_scrolls_in_its_box_and_the_examples_stay_in_view() {
        let words: Vec<String> = (0..500).map(|i| format!("word{i}")).collect();
        let mut text_a = words.join(" ");
        let mut text_b = text_a.clone();
        let mut fonts = false;
        let mut h = Harness::builder()
            .with_size(egui::Vec2::new(1440.0, 900.0))
            .build_ui(move |ui| {
                if !fonts {
                    // The examples' arrows and CJK names.
                    crate::ui::support::fonts::install(ui.ctx(), false);
                    fonts = true;
                }
                egui::Panel::left("inputs")
                    .default_size(320.0)
                    .show(ui, |ui| show(ui, &mut text_a, &mut text_b, &[]));
            });
        h.run_steps(3);
        let a = h.get_by_label("Sentence A").rect();
        let b = h.get_by_label("Sentence B").rect();
        // The boxes' visible part: clipped by their scroll areas.
        assert!(
            a.height() > 900.0,
            "the text is taller than the window: {a:?}"
        );
        let last = EXAMPLES.last().map(|e| e.name).unwrap_or_default();
        let example = h.get_by_label(last).rect();
        assert!(example.bottom() < 900.0, "{last} at {example:?}");
        assert!(b.top() < 400.0, "sentence B starts at {}", b.top());
    }
}
