//! The model view's thumbnails kept between frames: each head's lines, and
//! their pictures.

use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::TextureHandle;

use crate::ui::intent::TokenFocus;
use crate::ui::selection::{Selection, SentenceFilter, VisibleTokens};
use crate::ui::support::contrast::Contrast;
use crate::ui::support::head_links::{head_lines, HeadRows, KeyRuns, Link};
use crate::ui::support::thumbnails::{Job, Renderer};

/// A head draws at most this many lines per row of tokens (its strongest),
/// and never fewer than [`MIN_CAP`] in all: a cap only long inputs reach.
const LINES_PER_ROW: usize = 10;
const MIN_CAP: usize = 4096;

/// The most lines a head draws with `rows` rows of tokens.
pub(super) fn line_cap(rows: usize) -> usize {
    (LINES_PER_ROW * rows).max(MIN_CAP)
}
/// Time a frame may spend walking the heads' weights for thumbnails still to
/// draw (the rest waits for the next frame).
const WALK_BUDGET: Duration = Duration::from_millis(4);

/// What the thumbnails were computed for.
#[derive(Debug, Clone, PartialEq)]
struct CacheKey {
    /// The cache's data generation (see [`ThumbnailCache::data_changed`]).
    generation: u64,
    /// Layers, heads and tokens of the maps.
    shape: (usize, usize, usize),
    filter: SentenceFilter,
    hide_special: bool,
    renormalize: bool,
    /// Word-level maps are other data than the token-level ones.
    words: bool,
    focus: Option<TokenFocus>,
    contrast: Contrast,
}

/// One head's thumbnail: its lines and their picture.
#[derive(Default)]
struct Head {
    /// (query row, key row, opacity); `None` until walked.
    links: Option<Arc<Vec<Link>>>,
    /// Only the strongest lines are kept.
    capped: bool,
    /// The ticket of the last picture asked for.
    asked: u64,
    /// The picture and the ticket it was drawn for (an older one is shown,
    /// stretched, until the new one is in).
    texture: Option<(TextureHandle, u64)>,
}

/// The thumbnails of every head, kept between frames: walking 144 heads ×
/// 512² weights takes tens of milliseconds, drawing their lines as shapes
/// every frame several more. In the window each thumbnail is a texture,
/// rendered once on a thread of its own (the walk itself is spread over
/// frames, [`WALK_BUDGET`] each); for an export the lines stay vector shapes
/// (one SVG element per line). Keyed by a generation number its owner bumps
/// with every new analysis (an allocation's address can be reused by the
/// next analysis).
#[derive(Default)]
pub struct ThumbnailCache {
    generation: u64,
    /// Draw lines as shapes instead of textures (exports).
    vector: bool,
    key: Option<CacheKey>,
    heads: Vec<Head>,
    /// Heads walked so far (in order).
    walked: usize,
    /// Bumped whenever the pictures must be drawn again (content or size).
    ticket: u64,
    /// Pixels a side of the pictures.
    side_px: usize,
    renderer: Option<Renderer>,
}

impl ThumbnailCache {
    /// A cache that keeps the lines as vector shapes: for exports, where
    /// each line becomes an SVG element.
    pub fn vector() -> Self {
        ThumbnailCache {
            vector: true,
            ..Default::default()
        }
    }

    /// The attention maps drawn from now on are new: recompute the links.
    pub fn data_changed(&mut self) {
        self.generation += 1;
    }

    /// Whether every thumbnail shows the current data (screenshots and
    /// exports wait for it).
    pub fn settled(&self) -> bool {
        let Some(key) = &self.key else {
            return true;
        };
        key.generation == self.generation
            && self.walked == self.heads.len()
            && (self.vector
                || self
                    .heads
                    .iter()
                    .all(|h| h.texture.as_ref().is_some_and(|t| t.1 == self.ticket)))
    }

    /// Whether the lines are drawn as shapes.
    pub(super) fn is_vector(&self) -> bool {
        self.vector
    }

    /// The lines of thumbnail `i` (layer × heads + head), once walked.
    pub(super) fn links(&self, i: usize) -> Option<&[Link]> {
        self.heads.get(i)?.links.as_deref().map(Vec::as_slice)
    }

    /// The picture of thumbnail `i`, if any (perhaps an older one, until
    /// the new one is in).
    pub(super) fn texture(&self, i: usize) -> Option<egui::TextureId> {
        Some(self.heads.get(i)?.texture.as_ref()?.0.id())
    }

    /// Whether some head shows only its strongest lines.
    pub(super) fn any_capped(&self) -> bool {
        self.heads.iter().any(|h| h.capped)
    }

    /// Thumbnails drawn, of all.
    pub(super) fn progress(&self) -> (usize, usize) {
        (self.done(), self.heads.len())
    }

    /// Thumbnails whose lines are walked and drawn.
    fn done(&self) -> usize {
        if self.vector {
            return self.walked;
        }
        let ticket = self.ticket;
        self.heads
            .iter()
            .filter(|h| h.texture.as_ref().is_some_and(|t| t.1 == ticket))
            .count()
    }

    /// Starts over when the data, the filters or the contrast changed; walks
    /// heads (all of them for vector drawing, else for [`WALK_BUDGET`]) and
    /// asks for their pictures at `side_px` pixels; takes the pictures in.
    pub(super) fn prepare(
        &mut self,
        ctx: &egui::Context,
        shown: &Shown,
        side_px: usize,
        width_px: f32,
    ) {
        let maps = shown.maps;
        let key = CacheKey {
            generation: self.generation,
            shape: (maps.layers, maps.heads, maps.seq),
            filter: shown.sel.filter,
            hide_special: shown.sel.hide_special,
            renormalize: shown.sel.renormalize,
            words: shown.sel.words,
            focus: shown.focus,
            contrast: shown.sel.contrast,
        };
        let count = maps.layers * maps.heads;
        if self.key.as_ref() != Some(&key) {
            self.key = Some(key);
            self.heads.resize_with(count, Head::default);
            for head in &mut self.heads {
                head.links = None;
            }
            self.walked = 0;
            self.ticket += 1;
        }
        if side_px != self.side_px {
            self.side_px = side_px;
            self.ticket += 1;
        }
        self.walk(shown, count);
        if self.vector {
            return;
        }
        let renderer = self
            .renderer
            .get_or_insert_with(|| Renderer::spawn(ctx.clone()));
        renderer.set_ticket(self.ticket);
        for (i, head) in self.heads.iter_mut().enumerate() {
            let Some(links) = &head.links else { continue };
            if head.asked != self.ticket {
                head.asked = self.ticket;
                renderer.submit(Job {
                    ticket: self.ticket,
                    head: i,
                    links: links.clone(),
                    rows: shown.rows,
                    side: side_px,
                    width: width_px,
                });
            }
        }
        for done in renderer.finished() {
            let Some(head) = self.heads.get_mut(done.head) else {
                continue;
            };
            if done.ticket != self.ticket {
                continue;
            }
            let options = egui::TextureOptions::LINEAR;
            match &mut head.texture {
                Some((texture, ticket)) => {
                    texture.set(done.image, options);
                    *ticket = done.ticket;
                }
                None => {
                    let name = format!("thumbnail-{}", done.head);
                    head.texture = Some((ctx.load_texture(name, done.image, options), done.ticket));
                }
            }
        }
        // The thread wakes the UI with each picture; the walk goes on by itself.
        if self.walked < count {
            ctx.request_repaint();
        }
    }

    /// Walks the heads not walked yet, within the frame's budget.
    fn walk(&mut self, shown: &Shown, count: usize) {
        let started = Instant::now();
        let renormalize = shown.sel.hide_special && shown.sel.renormalize;
        let runs = KeyRuns::new(&shown.visible.keys);
        while self.walked < count {
            if !self.vector && started.elapsed() > WALK_BUDGET {
                break;
            }
            let i = self.walked;
            let which = (i / shown.maps.heads, i % shown.maps.heads);
            let rows = HeadRows::new(
                shown.maps,
                which,
                shown.visible,
                &runs,
                renormalize,
                shown.focus,
            );
            let cap = line_cap(shown.rows);
            let (links, capped) = head_lines(&rows, shown.sel.contrast, shown.min_opacity, cap);
            if let Some(head) = self.heads.get_mut(i) {
                head.links = Some(Arc::new(links));
                head.capped = capped;
            }
            self.walked += 1;
        }
    }
}

/// What the grid shows.
pub(super) struct Shown<'a> {
    pub maps: &'a crate::AttentionMaps,
    pub visible: &'a VisibleTokens,
    pub sel: &'a Selection,
    pub focus: Option<TokenFocus>,
    /// Rows of tokens (the taller column).
    pub rows: usize,
    /// Fainter lines are left out.
    pub min_opacity: f32,
}
