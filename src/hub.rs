//! Resolving `--model`: a directory, a name under `./models/`, or a Hugging Face
//! Hub id found in the local cache (`models--ORG--NAME/snapshots/<rev>`).

use std::path::{Path, PathBuf};

use crate::error::{BertError, Result};

/// The Hugging Face hub cache directories to search, most specific first.
pub fn cache_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(dir) = std::env::var_os("HF_HUB_CACHE") {
        dirs.push(PathBuf::from(dir));
    }
    if let Some(home) = std::env::var_os("HF_HOME") {
        dirs.push(PathBuf::from(home).join("hub"));
    }
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME") {
        dirs.push(PathBuf::from(xdg).join("huggingface").join("hub"));
    }
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(
            PathBuf::from(home)
                .join(".cache")
                .join("huggingface")
                .join("hub"),
        );
    }
    dirs.dedup();
    dirs
}

/// The project-local models folder (`./models`).
pub fn local_models_dir() -> PathBuf {
    PathBuf::from("models")
}

/// Directory name of a repo in the hub cache: `models--ORG--NAME`.
pub fn cache_repo_name(id: &str) -> String {
    format!("models--{}", id.replace('/', "--"))
}

fn looks_like_hub_id(spec: &str) -> bool {
    let parts: Vec<&str> = spec.split('/').collect();
    parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && *p != "."
                && *p != ".."
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        })
}

/// The snapshot a cached repo's `refs/main` points at, else its newest snapshot.
pub fn cached_snapshot(repo_dir: &Path) -> Option<PathBuf> {
    let snapshots = repo_dir.join("snapshots");
    if let Ok(rev) = std::fs::read_to_string(repo_dir.join("refs").join("main")) {
        let dir = snapshots.join(rev.trim());
        if dir.join("config.json").is_file() {
            return Some(dir);
        }
    }
    std::fs::read_dir(&snapshots)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join("config.json").is_file())
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
}

/// Turn a `--model` argument into a model directory holding `config.json`.
pub fn resolve(spec: &str) -> Result<PathBuf> {
    let direct = PathBuf::from(spec);
    if direct.exists() {
        return check_model_dir(&direct);
    }
    let mut looked = vec![direct.display().to_string()];
    if looks_like_hub_id(spec) {
        let local = local_models_dir().join(spec);
        if local.is_dir() {
            return check_model_dir(&local);
        }
        looked.push(local.display().to_string());
        for cache in cache_dirs() {
            let repo = cache.join(cache_repo_name(spec));
            if let Some(snapshot) = cached_snapshot(&repo) {
                return Ok(snapshot);
            }
            looked.push(repo.display().to_string());
        }
        return Err(BertError::ModelNotFound {
            name: spec.to_string(),
            message: format!(
                "looked in {}; download it while online with `hf download {spec}` (it lands in the Hugging Face cache), or pass a model directory",
                looked.join(", ")
            ),
        });
    }
    Err(BertError::ModelNotFound {
        name: spec.to_string(),
        message: "no such directory".into(),
    })
}

fn check_model_dir(dir: &Path) -> Result<PathBuf> {
    if !dir.is_dir() {
        return Err(BertError::file(dir, "not a model directory"));
    }
    if !dir.join("config.json").is_file() {
        return Err(BertError::file(
            &dir.join("config.json"),
            "file not found (a model directory needs config.json, weights and a tokenizer)",
        ));
    }
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_ids() {
        assert!(looks_like_hub_id("bert-base-chinese"));
        assert!(looks_like_hub_id("google-bert/bert-base-uncased"));
        assert!(!looks_like_hub_id("./x/y"));
        assert!(!looks_like_hub_id("a/b/c"));
        assert_eq!(
            cache_repo_name("google-bert/bert-base-uncased"),
            "models--google-bert--bert-base-uncased"
        );
    }
}
