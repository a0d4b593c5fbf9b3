use std::path::{Path, PathBuf};

use super::*;

fn parse(text: &str) -> std::result::Result<Lesson, String> {
    Lesson::parse(text, Path::new("lesson.toml"), Path::new("/lessons")).map_err(|e| e.to_string())
}

fn error(text: &str) -> String {
    match parse(text) {
        Ok(lesson) => panic!("accepted: {lesson:?}"),
        Err(e) => e,
    }
}

const EXAMPLE: &str = r#"title = "What BERT looks at"
model = "all-MiniLM-L6-v2"

[[scene]]
text_a = "The animal didn't cross the street because it was too tired."
view = "head"
layer = 2
heads = [3]
caption = "Layer 2, head 3: where does 'it' look?"
"#;

#[test]
fn the_readme_example_reads() {
    let lesson = parse(EXAMPLE).unwrap();
    assert_eq!(lesson.title, "What BERT looks at");
    assert_eq!(lesson.model.as_deref(), Some("all-MiniLM-L6-v2"));
    let scene = &lesson.scenes[0];
    assert_eq!(scene.view, LessonView::Head);
    assert_eq!((scene.layer, scene.heads.as_slice()), (Some(2), &[3][..]));
    assert_eq!(
        scene.caption.as_deref(),
        Some("Layer 2, head 3: where does 'it' look?")
    );
    assert_eq!(lesson.model_of(0), Some("all-MiniLM-L6-v2"));
    assert_eq!(lesson.model_of(1), None);
}

#[test]
fn every_key_reads_and_relative_paths_join_the_lesson_folder() {
    let lesson = parse(
        r#"title = "t"
[[scene]]
text_a = "a [MASK] b"
text_b = "second"
view = "compare"
model = "m"
layer = 0
heads = [0, 2]
masked = [2]
word_level = true
caption = "c"
notes = """two
lines"""
tuned = "../runs/./claims"
data = "/abs/train.tsv"
"#,
    )
    .unwrap();
    let s = &lesson.scenes[0];
    assert_eq!(s.text_b.as_deref(), Some("second"));
    assert_eq!(s.view, LessonView::Compare);
    assert_eq!(lesson.model_of(0), Some("m"));
    assert_eq!((s.heads.clone(), s.masked.clone()), (vec![0, 2], vec![2]));
    assert!(s.word_level);
    assert_eq!(s.notes.as_deref(), Some("two\nlines"));
    assert_eq!(s.tuned, Some(PathBuf::from("/runs/claims")));
    assert_eq!(s.data, Some(PathBuf::from("/abs/train.tsv")));
}

#[test]
fn written_lessons_read_back_unchanged() {
    let lesson = Lesson {
        title: "Quotes \" and \\ and\nnewlines".into(),
        model: Some("all-MiniLM-L6-v2".into()),
        scenes: vec![
            Scene {
                text_a: "它 \"quoted\" 'single' \t tab".into(),
                text_b: Some("b".into()),
                view: LessonView::Mlm,
                model: Some("models/demo-mlm".into()),
                layer: Some(3),
                heads: vec![1, 4],
                masked: vec![2],
                word_level: true,
                caption: Some("c".into()),
                notes: Some("line one\nline two".into()),
                tuned: None,
                data: Some("/data/x.tsv".into()),
            },
            Scene {
                text_a: "plain".into(),
                view: LessonView::Compare,
                tuned: Some("/runs/r".into()),
                ..Default::default()
            },
        ],
    };
    let text = lesson.to_toml();
    assert_eq!(parse(&text).unwrap(), lesson, "{text}");
}

#[test]
fn unknown_view_names_the_line_scene_and_choices() {
    let text = EXAMPLE.to_string()
        + "\n[[scene]]\ntext_a = \"x\"\nview = \"heads\"\n\n[[scene]]\ntext_a = \"y\"\nview = \"model\"\n";
    assert_eq!(
        error(&text),
        "lesson.toml:13: scene 2: unknown view \"heads\" (head, model, matrix, mlm, tokens, explain, train, compare)"
    );
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    let text = EXAMPLE.replace("layer = 2", "layer = 2\nlayers = 3");
    assert_eq!(
        error(&text),
        "lesson.toml:8: scene 1: unknown key \"layers\" (text_a, text_b, view, model, layer, heads, masked, word_level, caption, notes, tuned, data)"
    );
    let top = format!("titel = \"x\"\n{EXAMPLE}");
    assert_eq!(
        error(&top),
        "lesson.toml:1: unknown key \"titel\" (title, model, scene)"
    );
}

#[test]
fn wrong_types_and_missing_keys_name_their_line() {
    let cases = [
        (
            EXAMPLE.replace("layer = 2", "layer = \"two\""),
            "lesson.toml:7: scene 1: `layer` must be a whole number ≥ 0, not \"two\"",
        ),
        (
            EXAMPLE.replace("layer = 2", "layer = -1"),
            "lesson.toml:7: scene 1: `layer` must be a whole number ≥ 0, not -1",
        ),
        (
            EXAMPLE.replace("heads = [3]", "heads = 3"),
            "lesson.toml:8: scene 1: `heads` must be a list of whole numbers like [1, 3], not 3",
        ),
        (
            EXAMPLE.replace("heads = [3]", "heads = [3, 3]"),
            "lesson.toml:8: scene 1: `heads` lists 3 twice",
        ),
        (
            EXAMPLE.replace("view = \"head\"\n", ""),
            "lesson.toml:4: scene 1: `view` is missing",
        ),
        (
            EXAMPLE.replace("view = \"head\"", "view = \"compare\""),
            "lesson.toml:4: scene 1: view \"compare\" needs `tuned = \"DIR\"` (the fine-tuned model)",
        ),
        (
            EXAMPLE.replace("layer = 2", "tuned = \"run\""),
            "lesson.toml:7: scene 1: `tuned` is for the train and compare views, not \"head\"",
        ),
        (
            EXAMPLE.replace("model = \"all-MiniLM-L6-v2\"\n", ""),
            "lesson.toml:3: scene 1: no model: give `model` here or at the top of the lesson",
        ),
        (
            EXAMPLE.replace("title = \"What BERT looks at\"\n", ""),
            "lesson.toml:1: `title` is missing",
        ),
        (
            "title = \"t\"\nmodel = \"m\"\n".to_string(),
            "lesson.toml: no scenes: add a [[scene]] table with text_a and view",
        ),
        (
            EXAMPLE.replace("layer = 2", "layer = 2\nlayer = 3"),
            "lesson.toml:8: not valid TOML: duplicate key",
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(error(&text), expected, "{text}");
    }
}

#[test]
fn a_missing_file_and_a_directory_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let missing = Lesson::load(&dir.path().join("none.toml")).unwrap_err();
    assert!(missing.to_string().contains("none.toml"), "{missing}");
    let folder = Lesson::load(dir.path()).unwrap_err().to_string();
    assert!(folder.contains("is a directory"), "{folder}");
}
