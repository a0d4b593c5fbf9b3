//! The app drawn headless: a `BertscopeApp` in export mode runs frame after
//! frame on a bare `egui::Context` (no window, no GPU) until its worker has
//! answered, and the last frame's shapes and meshes are kept.

use std::time::{Duration, Instant};

use egui::epaint::ClippedShape;
use egui::{Color32, Vec2};

use crate::export::raster::{Canvas, Textures};
use crate::export::svg;
use crate::ui::app::{AppOptions, BertscopeApp, ModelStatus};

/// How long a view may take to be ready (loading a model, computing).
const TIMEOUT: Duration = Duration::from_secs(600);
/// Frames drawn after the result is in, so that layout settles.
const SETTLE_FRAMES: u32 = 4;
/// Points of margin around a figure shown alone.
const MARGIN: f32 = 12.0;

/// One frame of the app, kept for SVG and PNG.
pub struct Picture {
    pub size: Vec2,
    /// The part of the frame the picture shows: the figure and its margin,
    /// or the whole frame.
    pub crop: egui::Rect,
    pub scale: f32,
    pub background: Color32,
    shapes: Vec<ClippedShape>,
    /// The context that drew the frame: it tessellates the shapes for a
    /// PNG (an SVG needs the shapes only).
    ctx: egui::Context,
    pixels_per_point: f32,
    textures: Textures,
}

/// The view `options` describe, `size` points at `scale` pixels per point.
/// `options.export` should be set (the view alone); errors are the model's
/// or the view's, as the window would show them.
pub fn render(options: AppOptions, size: Vec2, scale: f32) -> Result<Picture, String> {
    match render_even_failed(options, size, scale)? {
        (_, Some(problem)) => Err(problem),
        (picture, None) => Ok(picture),
    }
}

/// Like [`render`], but a model that could not be loaded (or an analysis
/// that failed) is drawn as the window shows it: the picture, and the
/// problem it shows (a lesson's handout keeps such a scene).
pub fn render_even_failed(
    options: AppOptions,
    size: Vec2,
    scale: f32,
) -> Result<(Picture, Option<String>), String> {
    let ctx = egui::Context::default();
    let transparent = options.export.as_ref().is_some_and(|l| l.transparent);
    let cc = eframe::CreationContext::_new_kittest(ctx.clone());
    let mut app = BertscopeApp::new(&cc, options);
    let mut frame = eframe::Frame::_new_kittest();
    let mut textures = Textures::default();
    let started = Instant::now();
    let mut settled = 0;
    loop {
        let mut output = ctx.run_ui(raw_input(size, scale), |ui| {
            eframe::App::ui(&mut app, ui, &mut frame)
        });
        textures.apply(&output.textures_delta);
        output.textures_delta.clear();
        if app.result_ready() {
            settled += 1;
        }
        if settled >= SETTLE_FRAMES {
            let problem = match &app.status {
                ModelStatus::Failed { spec, error } => Some(format!("{spec}: {error}")),
                _ => app.analysis_error.clone(),
            };
            let background = if transparent {
                Color32::TRANSPARENT
            } else {
                ctx.global_style().visuals.panel_fill
            };
            let whole = egui::Rect::from_min_size(egui::Pos2::ZERO, size);
            let crop = crate::ui::support::figure::marked(&ctx)
                .map(|r| room_for_wider_text(r.expand(MARGIN), &output.shapes))
                .map(|r| {
                    let r = r.intersect(whole);
                    egui::Rect::from_min_max(r.min.floor(), r.max.ceil())
                })
                .filter(|r| r.is_positive())
                .unwrap_or(whole);
            let picture = Picture {
                size,
                crop,
                scale,
                background,
                shapes: output.shapes,
                ctx,
                pixels_per_point: output.pixels_per_point,
                textures,
            };
            return Ok((picture, problem));
        }
        if started.elapsed() > TIMEOUT {
            return Err(format!(
                "the view was not ready after {} s",
                TIMEOUT.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(if settled > 0 { 1 } else { 15 }));
    }
}

/// `crop` widened on the right so that text ending near its edge still fits
/// when an SVG renderer lays it out in a font up to a fifth wider than
/// egui's (librsvg honours neither `textLength` nor embedded fonts).
fn room_for_wider_text(crop: egui::Rect, shapes: &[ClippedShape]) -> egui::Rect {
    let mut right = crop.max.x;
    let mut texts = Vec::new();
    for clipped in shapes {
        collect_text_rects(&clipped.shape, &mut texts);
    }
    for r in texts {
        let inside = r.max.y > crop.min.y && r.min.y < crop.max.y && r.min.x < crop.max.x;
        if inside && r.max.x > crop.max.x - MARGIN - 1.0 {
            right = right.max(r.max.x + 0.2 * r.width() + MARGIN / 2.0);
        }
    }
    egui::Rect::from_min_max(crop.min, egui::pos2(right, crop.max.y))
}

fn collect_text_rects(shape: &egui::Shape, out: &mut Vec<egui::Rect>) {
    match shape {
        egui::Shape::Vec(shapes) => shapes.iter().for_each(|s| collect_text_rects(s, out)),
        egui::Shape::Text(t) => out.push(t.visual_bounding_rect()),
        _ => {}
    }
}

fn raw_input(size: Vec2, scale: f32) -> egui::RawInput {
    let mut input = egui::RawInput {
        screen_rect: Some(egui::Rect::from_min_size(egui::Pos2::ZERO, size)),
        ..Default::default()
    };
    input
        .viewports
        .entry(egui::ViewportId::ROOT)
        .or_default()
        .native_pixels_per_point = Some(scale);
    input
}

impl Picture {
    /// The picture as an SVG document (vector: one element per line, cell
    /// or text), cropped.
    pub fn svg(&self) -> String {
        svg::document(&self.shapes, self.crop, self.background)
    }

    /// The picture rasterised, `crop × scale` pixels.
    pub fn png(&self) -> Result<Vec<u8>, String> {
        let (w, h) = (
            (self.size.x * self.scale).round() as usize,
            (self.size.y * self.scale).round() as usize,
        );
        let primitives = self
            .ctx
            .tessellate(self.shapes.clone(), self.pixels_per_point);
        let mut canvas = Canvas::new(w, h, self.background);
        canvas.draw(&primitives, &self.textures, self.scale);
        let px = |v: f32| (v * self.scale).round().max(0.0) as usize;
        let canvas = canvas.crop(
            (px(self.crop.min.x), px(self.crop.min.y)),
            (px(self.crop.width()), px(self.crop.height())),
        );
        canvas
            .to_png()
            .map_err(|e| format!("cannot encode the PNG: {e}"))
    }
}
