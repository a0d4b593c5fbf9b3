//! The training form's precision through egui_kittest: bf16 is chosen from
//! the Precision combo on a CPU with AVX-512-BF16 and reaches the run's
//! settings; elsewhere the choice is greyed out and the form stays fp32.
//! The bf16 item says "faster" only where this CPU was measured faster.

mod common;

use bertscope::model::grad_kernels::bf16_available;
use bertscope::model::precision::Precision;
use bertscope::ui::BertscopeApp;
use egui::accesskit::Role;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;

fn app(dir: &std::path::Path) -> Harness<'static, BertscopeApp> {
    common::app::training_app(dir, None, None)
}

/// Click the combo box named `name` (its row label bears the same name).
fn open_combo(h: &mut Harness<'static, BertscopeApp>, name: &str) {
    h.get_by_role_and_label(Role::ComboBox, name).scroll_to_me();
    h.run_steps(15); // scrolling is animated
    h.get_by_role_and_label(Role::ComboBox, name).click();
    h.run_steps(2);
}

#[test]
fn the_precision_combo_sets_the_runs_precision() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path());
    assert_eq!(
        h.state().settings.train.precision,
        Precision::Fp32,
        "fp32 by default"
    );
    if bf16_available() {
        // The app measures bf16 against fp32 off the UI thread at start.
        let start = std::time::Instant::now();
        while bertscope::model::bf16_speed::measured().is_none() {
            assert!(start.elapsed().as_secs() < 60, "no bf16 measurement");
            h.step();
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        h.run_steps(2);
    }
    open_combo(&mut h, "Precision");
    let item = h
        .query_all_by_label_contains("bf16 products")
        .map(|n| n.accesskit_node().label().unwrap_or_default())
        .find(|l| l.starts_with("bf16 products"))
        .expect("the bf16 item");
    match bertscope::model::bf16_speed::measured().flatten() {
        Some(speed) if speed.pays() => assert!(item.contains("faster here"), "{item}"),
        Some(_) => assert_eq!(item, "bf16 products (not faster on this CPU)"),
        None => assert_eq!(item, "bf16 products (CPU)"),
    }
    h.get_by_label(&item).click();
    h.run_steps(2);
    let chosen = h.state().settings.train.precision;
    let config = h.state().settings.train.config();
    if bf16_available() {
        assert_eq!(chosen, Precision::Bf16);
        assert_eq!(config.precision, Precision::Bf16, "the run trains in bf16");
    } else {
        assert_eq!(chosen, Precision::Fp32, "greyed out without AVX-512-BF16");
    }
    assert_eq!(config.precision, chosen);
}
