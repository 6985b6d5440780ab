//! The buttons' side of a run: what Stop, Pause and Resume do, behind a small trait.
//!
//! The web server never reaches into the coordinator or a plan executor: it calls a
//! [`ControlPort`]. The port of an `ensemble run` is its [`RunControl`] (the handle the control
//! socket and `ensemble pause|resume|stop` use too): Stop ends the run as Ctrl-C does, Pause and
//! Resume act on the plan (at its next point boundary; a stream plan's clock holds at once), and
//! a request the run cannot take (pause before the plan has started, resume when not paused)
//! answers an error (HTTP 409).

use serde_json::Value;

use crate::control::{ControlError as PlanControlError, Phase, RunControl};

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
    /// The plan's control state (phase, cause, points, pauses and suspensions) for
    /// `/api/status`, or `null` where there is none.
    fn plan_state(&self) -> Value {
        Value::Null
    }
}

/// The control port of `ensemble run`: the run's [`RunControl`], the same handle the control
/// socket uses. Stop works at any time; Pause and Resume once the plan has started (before
/// that they answer [`ControlError::Unsupported`], HTTP 409).
impl ControlPort for RunControl {
    fn stop(&self) -> Result<(), ControlError> {
        RunControl::stop(self, WEB_VIEW)
            .map(drop)
            .map_err(|_| ControlError::Ended)
    }

    fn pause(&self, now: bool) -> Result<(), ControlError> {
        RunControl::pause(self, now, WEB_VIEW)
            .map(drop)
            .map_err(refused)
    }

    fn resume(&self) -> Result<(), ControlError> {
        RunControl::resume(self, WEB_VIEW)
            .map(drop)
            .map_err(refused)
    }

    fn can_pause(&self) -> bool {
        matches!(
            self.state().phase,
            Phase::Running | Phase::Pausing | Phase::Paused | Phase::Suspended
        )
    }

    fn is_paused(&self) -> bool {
        self.state().phase == Phase::Paused
    }

    fn plan_state(&self) -> Value {
        serde_json::to_value(self.state()).unwrap_or(Value::Null)
    }
}

/// Who asked, as the run records it (`stop_reason`, `interruptions[].by`).
const WEB_VIEW: &str = "web view";

/// A refused pause or resume as the API reports it.
fn refused(e: PlanControlError) -> ControlError {
    match e {
        PlanControlError::Finished | PlanControlError::Stopping(_) => ControlError::Ended,
        other => ControlError::Unsupported(other.to_string()),
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
    fn a_run_whose_plan_has_not_started_can_stop_but_not_pause() {
        let control = RunControl::new();
        assert!(!ControlPort::can_pause(&control));
        assert!(matches!(
            ControlPort::pause(&control, false),
            Err(ControlError::Unsupported(_))
        ));
        assert!(matches!(
            ControlPort::resume(&control),
            Err(ControlError::Unsupported(_))
        ));
        ControlPort::stop(&control).expect("a running run can stop");
        assert_eq!(control.stop_asked().as_deref(), Some(WEB_VIEW));
    }

    #[test]
    fn a_point_plan_pauses_and_resumes_through_the_port() {
        let control = RunControl::new();
        control.begin_plan(Some(10));
        assert!(ControlPort::can_pause(&control));
        ControlPort::pause(&control, false).expect("a running plan pauses");
        assert_eq!(control.state().phase, Phase::Pausing);
        assert_eq!(ControlPort::plan_state(&control)["phase"], "pausing");
        ControlPort::resume(&control).expect("a pause not yet taken effect is withdrawn");
        assert_ne!(control.state().phase, Phase::Pausing);
        assert!(
            ControlPort::resume(&control).is_err(),
            "nothing left to resume"
        );
    }
}
