//! Threads that never die silently: a panic becomes a message, and a one-shot
//! background job (a file dialog, *Save as…*) hands back its result or an
//! error, never a panic on the UI thread.

use std::any::Any;
use std::panic::{self, UnwindSafe};
use std::sync::mpsc::{channel, Receiver, TryRecvError};
use std::thread;
use std::time::{Duration, Instant};

/// The text of a panic's payload (`panic!("...")` carries a `&str` or a `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic without a message".into()
    }
}

/// Run `f`, turning a panic into its message.
pub fn catch<T>(f: impl FnOnce() -> T + UnwindSafe) -> Result<T, String> {
    panic::catch_unwind(f).map_err(|payload| panic_message(&*payload))
}

/// A one-shot job on its own thread.
pub struct Job<T> {
    what: String,
    result: Receiver<Result<T, String>>,
    started: Instant,
}

impl<T: Send + 'static> Job<T> {
    /// Start `work` on a thread named after `what`; `notify` is called when it
    /// is done (repaint the UI).
    pub fn spawn(
        what: &str,
        work: impl FnOnce() -> T + Send + 'static,
        notify: impl Fn() + Send + 'static,
    ) -> Self {
        let (tx, rx) = channel();
        let name = what.to_string();
        let spawned = thread::Builder::new()
            .name(format!("bertscope-{}", what.replace(' ', "-")))
            .spawn(move || {
                // `work` is moved in and never used after an unwind, so no
                // broken invariant can be observed: asserting unwind safety is sound.
                let result = catch(panic::AssertUnwindSafe(work))
                    .map_err(|panic| format!("the {name} crashed: {panic}"));
                let _ = tx.send(result);
                notify();
            });
        if let Err(e) = spawned {
            let (failed_tx, failed_rx) = channel();
            let _ = failed_tx.send(Err(format!("cannot start the {what}: {e}")));
            return Job {
                what: what.to_string(),
                result: failed_rx,
                started: Instant::now(),
            };
        }
        Job {
            what: what.to_string(),
            result: rx,
            started: Instant::now(),
        }
    }

    /// The outcome once the job is done: its value, or why there is none.
    pub fn poll(&self) -> Option<Result<T, String>> {
        match self.result.try_recv() {
            Ok(result) => Some(result),
            Err(TryRecvError::Empty) => None,
            Err(TryRecvError::Disconnected) => {
                Some(Err(format!("the {} stopped without an answer", self.what)))
            }
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

/// The native dialog that picks a data file (TSV, CSV or text), on a thread
/// of its own so the window never blocks; `ctx` repaints when it closes.
pub fn pick_data_file(title: &'static str, ctx: &egui::Context) -> Job<Option<std::path::PathBuf>> {
    let pick = move || {
        rfd::FileDialog::new()
            .set_title(title)
            .add_filter("TSV / CSV / text", &["tsv", "csv", "txt"])
            .pick_file()
    };
    let ctx = ctx.clone();
    Job::spawn("file dialog", pick, move || ctx.request_repaint())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait<T: Send + 'static>(job: &Job<T>) -> Result<T, String> {
        let start = Instant::now();
        loop {
            if let Some(r) = job.poll() {
                return r;
            }
            assert!(start.elapsed() < Duration::from_secs(10), "the job hung");
            thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn a_job_hands_back_its_value() {
        let job = Job::spawn("sum", || 2 + 3, || {});
        assert_eq!(wait(&job), Ok(5));
    }

    #[test]
    fn a_panicking_job_hands_back_its_message() {
        let job = Job::spawn("copy", || -> u32 { panic!("disk on fire") }, || {});
        assert_eq!(
            wait(&job),
            Err("the copy crashed: disk on fire".to_string())
        );
        let formatted = Job::spawn("copy", || -> u32 { panic!("{} left", 3) }, || {});
        assert_eq!(
            wait(&formatted),
            Err("the copy crashed: 3 left".to_string())
        );
    }
}
