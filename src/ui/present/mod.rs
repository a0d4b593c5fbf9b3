//! Presentation mode (`bertscope present LESSON`): the scene shown, the keys a
//! clicker sends (next, previous, a number + Enter, blank, leave), the zoom
//! and the projector theme. Pure state and rules here; `screen.rs` draws,
//! `keys.rs` reads the keyboard, the app applies a scene (`app/present.rs`).

pub mod draft;
pub mod keys;
pub mod screen;

use std::path::PathBuf;

use crate::lesson::{Lesson, LessonView};
use crate::ui::state::View;
use keys::PresentKey;

/// Zoom for a 1080p projector read from the back of a room.
pub const DEFAULT_ZOOM: f32 = 1.6;
const ZOOM_STEP: f32 = 0.1;
const ZOOM_RANGE: (f32, f32) = (0.5, 4.0);

/// How presentation mode looks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PresentLook {
    pub zoom: f32,
    /// The light high-contrast theme (projectors wash dark themes out).
    pub light: bool,
}

impl Default for PresentLook {
    fn default() -> Self {
        PresentLook {
            zoom: DEFAULT_ZOOM,
            light: false,
        }
    }
}

/// `AppOptions::lesson`: open a lesson at a scene.
#[derive(Debug, Clone, PartialEq)]
pub struct LessonStart {
    pub lesson: Lesson,
    /// 0-based.
    pub scene: usize,
    pub look: PresentLook,
}

/// The app's lessons: the one presented (if any) and the one being built.
#[derive(Default)]
pub struct Lessons {
    pub present: Option<Presenter>,
    pub draft: draft::LessonDraft,
}

impl Lessons {
    pub fn new(start: Option<LessonStart>) -> Self {
        Lessons {
            present: start.map(Presenter::new),
            draft: Default::default(),
        }
    }
}

/// What a key asks of the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Move {
    /// Show scene `n` (0-based; set up afresh even when it is the current one).
    GoTo(usize),
    Leave,
    Zoom,
}

/// The state of a presentation.
#[derive(Debug)]
pub struct Presenter {
    pub lesson: Lesson,
    /// 0-based.
    pub scene: usize,
    /// Digits typed for a jump (shown until Enter or Esc).
    pub typed: String,
    pub blank: bool,
    pub look: PresentLook,
    /// Shown on screen until the next move: a number out of range, a head
    /// the model lacks.
    pub notice: Option<String>,
    /// Settings of the scene applied once its model is loaded.
    pub pending: Option<Pending>,
    /// Esc was pressed: the window was asked to close.
    pub left: bool,
}

/// What waits for the scene's model: heads need its shape, the tuned model
/// and the data preview need it loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub heads: Vec<usize>,
    pub tuned: Option<PathBuf>,
    pub data: Option<PathBuf>,
}

impl Presenter {
    pub fn new(start: LessonStart) -> Self {
        let last = start.lesson.scenes.len().saturating_sub(1);
        Presenter {
            scene: start.scene.min(last),
            lesson: start.lesson,
            typed: String::new(),
            blank: false,
            look: start.look,
            notice: None,
            pending: None,
            left: false,
        }
    }

    pub fn count(&self) -> usize {
        self.lesson.scenes.len()
    }

    /// "scene k of n".
    pub fn position(&self) -> String {
        format!("scene {} of {}", self.scene + 1, self.count())
    }

    /// A key: what the app should do about it, if anything.
    pub fn press(&mut self, key: PresentKey) -> Option<Move> {
        match key {
            PresentKey::Next => self.step(1),
            PresentKey::Previous => self.step(-1),
            PresentKey::Digit(d) => {
                if self.typed.len() < 4 {
                    self.typed.push(char::from(b'0' + d.min(9)));
                }
                None
            }
            PresentKey::Backspace => {
                self.typed.pop();
                None
            }
            PresentKey::Enter => self.jump(),
            PresentKey::Blank => {
                self.blank = !self.blank;
                None
            }
            PresentKey::Escape if !self.typed.is_empty() => {
                self.typed.clear();
                None
            }
            PresentKey::Escape => {
                self.left = true;
                Some(Move::Leave)
            }
            PresentKey::ZoomIn => self.zoom(ZOOM_STEP),
            PresentKey::ZoomOut => self.zoom(-ZOOM_STEP),
        }
    }

    /// Next or previous: stays put at either end (and says so).
    fn step(&mut self, by: isize) -> Option<Move> {
        self.typed.clear();
        self.blank = false;
        let target = self
            .scene
            .checked_add_signed(by)
            .filter(|&n| n < self.count());
        match target {
            Some(n) => Some(self.go(n)),
            None => {
                self.notice = Some(if by > 0 {
                    "this is the last scene".into()
                } else {
                    "this is the first scene".into()
                });
                None
            }
        }
    }

    /// Enter after digits: that scene (1-based as on screen).
    fn jump(&mut self) -> Option<Move> {
        let typed = std::mem::take(&mut self.typed);
        let n = typed.parse::<usize>().ok()?;
        if (1..=self.count()).contains(&n) {
            self.blank = false;
            Some(self.go(n - 1))
        } else {
            self.notice = Some(format!("no scene {n}: scenes 1 to {}", self.count()));
            None
        }
    }

    fn go(&mut self, n: usize) -> Move {
        self.scene = n;
        self.notice = None;
        Move::GoTo(n)
    }

    fn zoom(&mut self, by: f32) -> Option<Move> {
        let zoom = ((self.look.zoom + by) * 10.0).round() / 10.0;
        self.look.zoom = zoom.clamp(ZOOM_RANGE.0, ZOOM_RANGE.1);
        Some(Move::Zoom)
    }

    /// The speaker notes of the current scene, as printed to the terminal.
    pub fn notes_text(&self) -> String {
        let scene = &self.lesson.scenes[self.scene.min(self.count().saturating_sub(1))];
        let caption = scene.caption.as_deref().unwrap_or("");
        let mut out = format!("── {} · {caption}", self.position());
        if let Some(notes) = &scene.notes {
            out.push('\n');
            out.push_str(notes.trim_end());
        }
        out
    }
}

/// The app's view for a lesson's view (the names are `--view`'s).
pub fn view_of(view: LessonView) -> View {
    View::parse(view.name()).unwrap_or(View::Head)
}

/// The lesson name of an app view.
pub fn lesson_view(view: View) -> Option<LessonView> {
    LessonView::ALL
        .into_iter()
        .find(|v| View::parse(v.name()) == Some(view))
}

/// What to run when the model `spec` could not be loaded.
pub fn missing_model_hint(spec: &str) -> String {
    let name = spec.trim_end_matches('/');
    if name.ends_with("demo-mlm") {
        "Build it (a few minutes, no download): bash scripts/build-demo-mlm.sh".into()
    } else if name.ends_with("all-MiniLM-L6-v2") {
        "Fetch it: bash scripts/fetch-demo-model.sh".into()
    } else if hub_id(name) {
        format!("Put it in your Hugging Face cache first: hf download {name}")
    } else if name.contains('/') {
        format!("Check that {name} is a folder with config.json, the weights and a tokenizer.")
    } else {
        format!("Put it in ./models/{name} or in your Hugging Face cache (hf download {name}).")
    }
}

/// `org/name`: a Hub id rather than a folder.
fn hub_id(name: &str) -> bool {
    name.split('/').count() == 2 && !name.starts_with(['.', '/']) && !name.starts_with("models/")
}

#[cfg(test)]
mod tests;
