//! Following a run live. File-system notifications (`notify`) wake the reader
//! as soon as the run writes; a poll every `interval` covers the folders that
//! send none (network mounts) and a folder that does not exist yet.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher as _};

use super::{RunSnapshot, WatchError, Watcher};

/// What the watcher reports: a new state of the run, or why the folder
/// cannot be read (yet).
pub type Update = Result<RunSnapshot, WatchError>;

/// Report each change of the run in `dir` to `on_change` until it has
/// finished (the final snapshot is returned) or `stop` is set (`None`).
pub fn follow(
    dir: &Path,
    interval: Duration,
    stop: &AtomicBool,
    on_change: &mut dyn FnMut(&Update),
) -> Option<RunSnapshot> {
    let (tx, rx) = mpsc::channel::<()>();
    let mut notifier = notify::recommended_watcher(move |_event: notify::Result<notify::Event>| {
        let _ = tx.send(());
    })
    .ok();
    let mut notified = false;
    let mut watcher = Watcher::new(dir);
    let mut last_key: Option<String> = None;
    loop {
        if stop.load(Ordering::Relaxed) {
            return None;
        }
        if !notified && dir.is_dir() {
            if let Some(n) = notifier.as_mut() {
                notified = n.watch(dir, RecursiveMode::Recursive).is_ok();
            }
        }
        let update = watcher.refresh();
        let key = change_key(&update);
        if last_key.as_ref() != Some(&key) {
            on_change(&update);
            last_key = Some(key);
        }
        if let Ok(snapshot) = update {
            if snapshot.finished {
                return Some(snapshot);
            }
        }
        // Woken by a change or by the poll; a burst of events is one wake-up.
        let _ = rx.recv_timeout(interval);
        std::thread::sleep(Duration::from_millis(20));
        while rx.try_recv().is_ok() {}
    }
}

/// What makes an update worth showing: progress, evaluations, checkpoints,
/// problems (a stopped run's idle time counted in whole minutes).
fn change_key(update: &Update) -> String {
    match update {
        Err(e) => format!("error {e}"),
        Ok(s) => format!(
            "{} {} {} {:?} {} {:?} {:?}",
            s.global_step,
            s.log.len(),
            s.eval.len(),
            s.checkpoints
                .iter()
                .map(|c| (c.step, c.gone))
                .collect::<Vec<_>>(),
            s.finished,
            s.problems
                .iter()
                .filter(|p| !p.starts_with("no new log entry"))
                .collect::<Vec<_>>(),
            s.problems
                .iter()
                .any(|p| p.starts_with("no new log entry"))
                .then(|| s.idle_s.map(|i| (i / 60.0) as u64)),
        ),
    }
}
