//! `--screenshot out.png`: wait until the window shows its result, capture it
//! in-app, save a PNG and close.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Where the outcome of a screenshot lands, for the caller of `ui::run`.
pub type ScreenshotSink = Arc<Mutex<Option<Result<PathBuf, String>>>>;

/// Frames to draw after the result arrived, so layout and fonts have settled.
const SETTLE_FRAMES: u32 = 5;
/// Capture anyway after this long (a model that never loads still gets a picture).
const GIVE_UP: Duration = Duration::from_secs(120);

/// The state of a pending screenshot.
pub struct ScreenshotJob {
    path: PathBuf,
    started: Instant,
    settled_frames: u32,
    requested: bool,
    done: bool,
    sink: ScreenshotSink,
}

impl ScreenshotJob {
    pub fn new(path: PathBuf, sink: ScreenshotSink) -> Self {
        ScreenshotJob {
            path,
            started: Instant::now(),
            settled_frames: 0,
            requested: false,
            done: false,
            sink,
        }
    }

    /// Call once per frame; `ready`: the window shows its final content.
    pub fn frame(&mut self, ctx: &egui::Context, ready: bool) {
        if self.done || self.sink.lock().is_ok_and(|s| s.is_some()) {
            self.done = true;
            return;
        }
        if self.requested {
            ctx.request_repaint();
            return;
        }
        // No tooltip of wherever the pointer happens to rest (Xvfb: the
        // screen's centre) once the model takes longer than the delay.
        ctx.all_styles_mut(|style| style.interaction.tooltip_delay = f32::INFINITY);
        if ready || self.started.elapsed() > GIVE_UP {
            self.settled_frames += 1;
        }
        if self.settled_frames >= SETTLE_FRAMES {
            self.requested = true;
            let (path, sink, viewport) = (self.path.clone(), self.sink.clone(), ctx.clone());
            ctx.request_screenshot(move |image| {
                let outcome = save_png(&path, &image);
                if let Ok(mut sink) = sink.lock() {
                    *sink = Some(outcome);
                }
                viewport.send_viewport_cmd(egui::ViewportCommand::Close);
                viewport.request_repaint();
            });
        }
        ctx.request_repaint();
    }
}

fn save_png(path: &PathBuf, image: &egui::ColorImage) -> Result<PathBuf, String> {
    let [w, h] = image.size;
    let bytes: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    let buffer = image::RgbaImage::from_raw(w as u32, h as u32, bytes)
        .ok_or_else(|| format!("{}: screenshot has an inconsistent size", path.display()))?;
    buffer
        .save(path)
        .map_err(|e| format!("{}: cannot save screenshot: {e}", path.display()))?;
    Ok(path.clone())
}
