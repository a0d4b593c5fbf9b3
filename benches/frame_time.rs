//! Frame time of the head and model views (layout + tessellation, CPU) at 64,
//! 256 and 512 tokens on a 12-layer × 12-head shape with synthetic attention,
//! and of the training view (a 3,000-step loss curve) and the compare view.
//! Run: `cargo bench --bench frame_time` (alongside a `bertscope finetune` to
//! see the cost of sharing the cores with training). A benchmark, not a test.

use std::time::Instant;

use bertscope::compare;
use bertscope::engine::{Analysis, AttentionResult};
use bertscope::train::metrics::DevMetrics;
use bertscope::train::Event;
use bertscope::ui::compare_view::{self, Changes, CompareInput};
use bertscope::ui::training::form::TrainForm;
use bertscope::ui::training::run::RunState;
use bertscope::ui::training::view::{self as train_view, TrainViewState};
use bertscope::ui::training::worker::TrainMsg;
use bertscope::ui::worker::TunedInfo;
use bertscope::ui::{head_view, model_view, selection::Selection};
use bertscope::AttentionMaps;

/// Attention shaped like a trained model's: per row three strong links (0.4,
/// 0.2, 0.1) and the remaining 0.3 spread unevenly over all keys.
fn synthetic(seq: usize, layers: usize, heads: usize) -> AttentionResult {
    let mut data = Vec::with_capacity(layers * heads * seq * seq);
    let mut state = 0x2545_f491_u32;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state as f32 / u32::MAX as f32
    };
    for _ in 0..layers * heads * seq {
        let mut row: Vec<f32> = (0..seq).map(|_| next().powi(12)).collect();
        let sum: f32 = row.iter().sum();
        row.iter_mut().for_each(|w| *w *= 0.3 / sum);
        for peak in [0.4, 0.2, 0.1] {
            let k = ((next() * seq as f32) as usize).min(seq - 1);
            row[k] += peak;
        }
        data.extend(row);
    }
    let half = seq / 2;
    AttentionResult {
        tokens: (0..seq).map(|i| format!("tok{i}")).collect(),
        input_ids: vec![0; seq],
        token_type_ids: (0..seq).map(|i| u32::from(i >= half)).collect(),
        attentions: AttentionMaps::new(layers, heads, seq, data),
        truncated: false,
        neurons: None,
    }
}

fn frame_ms(result: &AttentionResult, model: bool) -> (f64, f64, f64) {
    let mut sel = Selection::default();
    sel.fit(12, 12);
    let mut cache = model_view::ThumbnailCache::default();
    time_frames(|ui| {
        if model {
            let ablated = bertscope::HeadSet::new();
            let ablation = model_view::Ablation {
                ablated: &ablated,
                mode: false,
            };
            model_view::show(ui, result, &sel, None, &mut cache, ablation);
        } else {
            head_view::show(ui, result, &sel, None, head_view::Panel::MAIN);
        }
    })
}

/// First, median and max of 12 frames of `draw` in a 1440×900 window.
fn time_frames(mut draw: impl FnMut(&mut egui::Ui)) -> (f64, f64, f64) {
    let ctx = egui::Context::default();
    let input = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(1440.0, 900.0),
        )),
        ..Default::default()
    };
    let mut times = Vec::new();
    for _ in 0..12 {
        let start = Instant::now();
        let output = ctx.run_ui(input.clone(), |ui| {
            egui::CentralPanel::default().show(ui, |ui| draw(ui));
        });
        let _meshes = ctx.tessellate(output.shapes, output.pixels_per_point);
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    // The first frame builds caches; the rest are what scrolling and hovering cost.
    let first = times[0];
    let rest = &mut times[1..];
    rest.sort_by(f64::total_cmp);
    (first, rest[rest.len() / 2], rest[rest.len() - 1])
}

/// A run 3,000 steps in, with 10 epochs of dev metrics.
fn busy_run() -> RunState {
    let mut run = RunState::running(10);
    for step in 1..=3000 {
        run.apply(TrainMsg::Event(Event::Step {
            step,
            total_steps: 4000,
            epoch: 1 + step / 300,
            loss: 1.1 * (-(step as f64) / 800.0).exp() + 0.05 * ((step * 7919) % 13) as f64 / 13.0,
            lr: 2e-5,
            examples_per_s: 14.0,
            eta_s: 70.0,
        }));
    }
    for epoch in 1..=10 {
        run.apply(TrainMsg::Event(Event::Epoch {
            epoch,
            train_loss: 1.0 / epoch as f64,
            dev: Some(DevMetrics {
                accuracy: 0.5 + epoch as f64 / 25.0,
                macro_f1: 0.4 + epoch as f64 / 25.0,
                confusion: vec![vec![10, 2, 1], vec![3, 8, 2], vec![1, 1, 12]],
                loss: 0.8,
                perplexity: None,
            }),
        }));
    }
    run
}

fn compare_frame(seq: usize) -> (f64, f64, f64) {
    let base = synthetic(seq, 12, 12);
    let mut tuned = synthetic(seq, 12, 12);
    tuned.attentions.data.reverse();
    tuned.tokens = base.tokens.clone();
    let changes = compare::head_changes(&base.attentions, &tuned.attentions);
    let comparison = compare::Comparison {
        tuned: Analysis {
            attention: tuned,
            masks: None,
            classes: None,
        },
        changes: changes.map_err(|e| e.to_string()),
        before: None,
        before_source: "the base model has no classifier".into(),
        after: None,
    };
    let info = TunedInfo {
        dir: "runs/demo".into(),
        epochs: vec![0, 1, 2, 3],
        shown_epoch: None,
        report: None,
        has_mlm: false,
        labels: Vec::new(),
    };
    let mut sel = Selection::default();
    sel.fit(12, 12);
    time_frames(|ui| {
        let input = CompareInput {
            base_name: "base",
            base: &base,
            base_masks: None,
            tuned: Some(&info),
            comparison: Some(&comparison),
            changes: Changes {
                mean: None,
                use_mean: false,
            },
            sel: &sel,
            focus: None,
            before_after: None,
        };
        compare_view::show(ui, input);
    })
}

fn main() {
    println!("view        tokens  first ms  median ms  max ms   (layout + tessellation, 12 layers x 12 heads, all heads on)");
    for seq in [64, 256, 512] {
        let result = synthetic(seq, 12, 12);
        for (name, model) in [("head view", false), ("model view", true)] {
            let (first, median, max) = frame_ms(&result, model);
            println!("{name:<11} {seq:>6}  {first:>8.2}  {median:>9.2}  {max:>6.2}");
        }
    }
    let (first, median, max) = compare_frame(64);
    println!(
        "compare     {:>6}  {first:>8.2}  {median:>9.2}  {max:>6.2}",
        64
    );
    let run = busy_run();
    let mut form = TrainForm::default();
    let (first, median, max) = time_frames(|ui| {
        let state = TrainViewState {
            preview: None,
            preview_error: None,
            run: &run,
            tuned: None,
            message: None,
            model_ready: true,
        };
        train_view::show(ui, &mut form, &state);
    });
    println!("training    3000 steps  {first:>5.2}  {median:>9.2}  {max:>6.2}");
}
