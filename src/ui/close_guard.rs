//! Closing the window while a run trains: ask first (keep training, stop and
//! keep the best checkpoint, or quit now). A pure state machine, and the modal
//! that asks.

use egui::RichText;

/// Where a close of the window stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CloseGuard {
    /// No close asked for.
    #[default]
    Open,
    /// The window was asked to close during a run: the modal asks what to do.
    Asking,
    /// The run was told to stop; the window closes once it has saved.
    StoppingThenClose,
    /// Closing for good: the next close goes through.
    Closing,
}

/// The user's answer in the modal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseChoice {
    KeepTraining,
    StopAndKeepBest,
    Quit,
}

/// What the app must do after an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseAction {
    Nothing,
    /// Cancel the run (it keeps the best checkpoint so far).
    CancelRun,
    /// Close the window.
    Close,
}

impl CloseGuard {
    /// The window was asked to close; true: cancel that close (and ask).
    pub fn close_requested(&mut self, training: bool) -> bool {
        match self {
            CloseGuard::Closing => false,
            CloseGuard::Open if !training => false,
            CloseGuard::Open => {
                *self = CloseGuard::Asking;
                true
            }
            CloseGuard::Asking | CloseGuard::StoppingThenClose => true,
        }
    }

    pub fn choose(&mut self, choice: CloseChoice) -> CloseAction {
        let (next, action) = match choice {
            CloseChoice::KeepTraining => (CloseGuard::Open, CloseAction::Nothing),
            CloseChoice::StopAndKeepBest => (CloseGuard::StoppingThenClose, CloseAction::CancelRun),
            CloseChoice::Quit => (CloseGuard::Closing, CloseAction::Close),
        };
        *self = next;
        action
    }

    /// Every frame; true: close the window now (the run the user was asked
    /// about has ended, so nothing is lost by closing).
    pub fn tick(&mut self, training: bool) -> bool {
        let waiting = matches!(self, CloseGuard::Asking | CloseGuard::StoppingThenClose);
        if waiting && !training {
            *self = CloseGuard::Closing;
            return true;
        }
        false
    }

    /// The modal, while there is something to ask or wait for.
    pub fn show(&self, ctx: &egui::Context) -> Option<CloseChoice> {
        if !matches!(self, CloseGuard::Asking | CloseGuard::StoppingThenClose) {
            return None;
        }
        let modal = egui::Modal::new(egui::Id::unique("close-while-training")).show(ctx, |ui| {
            ui.set_max_width(420.0);
            ui.label(RichText::new("A run is still training").strong());
            if *self == CloseGuard::StoppingThenClose {
                ui.horizontal(|ui| {
                    ui.add(egui::Spinner::new());
                    ui.label(
                        "Stopping the run; the window closes once its best checkpoint is saved.",
                    );
                });
                return ui.button("Quit now").clicked().then_some(CloseChoice::Quit);
            }
            ui.label("Closing the window now loses the run unless it is stopped first.");
            let mut choice = None;
            ui.horizontal(|ui| {
                if ui.button("Keep training").clicked() {
                    choice = Some(CloseChoice::KeepTraining);
                }
                if ui.button("Stop and keep the best checkpoint").clicked() {
                    choice = Some(CloseChoice::StopAndKeepBest);
                }
                if ui.button("Quit now").clicked() {
                    choice = Some(CloseChoice::Quit);
                }
            });
            choice
        });
        let dismissed = *self == CloseGuard::Asking && modal.should_close();
        modal
            .inner
            .or(dismissed.then_some(CloseChoice::KeepTraining))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closing_while_idle_goes_through() {
        let mut g = CloseGuard::default();
        assert!(!g.close_requested(false));
        assert_eq!(g, CloseGuard::Open);
        assert!(!g.tick(false));
    }

    #[test]
    fn keep_training_cancels_the_close_and_asks_again_next_time() {
        let mut g = CloseGuard::default();
        assert!(g.close_requested(true));
        assert_eq!(g, CloseGuard::Asking);
        assert!(
            g.close_requested(true),
            "a second close while asking waits too"
        );
        assert!(!g.tick(true));
        assert_eq!(g.choose(CloseChoice::KeepTraining), CloseAction::Nothing);
        assert_eq!(g, CloseGuard::Open);
        assert!(g.close_requested(true));
        assert_eq!(g, CloseGuard::Asking);
    }

    #[test]
    fn stop_and_keep_closes_once_the_run_has_ended() {
        let mut g = CloseGuard::Asking;
        assert_eq!(
            g.choose(CloseChoice::StopAndKeepBest),
            CloseAction::CancelRun
        );
        assert!(g.close_requested(true), "still saving: the window stays");
        assert!(!g.tick(true));
        assert!(g.tick(false));
        assert_eq!(g, CloseGuard::Closing);
        assert!(!g.close_requested(false));
    }

    #[test]
    fn quit_closes_at_once_even_while_training() {
        let mut g = CloseGuard::Asking;
        assert_eq!(g.choose(CloseChoice::Quit), CloseAction::Close);
        assert!(!g.close_requested(true));
    }

    #[test]
    fn a_run_that_ends_while_asking_lets_the_window_close() {
        let mut g = CloseGuard::Asking;
        assert!(g.tick(false));
        assert_eq!(g, CloseGuard::Closing);
    }
}
