//! *Save as…*: copy the tuned model, or the best epoch of a run that could not
//! be saved, to a directory of the user's choosing on a background thread,
//! with the same guard as every output and the bytes copied so far for a
//! progress bar. An unsaved run's epoch is copied as a checkpoint: its AdamW
//! moments and trainer state (for *Resume* only) stay behind.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::train::{run_dir, save};
use crate::ui::support::job::Job;
use crate::write_guard::{self, Protected};

/// What *Save as…* copies.
#[derive(Debug, Clone, PartialEq)]
pub enum SaveSource {
    /// A saved checkpoint (the tuned model).
    Checkpoint(PathBuf),
    /// The best epoch kept in a run directory (`NAME.partial/`).
    RunState(PathBuf),
}

/// A copy under way.
pub struct SaveJob {
    pub target: String,
    copied: Arc<AtomicU64>,
    /// 0 until the source has been measured.
    total: Arc<AtomicU64>,
    copy: Job<Result<(), String>>,
}

impl SaveJob {
    /// Copy `source` to `to` (never over the base model, the source, or a
    /// folder that is not an empty or new one).
    pub fn start(
        source: SaveSource,
        to: PathBuf,
        base: PathBuf,
        notify: impl Fn() + Send + 'static,
    ) -> Self {
        let target = to.display().to_string();
        let copied = Arc::new(AtomicU64::new(0));
        let total = Arc::new(AtomicU64::new(0));
        let (c, t) = (copied.clone(), total.clone());
        let work = move || copy(&source, &to, &base, &c, &t);
        SaveJob {
            target,
            copied,
            total,
            copy: Job::spawn("copy", work, notify),
        }
    }

    /// Bytes copied and bytes to copy (0 while unknown).
    pub fn progress(&self) -> (u64, u64) {
        (
            self.copied.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }

    pub fn poll(&self) -> Option<Result<(), String>> {
        self.copy.poll().map(|r| r.and_then(|r| r))
    }

    pub fn elapsed(&self) -> std::time::Duration {
        self.copy.elapsed()
    }
}

fn copy(
    source: &SaveSource,
    to: &Path,
    base: &Path,
    copied: &AtomicU64,
    total: &AtomicU64,
) -> Result<(), String> {
    let from = match source {
        SaveSource::Checkpoint(dir) => dir.clone(),
        SaveSource::RunState(partial) => {
            // Nothing may be written into the run's own state.
            let protected = Protected::new().with("the run's working directory", partial);
            write_guard::check_output_dir(to, &protected, false).map_err(|e| e.to_string())?;
            best_epoch(partial)?
        }
    };
    save::copy_checkpoint_with_progress(&from, to, base, false, &mut |bytes, all| {
        copied.store(bytes, Ordering::Relaxed);
        total.store(all.max(1), Ordering::Relaxed);
    })
    .map_err(|e| e.to_string())
}

/// Where a run directory keeps its best epoch's checkpoint (`best/`, or
/// `last/` when the last epoch was the best).
pub fn best_epoch(partial: &Path) -> Result<PathBuf, String> {
    let state = run_dir::latest_state(partial)
        .ok_or_else(|| format!("{}: holds no finished epoch", partial.display()))?;
    let progress = run_dir::read_progress(&state).map_err(|e| e.to_string())?;
    run_dir::best_dir(partial, &progress).ok_or_else(|| {
        format!(
            "{}: the best epoch's weights are missing",
            partial.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::ui::training::disk;

    fn wait(job: &SaveJob) -> Result<(), String> {
        let start = Instant::now();
        loop {
            if let Some(done) = job.poll() {
                return done;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "the copy hung");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// A bertscope checkpoint at `dir` with `weights` bytes of weights.
    fn checkpoint(dir: &Path, weights: usize) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join("config.json"), "{}").unwrap();
        std::fs::write(dir.join("model.safetensors"), vec![7u8; weights]).unwrap();
        let args =
            r#"{"task": "classification", "base_model": "b", "written_by": "bertscope test"}"#;
        std::fs::write(dir.join("training_args.json"), args).unwrap();
    }

    #[test]
    fn the_progress_counts_every_byte_of_the_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let from = tmp.path().join("run");
        checkpoint(&from, 300_000);
        checkpoint(&from.join("epochs/epoch-1"), 200_000);
        let to = tmp.path().join("copy");
        let job = SaveJob::start(
            SaveSource::Checkpoint(from.clone()),
            to.clone(),
            PathBuf::new(),
            || {},
        );
        wait(&job).unwrap();
        let size = disk::dir_size(&from);
        assert!(size > 500_000);
        assert_eq!(job.progress(), (size, size));
        assert_eq!(disk::dir_size(&to), size);
    }

    #[test]
    fn an_unsaved_run_gives_its_best_epoch_never_into_its_own_state() {
        let tmp = tempfile::tempdir().unwrap();
        let partial = tmp.path().join("m.partial");
        let progress = |epoch| run_dir::Progress {
            epoch,
            best_epoch: Some(1),
            ..run_dir::Progress::default()
        };
        // Epoch 1 was the best and is set aside in best/; last/ is epoch 2.
        for (name, epoch) in [(run_dir::BEST, 1), (run_dir::LAST, 2)] {
            checkpoint(&partial.join(name), 10 * epoch);
            run_dir::write_progress(&partial.join(name), &progress(epoch)).unwrap();
        }
        assert_eq!(best_epoch(&partial).unwrap(), partial.join(run_dir::BEST));

        let inside = partial.join("copy");
        let source = SaveSource::RunState(partial.clone());
        let refused = SaveJob::start(source.clone(), inside.clone(), PathBuf::new(), || {});
        assert!(wait(&refused)
            .unwrap_err()
            .contains("the run's working directory"));
        assert!(!inside.exists());

        let to = tmp.path().join("saved");
        wait(&SaveJob::start(source, to.clone(), PathBuf::new(), || {})).unwrap();
        let weights = std::fs::read(to.join("model.safetensors")).unwrap();
        assert_eq!(weights.len(), 10, "epoch 1's weights");
    }

    #[test]
    fn an_unsaved_runs_copy_is_its_checkpoint_without_the_resume_state() {
        let tmp = tempfile::tempdir().unwrap();
        let partial = tmp.path().join("m.partial");
        let last = partial.join(run_dir::LAST);
        checkpoint(&last, 1000);
        let progress = run_dir::Progress {
            epoch: 1,
            best_epoch: Some(1),
            ..run_dir::Progress::default()
        };
        run_dir::write_progress(&last, &progress).unwrap();
        std::fs::write(last.join(run_dir::OPTIMIZER_FILE), vec![1u8; 2000]).unwrap();
        let to = tmp.path().join("saved");
        let source = SaveSource::RunState(partial.clone());
        let job = SaveJob::start(source, to.clone(), PathBuf::new(), || {});
        wait(&job).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(&to)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            ["config.json", "model.safetensors", "training_args.json"]
        );
        let copied = disk::dir_size(&to);
        assert_eq!(
            job.progress(),
            (copied, copied),
            "the bar counts what is copied"
        );
        assert!(copied < disk::dir_size(&last) - 2000);
        // A checkpoint of ours: a later save may replace it.
        write_guard::ours(&to).unwrap();
        assert!(
            last.join(run_dir::OPTIMIZER_FILE).is_file(),
            "the run is left whole"
        );
    }
}
