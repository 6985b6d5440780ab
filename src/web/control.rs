//! The buttons' side of a run: what Stop, Pause and Resume do, behind a small trait.
//!
//! The web server never reaches into the coordinator or a plan executor: it calls a
//! [`ControlPort`]. [`StopPort`] is the port of an `ensemble run`: Stop takes the same path as
//! Ctrl-C (a [`StopReason`] handed to `run`, which sends `StopRun` to the coordinator); it has no
//! pause, so Pause and Resume answer [`ControlError::Unsupported`] (HTTP 409). A plan executor
//! that can pause implements the trait itself and reports `can_pause() == true`.

use crate::coordinator::StopReason;
use tokio::sync::mpsc;

/// Why a control action was not carried out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// This run (or this kind of plan) has no such action; nothing changed.
    #[error("{0}")]
    Unsupported(String),
    /// The run has already ended or is ending; nothing changed.
    #[error("the run is no longer running")]
    Ended,
}

/// What the page's buttons and `POST /api/{stop,pause,resume}` call.
///
/// Contract: `Ok(())` means the request was handed on (the run stops or pauses soon, at its
/// next safe point; watch `/api/status`); `Err` means nothing changed. Calls never block: they
/// run on the web server's thread.
pub trait ControlPort: Send + Sync + 'static {
    /// Stops the run as Ctrl-C does: every acquired row is saved, status `stopped`.
    fn stop(&self) -> Result<(), ControlError>;
    /// Pauses: at the next checkpoint (`now == false`) or at once (`now == true`).
    fn pause(&self, now: bool) -> Result<(), ControlError>;
    /// Resumes a paused run.
    fn resume(&self) -> Result<(), ControlError>;
    /// Whether [`pause`](Self::pause) can succeed for this run (the page disables the buttons
    /// when not).
    fn can_pause(&self) -> bool;
    /// Whether the run is paused now.
    fn is_paused(&self) -> bool {
        false
    }
}

/// The control port of `ensemble run`: Stop as Ctrl-C; no pause.
#[derive(Debug, Clone)]
pub struct StopPort {
    tx: mpsc::UnboundedSender<StopReason>,
}

impl StopPort {
    /// A port and the receiver `run` selects on.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<StopReason>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, rx)
    }
}

/// What Pause and Resume answer until plans can pause.
const NO_PAUSE: &str = "this run cannot pause (stream plans have no checkpoints); use stop";

impl ControlPort for StopPort {
    fn stop(&self) -> Result<(), ControlError> {
        self.tx
            .send(StopReason::Requested(
                "stop requested from the web view".into(),
            ))
            .map_err(|_| ControlError::Ended)
    }

    fn pause(&self, _now: bool) -> Result<(), ControlError> {
        Err(ControlError::Unsupported(NO_PAUSE.into()))
    }

    fn resume(&self) -> Result<(), ControlError> {
        Err(ControlError::Unsupported(NO_PAUSE.into()))
    }

    fn can_pause(&self) -> bool {
        false
    }
}

/// The port of `ensemble serve`: a finished run has nothing to control.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoControl;

impl ControlPort for NoControl {
    fn stop(&self) -> Result<(), ControlError> {
        Err(ControlError::Ended)
    }
    fn pause(&self, _now: bool) -> Result<(), ControlError> {
        Err(ControlError::Ended)
    }
    fn resume(&self) -> Result<(), ControlError> {
        Err(ControlError::Ended)
    }
    fn can_pause(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_hands_a_requested_stop_to_the_run_and_pause_is_unsupported() {
        let (port, mut rx) = StopPort::new();
        port.stop().expect("the run listens");
        assert!(matches!(rx.try_recv(), Ok(StopReason::Requested(_))));
        assert!(matches!(
            port.pause(false),
            Err(ControlError::Unsupported(_))
        ));
        assert!(matches!(port.resume(), Err(ControlError::Unsupported(_))));
        drop(rx);
        assert_eq!(port.stop(), Err(ControlError::Ended));
    }
}
