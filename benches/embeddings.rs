//! The Data view's numbers at the users' scale, on synthetic data (no model
//! needed): one exact search over 100,000 stored tokens of one layer
//! (hidden 384 and 768), PCA of 50,000 × 768, and a frame of the scatter
//! with 50,000 points (layout and tessellation, CPU). Goals (issue 19):
//! ≤ 20 ms, ≤ 1 s, ≤ 8 ms. Run: `cargo bench --bench embeddings`. A
//! benchmark, not a test: it prints, it asserts nothing.

use std::time::Instant;

use bertscope::index::search::top_k;
use bertscope::index::LayerVectors;
use bertscope::project::pca::pca;
use bertscope::ui::data::scatter;

/// Vectors with a few strong directions and noise, like hidden states.
fn synthetic(rows: usize, hidden: usize, seed: u64) -> Vec<f32> {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f32 / (1u64 << 53) as f32 - 0.5
    };
    let directions: Vec<Vec<f32>> = (0..8)
        .map(|_| (0..hidden).map(|_| next()).collect())
        .collect();
    let mut out = Vec::with_capacity(rows * hidden);
    for _ in 0..rows {
        let weights: Vec<f32> = (0..8).map(|k| next() * (8 - k) as f32).collect();
        for j in 0..hidden {
            let signal: f32 = directions.iter().zip(&weights).map(|(d, w)| d[j] * w).sum();
            out.push(signal + 0.3 * next());
        }
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn search(tokens: usize, hidden: usize) {
    let values = synthetic(tokens, hidden, 7);
    let layer = LayerVectors::from_f32(0, hidden, &values);
    let query = &values[123 * hidden..124 * hidden];
    let _ = top_k(&layer, query, 10);
    let times: Vec<f64> = (0..15)
        .map(|_| {
            let start = Instant::now();
            let hits = top_k(&layer, query, 10);
            assert_eq!(hits[0].0, 123);
            start.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    println!(
        "search: {tokens} tokens × {hidden}: {:.1} ms (median of 15; goal ≤ 20 ms)",
        median(times)
    );
}

fn projection(rows: usize, hidden: usize) {
    let values = synthetic(rows, hidden, 11);
    let times: Vec<f64> = (0..3)
        .map(|_| {
            let start = Instant::now();
            let p = pca(&values, rows, hidden);
            assert!(p.explained_variance_ratio[0] > 0.0);
            start.elapsed().as_secs_f64()
        })
        .collect();
    println!(
        "PCA: {rows} × {hidden}: {:.2} s (median of 3; goal ≤ 1 s)",
        median(times)
    );
}

fn scatter_frame(points: usize) {
    let values = synthetic(points, 2, 13);
    let xy: Vec<[f32; 2]> = values.chunks(2).map(|p| [p[0], p[1]]).collect();
    let colours: Vec<egui::Color32> = (0..points)
        .map(|i| bertscope::ui::support::palette::head_color(i % 3))
        .collect();
    let bounds = scatter::bounds(std::slice::from_ref(&xy));
    let ctx = egui::Context::default();
    let input = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(1440.0, 900.0),
        )),
        ..Default::default()
    };
    let mut times = Vec::new();
    for _ in 0..40 {
        let start = Instant::now();
        let output = ctx.run_ui(input.clone(), |ui| {
            egui::CentralPanel::default().show(ui, |ui| {
                scatter::show(
                    ui,
                    false,
                    egui::vec2(1100.0, 560.0),
                    bounds,
                    &xy,
                    &colours,
                    &[],
                );
            });
        });
        let _ = ctx.tessellate(output.shapes, output.pixels_per_point);
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    println!(
        "scatter: {points} points: {:.1} ms a frame (median of 40; goal ≤ 8 ms)",
        median(times)
    );
}

fn main() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!("CPU: {cpu}, {} threads", rayon::current_num_threads());
    search(100_000, 384);
    search(100_000, 768);
    projection(50_000, 768);
    scatter_frame(50_000);
}
