//! Runs trained elsewhere and followed here (*Watch a run…*): a Trainer
//! output folder, the kit's or any Trainer run's, followed by
//! `watch::follow` on a thread of its own. The UI keeps each run's latest
//! snapshot as plain data, and the same view of it as a local run's.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use crate::ui::training::run::RunState;
use crate::watch::follow::follow;
use crate::watch::RunSnapshot;

/// How often a watched folder is read when it sends no notifications.
const POLL: Duration = Duration::from_secs(2);

pub struct WatchedRun {
    pub dir: PathBuf,
    pub snapshot: Option<RunSnapshot>,
    /// Why the folder cannot be read (yet): missing, not a Trainer output.
    pub error: Option<String>,
    /// The snapshot as the training view draws a run.
    pub state: RunState,
    stop: Arc<AtomicBool>,
    updates: mpsc::Receiver<Result<RunSnapshot, String>>,
}

impl WatchedRun {
    /// Follow `dir` on a thread; `notify` wakes the UI at each change.
    pub fn start(dir: PathBuf, notify: impl Fn() + Send + 'static) -> WatchedRun {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_dir, thread_stop) = (dir.clone(), stop.clone());
        let spawned = std::thread::Builder::new()
            .name("bertscope-watch".into())
            .spawn(move || {
                let mut send = |update: &crate::watch::follow::Update| {
                    let plain = match update {
                        Ok(snapshot) => Ok(snapshot.clone()),
                        Err(e) => Err(e.to_string()),
                    };
                    let _ = tx.send(plain);
                    notify();
                };
                follow(&thread_dir, POLL, &thread_stop, &mut send);
            });
        let error = spawned.err().map(|e| format!("cannot start watching: {e}"));
        WatchedRun {
            state: RunState::default(),
            dir,
            snapshot: None,
            error,
            stop,
            updates: rx,
        }
    }

    /// Take the updates that arrived; whether there were any.
    pub fn poll(&mut self) -> bool {
        let mut changed = false;
        while let Ok(update) = self.updates.try_recv() {
            changed = true;
            match update {
                Ok(snapshot) => {
                    self.state = RunState::from_snapshot(&snapshot, &self.dir);
                    self.snapshot = Some(snapshot);
                    self.error = None;
                }
                Err(e) => self.error = Some(e),
            }
        }
        changed
    }

    pub fn finished(&self) -> bool {
        self.snapshot.as_ref().is_some_and(|s| s.finished)
    }

    /// The folder's name, for lists.
    pub fn name(&self) -> String {
        self.dir.file_name().map_or_else(
            || self.dir.display().to_string(),
            |n| n.to_string_lossy().to_string(),
        )
    }

    /// One line on where the run stands.
    pub fn status_line(&self) -> String {
        match (&self.snapshot, &self.error) {
            (_, Some(e)) => e.clone(),
            (Some(s), None) => s.progress_line(),
            (None, None) => "waiting for the first log…".into(),
        }
    }

    /// What *Open* loads as the tuned model: the final model once the run
    /// has finished (its epochs on the compare slider), else its newest
    /// checkpoint still on disk.
    pub fn openable(&self) -> Option<PathBuf> {
        let s = self.snapshot.as_ref()?;
        if s.finished {
            return Some(self.dir.clone());
        }
        s.checkpoints
            .iter()
            .rev()
            .find(|c| !c.gone && c.path.join("config.json").is_file())
            .map(|c| c.path.clone())
    }

    pub fn is(&self, dir: &Path) -> bool {
        self.dir == dir
    }
}

impl Drop for WatchedRun {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}
