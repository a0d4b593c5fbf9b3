//! The disk a run takes: the free-space check before a run starts (the CLI's
//! estimate), sizes on disk, and pruning the runs' per-epoch checkpoints to
//! the budget (oldest runs first). File work: call it off the UI thread.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::train::save;
use crate::write_guard;

/// The default budget for the runs' per-epoch checkpoints, in GB.
pub const DEFAULT_BUDGET_GB: f64 = 4.0;

pub use crate::train::run_dir::{kept_epochs, space_needed, weights_size};

/// `Ok(what the run needs and what is free)`, or why the run cannot start:
/// the filesystem holding `output` has less free space than the run needs.
pub fn check_space(base: &Path, output: &Path, kept: usize) -> Result<String, String> {
    let need = space_needed(weights_size(base), kept);
    let parent = output.parent().unwrap_or(Path::new("/"));
    fits(need, write_guard::free_space(parent), parent)
}

/// The verdict of [`check_space`] for `need` bytes and `free` bytes free.
pub fn fits(need: u64, free: Option<u64>, place: &Path) -> Result<String, String> {
    match free {
        Some(free) if free < need => Err(format!(
            "{}: this run needs about {} of free space (7 × the model's weights for its checkpoints and optimiser state, plus one per kept epoch), {} is free; free some space, or lower the epochs",
            place.display(),
            fmt_bytes(need),
            fmt_bytes(free)
        )),
        Some(free) => Ok(format!(
            "disk: this run needs up to about {}; {} is free in {}",
            fmt_bytes(need),
            fmt_bytes(free),
            place.display()
        )),
        None => Ok(format!(
            "disk: this run needs up to about {} (free space unknown)",
            fmt_bytes(need)
        )),
    }
}

/// Bytes as people read them: `1.2 GB`, `340.0 MB`, `12.5 KB`, `80 B`.
pub fn fmt_bytes(n: u64) -> String {
    let x = n as f64;
    if x >= 1e9 {
        format!("{:.1} GB", x / 1e9)
    } else if x >= 1e6 {
        format!("{:.1} MB", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1} KB", x / 1e3)
    } else {
        format!("{n} B")
    }
}

/// Bytes of the files under `path` (symbolic links not followed).
pub fn dir_size(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    path.read_dir()
        .map(|entries| entries.flatten().map(|e| dir_size(&e.path())).sum())
        .unwrap_or(0)
}

/// What pruning did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pruned {
    /// The epoch checkpoints removed, oldest run first.
    pub removed: Vec<PathBuf>,
    pub freed: u64,
    /// Bytes the saved runs' epoch checkpoints take after pruning.
    pub kept: u64,
    /// Checkpoints that could not be removed, and why.
    pub errors: Vec<String>,
}

/// Remove per-epoch checkpoints (`epochs/epoch-N`) of the saved runs `runs`
/// (directory, when it was written), oldest run first and lowest epoch first,
/// until all of them take at most `budget` bytes. Never a run's own files (its
/// best epoch), never its last epoch's checkpoint, nothing of a run in `keep`;
/// each removal is checked to be a checkpoint bertscope wrote.
pub fn prune(runs: &[(PathBuf, Option<SystemTime>)], budget: u64, keep: &[PathBuf]) -> Pruned {
    let mut runs: Vec<_> = runs
        .iter()
        .map(|(dir, written)| {
            let epochs: Vec<(PathBuf, u64)> = save::epoch_checkpoints(dir)
                .into_iter()
                .map(|(_, path)| {
                    let size = dir_size(&path);
                    (path, size)
                })
                .collect();
            (dir, written, epochs)
        })
        .collect();
    runs.sort_by_key(|(_, written, _)| **written);
    let mut pruned = Pruned {
        kept: runs.iter().flat_map(|r| &r.2).map(|e| e.1).sum(),
        ..Pruned::default()
    };
    for (dir, _, epochs) in &runs {
        if keep.iter().any(|k| k == *dir) {
            continue;
        }
        // The last epoch stays: the run's last checkpoint.
        for (path, size) in epochs.iter().take(epochs.len().saturating_sub(1)) {
            if pruned.kept <= budget {
                return pruned;
            }
            match write_guard::remove_ours(path) {
                Ok(()) => {
                    pruned.kept -= size;
                    pruned.freed += size;
                    pruned.removed.push(path.clone());
                }
                Err(e) => pruned.errors.push(e.to_string()),
            }
        }
    }
    pruned
}

/// Gigabytes to bytes (negative or NaN: 0).
pub fn gb(gigabytes: f64) -> u64 {
    if gigabytes.is_finite() && gigabytes > 0.0 {
        (gigabytes * 1e9) as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::TrainConfig;
    use std::time::Duration;

    /// A bertscope checkpoint of `size` weight bytes at `dir`.
    fn checkpoint(dir: &Path, size: usize) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        std::fs::write(dir.join("model.safetensors"), vec![0u8; size]).unwrap();
        let args =
            r#"{"task": "classification", "base_model": "b", "written_by": "bertscope test"}"#;
        std::fs::write(dir.join("training_args.json"), args).unwrap();
    }

    /// A saved run with `epochs` + 1 epoch checkpoints of 1000 weight bytes.
    fn run(root: &Path, name: &str, epochs: usize) -> PathBuf {
        let dir = root.join(name);
        checkpoint(&dir, 1000);
        for e in 0..=epochs {
            checkpoint(&dir.join(format!("epochs/epoch-{e}")), 1000);
        }
        dir
    }

    fn epochs_left(dir: &Path) -> Vec<usize> {
        save::epoch_checkpoints(dir)
            .into_iter()
            .map(|e| e.0)
            .collect()
    }

    #[test]
    fn pruning_removes_the_oldest_runs_epochs_first_and_keeps_last_epochs() {
        let tmp = tempfile::tempdir().unwrap();
        let t = |s| Some(SystemTime::UNIX_EPOCH + Duration::from_secs(s));
        let (old, mid, new) = (
            run(tmp.path(), "old", 3),
            run(tmp.path(), "mid", 3),
            run(tmp.path(), "new", 3),
        );
        let one = dir_size(&old.join("epochs/epoch-0"));
        let runs = vec![
            (new.clone(), t(30)),
            (old.clone(), t(10)),
            (mid.clone(), t(20)),
        ];

        // Room for all but five checkpoints: old loses 0, 1, 2 (not 3, its
        // last), then mid loses 0 and 1; new keeps everything.
        let pruned = prune(&runs, one * 7, &[]);
        assert_eq!(epochs_left(&old), vec![3]);
        assert_eq!(epochs_left(&mid), vec![2, 3]);
        assert_eq!(epochs_left(&new), vec![0, 1, 2, 3]);
        assert_eq!(pruned.removed.len(), 5);
        assert_eq!((pruned.freed, pruned.kept), (one * 5, one * 7));
        // The runs' own files (their best epoch) are never touched.
        for dir in [&old, &mid, &new] {
            assert!(dir.join("model.safetensors").is_file());
            assert!(write_guard::ours(dir).is_ok());
        }

        // A budget of nothing leaves each run its last epoch, and a kept run all of its own.
        let pruned = prune(&runs, 0, std::slice::from_ref(&new));
        assert_eq!(epochs_left(&mid), vec![3]);
        assert_eq!(epochs_left(&new), vec![0, 1, 2, 3]);
        assert_eq!(pruned.kept, one * 6);
    }

    #[test]
    fn pruning_never_removes_what_is_not_a_checkpoint() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = run(tmp.path(), "run", 2);
        std::fs::write(dir.join("epochs/epoch-0/notes.txt"), "mine").unwrap();
        let pruned = prune(&[(dir.clone(), None)], 0, &[]);
        assert_eq!(epochs_left(&dir), vec![0, 2]);
        assert!(dir.join("epochs/epoch-0/notes.txt").is_file());
        assert_eq!(pruned.errors.len(), 1, "{:?}", pruned.errors);
        assert!(pruned.errors[0].contains("notes.txt"));
    }

    #[test]
    fn the_space_check_refuses_with_the_numbers() {
        let config = TrainConfig {
            epochs: 3,
            ..TrainConfig::default()
        };
        assert_eq!(kept_epochs(&config), 4);
        let capped = TrainConfig {
            max_steps: Some(1),
            ..config.clone()
        };
        assert_eq!(kept_epochs(&capped), 2);
        // MiniLM's 90 MB of weights, 3 epochs: 7 W + 4 W.
        assert_eq!(space_needed(90_000_000, 4), 990_000_000);
        let place = Path::new("/runs");
        let refused = fits(990_000_000, Some(500_000_000), place).unwrap_err();
        assert!(
            refused.contains("needs about 990.0 MB") && refused.contains("500.0 MB is free"),
            "{refused}"
        );
        assert!(fits(990_000_000, Some(2_000_000_000), place)
            .unwrap()
            .contains("2.0 GB is free"));
        assert!(fits(1, None, place).is_ok());
    }
}
