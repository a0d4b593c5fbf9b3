//! The training form's precision through egui_kittest: bf16 is chosen from
//! the Precision combo on a CPU with AVX-512-BF16 and reaches the run's
//! settings; elsewhere the choice is greyed out and the form stays fp32.
//! The bf16 item says "faster" only where this CPU was measured faster.
//! The Heads and Data views offer the same choice for their passes over a
//! data file: their numbers move from fp32's, stay near them, and say so.

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

/// Choose bf16 in the combo named `name`; whether it could be chosen (a CPU
/// with bf16 products).
fn choose_bf16(h: &mut Harness<'static, BertscopeApp>, name: &str) -> bool {
    open_combo(h, name);
    let item = h
        .query_all_by_label_contains("bf16 products")
        .map(|n| n.accesskit_node().label().unwrap_or_default())
        .find(|l| l.starts_with("bf16 products"))
        .expect("the bf16 item");
    h.get_by_label(&item).click();
    h.run_steps(2);
    bf16_available()
}

/// `run` in fp32, then bf16 chosen in the combo named `combo` and `run`
/// again: `what` moves from fp32's, by less than 0.05, and `caption` shows.
/// Without bf16 products the choice (`chosen`) stays fp32.
fn fp32_then_bf16(
    h: &mut Harness<'static, BertscopeApp>,
    combo: &str,
    run: impl Fn(&mut Harness<'static, BertscopeApp>) -> (Precision, Vec<f32>),
    chosen: impl Fn(&BertscopeApp) -> Precision,
    (what, caption): (&str, &str),
) {
    let (precision, fp32) = run(h);
    assert_eq!(precision, Precision::Fp32);
    if !choose_bf16(h, combo) {
        assert_eq!(chosen(h.state()), Precision::Fp32, "greyed out");
        return;
    }
    let (precision, bf16) = run(h);
    assert_eq!(precision, Precision::Bf16);
    let diff = common::max_abs_diff(&fp32, &bf16);
    assert!(diff > 0.0, "bf16 products change {what}");
    assert!(diff < 0.05, "max |diff| {diff}");
    h.run_steps(2);
    assert!(h.query_by_label_contains(caption).is_some());
}

/// A head statistic over a file in the Heads view, then the same in bf16:
/// each head's share of attention to [CLS] moves, by less than 0.05, and
/// the caption names the products. Without bf16 the choice stays fp32.
#[test]
fn the_heads_view_runs_its_statistics_in_the_chosen_precision() {
    use bertscope::ui::heads::{DataChoice, Measure};
    use bertscope::ui::worker::HeadsOutcome;
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path());
    let data = common::fixtures().join("explain_rows.tsv");
    h.state_mut().settings.train.data_path = data.display().to_string();
    common::app::click(&mut h, "Heads");
    {
        let heads = &mut h.state_mut().heads;
        heads.data = DataChoice::Training;
        heads.measure = Measure::Statistic(0);
    }
    h.run_steps(2);
    let run = |h: &mut Harness<'static, BertscopeApp>| {
        common::app::click(h, "Run over the rows");
        common::app::wait_until(h, "the statistics", |app| app.heads.result.is_some());
        let (_, _, result) = h.state().heads.result.as_ref().unwrap();
        let answer = result.as_ref().expect("the statistics ran");
        let HeadsOutcome::Statistics(s) = &answer.base else {
            panic!("statistics expected");
        };
        let cls: Vec<f32> = s.cls.iter().flatten().map(|&v| v as f32).collect();
        (answer.precision, cls)
    };
    fp32_then_bf16(
        &mut h,
        "Heads precision",
        run,
        |app| app.heads.precision,
        ("the statistics", ", bf16 products."),
    );
}

/// The Data view's projection in bf16: its variance ratios move from
/// fp32's, by less than 0.05, and the caption names the products.
#[test]
fn the_data_view_projects_in_the_chosen_precision() {
    let dir = tempfile::tempdir().unwrap();
    let mut h = app(dir.path());
    let data = common::fixtures().join("explain_rows.tsv");
    h.state_mut().settings.train.data_path = data.display().to_string();
    h.state_mut().settings.view = bertscope::ui::state::View::Data;
    h.state_mut().data_view.layer = 2;
    h.run_steps(2);
    let run = |h: &mut Harness<'static, BertscopeApp>| {
        common::app::click(h, "Project");
        common::app::wait_until(h, "the projection", |app| {
            app.data_view.result.is_some() && !app.data_view.running()
        });
        let result = h.state().data_view.result.as_ref().unwrap();
        let projected = result.as_ref().expect("projected");
        let ratio = projected.projection.explained_variance_ratio;
        (projected.precision, ratio.map(|r| r as f32).to_vec())
    };
    fp32_then_bf16(
        &mut h,
        "Data precision",
        run,
        |app| app.data_view.precision,
        ("the projection", "bf16 products)"),
    );
}
