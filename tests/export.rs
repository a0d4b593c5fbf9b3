//! `bertscope export` without a display: every view to SVG and PNG; the SVG
//! parsed (its token texts, one `<line>` per attention link that the
//! transformers reference puts above the head view's threshold), the PNG
//! decoded (its size, not blank); and the outputs it must refuse.

mod common;

use std::process::Output;

use common::*;

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn texts(doc: &roxmltree::Document) -> Vec<String> {
    doc.descendants()
        .filter(|n| n.has_tag_name("text"))
        .map(|n| n.text().unwrap_or_default().to_string())
        .collect()
}

/// The texts of the SVG file at `path`, one a line.
fn svg_texts(path: &std::path::Path) -> String {
    let svg = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    texts(&doc).join("\n")
}

#[test]
fn head_view_svg_has_every_token_and_one_line_per_visible_link() {
    let expected = expected("classifier");
    let case = &expected["cases"][0];
    let text = case["text_a"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("head.svg");
    let model = fixture_model("classifier").display().to_string();
    let (layer, head) = (1usize, 2usize);
    ok(&bertscope(&[
        "export",
        "--model",
        &model,
        "--text-a",
        text,
        "--view",
        "head",
        "--layer",
        &layer.to_string(),
        "--head",
        &head.to_string(),
        "--output",
        out.to_str().unwrap(),
    ]));
    let svg = std::fs::read_to_string(&out).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
    let texts = texts(&doc);
    for token in strings(&case["tokens"]) {
        let n = texts.iter().filter(|t| t.trim() == token).count();
        assert!(n >= 2, "token {token:?} drawn {n} times (two columns)");
    }
    assert!(
        texts.iter().any(|t| t.contains(text)),
        "caption with the input"
    );
    // transformers' attention for that head: links of weight ≥ 1% are drawn.
    let seq = case["tokens"].as_array().unwrap().len();
    let mut all = Vec::new();
    flatten_numbers(&case["attentions"], &mut all);
    let heads = all.len() / (2 * seq * seq);
    let start = (layer * heads + head) * seq * seq;
    let weights = &all[start..start + seq * seq];
    let above = |t: f32| weights.iter().filter(|&&w| w >= t).count();
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("line"))
        .filter(|n| n.attribute("stroke-width") == Some("2"))
        .count();
    assert!(
        (above(0.0101)..=above(0.0099)).contains(&lines),
        "{lines} lines for {} links ≥ 1%",
        above(0.01)
    );
}

#[test]
fn every_view_exports_to_svg_and_png_without_a_display() {
    let dir = tempfile::tempdir().unwrap();
    let classifier = fixture_model("classifier").display().to_string();
    let mlm = fixture_model("mlm-safetensors").display().to_string();
    let tuned = fixture_model("classifier").display().to_string();
    let views: [(&str, &str, &[&str]); 6] = [
        ("head", &classifier, &[]),
        ("model", &classifier, &["--mask-heads", "0:1"]),
        ("matrix", &classifier, &["--head", "3", "--words"]),
        ("mlm", &mlm, &["--mask", "2"]),
        ("explain", &classifier, &["--light"]),
        ("compare", &mlm, &["--tuned", &tuned]),
    ];
    for (view, model, extra) in views {
        for (ext, scale) in [("svg", "1"), ("png", "2")] {
            let out = dir.path().join(format!("{view}.{ext}"));
            let mut args = vec![
                "export",
                "--model",
                model,
                "--text-a",
                "the animals crossed the street",
                "--text-b",
                "the dog",
                "--view",
                view,
                "--output",
                out.to_str().unwrap(),
                "--scale",
                scale,
                "--width",
                "900",
                "--height",
                "600",
            ];
            args.extend(extra);
            ok(&bertscope(&args));
            let bytes = std::fs::read(&out).unwrap();
            if ext == "svg" {
                let svg = String::from_utf8(bytes).unwrap();
                let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
                let texts = texts(&doc);
                assert!(
                    texts.iter().any(|t| t.contains("street")),
                    "{view}: no token text"
                );
            } else {
                let image = image::load_from_memory(&bytes).unwrap().to_rgba8();
                let (w, h) = image.dimensions();
                assert!(
                    w <= 1800 && h <= 1200 && w > 200 && h > 100,
                    "{view}: {w}×{h}"
                );
                let mut colours: Vec<[u8; 4]> = image.pixels().map(|p| p.0).collect();
                colours.sort();
                colours.dedup();
                assert!(
                    colours.len() > 50,
                    "{view}: {} colours, looks blank",
                    colours.len()
                );
            }
        }
    }
}

#[test]
fn a_transparent_png_has_no_background() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("t.png");
    let model = fixture_model("classifier").display().to_string();
    ok(&bertscope(&[
        "export",
        "--model",
        &model,
        "--text-a",
        "the dog",
        "--view",
        "head",
        "--transparent",
        "--no-caption",
        "--with-controls",
        "--output",
        out.to_str().unwrap(),
        "--scale",
        "1",
    ]));
    let image = image::open(&out).unwrap().to_rgba8();
    assert_eq!(image.dimensions(), (1280, 800));
    assert_eq!(image.get_pixel(1279, 799).0[3], 0, "corner is transparent");
    assert!(image.pixels().any(|p| p.0[3] == 255), "something is drawn");
}

#[test]
fn outputs_that_are_not_ours_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let model = fixture_model("classifier").display().to_string();
    let run = |output: &str, extra: &[&str]| {
        let mut args = vec![
            "export", "--model", &model, "--text-a", "the dog", "--view", "head", "--output",
            output,
        ];
        args.extend(extra);
        bertscope(&args)
    };
    let refused = |out: &Output, needle: &str| {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    };
    let notes = dir.path().join("notes.svg");
    std::fs::write(&notes, "my notes").unwrap();
    refused(&run(notes.to_str().unwrap(), &[]), "not an SVG, PNG or PDF");
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "my notes");
    refused(
        &run(&format!("{model}/config.json"), &["--format", "svg"]),
        "the model",
    );
    refused(&run(&model, &["--format", "svg"]), "the model");
    refused(
        &run(dir.path().join("x.jpg").to_str().unwrap(), &[]),
        "--format",
    );
    refused(
        &run(dir.path().to_str().unwrap(), &["--format", "png"]),
        "directory",
    );
    let c = dir.path().join("c.svg");
    let compare = bertscope(&[
        "export",
        "--model",
        &model,
        "--text-a",
        "x",
        "--view",
        "compare",
        "--output",
        c.to_str().unwrap(),
    ]);
    refused(&compare, "--tuned");
    let missing = bertscope(&[
        "export",
        "--model",
        "/nonexistent/model",
        "--text-a",
        "x",
        "--view",
        "head",
        "--output",
        dir.path().join("m.svg").to_str().unwrap(),
    ]);
    refused(&missing, "/nonexistent/model");
    assert!(!dir.path().join("m.svg").exists());
}

#[test]
fn tokens_view_shows_transformers_ids_and_segments() {
    let expected = expected("classifier");
    let case = expected["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["text_b"].is_string() && c["tokens"].as_array().unwrap().len() < 30)
        .expect("a short pair");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tokens.svg");
    let model = fixture_model("classifier").display().to_string();
    ok(&bertscope(&[
        "export",
        "--model",
        &model,
        "--text-a",
        case["text_a"].as_str().unwrap(),
        "--text-b",
        case["text_b"].as_str().unwrap(),
        "--view",
        "tokens",
        "--output",
        out.to_str().unwrap(),
    ]));
    let texts = svg_texts(&out);
    let ids: Vec<String> = u32s(&case["input_ids"])
        .iter()
        .map(u32::to_string)
        .collect();
    let types: Vec<String> = u32s(&case["token_type_ids"])
        .iter()
        .map(u32::to_string)
        .collect();
    assert!(
        texts.contains(&format!("[{}]", ids.join(", "))),
        "input_ids row"
    );
    assert!(
        texts.contains(&format!("[{}]", types.join(", "))),
        "token_type_ids row"
    );
    for id in &ids {
        assert!(texts.contains(&format!("id {id}")), "card for id {id}");
    }
}

/// Export `view` of the fixture classifier on its first case to `name` in a
/// temporary folder, with `extra` flags; the file's path.
fn export_case(
    dir: &std::path::Path,
    view: &str,
    name: &str,
    extra: &[&str],
) -> std::path::PathBuf {
    let expected = expected("classifier");
    let text = expected["cases"][0]["text_a"].as_str().unwrap().to_string();
    let out = dir.join(name);
    let model = fixture_model("classifier").display().to_string();
    let mut args = vec![
        "export",
        "--model",
        &model,
        "--text-a",
        &text,
        "--view",
        view,
        "--layer",
        "1",
        "--head",
        "2",
        "--output",
        out.to_str().unwrap(),
    ];
    args.extend(extra);
    ok(&bertscope(&args));
    out
}

/// Texts of the control rows the app draws above a view.
const CONTROL_TEXTS: [&str; 6] = [
    "Hide [CLS]/[SEP]",
    "Sentences:",
    "Per-head contrast",
    "Renormalise rows",
    "Neuron view",
    "Matrix head",
];

#[test]
fn a_default_export_is_the_figure_alone_and_with_controls_the_whole_frame() {
    let dir = tempfile::tempdir().unwrap();
    for view in ["head", "model", "matrix", "mlm"] {
        let alone = export_case(dir.path(), view, &format!("{view}.svg"), &[]);
        let svg = std::fs::read_to_string(&alone).unwrap();
        let doc = roxmltree::Document::parse(&svg).unwrap();
        let texts = texts(&doc).join("\n");
        for control in CONTROL_TEXTS {
            assert!(
                !texts.contains(control),
                "{view}: `{control}` in a figure-only export"
            );
        }
        let width: f32 = doc
            .root_element()
            .attribute("width")
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            width < 1280.0,
            "{view}: cropped to the figure ({width} wide)"
        );
        let png = export_case(dir.path(), view, &format!("{view}.png"), &[]);
        let image = image::open(&png).unwrap();
        assert_eq!(
            image.width() as f32,
            width * 2.0,
            "{view}: the PNG is the same crop"
        );
    }
    let whole = export_case(dir.path(), "head", "whole.svg", &["--with-controls"]);
    let svg = std::fs::read_to_string(&whole).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    assert!(texts(&doc).iter().any(|t| t.contains("Hide [CLS]/[SEP]")));
    assert_eq!(doc.root_element().attribute("width"), Some("1280"));
}

#[test]
fn the_matrix_svg_has_one_rect_per_cell_and_no_triangles() {
    let dir = tempfile::tempdir().unwrap();
    let out = export_case(dir.path(), "matrix", "matrix.svg", &[]);
    let svg = std::fs::read_to_string(&out).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let n = expected("classifier")["cases"][0]["tokens"]
        .as_array()
        .unwrap()
        .len();
    let rects: Vec<(String, String)> = doc
        .descendants()
        .filter(|e| e.has_tag_name("rect"))
        .filter(|e| !e.ancestors().any(|a| a.has_tag_name("clipPath")))
        .map(|e| {
            (
                e.attribute("width").unwrap_or("").to_string(),
                e.attribute("height").unwrap_or("").to_string(),
            )
        })
        .collect();
    let cell = rects
        .iter()
        .filter(|(w, h)| w == h)
        .max_by_key(|size| rects.iter().filter(|r| r == size).count())
        .unwrap()
        .clone();
    assert_eq!(
        rects.iter().filter(|r| **r == cell).count(),
        n * n,
        "cells of {cell:?}"
    );
    assert_eq!(
        doc.descendants()
            .filter(|e| e.has_tag_name("polygon"))
            .count(),
        0
    );
}

#[test]
fn the_caption_names_the_model_never_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let out = export_case(dir.path(), "head", "head.svg", &[]);
    let svg = std::fs::read_to_string(&out).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let caption = texts(&doc)
        .into_iter()
        .find(|t| t.contains("Head view"))
        .expect("a caption");
    assert!(
        caption.starts_with("classifier · Head view · layer 1 · head 2 · “"),
        "{caption}"
    );
    let model = fixture_model("classifier");
    let parent = model.parent().unwrap().display().to_string();
    assert!(
        !caption.contains(&parent) && !caption.contains("fixtures/"),
        "{caption}"
    );
}

#[test]
fn a_pdf_is_vector_with_text_that_can_be_extracted() {
    let dir = tempfile::tempdir().unwrap();
    let out = export_case(dir.path(), "head", "head.pdf", &[]);
    let bytes = std::fs::read(&out).unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    let text = std::process::Command::new("pdftotext")
        .args([out.to_str().unwrap(), "-"])
        .output()
        .expect("pdftotext (Debian: poppler-utils) reads the PDF's text");
    let text = String::from_utf8_lossy(&text.stdout);
    for token in strings(&expected("classifier")["cases"][0]["tokens"]) {
        assert!(
            text.contains(&token),
            "`{token}` not in the PDF's text:\n{text}"
        );
    }
    // A PDF is replaced by another export, a file that is not a picture is not.
    export_case(dir.path(), "head", "head.pdf", &[]);
    std::fs::write(dir.path().join("notes.pdf"), "my notes").unwrap();
    let model = fixture_model("classifier").display().to_string();
    let refused = bertscope(&[
        "export",
        "--model",
        &model,
        "--text-a",
        "x",
        "--view",
        "head",
        "--output",
        dir.path().join("notes.pdf").to_str().unwrap(),
    ]);
    assert!(!refused.status.success());
}

#[test]
fn the_heads_and_data_views_export_their_figure_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mlm = fixture_model("mlm-safetensors").display().to_string();
    let run = fixtures().join("trainer_kit/kit-run").display().to_string();
    let data = fixtures()
        .join("trainer_kit/train.tsv")
        .display()
        .to_string();
    let data_svg = dir.path().join("data.svg");
    ok(&bertscope(&[
        "export",
        "--model",
        &mlm,
        "--text-a",
        "the dog",
        "--view",
        "data",
        "--tuned",
        &run,
        "--data",
        &data,
        "--output",
        data_svg.to_str().unwrap(),
    ]));
    let svg = std::fs::read_to_string(&data_svg).unwrap();
    let doc = roxmltree::Document::parse(&svg).unwrap();
    let shown = texts(&doc).join("\n");
    for control in ["Project", "Colour by", "Max rows", "Play"] {
        assert!(
            !shown.contains(control),
            "data view: `{control}` in a figure-only export"
        );
    }
    assert!(shown.contains("60 rows at layer"), "{shown}");
    // Every row a square of the scatter (and the legend's three swatches).
    let squares = doc
        .descendants()
        .filter(|e| e.has_tag_name("rect") && e.attribute("width") == Some("7"))
        .count();
    assert_eq!(squares, 60, "one <rect> a row");

    let heads_svg = dir.path().join("heads.svg");
    ok(&bertscope(&[
        "export",
        "--model",
        &mlm,
        "--text-a",
        "the dog",
        "--view",
        "heads",
        "--layer",
        "1",
        "--head",
        "2",
        "--output",
        heads_svg.to_str().unwrap(),
    ]));
    let shown = svg_texts(&heads_svg);
    assert!(
        !shown.contains("Run over the rows") && !shown.contains("Rows at most"),
        "{shown}"
    );
    assert!(shown.contains("Baselines: nearest candidate"), "{shown}");
}
