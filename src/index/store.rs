//! Where the app keeps its indexes (a folder beside its runs), one folder a
//! model and data selection, and pruning them to the runs' disk budget,
//! oldest first. Only folders that are indexes are ever removed.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::format::{self, DataSource};
use crate::error::{BertError, Op, Result};
use crate::model::precision::Precision;

/// The folder for the index of `source` (first `max_rows` rows, cut to
/// `max_length` tokens) by the model with `fingerprint` in `precision`,
/// under `root`. fp32 indexes keep the folders they had before bf16 ones
/// existed.
pub fn folder_for(
    root: &Path,
    model_name: &str,
    fingerprint: &str,
    source: &DataSource,
    (max_rows, max_length): (Option<usize>, usize),
    precision: Precision,
) -> PathBuf {
    let mut hasher = Sha256::new();
    hasher.update(fingerprint.as_bytes());
    hasher.update(source.path.to_string_lossy().as_bytes());
    hasher.update(source.digest.as_bytes());
    hasher.update(format!(
        "{:?}{:?}{:?}",
        source.text_a, source.text_b, source.label
    ));
    hasher.update(format!("{max_rows:?}/{max_length}"));
    if precision != Precision::Fp32 {
        hasher.update(precision.name());
    }
    let digest = hasher.finalize();
    let short: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let stem = |p: &Path| {
        p.file_stem()
            .or_else(|| p.file_name())
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "index".into())
    };
    let clean = |s: String| -> String {
        s.chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .take(40)
            .collect()
    };
    let model = clean(stem(Path::new(model_name.trim_end_matches('/'))));
    root.join(format!("{}-{model}-{short}", clean(stem(&source.path))))
}

/// Bytes the files of `dir` take.
fn size_of(dir: &Path) -> u64 {
    dir.read_dir()
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Remove the oldest indexes under `root` (by `index.json`'s time) until
/// they take at most `budget` bytes, never one in `keep`; the removed ones.
pub fn prune(root: &Path, budget: u64, keep: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let Ok(entries) = root.read_dir() else {
        return Ok(Vec::new());
    };
    // Real folders only (a link is never followed), and only indexes.
    let mut indexes: Vec<(SystemTime, PathBuf, u64)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .filter(|p| format::ours(p).is_ok())
        .map(|p| {
            let time = std::fs::metadata(p.join(format::MANIFEST))
                .and_then(|m| m.modified())
                .unwrap_or(SystemTime::UNIX_EPOCH);
            let size = size_of(&p);
            (time, p, size)
        })
        .collect();
    indexes.sort();
    let mut total: u64 = indexes.iter().map(|i| i.2).sum();
    let mut removed = Vec::new();
    for (_, path, size) in indexes {
        if total <= budget {
            break;
        }
        if keep.iter().any(|k| k == &path) {
            continue;
        }
        std::fs::remove_dir_all(&path).map_err(|e| BertError::io(Op::Remove, &path, &e))?;
        total = total.saturating_sub(size);
        removed.push(path);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(path: &str) -> DataSource {
        DataSource {
            path: PathBuf::from(path),
            digest: "sha256:0".into(),
            text_a: "text_a".into(),
            text_b: None,
            label: Some("label".into()),
        }
    }

    #[test]
    fn one_folder_per_model_and_selection() {
        let root = Path::new("/cache/indexes");
        let folder = |model: &str, fingerprint: &str, max_rows: usize, precision: Precision| {
            folder_for(
                root,
                model,
                fingerprint,
                &source("/d/train.tsv"),
                (Some(max_rows), 128),
                precision,
            )
        };
        let a = folder("models/bert", "sha256:1", 100, Precision::Fp32);
        assert!(a.starts_with(root));
        assert!(a
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("train-bert-"));
        assert_eq!(a, folder("models/bert/", "sha256:1", 100, Precision::Fp32));
        assert_ne!(a, folder("models/bert", "sha256:2", 100, Precision::Fp32));
        assert_ne!(a, folder("models/bert", "sha256:1", 200, Precision::Fp32));
        assert_ne!(
            a,
            folder("models/bert", "sha256:1", 100, Precision::Bf16),
            "a bf16 index is kept apart from the fp32 one"
        );
    }

    fn manifest() -> format::Manifest {
        format::Manifest {
            format: format::FORMAT.into(),
            version: format::VERSION,
            model: format::ModelSource {
                name: "m".into(),
                dir: PathBuf::from("/m"),
                fingerprint: "sha256:1".into(),
                hidden: 4,
                num_layers: 1,
            },
            data: source("/d/train.tsv"),
            layers: vec![0],
            max_length: 128,
            dtype: "f16".into(),
            precision: Default::default(),
            rows_total: 1,
            rows: 1,
            tokens: 1,
            rows_bytes: 0,
            complete: true,
        }
    }

    #[test]
    fn prunes_the_oldest_indexes_to_the_budget_and_nothing_else() {
        let tmp = tempfile::tempdir().unwrap();
        let make = |name: &str, bytes: usize| {
            let dir = tmp.path().join(name);
            std::fs::create_dir(&dir).unwrap();
            manifest().write(&dir).unwrap();
            std::fs::write(dir.join("layer-0.f16"), vec![0u8; bytes]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(20));
            dir
        };
        let (oldest, kept, older, newest) = (
            make("a", 1000),
            make("b", 1000),
            make("c", 1000),
            make("d", 1000),
        );
        let notes = tmp.path().join("notes");
        std::fs::create_dir(&notes).unwrap();
        std::fs::write(notes.join("a.txt"), vec![0u8; 5000]).unwrap();
        // Room for two of the four (each ~1.6 kB with its manifest):
        // the oldest goes, `kept` is skipped, the next oldest goes.
        let elsewhere = tempfile::tempdir().unwrap();
        manifest().write(elsewhere.path()).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), tmp.path().join("link")).unwrap();
        let removed = prune(tmp.path(), 3400, std::slice::from_ref(&kept)).unwrap();
        assert_eq!(removed, vec![oldest.clone(), older.clone()]);
        assert!(!oldest.exists() && !older.exists());
        assert!(kept.exists() && newest.exists() && notes.join("a.txt").exists());
        assert!(
            elsewhere.path().join(format::MANIFEST).exists(),
            "a link is not followed"
        );
    }
}
