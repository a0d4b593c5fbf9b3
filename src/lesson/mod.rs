//! Lessons: a TOML file of scenes (input, view, layer, heads, caption, notes)
//! that `bertscope present` shows one after another. Plain data, read and
//! checked here (errors name the file, line and key) and written back by the
//! app's *Save lesson…*; the UI turns a scene into its settings.

mod parse;
mod write;

use std::path::{Path, PathBuf};

use crate::error::{BertError, Op, Result};

/// A lesson file larger than this is not a lesson.
const MAX_BYTES: u64 = 4 << 20;

/// A lesson: a title, a default model and the scenes in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Lesson {
    pub title: String,
    /// The model of every scene that names none.
    pub model: Option<String>,
    pub scenes: Vec<Scene>,
}

/// One scene: what is on screen, as the lesson file gives it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scene {
    pub text_a: String,
    pub text_b: Option<String>,
    pub view: LessonView,
    /// Another model than the lesson's.
    pub model: Option<String>,
    /// 0-based, as `--layer`.
    pub layer: Option<usize>,
    /// The heads drawn (0-based); empty: all of them.
    pub heads: Vec<usize>,
    /// Token positions replaced by [MASK] ([CLS] = 0).
    pub masked: Vec<usize>,
    pub word_level: bool,
    pub caption: Option<String>,
    /// Speaker notes: printed to the terminal, never on screen.
    pub notes: Option<String>,
    /// The fine-tuned model of the train and compare views (relative paths
    /// are resolved against the lesson's folder when it is read).
    pub tuned: Option<PathBuf>,
    /// The training view's data file (resolved like `tuned`).
    pub data: Option<PathBuf>,
}

/// The views a scene can show, by their lesson (and `--view`) names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LessonView {
    #[default]
    Head,
    Model,
    Matrix,
    Mlm,
    Tokens,
    Explain,
    Train,
    Compare,
}

impl LessonView {
    pub const ALL: [LessonView; 8] = [
        LessonView::Head,
        LessonView::Model,
        LessonView::Matrix,
        LessonView::Mlm,
        LessonView::Tokens,
        LessonView::Explain,
        LessonView::Train,
        LessonView::Compare,
    ];

    pub fn name(self) -> &'static str {
        match self {
            LessonView::Head => "head",
            LessonView::Model => "model",
            LessonView::Matrix => "matrix",
            LessonView::Mlm => "mlm",
            LessonView::Tokens => "tokens",
            LessonView::Explain => "explain",
            LessonView::Train => "train",
            LessonView::Compare => "compare",
        }
    }

    pub fn parse(name: &str) -> Option<LessonView> {
        LessonView::ALL.into_iter().find(|v| v.name() == name)
    }

    /// "head, model, matrix, …" for messages.
    pub fn names() -> String {
        let names: Vec<&str> = LessonView::ALL.iter().map(|v| v.name()).collect();
        names.join(", ")
    }

    /// Whether a scene of this view may name a fine-tuned model.
    pub fn takes_tuned(self) -> bool {
        matches!(self, LessonView::Train | LessonView::Compare)
    }
}

impl Lesson {
    /// Read and check `path`; relative `tuned`/`data` paths are resolved
    /// against the lesson's folder.
    pub fn load(path: &Path) -> Result<Lesson> {
        let meta = std::fs::metadata(path).map_err(|e| BertError::io(Op::Read, path, &e))?;
        if meta.is_dir() {
            return Err(BertError::file(path, "is a directory, not a lesson file"));
        }
        if meta.len() > MAX_BYTES {
            return Err(BertError::file(
                path,
                format!("is {} bytes; a lesson is at most 4 MiB", meta.len()),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| BertError::io(Op::Read, path, &e))?;
        let text = String::from_utf8(bytes)
            .map_err(|e| BertError::file(path, format!("is not UTF-8 text: {e}")))?;
        let folder = path.parent().unwrap_or(Path::new(""));
        Lesson::parse(&text, path, folder)
    }

    /// Check `text` (named `path` in errors); relative paths join `folder`.
    pub fn parse(text: &str, path: &Path, folder: &Path) -> Result<Lesson> {
        let mut lesson = parse::lesson(text).map_err(|e| e.into_error(path))?;
        for scene in &mut lesson.scenes {
            for p in [&mut scene.tuned, &mut scene.data].into_iter().flatten() {
                if p.is_relative() {
                    *p = tidy(&folder.join(&*p));
                }
            }
        }
        Ok(lesson)
    }

    /// The lesson as TOML, as [`Lesson::parse`] reads it.
    pub fn to_toml(&self) -> String {
        write::lesson(self)
    }

    /// The model scene `index` uses: its own, else the lesson's.
    pub fn model_of(&self, index: usize) -> Option<&str> {
        let scene = self.scenes.get(index)?;
        scene.model.as_deref().or(self.model.as_deref())
    }
}

/// `a/b/../c` → `a/c` (lexically: the lesson's folder joined to `../x`).
fn tidy(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir
                if matches!(out.components().next_back(), Some(Component::Normal(_))) =>
            {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// What to say when the fine-tuned model `dir` a scene names is not there.
pub fn tuned_missing(dir: &Path, model: Option<&str>) -> Option<String> {
    if dir.join("config.json").is_file() {
        return None;
    }
    let model = model.unwrap_or("MODEL");
    Some(format!(
        "the fine-tuned model {} is not there yet: make it with bertscope finetune --model {model} --train DATA --output {}",
        dir.display(),
        dir.display()
    ))
}

#[cfg(test)]
mod tests;
