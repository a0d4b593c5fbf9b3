//! A lesson built in the app: *Add this view to lesson* appends the scene on
//! screen, *Save lesson…* asks where (a save dialog on its own thread) and
//! writes the TOML there on that thread, atomically. A file already there is
//! replaced only when it is a lesson bertscope can read.

use std::path::{Path, PathBuf};

use crate::lesson::{Lesson, Scene};
use crate::ui::support::job::Job;
use crate::write_guard::{self, Protected};

/// The lesson being built and its save in progress.
#[derive(Default)]
pub struct LessonDraft {
    pub lesson: Lesson,
    saving: Option<Job<Result<Option<PathBuf>, String>>>,
    /// The last outcome ("scene 3 added", "saved …", why not), shown in the menu.
    pub message: Option<String>,
}

impl LessonDraft {
    /// Append `scene`, shown with model `model`: the first scene's model
    /// becomes the lesson's, later scenes name theirs only when it differs.
    pub fn add(&mut self, mut scene: Scene, model: Option<String>) {
        if self.lesson.scenes.is_empty() {
            self.lesson.model = model.clone();
        }
        scene.model = model.filter(|m| Some(m) != self.lesson.model.as_ref());
        if self.lesson.title.is_empty() {
            self.lesson.title = "My lesson".into();
        }
        self.lesson.scenes.push(scene);
        self.message = Some(format!("scene {} added", self.lesson.scenes.len()));
    }

    pub fn saving(&self) -> bool {
        self.saving.is_some()
    }

    /// Ask where to save (dialog on its own thread), then write there.
    pub fn start_save(&mut self, protected: Protected, notify: impl Fn() + Send + 'static) {
        if self.saving.is_some() || self.lesson.scenes.is_empty() {
            return;
        }
        let lesson = self.lesson.clone();
        let work = move || {
            let chosen = rfd::FileDialog::new()
                .set_title("Save lesson")
                .add_filter("Lesson (TOML)", &["toml"])
                .set_file_name("lesson.toml")
                .save_file();
            match chosen {
                Some(path) => save(&path, &lesson, &protected).map(|()| Some(path)),
                None => Ok(None),
            }
        };
        self.saving = Some(Job::spawn("save lesson", work, notify));
        self.message = None;
    }

    /// Take the save's outcome once it is there.
    pub fn poll(&mut self) {
        let Some(outcome) = self.saving.as_ref().and_then(Job::poll) else {
            return;
        };
        self.saving = None;
        self.message = match outcome.and_then(|r| r) {
            Ok(Some(path)) => Some(format!("saved {}", path.display())),
            Ok(None) => None,
            Err(e) => Some(e),
        };
    }
}

/// Write `lesson` to `path` (temporary file + rename). An existing file is
/// replaced only when it reads as a lesson; protected paths never.
pub fn save(path: &Path, lesson: &Lesson, protected: &Protected) -> Result<(), String> {
    write_guard::check_output_file(path, protected).map_err(|e| e.to_string())?;
    if path.exists() {
        if let Err(e) = Lesson::load(path) {
            return Err(format!(
                "{} exists and is not a lesson bertscope can read ({e}); nothing was written: choose another name",
                path.display()
            ));
        }
    }
    let text = lesson.to_toml();
    write_guard::write_file_atomically(path, |w| std::io::Write::write_all(w, text.as_bytes()))
        .map_err(|e| e.to_string())
}
