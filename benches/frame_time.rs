//! Frame time of the head and model views (layout + tessellation, CPU) at 64,
//! 256 and 512 tokens on a 12-layer × 12-head shape with synthetic attention,
//! and of the training view (a 3,000-step loss curve) and the compare view.
//! Run: `cargo bench --bench frame_time`. Each view is timed twice: idle, and
//! while a fine-tune of `models/all-MiniLM-L6-v2` on `assets/demo` runs on a
//! thread of the same process (as the app's Training view runs it), sharing the
//! cores; without that model only the idle numbers are printed. A benchmark,
//! not a test.

use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// One view's frames: the first after switching to it, the median and
/// the worst of the rest, and when it showed everything (the model view's
/// thumbnails are drawn on a thread and come in over a few frames).
struct Timing {
    first: f64,
    median: f64,
    max: f64,
    ready: Option<f64>,
    /// Every frame, in order.
    all: Vec<f64>,
}

impl Timing {
    fn print(&self, name: &str, tokens: &str) {
        let ready = self.ready.map_or("".into(), |r| format!("{r:>8.1}"));
        println!(
            "{name:<26} {tokens:>6}  {:>8.2}  {:>9.2}  {:>6.2}  {ready}",
            self.first, self.median, self.max
        );
        // FRAME_TIMES=1: every frame's time.
        if std::env::var_os("FRAME_TIMES").is_some() {
            let all: Vec<String> = self.all.iter().map(|t| format!("{t:.1}")).collect();
            println!("  frames: {}", all.join(" "));
        }
    }
}

/// How a view is drawn in a bench row.
#[derive(Clone, Copy)]
struct Look {
    model: bool,
    zoom: f32,
    per_head: bool,
}

fn frame_ms(result: &AttentionResult, look: Look) -> Timing {
    let mut sel = Selection::default();
    sel.fit(12, 12);
    sel.contrast.per_head = look.per_head;
    let cache = RefCell::new(model_view::ThumbnailCache::default());
    let draw = |ui: &mut egui::Ui| {
        if look.model {
            let ablated = bertscope::HeadSet::new();
            let ablation = model_view::Ablation {
                ablated: &ablated,
                mode: false,
            };
            let mut cache = cache.borrow_mut();
            model_view::show(ui, result, &sel, None, &mut cache, ablation);
        } else {
            head_view::show(ui, result, &sel, None, head_view::Panel::MAIN);
        }
    };
    time_frames(look.zoom, draw, || cache.borrow().settled())
}

/// Frames of `draw` in a 1440×900-pixel window at `zoom` (the first after a
/// frame of other content): see [`Timing`]; `ready` says when all is drawn.
fn time_frames(zoom: f32, mut draw: impl FnMut(&mut egui::Ui), ready: impl Fn() -> bool) -> Timing {
    let ctx = egui::Context::default();
    ctx.set_zoom_factor(zoom);
    let input = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(
            egui::Pos2::ZERO,
            egui::vec2(1440.0, 900.0) / zoom,
        )),
        ..Default::default()
    };
    // The app has been running before the view is switched to: fonts are
    // loaded and the common glyphs are in the atlas.
    let output = ctx.run_ui(input.clone(), |ui| {
        egui::CentralPanel::default().show(ui, |ui| {
            let glyphs: String = (' '..='~').collect();
            ui.label(&glyphs);
            ui.label(egui::RichText::new(&glyphs).weak());
            ui.label(egui::RichText::new(&glyphs).small());
            ui.heading(&glyphs);
        });
    });
    let _meshes = ctx.tessellate(output.shapes, output.pixels_per_point);
    let mut times = Vec::new();
    let mut ready_at = None;
    let started = Instant::now();
    // Frames are drawn back to back, at most 60 a second as a window would.
    for _ in 0..FRAMES {
        let start = Instant::now();
        let output = ctx.run_ui(input.clone(), |ui| {
            egui::CentralPanel::default().show(ui, |ui| draw(ui));
        });
        let _meshes = ctx.tessellate(output.shapes, output.pixels_per_point);
        let took = start.elapsed();
        times.push(took.as_secs_f64() * 1e3);
        if ready_at.is_none() && ready() {
            ready_at = Some(started.elapsed().as_secs_f64() * 1e3);
        }
        std::thread::sleep(Duration::from_micros(16_667).saturating_sub(took));
    }
    let all = times.clone();
    let first = times[0];
    let rest = &mut times[1..];
    rest.sort_by(f64::total_cmp);
    Timing {
        first,
        median: rest[rest.len() / 2],
        max: rest[rest.len() - 1],
        ready: ready_at,
        all,
    }
}

/// Frames timed per row.
const FRAMES: usize = 40;

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

fn compare_frame(seq: usize) -> Timing {
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
    let draw = |ui: &mut egui::Ui| {
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
    };
    time_frames(1.0, draw, || true)
}

/// A fine-tune running on a thread of its own until dropped.
struct Training {
    cancel: Arc<AtomicBool>,
    /// Steps done so far.
    steps: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Training {
    /// Starts fine-tuning the demo model on the demo pairs and returns once
    /// its first step is done (data prepared, the loop running); `None`
    /// without the model or the data.
    fn start() -> Option<Training> {
        let model = Path::new("models/all-MiniLM-L6-v2");
        let data = Path::new("assets/demo/claims-train.tsv");
        if !model.join("config.json").is_file() || !data.is_file() {
            return None;
        }
        let options = bertscope::data::ReadOptions {
            delimiter: None,
            columns: Default::default(),
            require_label: true,
            skip_bad_rows: true,
        };
        let dataset = bertscope::data::read(data, &options).ok()?;
        let cancel = Arc::new(AtomicBool::new(false));
        let steps = Arc::new(AtomicUsize::new(0));
        let (flag, seen) = (cancel.clone(), steps.clone());
        let thread = std::thread::spawn(move || {
            let cfg = bertscope::train::TrainConfig {
                epochs: 1000,
                batch_size: 16,
                ..Default::default()
            };
            let mut on_event = |event: Event| {
                if matches!(event, Event::Step { .. }) {
                    seen.fetch_add(1, Ordering::Relaxed);
                }
            };
            let device = candle_core::Device::Cpu;
            let outcome =
                bertscope::train::train(model, &dataset, None, &cfg, &device, &mut on_event, &flag);
            if let Err(e) = outcome {
                eprintln!("the background fine-tune stopped: {e}");
            }
        });
        let started = Instant::now();
        while steps.load(Ordering::Relaxed) == 0 {
            if thread.is_finished() || started.elapsed() > Duration::from_secs(300) {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Training {
            cancel,
            steps,
            thread: Some(thread),
        })
    }
}

impl Drop for Training {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn main() {
    bertscope::runtime::tune_threads();
    bertscope::runtime::tune_allocator();
    views("idle");
    match Training::start() {
        Some(training) => {
            let before = training.steps.load(Ordering::Relaxed);
            views("while training");
            let steps = training.steps.load(Ordering::Relaxed) - before;
            println!("(the fine-tune, batch 16, took {steps} steps meanwhile)");
            drop(training);
        }
        None => println!("(no models/all-MiniLM-L6-v2 or assets/demo: no numbers while training)"),
    }
}

/// The model view's thumbnails at `seq` tokens, the parts of their cost on
/// one thread: walking the weights of 144 heads, and rendering their lines.
fn thumbnail_parts(seq: usize) {
    use bertscope::ui::selection::{token_infos, visible_tokens};
    use bertscope::ui::support::contrast::Contrast;
    use bertscope::ui::support::head_links::{head_lines, HeadRows, KeyRuns};
    use bertscope::ui::support::thumbnails::rasterize;
    let result = synthetic(seq, 12, 12);
    let infos = token_infos(&result.tokens, &result.token_type_ids);
    let sel = Selection::default();
    let visible = visible_tokens(&infos, sel.filter, false);
    let runs = KeyRuns::new(&visible.keys);
    let min_opacity = if seq > 128 { 0.1 } else { 0.02 };
    let start = Instant::now();
    let mut all = Vec::new();
    for i in 0..144 {
        let rows = HeadRows::new(
            &result.attentions,
            (i / 12, i % 12),
            &visible,
            &runs,
            false,
            None,
        );
        all.push(head_lines(&rows, Contrast::default(), min_opacity, 10 * seq).0);
    }
    let walk = start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let pixels: usize = all
        .iter()
        .map(|links| rasterize(links, seq, 84, 1.0).pixels.len())
        .sum();
    let render = start.elapsed().as_secs_f64() * 1e3;
    let lines: usize = all.iter().map(Vec::len).sum();
    println!("thumbnails at {seq} tokens: walk {walk:.1} ms, render {render:.1} ms ({lines} lines, {pixels} pixels)");
}

fn views(when: &str) {
    for seq in [64, 256, 512] {
        thumbnail_parts(seq);
    }
    println!("{when}:");
    println!("view                       tokens  first ms  median ms  max ms  all drawn ms   (layout + tessellation, 12 layers x 12 heads, all heads on, 1440x900 px)");
    let plain = Look {
        model: false,
        zoom: 1.0,
        per_head: false,
    };
    for seq in [64, 256, 512] {
        let result = synthetic(seq, 12, 12);
        frame_ms(&result, plain).print("head view", &seq.to_string());
        let model = Look {
            model: true,
            ..plain
        };
        frame_ms(&result, model).print("model view", &seq.to_string());
        if seq == 512 {
            let zoomed = Look { zoom: 2.0, ..plain };
            frame_ms(&result, zoomed).print("head view, zoom 2", "512");
            let zoomed = Look { zoom: 2.0, ..model };
            frame_ms(&result, zoomed).print("model view, zoom 2", "512");
            let contrast = Look {
                per_head: true,
                ..plain
            };
            frame_ms(&result, contrast).print("head view, per-head", "512");
            let contrast = Look {
                per_head: true,
                ..model
            };
            frame_ms(&result, contrast).print("model view, per-head", "512");
        }
    }
    let timing = compare_frame(64);
    timing.print("compare", "64");
    let run = busy_run();
    let mut form = TrainForm::default();
    let draw = |ui: &mut egui::Ui| {
        let state = TrainViewState {
            preview: None,
            preview_error: None,
            run: &run,
            tuned: None,
            message: None,
            model_ready: true,
        };
        train_view::show(ui, &mut form, &state);
    };
    time_frames(1.0, draw, || true).print("training, 3000 steps", "");
}
