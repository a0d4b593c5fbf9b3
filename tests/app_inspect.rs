//! Head ablation, the neuron view and the word toggle, driven through
//! egui_kittest by accessible labels on the tiny fixture models; what the app
//! shows is checked against the engine called directly with the same
//! `Inspect` (the engine itself is checked against transformers elsewhere).

mod common;

use std::time::{Duration, Instant};

use bertscope::engine::LabelScore;
use bertscope::ui::intent::TokenFocus;
use bertscope::ui::state::View;
use bertscope::ui::{AppOptions, BertscopeApp};
use bertscope::{HeadSet, Inspect, LoadedModel};
use candle_core::Device;
use common::*;
use egui_kittest::kittest::{NodeT, Queryable};
use egui_kittest::Harness;

const TEXT: &str = "the animals crossed";

fn harness(model: &str, view: View) -> Harness<'static, BertscopeApp> {
    let options = AppOptions {
        model: Some(model.to_string()),
        text_a: Some(TEXT.to_string()),
        view: Some(view),
        fresh: true,
        bundled_font_only: true,
        ..Default::default()
    };
    let mut harness = Harness::builder()
        .with_size(egui::Vec2::new(1400.0, 860.0))
        .build_eframe(move |cc| BertscopeApp::new(cc, options));
    settle(&mut harness);
    harness
}

/// Step until the debounce has fired and the worker has answered.
fn settle(harness: &mut Harness<'static, BertscopeApp>) {
    harness.run_steps(2);
    let start = Instant::now();
    while harness.state().busy() || harness.state().analysis.is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the app did not settle"
        );
        harness.step();
        std::thread::sleep(Duration::from_millis(5));
    }
    harness.run_steps(3);
}

fn classifier() -> String {
    fixture_model("classifier").display().to_string()
}

fn classes(h: &Harness<'static, BertscopeApp>) -> Vec<LabelScore> {
    let analysis = h.state().analysis.as_ref().expect("an analysis");
    analysis
        .classes
        .clone()
        .expect("the fixture has a classifier")
}

/// The engine's probabilities with `ablate` switched off, in label order.
fn direct_classes(ablate: &[(usize, usize)]) -> Vec<LabelScore> {
    let model = LoadedModel::load(&classifier(), &Device::Cpu).unwrap();
    let inspect = Inspect {
        ablate: HeadSet::from_iter(ablate.iter().copied()),
        neurons: None,
    };
    model.classify(TEXT, None, &inspect).unwrap().predictions
}

fn assert_same(got: &[LabelScore], want: &[LabelScore], tolerance: f32) {
    assert_eq!(got.len(), want.len());
    for w in want {
        let g = got.iter().find(|g| g.label == w.label).expect("label");
        assert!(
            (g.score - w.score).abs() <= tolerance,
            "{}: {} vs {}",
            w.label,
            g.score,
            w.score
        );
    }
}

fn largest_change(a: &[LabelScore], b: &[LabelScore]) -> f32 {
    a.iter()
        .map(|x| {
            let y = b
                .iter()
                .find(|y| y.label == x.label)
                .map_or(0.0, |y| y.score);
            (x.score - y).abs()
        })
        .fold(0.0, f32::max)
}

#[test]
fn switching_a_head_off_in_the_model_view_reruns_the_classifier() {
    let mut h = harness(&classifier(), View::Model);
    let before = classes(&h);
    assert_same(&before, &direct_classes(&[]), 1e-5);
    let top = &before[0];
    let bar = format!("{}: {:.2}%", top.label, top.score * 100.0);
    assert!(h.query_by_label(&bar).is_some(), "{bar} shown");

    h.get_by_label("Layer 0 head 1").click_secondary();
    settle(&mut h);
    assert_eq!(
        h.state().settings.view,
        View::Model,
        "a right-click opens nothing"
    );
    assert_eq!(h.state().settings.inspect.ablated.to_string(), "0:1");
    assert!(h.query_by_label("Layer 0 head 1, switched off").is_some());
    assert!(
        h.query_by_label("Head 1, switched off").is_some(),
        "swatch marked"
    );
    assert!(h.query_by_label("Reset ablation (1 off)").is_some());
    let after = classes(&h);
    assert!(
        largest_change(&before, &after) > 1e-4,
        "{before:?} {after:?}"
    );
    assert_same(&after, &direct_classes(&[(0, 1)]), 1e-5);
    let top = &after[0];
    let bar = format!("{}: {:.2}%", top.label, top.score * 100.0);
    assert!(h.query_by_label(&bar).is_some(), "{bar} shown");

    // Ablate mode: a plain click switches a second head off.
    h.get_by_label("Ablate mode").click();
    h.run_steps(2);
    h.get_by_label("Layer 1 head 3").click();
    settle(&mut h);
    assert_eq!(h.state().settings.view, View::Model);
    assert_eq!(h.state().settings.inspect.ablated.to_string(), "0:1,1:3");
    assert_same(&classes(&h), &direct_classes(&[(0, 1), (1, 3)]), 1e-5);

    // The head view marks them in its head selector too.
    h.get_by_label("Head view").click();
    h.run_steps(2);
    assert!(h.query_by_label("Head 1, switched off").is_some());
    assert!(
        h.query_by_label("Head 3").is_some(),
        "1:3 is in another layer"
    );

    h.get_by_label("Reset ablation (2 off)").click();
    settle(&mut h);
    assert!(h.state().settings.inspect.ablated.is_empty());
    assert!(h.query_by_label("Head 1").is_some());
    assert_same(&classes(&h), &before, 1e-6);
}

/// A value after `name = ` in an accessible label.
fn field(label: &str, name: &str) -> f32 {
    let start = label.find(&format!("{name} = ")).expect(name) + name.len() + 3;
    let rest = &label[start..];
    let end = rest.find(';').unwrap_or(rest.len());
    rest[..end].parse().expect("a number")
}

#[test]
fn neuron_view_softmax_is_the_heads_attention_row() {
    let mut h = harness(&classifier(), View::Head);
    h.get_by_label("Layer").click();
    h.run_steps(2);
    h.get_by_label("Layer 1").click();
    h.run_steps(2);
    h.get_by_label("Head 2")
        .click_modifiers(egui::Modifiers::SHIFT);
    h.run_steps(2);
    h.get_by_label("Neuron view").click();
    settle(&mut h);
    h.get_by_label("query token 2: animal").click();
    h.run_steps(3);
    assert_eq!(h.state().focus(), Some(TokenFocus::Query(2)));
    let neurons = h
        .state()
        .analysis
        .as_ref()
        .unwrap()
        .attention
        .neurons
        .clone();
    let neurons = neurons.expect("neurons asked for");
    assert_eq!((neurons.layer, neurons.head), (1, 2));
    assert!(h.query_by_label("neuron query 2: animal").is_some());

    let model = LoadedModel::load(&classifier(), &Device::Cpu).unwrap();
    let direct = model.attention(TEXT, None, &Inspect::default()).unwrap();
    assert_eq!(direct.tokens.len(), neurons.tokens);
    let mut total = 0.0;
    for k in 0..neurons.tokens {
        let prefix = format!("neuron row {k}: ");
        let label = h.get_by_label_contains(&prefix).accesskit_node().label();
        let label = label.expect("a label");
        let want = direct.attentions.get(1, 2, 2, k);
        let softmax = field(&label, "softmax");
        assert!(
            (softmax - want).abs() < 1e-4,
            "row {k}: {softmax} vs {want}"
        );
        assert!((field(&label, "attention") - want).abs() < 1e-4, "{label}");
        total += softmax;
    }
    assert!((total - 1.0).abs() < 1e-4);

    // Hovering a key row highlights its line in the head view.
    h.get_by_label_contains("neuron row 4: ").hover();
    h.run_steps(2);
    assert_eq!(h.state().neuron_key(), Some(4));
}

#[test]
fn the_word_toggle_draws_words_and_keeps_the_focus_valid() {
    let mut h = harness(&classifier(), View::Head);
    let tokens = h
        .state()
        .analysis
        .as_ref()
        .unwrap()
        .attention
        .tokens
        .clone();
    assert_eq!(
        tokens,
        ["[CLS]", "the", "animal", "##s", "cross", "##ed", "[SEP]"]
    );
    h.get_by_label("key token 5: ##ed").click();
    h.run_steps(2);
    h.get_by_label("Words").click();
    h.run_steps(3);
    assert_eq!(
        h.state().focus(),
        Some(TokenFocus::Key(5)),
        "the click pinned"
    );
    assert!(h.state().settings.selection.words);
    assert!(h.query_by_label("query token 2: animals").is_some());
    assert!(h.query_by_label("key token 3: crossed").is_some());
    assert!(h.query_by_label("query token 4: [SEP]").is_some());
    assert!(h.query_by_label("key token 5: ##ed").is_none());

    // A word clicked is its first token in the app's state.
    h.get_by_label("query token 3: crossed").click();
    h.run_steps(2);
    h.get_by_label("Words").hover();
    h.run_steps(2);
    assert_eq!(h.state().focus(), Some(TokenFocus::Query(4)), "pinned");
    assert_eq!(h.state().focus(), Some(TokenFocus::Query(4)));

    for view in ["Model view", "Matrix view", "Head view"] {
        h.get_by_label(view).click();
        h.run_steps(3);
    }
    h.get_by_label("Words").click();
    h.run_steps(3);
    assert!(!h.state().settings.selection.words);
    assert!(h.query_by_label("query token 4: cross").is_some());
    assert_eq!(h.state().focus(), Some(TokenFocus::Query(4)));
}
