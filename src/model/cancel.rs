//! Cancel points inside a training step. candle runs a whole backward pass in
//! one call, so a cancel could only land between micro-batches; instead the
//! fused CPU ops (run once or more per layer, forward and backward) look at
//! the run's cancel flag and fail with [`CANCELLED`], and the step reports a
//! cancel. A cancel then lands within one layer, whatever the batch size.

use std::sync::atomic::{AtomicBool, Ordering};

scoped_tls::scoped_thread_local!(static FLAG: AtomicBool);

/// The message of the error a cancel point fails with.
pub const CANCELLED: &str = "cancelled";

/// Run `f` with `cancel` as the flag the cancel points on this thread read
/// (candle runs a graph's forward and backward passes on the caller's thread).
pub fn watching<R>(cancel: &AtomicBool, f: impl FnOnce() -> R) -> R {
    FLAG.set(cancel, f)
}

/// A cancel point: an error when the flag being watched is set.
pub fn check() -> candle_core::Result<()> {
    if FLAG.is_set() && FLAG.with(|flag| flag.load(Ordering::Relaxed)) {
        candle_core::bail!("{CANCELLED}")
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_watched_flag_on_this_thread_counts() {
        assert!(check().is_ok(), "nothing watched");
        let flag = AtomicBool::new(false);
        watching(&flag, || {
            assert!(check().is_ok());
            flag.store(true, Ordering::Relaxed);
            assert!(check().is_err());
            let other = std::thread::scope(|s| s.spawn(check).join().map(|r| r.is_ok()));
            assert_eq!(other.ok(), Some(true), "another thread watches nothing");
        });
        assert!(check().is_ok(), "the watch ended with the scope");
    }
}
