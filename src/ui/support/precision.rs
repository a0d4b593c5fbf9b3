//! The Precision choice of every form that runs the model over data (the
//! training form, the Heads view, the Data view): fp32, or bf16 products
//! where this CPU has them, called faster only where it was measured so.

use crate::model::bf16_speed::{self, Bf16Speed};
use crate::model::grad_kernels::bf16_available;
use crate::model::precision::Precision;

/// A combo box named `name` (its accessible name too) choosing `value`;
/// bf16 is greyed out on a CPU without bf16 products, and its tooltip is
/// the measured verdict. Whether the choice changed.
pub fn combo(ui: &mut egui::Ui, name: &str, value: &mut Precision) -> bool {
    let before = *value;
    let bf16 = bf16_available();
    let speed = bf16_speed::measured().flatten();
    crate::ui::training::form::combo(ui, name, &label(*value, speed), |ui| {
        for p in [Precision::Fp32, Precision::Bf16] {
            let item = ui
                .add_enabled_ui(bf16 || p == Precision::Fp32, |ui| {
                    ui.selectable_value(value, p, label(p, speed))
                })
                .response
                .on_disabled_hover_text("this CPU has neither AVX-512-BF16 nor AMX-BF16");
            if let (Precision::Bf16, Some(s)) = (p, speed) {
                item.on_hover_text(s.verdict());
            }
        }
    });
    *value != before
}

/// bf16 is called faster only where this CPU was measured to be faster.
pub fn label(precision: Precision, speed: Option<Bf16Speed>) -> String {
    match (precision, speed) {
        (Precision::Fp32, _) => "fp32 (as PyTorch)".into(),
        (Precision::Bf16, Some(s)) if s.pays() => {
            format!("bf16 products (CPU, {:.1}× faster here)", s.speedup())
        }
        (Precision::Bf16, Some(_)) => "bf16 products (not faster on this CPU)".into(),
        (Precision::Bf16, None) => "bf16 products (CPU)".into(),
    }
}
