//! An interrupted run's directory (`NAME.partial/`) as the app uses it:
//! checked to be bertscope's — allowing epoch checkpoints that a stopped
//! write left half done (the engine writes `epochs/epoch-N` file by file) —
//! and made whole again, by removing those, right before it is resumed or
//! deleted. Never while a run may be writing it: scans only look.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::train::run_dir;
use crate::write_guard::{self, CHECKPOINT_FILES, EPOCHS_DIR, MARKER_KEY};

/// `Ok(the half-written epoch checkpoints)` when `dir` holds only what a run
/// directory holds, with bertscope's mark; else why it is not one.
pub fn check(dir: &Path) -> Result<Vec<PathBuf>, String> {
    if run_dir::ours(dir).is_ok() {
        return Ok(Vec::new());
    }
    let mut half = Vec::new();
    for entry in dir.read_dir().map_err(|e| format!("cannot list it: {e}"))? {
        let entry = entry.map_err(|e| format!("cannot list it: {e}"))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        match name.as_str() {
            run_dir::RUN_FILE => {}
            run_dir::LAST | run_dir::BEST => {
                write_guard::ours(&path).map_err(|why| format!("{name}/: {why}"))?
            }
            EPOCHS_DIR => half.extend(half_written_epochs(&path)?),
            // Staging directories of a stopped write.
            other if other.starts_with('.') && other.contains(".bertscope-") => {}
            other => return Err(format!("it holds {other}")),
        }
    }
    let run = std::fs::read_to_string(dir.join(run_dir::RUN_FILE))
        .map_err(|_| "it has no run.json".to_string())?;
    let value: Value = serde_json::from_str(&run).map_err(|_| "its run.json is not JSON")?;
    if value.get(MARKER_KEY).is_none() {
        return Err("its run.json has no bertscope mark".into());
    }
    Ok(half)
}

/// The half-written checkpoints in `epochs/`; `Err` for anything else that
/// is not a bertscope checkpoint.
fn half_written_epochs(epochs: &Path) -> Result<Vec<PathBuf>, String> {
    let mut half = Vec::new();
    for sub in epochs.read_dir().map_err(|e| e.to_string())?.flatten() {
        let name = sub.file_name().to_string_lossy().into_owned();
        let numbered = name
            .strip_prefix("epoch-")
            .is_some_and(|n| n.parse::<usize>().is_ok());
        match write_guard::ours(&sub.path()) {
            Ok(()) => {}
            Err(_) if numbered && half_written(&sub.path()) => half.push(sub.path()),
            Err(why) => return Err(format!("{EPOCHS_DIR}/{name}: {why}")),
        }
    }
    Ok(half)
}

/// A directory of regular files with the names a checkpoint holds, without
/// `training_args.json` (the file written last).
fn half_written(dir: &Path) -> bool {
    let is_dir = std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir());
    let Ok(entries) = dir.read_dir() else {
        return false;
    };
    is_dir
        && entries.flatten().all(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            e.file_type().is_ok_and(|t| t.is_file())
                && CHECKPOINT_FILES.contains(&name.as_str())
                && name != "training_args.json"
        })
}

/// Remove the half-written epoch checkpoints of the run directory `dir`
/// (about to be resumed or deleted) and check that it is bertscope's.
/// Returns how many were removed.
pub fn make_whole(dir: &Path) -> Result<usize, String> {
    let half = check(dir).map_err(|why| {
        format!(
            "{}: not a bertscope run directory ({why}); left as it is",
            dir.display()
        )
    })?;
    for epoch in &half {
        let files = epoch.read_dir().map_err(|e| e.to_string())?;
        for file in files.flatten() {
            std::fs::remove_file(file.path())
                .map_err(|e| format!("{}: cannot remove: {e}", file.path().display()))?;
        }
        std::fs::remove_dir(epoch)
            .map_err(|e| format!("{}: cannot remove: {e}", epoch.display()))?;
    }
    run_dir::ours(dir).map_err(|why| format!("{}: {why}", dir.display()))?;
    Ok(half.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn marked_run(dir: &Path) {
        std::fs::create_dir_all(dir.join(EPOCHS_DIR)).unwrap();
        let run = format!(r#"{{"{MARKER_KEY}": "bertscope test"}}"#);
        std::fs::write(dir.join(run_dir::RUN_FILE), run).unwrap();
    }

    #[test]
    fn half_written_epochs_are_allowed_and_removed_when_made_whole() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("m.partial");
        marked_run(&run);
        // Stopped while writing epoch 2: its weights and config, not yet its args;
        // and before the first file of epoch 3.
        let half = run.join("epochs/epoch-2");
        std::fs::create_dir_all(&half).unwrap();
        std::fs::write(half.join("config.json"), "{}").unwrap();
        std::fs::write(half.join("model.safetensors"), "cut short").unwrap();
        std::fs::create_dir_all(run.join("epochs/epoch-3")).unwrap();
        assert!(run_dir::ours(&run).is_err());

        let mut found = check(&run).unwrap();
        found.sort();
        assert_eq!(found, vec![half.clone(), run.join("epochs/epoch-3")]);
        assert!(half.is_dir(), "checking only looks");
        assert_eq!(make_whole(&run).unwrap(), 2);
        assert!(!half.exists());
        assert!(run_dir::ours(&run).is_ok());
    }

    #[test]
    fn anything_else_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("m.partial");
        marked_run(&run);
        let epoch = run.join("epochs/epoch-1");
        std::fs::create_dir_all(&epoch).unwrap();
        std::fs::write(epoch.join("config.json"), "{}").unwrap();
        std::fs::write(epoch.join("notes.txt"), "mine").unwrap();
        assert!(check(&run).unwrap_err().contains("epochs/epoch-1"));
        assert!(make_whole(&run).unwrap_err().contains("left as it is"));
        assert!(epoch.join("notes.txt").is_file() && epoch.join("config.json").is_file());

        // The same files without a bertscope mark: not a run at all.
        let unmarked = tmp.path().join("u.partial");
        std::fs::create_dir_all(unmarked.join("epochs/epoch-1")).unwrap();
        std::fs::write(unmarked.join("run.json"), "{}").unwrap();
        std::fs::write(unmarked.join("epochs/epoch-1/config.json"), "{}").unwrap();
        assert!(check(&unmarked).unwrap_err().contains("no bertscope mark"));
        assert!(make_whole(&unmarked).is_err());
        assert!(unmarked.join("epochs/epoch-1/config.json").is_file());
    }
}
