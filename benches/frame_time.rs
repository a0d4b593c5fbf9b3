//! Frame time of the head and model views (layout + tessellation, CPU) at 64,
//! 256 and 512 tokens on a 12-layer × 12-head shape with synthetic attention.
//! Run: `cargo bench --bench frame_time`. A benchmark, not a test.

use std::time::Instant;

use bertscope::engine::AttentionResult;
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
    }
}

fn frame_ms(result: &AttentionResult, model: bool) -> (f64, f64, f64) {
    let ctx = egui::Context::default();
    let mut sel = Selection::default();
    sel.fit(12, 12);
    let input = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(1440.0, 900.0),
        )),
        ..Default::default()
    };
    let mut cache = model_view::ThumbnailCache::default();
    let mut times = Vec::new();
    for _ in 0..12 {
        let start = Instant::now();
        let output = ctx.run_ui(input.clone(), |ui| {
            egui::CentralPanel::default().show(ui, |ui| {
                if model {
                    model_view::show(ui, result, &sel, None, &mut cache);
                } else {
                    head_view::show(ui, result, &sel, None);
                }
            });
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

fn main() {
    println!("view        tokens  first ms  median ms  max ms   (layout + tessellation, 12 layers x 12 heads, all heads on)");
    for seq in [64, 256, 512] {
        let result = synthetic(seq, 12, 12);
        for (name, model) in [("head view", false), ("model view", true)] {
            let (first, median, max) = frame_ms(&result, model);
            println!("{name:<11} {seq:>6}  {first:>8.2}  {median:>9.2}  {max:>6.2}");
        }
    }
}
