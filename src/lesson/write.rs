//! A lesson as TOML, keys in the order the README documents them, strings
//! quoted by `toml` itself so that any text reads back unchanged.

use std::fmt::Write;

use super::{Lesson, Scene};

pub(super) fn lesson(lesson: &Lesson) -> String {
    let mut out = format!("title = {}\n", quote(&lesson.title));
    if let Some(model) = &lesson.model {
        let _ = writeln!(out, "model = {}", quote(model));
    }
    for scene in &lesson.scenes {
        out.push_str("\n[[scene]]\n");
        write_scene(&mut out, scene);
    }
    out
}

fn write_scene(out: &mut String, scene: &Scene) {
    let mut line = |key: &str, value: String| {
        let _ = writeln!(out, "{key} = {value}");
    };
    line("text_a", quote(&scene.text_a));
    if let Some(b) = &scene.text_b {
        line("text_b", quote(b));
    }
    line("view", quote(scene.view.name()));
    if let Some(model) = &scene.model {
        line("model", quote(model));
    }
    if let Some(layer) = scene.layer {
        line("layer", layer.to_string());
    }
    if !scene.heads.is_empty() {
        line("heads", list(&scene.heads));
    }
    if !scene.masked.is_empty() {
        line("masked", list(&scene.masked));
    }
    if scene.word_level {
        line("word_level", "true".into());
    }
    for (key, path) in [("tuned", &scene.tuned), ("data", &scene.data)] {
        if let Some(path) = path {
            line(key, quote(&path.display().to_string()));
        }
    }
    if let Some(caption) = &scene.caption {
        line("caption", quote(caption));
    }
    if let Some(notes) = &scene.notes {
        line("notes", quote(notes));
    }
}

fn quote(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

fn list(numbers: &[usize]) -> String {
    let items: Vec<String> = numbers.iter().map(usize::to_string).collect();
    format!("[{}]", items.join(", "))
}
