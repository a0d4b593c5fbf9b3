//! The caption under an exported figure: the model's name (its folder's
//! name or its Hub id, never a path), the view, the layer and heads shown,
//! and the input.

use std::path::Path;

/// What a caption says.
pub struct CaptionParts<'a> {
    /// The model as the user named it (a folder, a `./models` name, a Hub id).
    pub model: &'a str,
    pub view: &'a str,
    pub layer: Option<usize>,
    /// The heads shown (`None`: not a per-head view).
    pub heads: Option<&'a [usize]>,
    /// How many heads a layer has (all shown: not listed).
    pub all_heads: usize,
    pub text_a: &'a str,
    pub text_b: Option<&'a str>,
}

/// A folder's own name for a model given as a path; a Hub id or a
/// `./models` name as it is.
pub fn model_name(spec: &str) -> String {
    let trimmed = spec.trim_end_matches(['/', '\\']);
    let path = Path::new(trimmed);
    let is_path = path.is_absolute()
        || trimmed.starts_with('.')
        || path.is_dir()
        || trimmed.contains('\\')
        || trimmed.matches('/').count() > 1;
    if is_path {
        let named = path
            .canonicalize()
            .ok()
            .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
        return named
            .or_else(|| path.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_else(|| "model".into());
    }
    trimmed.to_string()
}

/// "MODEL · view · layer L · head H · “A” / “B”".
pub fn caption(parts: &CaptionParts) -> String {
    let mut out = vec![model_name(parts.model), parts.view.to_string()];
    if let Some(l) = parts.layer {
        out.push(format!("layer {l}"));
    }
    match parts.heads {
        Some([h]) => out.push(format!("head {h}")),
        Some(heads) if !heads.is_empty() && heads.len() < parts.all_heads => {
            let list: Vec<String> = heads.iter().map(usize::to_string).collect();
            out.push(format!("heads {}", list.join(", ")));
        }
        _ => {}
    }
    let mut input = format!("“{}”", parts.text_a);
    if let Some(b) = parts.text_b {
        input.push_str(&format!(" / “{b}”"));
    }
    out.push(input);
    out.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_folder_names_and_hub_ids_stay() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("all-MiniLM-L6-v2");
        std::fs::create_dir(&model).unwrap();
        assert_eq!(model_name(&model.display().to_string()), "all-MiniLM-L6-v2");
        assert_eq!(
            model_name(&format!("{}/", model.display())),
            "all-MiniLM-L6-v2"
        );
        assert_eq!(model_name("bert-base-chinese"), "bert-base-chinese");
        assert_eq!(
            model_name("google-bert/bert-base-uncased"),
            "google-bert/bert-base-uncased"
        );
        assert_eq!(model_name("./runs/tuned"), "tuned");
        assert_eq!(model_name("/somewhere/gone/model-x"), "model-x");
    }

    #[test]
    fn heads_are_named_unless_all_are_shown() {
        let parts = |heads: &'static [usize]| CaptionParts {
            model: "m",
            view: "Head view",
            layer: Some(3),
            heads: Some(heads),
            all_heads: 12,
            text_a: "a",
            text_b: Some("b"),
        };
        assert_eq!(
            caption(&parts(&[1])),
            "m · Head view · layer 3 · head 1 · “a” / “b”"
        );
        assert_eq!(
            caption(&parts(&[1, 5])),
            "m · Head view · layer 3 · heads 1, 5 · “a” / “b”"
        );
        let all: Vec<usize> = (0..12).collect();
        let all: &'static [usize] = Box::leak(all.into_boxed_slice());
        assert_eq!(caption(&parts(all)), "m · Head view · layer 3 · “a” / “b”");
    }
}
