//! The model view's thumbnails as pictures: each head's lines are rendered
//! once into an image (white, the lines' opacity as alpha, tinted with the
//! head's colour when drawn), on a thread of its own, and drawn as a
//! texture; a frame then costs one quad per thumbnail however many lines it
//! holds. The layout of the lines is the one the vector drawing uses.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;

use egui::{Color32, ColorImage};

use crate::ui::support::head_links::Link;

/// The side of a thumbnail the layout is designed at (points).
pub const DESIGN_SIDE: f32 = 84.0;

/// Where a line from query row `qi` to key row `ki` runs in a square
/// thumbnail of side `side` (points or pixels), from its top-left corner:
/// queries on the left, keys on the right, `rows` rows.
pub fn line_ends(side: f32, rows: usize, qi: u16, ki: u16) -> [(f32, f32); 2] {
    let s = side / DESIGN_SIDE;
    let row_h = (side - 8.0 * s) / rows.max(1) as f32;
    let y = |i: u16| 4.0 * s + (i as f32 + 0.5) * row_h;
    [(10.0 * s, y(qi)), (side - 10.0 * s, y(ki))]
}

/// The lines of one thumbnail as a `side`×`side` image: white, alpha the
/// lines' opacities composited over each other; `width` is the lines'
/// width in pixels. In each pixel column a line covers an interval of rows
/// (its thickness there, plus its rise across the column); its area in the
/// column is spread evenly over that interval (anti-aliased).
pub fn rasterize(links: &[Link], rows: usize, side: usize, width: f32) -> ColorImage {
    // What each pixel lets through of the background: ∏ (1 − coverage ×
    // opacity); column-major, as lines are walked column by column.
    let mut through = vec![1.0f32; side * side];
    let extent = side as f32;
    for &(qi, ki, opacity) in links {
        let [(x0, y0), (x1, y1)] = line_ends(extent, rows, qi, ki);
        if opacity <= 0.0 || x1 <= x0 {
            continue;
        }
        let slope = (y1 - y0) / (x1 - x0);
        // The line's vertical thickness, and its interval's length in a whole column.
        let thick = width * (1.0 + slope * slope).sqrt();
        let inner = opacity * thick / (slope.abs() + thick);
        // The partial columns at both ends, then the whole ones between,
        // where the interval only moves down by `slope` a column.
        let (first, last) = (up(x0), x1.max(0.0) as usize);
        let mut column_span = |a: f32, b: f32| {
            let col = a.max(0.0) as usize;
            if b <= a || col >= side {
                return;
            }
            let (ya, yb) = (y0 + slope * (a - x0), y0 + slope * (b - x0));
            let length = (b - a) * slope.abs() + thick;
            let level = opacity * (b - a) * thick / length;
            let lo = ya.min(yb) - thick / 2.0;
            cover(
                &mut through[col * side..(col + 1) * side],
                lo,
                length,
                level,
            );
        };
        if first > last {
            column_span(x0, x1);
            continue;
        }
        column_span(x0, first as f32);
        column_span(last as f32, x1);
        let length = slope.abs() + thick;
        let step = slope;
        let mut lo = y0 + slope * (first as f32 - x0) + step.min(0.0) - thick / 2.0;
        for col in first..last.min(side) {
            cover(
                &mut through[col * side..(col + 1) * side],
                lo,
                length,
                inner,
            );
            lo += step;
        }
    }
    let mut pixels = vec![Color32::TRANSPARENT; side * side];
    for (col, column) in through.chunks_exact(side).enumerate() {
        for (row, &t) in column.iter().enumerate() {
            if t < 1.0 {
                let alpha = ((1.0 - t) * 255.0 + 0.5) as u8;
                pixels[row * side + col] = Color32::from_white_alpha(alpha);
            }
        }
    }
    ColorImage::new([side, side], pixels)
}

/// Multiplies what the rows of `column` let through by 1 − `level` × the
/// part of each row inside `[lo, lo + length]`.
fn cover(column: &mut [f32], lo: f32, length: f32, level: f32) {
    let (mut lo, mut left) = (lo, length);
    if lo < 0.0 {
        left += lo;
        lo = 0.0;
    }
    let mut row = lo as usize;
    // The first row holds the part of the interval down to its bottom edge.
    let mut part = ((row + 1) as f32 - lo).min(left);
    while left > 0.0 {
        let Some(t) = column.get_mut(row) else {
            break;
        };
        *t *= 1.0 - (part * level).min(1.0);
        left -= part;
        row += 1;
        part = left.min(1.0);
    }
}

/// The smallest integer at least `x` (≥ 0), without a libm call.
fn up(x: f32) -> usize {
    let whole = x.max(0.0) as usize;
    if (whole as f32) < x {
        whole + 1
    } else {
        whole
    }
}

/// One thumbnail to render.
pub struct Job {
    /// Which drawing it belongs to: skipped once the cache moved on.
    pub ticket: u64,
    pub head: usize,
    pub links: Arc<Vec<Link>>,
    pub rows: usize,
    /// Pixels a side.
    pub side: usize,
    /// The lines' width in pixels.
    pub width: f32,
}

impl Job {
    fn run(self) -> Done {
        let image = rasterize(&self.links, self.rows, self.side, self.width);
        Done {
            ticket: self.ticket,
            head: self.head,
            image,
        }
    }
}

/// A rendered thumbnail.
pub struct Done {
    pub ticket: u64,
    pub head: usize,
    pub image: ColorImage,
}

/// The thread that renders thumbnails; without one (it could not start or
/// it stopped), jobs run where they are submitted.
pub struct Renderer {
    thread: Option<(Sender<Job>, Receiver<Done>)>,
    /// The ticket jobs must carry to be worth running.
    current: Arc<AtomicU64>,
    /// Jobs run here when there is no thread.
    local: Vec<Done>,
}

impl Renderer {
    /// Starts the thread; it wakes the UI through `ctx` after each job and
    /// ends when the renderer is dropped.
    pub fn spawn(ctx: egui::Context) -> Renderer {
        let current = Arc::new(AtomicU64::new(0));
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (outbox, done) = mpsc::channel();
        let wanted = current.clone();
        let spawned = std::thread::Builder::new()
            .name("bertscope-thumbnails".into())
            .spawn(move || {
                for job in inbox {
                    if job.ticket != wanted.load(Ordering::Relaxed) {
                        continue;
                    }
                    if outbox.send(job.run()).is_err() {
                        break;
                    }
                    ctx.request_repaint();
                }
            });
        Renderer {
            thread: spawned.ok().map(|_| (jobs, done)),
            current,
            local: Vec::new(),
        }
    }

    /// Jobs with another ticket are skipped from now on.
    pub fn set_ticket(&self, ticket: u64) {
        self.current.store(ticket, Ordering::Relaxed);
    }

    pub fn submit(&mut self, job: Job) {
        let job = match &self.thread {
            Some((jobs, _)) => match jobs.send(job) {
                Ok(()) => return,
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        self.thread = None;
        self.local.push(job.run());
    }

    /// The thumbnails rendered since the last call.
    pub fn finished(&mut self) -> Vec<Done> {
        let mut done = std::mem::take(&mut self.local);
        if let Some((_, inbox)) = &self.thread {
            done.extend(inbox.try_iter());
        }
        done
    }
}

impl Drop for Renderer {
    /// The jobs still queued are skipped; the thread ends once the queue is empty.
    fn drop(&mut self) {
        self.current.store(u64::MAX, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alpha(image: &ColorImage, x: usize, y: usize) -> u8 {
        image.pixels[y * image.size[0] + x].a()
    }

    #[test]
    fn a_line_covers_its_path_and_nothing_else() {
        // Two rows: row 0 at y = 4 + 19 = 23, row 1 at 61 (side 84).
        let image = rasterize(&[(0, 0, 1.0)], 2, 84, 1.0);
        assert_eq!(image.size, [84, 84]);
        let ends = line_ends(84.0, 2, 0, 0);
        assert_eq!(ends, [(10.0, 23.0), (74.0, 23.0)]);
        // A horizontal line on the boundary of pixel rows 22 and 23: half each.
        assert!((i32::from(alpha(&image, 40, 22)) - 128).abs() <= 1);
        assert!((i32::from(alpha(&image, 40, 23)) - 128).abs() <= 1);
        assert_eq!(alpha(&image, 40, 30), 0);
        assert_eq!(alpha(&image, 5, 22), 0, "left of the line's start");
        // The ink is the line's area: 64 × 1 pixels.
        let ink: f32 = image.pixels.iter().map(|p| p.a() as f32 / 255.0).sum();
        assert!((ink - 64.0).abs() < 0.5, "{ink}");
    }

    #[test]
    fn lines_composite_over_each_other() {
        let one = rasterize(&[(0, 1, 0.5)], 2, 84, 1.0);
        let two = rasterize(&[(0, 1, 0.5), (0, 1, 0.5)], 2, 84, 1.0);
        let (a1, a2) = (alpha(&one, 42, 42), alpha(&two, 42, 42));
        assert!(a1 > 0 && a2 > a1, "{a1} {a2}");
        // 1 − (1 − c·0.5)² for the same coverage c.
        let c = a1 as f32 / 255.0 / 0.5;
        let expected = (1.0 - (1.0 - c * 0.5).powi(2)) * 255.0;
        assert!((a2 as f32 - expected).abs() <= 1.5, "{a2} vs {expected}");
        // A steep line still leaves the same ink per unit of length.
        let ink: f32 = one.pixels.iter().map(|p| p.a() as f32 / 255.0).sum();
        let [(x0, y0), (x1, y1)] = line_ends(84.0, 2, 0, 1);
        let length = ((x1 - x0).powi(2) + (y1 - y0).powi(2)).sqrt();
        assert!((ink - 0.5 * length).abs() < 0.05 * length, "{ink} {length}");
    }

    #[test]
    fn stale_jobs_are_skipped_and_the_rest_come_back() {
        let ctx = egui::Context::default();
        let mut renderer = Renderer::spawn(ctx);
        let job = |ticket, head| Job {
            ticket,
            head,
            links: Arc::new(vec![(0, 0, 1.0)]),
            rows: 1,
            side: 16,
            width: 1.0,
        };
        renderer.set_ticket(2);
        renderer.submit(job(1, 0));
        renderer.submit(job(2, 1));
        let mut done = Vec::new();
        let started = std::time::Instant::now();
        while done.is_empty() && started.elapsed().as_secs() < 10 {
            done.extend(renderer.finished());
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        assert_eq!(done.len(), 1);
        assert_eq!((done[0].ticket, done[0].head), (2, 1));
        assert_eq!(done[0].image.size, [16, 16]);
    }
}
