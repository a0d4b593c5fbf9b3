//! The Data view and *Find similar in data* driven through egui_kittest by
//! their labels, on the tiny model and the Trainer kit's run (base, two
//! kept epochs, tuned): the projection against numpy
//! (tests/fixtures/embeddings_expected.json), Play, the colouring, a box
//! drawn on the scatter, a row opened; a token right-clicked in the Tokens
//! view searched in indexes built in the background, base and tuned.

mod common;

use std::path::Path;

use bertscope::ui::data::ColourBy;
use bertscope::ui::state::View;
use bertscope::ui::{AppOptions, BertscopeApp};
use common::app::{click, wait_until, App};
use egui_kittest::kittest::Queryable;
use egui_kittest::Harness;
use serde_json::Value;

fn app(dir: &Path, text_a: &str, text_b: Option<&str>) -> App {
    let options = AppOptions {
        model: Some(
            common::fixture_model("mlm-safetensors")
                .display()
                .to_string(),
        ),
        text_a: Some(text_a.to_string()),
        text_b: text_b.map(str::to_string),
        view: Some(View::Head),
        fresh: true,
        bundled_font_only: true,
        runs_dir: Some(dir.join("runs")),
        tuned: Some(common::fixtures().join("trainer_kit/kit-run")),
        ..Default::default()
    };
    let mut h = Harness::builder()
        .with_size(egui::Vec2::new(1400.0, 1000.0))
        .build_eframe(move |cc| BertscopeApp::new(cc, options));
    wait_until(&mut h, "the models", |app| {
        app.analysis.is_some() && app.tuning.tuned.is_some()
    });
    let data = common::fixtures().join("trainer_kit/train.tsv");
    h.state_mut().settings.train.data_path = data.display().to_string();
    h
}

fn expected(kind: &str, pick: impl Fn(&Value) -> bool) -> Value {
    let all = common::read_json(&common::fixtures().join("embeddings_expected.json"));
    all[kind]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| pick(c))
        .cloned()
        .expect("a fixture case")
}

#[test]
fn the_data_view_projects_a_run_plays_its_stages_and_lists_a_box() {
    let tmp = tempfile::tempdir().unwrap();
    let mut h = app(tmp.path(), "the dog", None);
    click(&mut h, "Data");
    assert_eq!(h.state().settings.view, View::Data);
    h.state_mut().data_view.layer = 2;
    h.run_steps(2);
    click(&mut h, "Project");
    wait_until(&mut h, "the projection", |app| {
        app.data_view.result.is_some()
    });
    let want = expected("project", |c| c["layer"] == 2 && c["pool"] == "cls");
    {
        let projected = h
            .state()
            .data_view
            .result
            .as_ref()
            .unwrap()
            .as_ref()
            .expect("projected");
        let p = &projected.projection;
        let tuned = want["stages"].as_array().unwrap().last().unwrap();
        let theirs: Vec<[f64; 2]> = tuned["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|xy| [xy[0].as_f64().unwrap(), xy[1].as_f64().unwrap()])
            .collect();
        assert_eq!(p.points.len(), theirs.len());
        let scale = theirs.iter().flatten().fold(0f64, |m, x| m.max(x.abs()));
        for axis in 0..2 {
            let ours: Vec<f64> = p
                .points
                .iter()
                .map(|q| if axis == 0 { q.x } else { q.y })
                .collect();
            let sign = if ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| a * b[axis])
                .sum::<f64>()
                < 0.0
            {
                -1.0
            } else {
                1.0
            };
            for (a, b) in ours.iter().zip(&theirs) {
                assert!((sign * a - b[axis]).abs() < 1e-3 * scale);
            }
        }
        assert_eq!(
            p.checkpoints.as_ref().map(Vec::len),
            Some(4),
            "base, epochs 1 and 2, tuned"
        );
    }
    assert!(h.query_by_label("Scatter of 60 rows").is_some());
    assert!(h.query_by_label_contains("stage: tuned").is_some());

    // Play starts from the base and moves through the stages.
    click(&mut h, "Play");
    assert!(h.state().data_view.playing);
    for _ in 0..20 {
        h.step();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let stage = h.state().data_view.stage;
    assert!(stage > 0.0 && stage < 3.0, "stage {stage}");
    click(&mut h, "Pause");
    assert!(!h.state().data_view.playing);

    // Colour by right / wrong: the tuned model's predictions against gold.
    click(&mut h, "right / wrong");
    assert_eq!(h.state().data_view.colour, ColourBy::RightWrong);
    assert!(h.query_by_label_contains("right (").is_some());

    // A box over the whole scatter lists every row; a listed row opens.
    let rect = h.get_by_label("Scatter of 60 rows").rect();
    h.hover_at(rect.left_top() + egui::vec2(2.0, 2.0));
    h.run_steps(1);
    h.drag_at(rect.left_top() + egui::vec2(2.0, 2.0));
    h.run_steps(1);
    for k in 1..=5 {
        let t = k as f32 / 5.0;
        h.hover_at(
            rect.left_top() + (rect.size() - egui::vec2(4.0, 4.0)) * t + egui::vec2(2.0, 2.0),
        );
        h.run_steps(1);
    }
    h.drop_at(rect.right_bottom() - egui::vec2(2.0, 2.0));
    h.run_steps(3);
    assert_eq!(h.state().data_view.selected.len(), 60);
    assert!(h.query_by_label("60 rows selected").is_some());
    h.query_all_by_label_contains("Row 0 · gold")
        .next()
        .expect("row 0 listed")
        .click();
    h.run_steps(3);
    assert_eq!(h.state().settings.view, View::Head);
    let data = common::fixtures().join("trainer_kit/train.tsv");
    let text = std::fs::read_to_string(data).unwrap();
    let row0: Vec<&str> = text.lines().nth(1).unwrap().split('\t').collect();
    assert_eq!(h.state().settings.text_a, row0[0]);
    assert_eq!(h.state().settings.text_b, row0[1]);
}

#[test]
fn find_similar_in_data_from_a_token_searches_base_and_tuned_indexes() {
    let tmp = tempfile::tempdir().unwrap();
    let want = expected("search", |c| {
        c["model"].as_str().unwrap().contains("mlm-safetensors")
    });
    let query = &want["query"];
    let mut h = app(
        tmp.path(),
        query["text_a"].as_str().unwrap(),
        query["text_b"].as_str(),
    );
    // The search runs at the output of the layer shown: layer 1 → hidden_states[2].
    h.state_mut().settings.selection.layer = want["layer"].as_u64().unwrap() as usize - 1;
    click(&mut h, "Tokens");
    h.run_steps(3);
    assert_eq!(h.state().settings.view, View::Tokens);
    let token = query["token"].as_u64().unwrap();
    let card = format!("token {token}: {}", want["query_token"].as_str().unwrap());
    h.get_by_label(&card).click_secondary();
    h.run_steps(3);
    click(&mut h, "Find similar in data");
    assert_eq!(h.state().settings.view, View::Data);
    wait_until(&mut h, "the indexes and the search", |app| {
        app.data_view
            .find
            .as_ref()
            .is_some_and(|f| f.found.is_some())
    });
    {
        let find = h.state().data_view.find.as_ref().unwrap();
        let found = find.found.as_ref().unwrap().as_ref().expect("searched");
        assert_eq!(found.base.layer, want["layer"].as_u64().unwrap() as usize);
        assert_eq!(
            found.base.query.token,
            want["query_token"].as_str().unwrap()
        );
        // Every hit clear of the cut is found, with its score.
        let cut = want["next_score"].as_f64().unwrap();
        for w in want["hits"].as_array().unwrap() {
            let score = w["score"].as_f64().unwrap();
            let hit = found.base.hits.iter().find(|g| {
                g.row as u64 == w["row"].as_u64().unwrap()
                    && g.token_index as u64 == w["token_index"].as_u64().unwrap()
            });
            match hit {
                Some(g) => assert!((f64::from(g.score) - score).abs() < 2e-3),
                None => assert!(score - cut < 2e-3, "missing {w}"),
            }
        }
        assert!(found.tuned.is_some(), "the tuned index is searched beside");
    }
    assert!(h
        .query_by_label_contains("Base model: top 25 at layer 2")
        .is_some());
    assert!(h
        .query_by_label_contains("Tuned model: top 25 at layer 2")
        .is_some());
    let indexes = tmp.path().join("indexes");
    let built = std::fs::read_dir(&indexes).unwrap().count();
    assert_eq!(built, 2, "one index for the base model, one for the tuned");

    // The layer switch searches the same token at another layer.
    h.state_mut()
        .data_view
        .find_layer(0, &egui::Context::default());
    wait_until(&mut h, "the search at layer 0", |app| {
        app.data_view
            .find
            .as_ref()
            .and_then(|f| f.found.as_ref())
            .is_some_and(|r| r.as_ref().is_ok_and(|f| f.base.layer == 0))
    });
    assert!(h
        .query_by_label_contains("Base model: top 25 at layer 0")
        .is_some());
}
