//! What a run ends with, and what happened on the way: the types the coordinator hands back and
//! the manifest records. Plain data, below both the supervisor and the actor.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use ensemble_actors::control::SinkReport;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// The plan ran to its end.
    Completed,
    /// Stopped early on request (Ctrl-C, SIGTERM); everything acquired was saved.
    Stopped,
    /// A component failed beyond its policy, or a sink could not write.
    Failed,
}

/// Why the run is asked to stop.
#[derive(Debug, Clone)]
pub enum StopReason {
    /// An operator asked (signal): status `stopped`.
    Requested(String),
    /// Something failed: status `failed`.
    Failure(String),
    /// The plan ended (a stream plan's duration passed, or a point plan's last point is done):
    /// status `completed`.
    PlanEnded,
}

impl StopReason {
    /// The run's status once it stopped for this reason, and the reason's text for the
    /// manifest (none when the plan simply ended).
    pub fn status(&self) -> (RunStatus, Option<String>) {
        match self {
            StopReason::Requested(r) => (RunStatus::Stopped, Some(r.clone())),
            StopReason::Failure(r) => (RunStatus::Failed, Some(r.clone())),
            StopReason::PlanEnded => (RunStatus::Completed, None),
        }
    }
}

/// What happened to a component, as a manifest event names it.
///
/// The kind also decides how loudly it is logged (see [`RunEventKind::is_error`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunEventKind {
    /// The component failed (an error, a panic, a stall); the detail says why.
    Failed,
    /// A restart is scheduled; the detail gives the backoff.
    Restarting,
    /// The component runs again.
    Restarted,
    /// Too many restarts within the window: the policy escalated to abort.
    GaveUp,
    /// The component had not ended when the grace period after a stop ran out.
    StillRunning,
}

impl RunEventKind {
    /// The name the manifest uses.
    pub fn as_str(self) -> &'static str {
        match self {
            RunEventKind::Failed => "failed",
            RunEventKind::Restarting => "restarting",
            RunEventKind::Restarted => "restarted",
            RunEventKind::GaveUp => "gave_up",
            RunEventKind::StillRunning => "still_running",
        }
    }

    /// Whether the event means lost data or an operator needed (logged as ERROR); the others
    /// were recovered from (WARN).
    pub fn is_error(self) -> bool {
        matches!(
            self,
            RunEventKind::Failed | RunEventKind::GaveUp | RunEventKind::StillRunning
        )
    }
}

impl fmt::Display for RunEventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for RunEventKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Something that happened to a component during the run, for the manifest.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RunEvent {
    /// When.
    pub at: DateTime<Utc>,
    /// Which component.
    pub component: String,
    /// What happened.
    pub event: RunEventKind,
    /// Details (the error text, the backoff).
    pub detail: String,
}

impl RunEvent {
    /// An event that happens now; it is logged at the level its kind calls for.
    pub fn now(component: &str, event: RunEventKind, detail: String) -> Self {
        if event.is_error() {
            tracing::error!(component_id = component, "{event}: {detail}");
        } else {
            tracing::warn!(component_id = component, "{event}: {detail}");
        }
        Self {
            at: Utc::now(),
            component: component.to_string(),
            event,
            detail,
        }
    }
}

/// The end result the coordinator hands back.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    /// How the run ended.
    pub status: RunStatus,
    /// Why it stopped early, if it did.
    pub stop_reason: Option<String>,
    /// Per sink: its report (if it finished) and its error (if it failed).
    pub sinks: BTreeMap<String, SinkOutcome>,
    /// Restarts, failures and other events in order.
    pub events: Vec<RunEvent>,
}

/// What one sink ended with.
#[derive(Debug, Clone, Default)]
pub struct SinkOutcome {
    /// What it wrote, once it finished.
    pub report: Option<SinkReport>,
    /// Its first error.
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_kinds_keep_their_manifest_names() {
        for (kind, name) in [
            (RunEventKind::Failed, "failed"),
            (RunEventKind::Restarting, "restarting"),
            (RunEventKind::Restarted, "restarted"),
            (RunEventKind::GaveUp, "gave_up"),
            (RunEventKind::StillRunning, "still_running"),
        ] {
            let json = serde_json::to_string(&kind).expect("a unit enum serializes");
            assert_eq!(json, format!("\"{name}\""));
            assert_eq!(kind.as_str(), name);
            let back: RunEventKind = serde_json::from_str(&json).expect("and reads back");
            assert_eq!(back, kind);
        }
    }

    #[test]
    fn a_stop_reason_gives_the_status() {
        assert_eq!(StopReason::PlanEnded.status(), (RunStatus::Completed, None));
        assert_eq!(
            StopReason::Requested("ctrl-c".into()).status(),
            (RunStatus::Stopped, Some("ctrl-c".into()))
        );
        assert_eq!(
            StopReason::Failure("x".into()).status(),
            (RunStatus::Failed, Some("x".into()))
        );
    }
}
