//! `bertscope present` from the binary without a display: the built-in lesson
//! as a handout (one parseable SVG per scene; a scene whose model is missing
//! gets a picture saying what to run), one scene as PNG, and the errors: a bad
//! lesson names its file and line, a scene out of range, a protected folder.

mod common;

use std::path::Path;
use std::process::Output;

use common::*;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn texts(svg: &str) -> String {
    let doc = roxmltree::Document::parse(svg).expect("a parseable SVG");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .collect();
    texts.join(" ")
}

/// A lesson on the fixture models, written beside `dir`.
fn fixture_lesson(dir: &Path, scenes: &str) -> String {
    let model = fixture_model("classifier").display().to_string();
    let path = dir.join("fixture.toml");
    let text = format!("title = \"Fixture\"\nmodel = \"{model}\"\n{scenes}");
    std::fs::write(&path, text).expect("write the lesson");
    path.display().to_string()
}

#[test]
fn the_built_in_lesson_exports_one_svg_per_scene_headless() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out_dir = dir.path().join("handout");
    let out_str = out_dir.display().to_string();
    let lesson = "assets/lessons/bert-tutorial.toml";
    let out = bertscope(&[
        "present",
        lesson,
        "--export-dir",
        &out_str,
        "--format",
        "svg",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let count = bertscope::lesson::Lesson::load(Path::new(lesson))
        .expect("the built-in lesson reads")
        .scenes
        .len();
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .expect("the handout folder")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let expected: Vec<String> = (1..=count).map(|k| format!("scene-{k:02}.svg")).collect();
    assert_eq!(names, expected);
    for name in &names {
        let svg = std::fs::read_to_string(out_dir.join(name)).expect("read");
        assert!(!texts(&svg).is_empty(), "{name} has no text");
    }
    let coreference = texts(&std::fs::read_to_string(out_dir.join("scene-03.svg")).expect("read"));
    assert!(
        coreference.contains("animal") && coreference.contains("it"),
        "{coreference}"
    );
    // The cloze scene needs models/demo-mlm: without it, its picture says what to run.
    let cloze = texts(&std::fs::read_to_string(out_dir.join("scene-02.svg")).expect("read"));
    if Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("models/demo-mlm/config.json")
        .is_file()
    {
        assert!(cloze.contains("[MASK]"), "{cloze}");
    } else {
        assert!(cloze.contains("bash scripts/build-demo-mlm.sh"), "{cloze}");
        assert!(
            stderr(&out).contains("warning: scene 2 of"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn one_scene_as_png_and_a_missing_model_is_drawn_not_fatal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenes = "[[scene]]\ntext_a = \"the quick fox\"\nview = \"head\"\ncaption = \"one\"\n\n\
                  [[scene]]\ntext_a = \"a b\"\nview = \"model\"\nmodel = \"tests/fixtures/models/absent\"\n";
    let lesson = fixture_lesson(dir.path(), scenes);
    let out_dir = dir.path().join("png");
    let out_str = out_dir.display().to_string();
    let out = bertscope(&[
        "present",
        &lesson,
        "--scene",
        "1",
        "--export-dir",
        &out_str,
        "--format",
        "png",
        "--scale",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let png = std::fs::read(out_dir.join("scene-01.png")).expect("scene-01.png");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert!(
        !out_dir.join("scene-02.png").exists(),
        "--scene exports only it"
    );

    let out = bertscope(&[
        "present",
        &lesson,
        "--export-dir",
        &out_str,
        "--format",
        "svg",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let missing = texts(&std::fs::read_to_string(out_dir.join("scene-02.svg")).expect("read"));
    assert!(missing.contains("which is not here"), "{missing}");
    assert!(stderr(&out).contains("1 of 2 pictures"), "{}", stderr(&out));
}

#[test]
fn bad_lessons_and_arguments_are_refused_with_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let scenes = "[[scene]]\ntext_a = \"x\"\nview = \"heads\"\n";
    let lesson = fixture_lesson(dir.path(), scenes);
    let out_str = dir.path().join("out").display().to_string();
    let out = bertscope(&["present", &lesson, "--export-dir", &out_str]);
    assert!(!out.status.success());
    let expected = format!(
        "{lesson}:5: scene 1: unknown view \"heads\" (head, model, matrix, mlm, tokens, explain, train, compare)"
    );
    assert!(stderr(&out).contains(&expected), "{}", stderr(&out));
    assert!(!dir.path().join("out").exists(), "nothing written");

    let good = fixture_lesson(dir.path(), "[[scene]]\ntext_a = \"x\"\nview = \"head\"\n");
    let out = bertscope(&["present", &good, "--scene", "3", "--export-dir", &out_str]);
    assert!(
        stderr(&out).contains("--scene 3: the lesson has 1 scenes"),
        "{}",
        stderr(&out)
    );

    let model_dir = fixture_model("classifier").display().to_string();
    let out = bertscope(&["present", &good, "--export-dir", &model_dir]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--export-dir"), "{}", stderr(&out));
    let listed = std::fs::read_dir(&model_dir).expect("list").count();
    assert!(
        !Path::new(&model_dir).join("scene-01.svg").exists(),
        "{listed} files"
    );
}
