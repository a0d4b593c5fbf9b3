//! The Heads view driven through egui_kittest by its labels: the coreference
//! probe and a head statistic over a file on the tiny model, checked against
//! `transformers` (tests/fixtures/heads_expected.json); a head clicked lists
//! its rows, a row clicked opens in the head view.

mod common;

use bertscope::ui::heads::{DataChoice, Measure};
use bertscope::ui::state::View;
use bertscope::ui::worker::HeadsOutcome;
use common::app::{click, training_app, wait_until};
use egui_kittest::kittest::{NodeT, Queryable};

#[test]
fn coreference_over_a_file_then_a_head_then_a_row() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = training_app(tmp.path(), Some("the dog jumps"), None);
    click(&mut h, "Heads");
    assert_eq!(h.state().settings.view, View::Heads);
    let data = common::fixtures().join("coref_tiny.tsv");
    h.state_mut().heads.data = DataChoice::Other;
    h.run_steps(2);
    click(&mut h, "Heads data file");
    h.get_by_label("Heads data file")
        .type_text(&data.display().to_string());
    h.run_steps(2);
    click(&mut h, "Run over the rows");
    wait_until(&mut h, "the probe", |app| app.heads.result.is_some());
    let expected = common::read_json(&common::fixtures().join("heads_expected.json"));
    let want = &expected["mlm-safetensors"]["coref"]["coref_tiny"];
    {
        let (_, _, result) = h.state().heads.result.as_ref().unwrap();
        let answer = result.as_ref().expect("the probe ran");
        let HeadsOutcome::Coreference(c) = &answer.base else {
            panic!("coreference expected");
        };
        let rows = want["rows"].as_u64().unwrap() as f64;
        for (l, row) in c.accuracy.iter().enumerate() {
            for (hd, &acc) in row.iter().enumerate() {
                assert_eq!(
                    (acc * rows).round() as u64,
                    want["correct"][l][hd].as_u64().unwrap()
                );
            }
        }
    }
    assert!(h
        .query_by_label_contains("Baselines: nearest candidate")
        .is_some());

    // A head clicked lists its rows, right or wrong; a row clicked opens in the head view.
    click(&mut h, "Base model heads map");
    h.run_steps(3);
    let (layer, head) = h.state().heads.selected.expect("a head selected");
    assert_eq!(
        (
            h.state().settings.selection.layer,
            h.state().settings.selection.focus_head
        ),
        (layer, head)
    );
    let first = h
        .query_all_by_label_contains("— chose")
        .next()
        .expect("the head's rows are listed")
        .accesskit_node()
        .label()
        .unwrap_or_default();
    assert!(
        first.starts_with("right: ") || first.starts_with("wrong: "),
        "{first}"
    );
    click(&mut h, "Open this head in the head view");
    assert_eq!(h.state().settings.view, View::Head);
    click(&mut h, "Heads");
    h.run_steps(3);
    click(&mut h, &first);
    assert_eq!(h.state().settings.view, View::Head);
    assert_eq!(
        h.state().settings.text_a,
        "the animal didn t cross the street because it was too tired ."
    );
}

#[test]
fn a_statistic_over_the_training_file() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = training_app(tmp.path(), None, None);
    let data = common::fixtures().join("explain_rows.tsv");
    h.state_mut().settings.train.data_path = data.display().to_string();
    click(&mut h, "Heads");
    {
        let heads = &mut h.state_mut().heads;
        heads.data = DataChoice::Training;
        heads.measure = Measure::Statistic(0);
    }
    h.run_steps(2);
    click(&mut h, "Run over the rows");
    wait_until(&mut h, "the statistics", |app| app.heads.result.is_some());
    let expected = common::read_json(&common::fixtures().join("heads_expected.json"));
    let want = &expected["mlm-safetensors"]["heads"]["explain_rows"];
    let (_, _, result) = h.state().heads.result.as_ref().unwrap();
    let HeadsOutcome::Statistics(s) = &result.as_ref().unwrap().base else {
        panic!("statistics expected");
    };
    assert_eq!(s.rows as u64, want["rows"].as_u64().unwrap());
    for (l, row) in s.cls.iter().enumerate() {
        for (hd, v) in row.iter().enumerate() {
            assert!((v - want["cls"][l][hd].as_f64().unwrap()).abs() < 1e-5);
        }
    }
    assert!(h
        .query_by_label_contains("attention to [CLS] over")
        .is_some());
    // The bundled sets are for coreference only: said, nothing run.
    h.state_mut().heads.data = DataChoice::CorefEn;
    h.run_steps(2);
    click(&mut h, "Run over the rows");
    h.run_steps(3);
    assert!(h
        .query_by_label_contains("marked for coreference")
        .is_some());
}

#[test]
fn base_and_tuned_side_by_side() {
    let tmp = tempfile::tempdir().unwrap();
    let tuned = common::fixtures().join("trainer_kit/kit-run");
    let options = bertscope::ui::AppOptions {
        model: Some(
            common::fixture_model("mlm-safetensors")
                .display()
                .to_string(),
        ),
        tuned: Some(tuned.clone()),
        view: Some(View::Train),
        fresh: true,
        bundled_font_only: true,
        runs_dir: Some(tmp.path().join("runs")),
        ..Default::default()
    };
    let mut h = egui_kittest::Harness::builder()
        .with_size(egui::Vec2::new(1280.0, 900.0))
        .build_eframe(move |cc| bertscope::ui::BertscopeApp::new(cc, options));
    wait_until(&mut h, "both models", |app| {
        app.analysis.is_some() && app.tuning.tuned.is_some()
    });
    click(&mut h, "Heads");
    {
        let heads = &mut h.state_mut().heads;
        heads.data = DataChoice::Other;
        heads.path = common::fixtures()
            .join("coref_tiny.tsv")
            .display()
            .to_string();
    }
    h.run_steps(2);
    click(&mut h, "Run over the rows");
    wait_until(&mut h, "both probes", |app| app.heads.result.is_some());
    assert!(h.query_by_label("Tuned model heads map").is_some());
    assert!(h.query_by_label("Changed most with fine-tuning").is_some());
    // The tuned side is the tuned model's own probe, as the CLI computes it.
    let cli = common::bertscope(&[
        "coref",
        "--model",
        &tuned.display().to_string(),
        "--data",
        &common::fixtures()
            .join("coref_tiny.tsv")
            .display()
            .to_string(),
        "--json",
    ]);
    let want: serde_json::Value = serde_json::from_slice(&cli.stdout).unwrap();
    let (_, _, result) = h.state().heads.result.as_ref().unwrap();
    let Some(HeadsOutcome::Coreference(c)) = &result.as_ref().unwrap().tuned else {
        panic!("the tuned model's probe");
    };
    let got = serde_json::to_value(&c.accuracy).unwrap();
    assert_eq!(got, want["accuracy"]);
}
