//! What the command line asked for at start-up (`--head`, `--tuned`,
//! `--train-data`), sent once the first model is loaded, and the answers a
//! `--screenshot` waits for: one small state machine instead of five flags.

use std::path::PathBuf;

/// Start-up work still to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Startup {
    /// No model loaded yet: on load, focus `head`, open `tuned`, preview the data.
    BeforeModel {
        head: Option<usize>,
        tuned: Option<PathBuf>,
        preview: bool,
        /// Whether a screenshot waits for the tuned model (`--tuned`, not a
        /// directory remembered from the last session).
        wait_for_tuned: bool,
    },
    /// Sent; these answers are still to come.
    Awaiting {
        tuned: bool,
        preview: bool,
    },
    Done,
}

/// What to send once the model is loaded.
#[derive(Debug, Default, PartialEq)]
pub struct OnLoad {
    pub head: Option<usize>,
    pub tuned: Option<PathBuf>,
    pub preview: bool,
}

/// An answer start-up may be waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    Tuned,
    Preview,
}

impl Startup {
    /// The model is loaded: what to send now; afterwards the state waits for
    /// those answers.
    pub fn model_loaded(&mut self) -> OnLoad {
        let Startup::BeforeModel {
            head,
            tuned,
            preview,
            wait_for_tuned,
        } = std::mem::replace(self, Startup::Done)
        else {
            return OnLoad::default();
        };
        *self = Startup::Awaiting {
            tuned: wait_for_tuned && tuned.is_some(),
            preview,
        }
        .settle();
        OnLoad {
            head,
            tuned,
            preview,
        }
    }

    /// An answer arrived (success or failure alike).
    pub fn answered(&mut self, answer: Answer) {
        if let Startup::Awaiting { tuned, preview } = self {
            match answer {
                Answer::Tuned => *tuned = false,
                Answer::Preview => *preview = false,
            }
            *self = self.clone().settle();
        }
    }

    /// A restarted worker lost the tuned model: open `dir` again on the next load.
    pub fn reopen_tuned(&mut self, dir: PathBuf) {
        match self {
            Startup::BeforeModel { tuned, .. } => *tuned = Some(dir),
            _ => {
                *self = Startup::BeforeModel {
                    head: None,
                    tuned: Some(dir),
                    preview: false,
                    wait_for_tuned: false,
                }
            }
        }
    }

    /// Nothing left that a screenshot should wait for.
    pub fn settled(&self) -> bool {
        match self {
            Startup::BeforeModel { .. } => false,
            Startup::Awaiting { tuned, preview } => !tuned && !preview,
            Startup::Done => true,
        }
    }

    fn settle(self) -> Startup {
        match self {
            Startup::Awaiting {
                tuned: false,
                preview: false,
            } => Startup::Done,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_on_load_then_waits_for_both_answers() {
        let mut s = Startup::BeforeModel {
            head: Some(3),
            tuned: Some("run".into()),
            preview: true,
            wait_for_tuned: true,
        };
        assert!(!s.settled());
        let sent = s.model_loaded();
        assert_eq!((sent.head, sent.preview), (Some(3), true));
        assert_eq!(sent.tuned, Some(PathBuf::from("run")));
        assert!(!s.settled());
        s.answered(Answer::Preview);
        assert!(!s.settled());
        s.answered(Answer::Tuned);
        assert_eq!(s, Startup::Done);
        // A second load sends nothing again.
        assert_eq!(s.model_loaded(), OnLoad::default());
    }

    #[test]
    fn a_remembered_tuned_model_is_opened_but_not_waited_for() {
        let mut s = Startup::BeforeModel {
            head: None,
            tuned: Some("last-session".into()),
            preview: false,
            wait_for_tuned: false,
        };
        assert!(s.model_loaded().tuned.is_some());
        assert!(s.settled());
    }
}
