//! The left panel: sentence inputs and the example gallery.

use egui::RichText;

use crate::ui::examples::{Example, EXAMPLES};

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
    let a = ui.add(
        egui::TextEdit::multiline(text_a)
            .desired_rows(3)
            .desired_width(f32::INFINITY)
            .hint_text("type a sentence; [MASK] marks a token to predict"),
    );
    a.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, "Sentence A"));
    ui.label("Sentence B (optional)");
    let b = ui.add(
        egui::TextEdit::multiline(text_b)
            .desired_rows(2)
            .desired_width(f32::INFINITY)
            .hint_text("a second sentence makes a pair: [CLS] A [SEP] B [SEP]"),
    );
    b.widget_info(|| egui::WidgetInfo::labeled(egui::Role::TextInput, true, "Sentence B"));
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
