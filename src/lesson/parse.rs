//! A lesson's TOML read through `toml`'s spanned document tree, so that every
//! error names the line of the key (or value) at fault: unknown keys, wrong
//! types, unknown views, missing keys.

use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::{Lesson, LessonView, Scene};
use crate::error::BertError;

const LESSON_KEYS: [&str; 3] = ["title", "model", "scene"];
const SCENE_KEYS: [&str; 12] = [
    "text_a",
    "text_b",
    "view",
    "model",
    "layer",
    "heads",
    "masked",
    "word_level",
    "caption",
    "notes",
    "tuned",
    "data",
];

/// A problem at a line (none: the whole file).
#[derive(Debug)]
pub(super) struct ParseError {
    line: Option<usize>,
    message: String,
}

impl ParseError {
    pub(super) fn into_error(self, path: &Path) -> BertError {
        match self.line {
            Some(line) => BertError::line(path, line, self.message),
            None => BertError::file(path, self.message),
        }
    }
}

type Parsed<T> = std::result::Result<T, ParseError>;

/// Where a table's keys are and what they hold; `scene` prefixes messages.
struct Fields<'a, 'i> {
    text: &'a str,
    scene: Option<usize>,
    /// The table's own position (its `[[scene]]` header), for missing keys.
    at: Range<usize>,
    entries: Vec<(&'a str, &'a Spanned<DeValue<'i>>)>,
}

impl<'a, 'i> Fields<'a, 'i> {
    fn new(
        text: &'a str,
        scene: Option<usize>,
        at: Range<usize>,
        table: &'a DeTable<'i>,
        allowed: &[&str],
    ) -> Parsed<Self> {
        let mut entries = Vec::new();
        let mut unknown = Vec::new();
        for (key, value) in table.iter() {
            let name: &str = key.get_ref().as_ref();
            if allowed.contains(&name) {
                entries.push((name, value));
            } else {
                unknown.push((key.span().start, name));
            }
        }
        let fields = Fields {
            text,
            scene,
            at,
            entries,
        };
        // The first unknown key in the file, not in the table's sorted order.
        match unknown.into_iter().min() {
            Some((offset, name)) => Err(fields.error_at(
                offset,
                format!("unknown key \"{name}\" ({})", allowed.join(", ")),
            )),
            None => Ok(fields),
        }
    }

    fn error_at(&self, offset: usize, message: String) -> ParseError {
        let message = match self.scene {
            Some(n) => format!("scene {n}: {message}"),
            None => message,
        };
        ParseError {
            line: Some(line_of(self.text, offset)),
            message,
        }
    }

    fn get(&self, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
        self.entries
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| *v)
    }

    fn wrong(&self, key: &str, value: &Spanned<DeValue>, wanted: &str) -> ParseError {
        let got = describe(value.get_ref());
        self.error_at(
            value.span().start,
            format!("`{key}` must be {wanted}, not {got}"),
        )
    }

    fn string(&self, key: &str) -> Parsed<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.get_ref() {
                DeValue::String(s) => Ok(Some(s.to_string())),
                _ => Err(self.wrong(key, v, "a string")),
            },
        }
    }

    fn required_string(&self, key: &str) -> Parsed<String> {
        match self.string(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => {
                let offset = self.get(key).map_or(self.at.start, |v| v.span().start);
                Err(self.error_at(offset, format!("`{key}` is empty")))
            }
            None => Err(self.error_at(self.at.start, format!("`{key}` is missing"))),
        }
    }

    fn count(&self, key: &str, value: &Spanned<DeValue>) -> Parsed<usize> {
        let wanted = "a whole number ≥ 0";
        match value.get_ref() {
            DeValue::Integer(i) => usize::from_str_radix(i.as_str(), i.radix())
                .map_err(|_| self.wrong(key, value, wanted)),
            _ => Err(self.wrong(key, value, wanted)),
        }
    }

    fn number(&self, key: &str) -> Parsed<Option<usize>> {
        self.get(key).map(|v| self.count(key, v)).transpose()
    }

    fn numbers(&self, key: &str) -> Parsed<Vec<usize>> {
        let Some(value) = self.get(key) else {
            return Ok(Vec::new());
        };
        let DeValue::Array(items) = value.get_ref() else {
            return Err(self.wrong(key, value, "a list of whole numbers like [1, 3]"));
        };
        let mut numbers = Vec::new();
        for item in items.iter() {
            let n = self.count(key, item)?;
            if numbers.contains(&n) {
                return Err(self.error_at(item.span().start, format!("`{key}` lists {n} twice")));
            }
            numbers.push(n);
        }
        Ok(numbers)
    }

    fn flag(&self, key: &str) -> Parsed<bool> {
        match self.get(key) {
            None => Ok(false),
            Some(v) => match v.get_ref() {
                DeValue::Boolean(b) => Ok(*b),
                _ => Err(self.wrong(key, v, "true or false")),
            },
        }
    }

    fn path(&self, key: &str) -> Parsed<Option<PathBuf>> {
        match self.string(key)? {
            Some(s) if s.trim().is_empty() => {
                let offset = self.get(key).map_or(self.at.start, |v| v.span().start);
                Err(self.error_at(offset, format!("`{key}` is empty")))
            }
            other => Ok(other.map(PathBuf::from)),
        }
    }
}

/// The lesson in `text`, checked; paths as written.
pub(super) fn lesson(text: &str) -> Parsed<Lesson> {
    let doc = DeTable::parse(text).map_err(|e| syntax_error(text, &e))?;
    let top = Fields::new(text, None, 0..0, doc.get_ref(), &LESSON_KEYS)?;
    let title = top.required_string("title")?;
    let model = top.string("model")?;
    let Some(scenes) = top.get("scene") else {
        return Err(ParseError {
            line: None,
            message: "no scenes: add a [[scene]] table with text_a and view".into(),
        });
    };
    let DeValue::Array(items) = scenes.get_ref() else {
        return Err(top.wrong("scene", scenes, "[[scene]] tables"));
    };
    let mut parsed = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let DeValue::Table(table) = item.get_ref() else {
            return Err(top.wrong("scene", item, "[[scene]] tables"));
        };
        let fields = Fields::new(text, Some(i + 1), item.span(), table, &SCENE_KEYS)?;
        parsed.push(scene(&fields, model.is_some())?);
    }
    if parsed.is_empty() {
        return Err(top.error_at(scenes.span().start, "no scenes".into()));
    }
    Ok(Lesson {
        title,
        model,
        scenes: parsed,
    })
}

fn scene(f: &Fields, has_default_model: bool) -> Parsed<Scene> {
    let text_a = f.required_string("text_a")?;
    let view_name = f.required_string("view")?;
    let view = LessonView::parse(view_name.trim()).ok_or_else(|| {
        let offset = f.get("view").map_or(f.at.start, |v| v.span().start);
        let names = LessonView::names();
        f.error_at(offset, format!("unknown view \"{view_name}\" ({names})"))
    })?;
    let model = f.string("model")?;
    if model.is_none() && !has_default_model {
        let message = "no model: give `model` here or at the top of the lesson".into();
        return Err(f.error_at(f.at.start, message));
    }
    let tuned = f.path("tuned")?;
    if let (Some(_), false) = (&tuned, view.takes_tuned()) {
        let offset = f.get("tuned").map_or(f.at.start, |v| v.span().start);
        let message = format!(
            "`tuned` is for the train and compare views, not \"{}\"",
            view.name()
        );
        return Err(f.error_at(offset, message));
    }
    if view == LessonView::Compare && tuned.is_none() {
        let message = "view \"compare\" needs `tuned = \"DIR\"` (the fine-tuned model)".into();
        return Err(f.error_at(f.at.start, message));
    }
    Ok(Scene {
        text_a,
        text_b: f.string("text_b")?.filter(|b| !b.trim().is_empty()),
        view,
        model,
        layer: f.number("layer")?,
        heads: f.numbers("heads")?,
        masked: f.numbers("masked")?,
        word_level: f.flag("word_level")?,
        caption: f.string("caption")?,
        notes: f.string("notes")?,
        tuned,
        data: f.path("data")?,
    })
}

fn syntax_error(text: &str, e: &toml::de::Error) -> ParseError {
    let first = e.message().lines().next().unwrap_or("not TOML").trim();
    ParseError {
        line: e.span().map(|s| line_of(text, s.start)),
        message: format!("not valid TOML: {first}"),
    }
}

/// The 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn describe(value: &DeValue) -> String {
    match value {
        DeValue::String(s) => format!("\"{s}\""),
        DeValue::Integer(i) => i.to_string(),
        DeValue::Float(f) => f.to_string(),
        DeValue::Boolean(b) => b.to_string(),
        DeValue::Datetime(d) => d.to_string(),
        DeValue::Array(_) => "a list".into(),
        DeValue::Table(_) => "a table".into(),
    }
}
