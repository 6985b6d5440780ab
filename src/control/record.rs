//! [`Interruption`]: one pause or suspension of a plan, as `run.json` records it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Whether a plan was paused on request or suspended by a condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterruptionKind {
    /// Paused on request (socket, web page, terminal); resumed on request.
    Pause,
    /// Held by a `[[plan.suspend]]` condition; resumed when it cleared.
    Suspend,
    /// Held because an instrument could not be reached; resumed once it was reconnected and
    /// its last commanded setpoints were restored (`resumed_by` says which).
    Reconnect,
}

/// One pause or suspension: when, who or what, at which point, and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interruption {
    /// Pause or suspension.
    pub kind: InterruptionKind,
    /// Who asked (`socket`, `http`, `terminal`), which suspender (`plan.suspend[0]`), or which
    /// instrument could not be reached.
    pub by: String,
    /// A suspension's cause: its condition and the value that tripped it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    /// A pause asked with `--now` (the point in progress was abandoned and taken again).
    #[serde(default)]
    pub now: bool,
    /// When it was asked for (a suspension: when its condition tripped).
    pub requested_at: DateTime<Utc>,
    /// When it took effect: the point boundary a pause waited for, or the trip.
    pub at: DateTime<Utc>,
    /// The index of the next point the plan takes after it (the abandoned one, if any).
    pub point: u64,
    /// The point in progress that was abandoned and taken again, if one was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abandoned_point: Option<u64>,
    /// When the plan was let go again (absent if the run ended first).
    pub resumed_at: Option<DateTime<Utc>>,
    /// Who resumed it, or why the suspension cleared.
    pub resumed_by: Option<String>,
    /// Seconds from `at` to `resumed_at`.
    pub seconds: Option<f64>,
    /// The run was stopped while it was in effect.
    #[serde(default)]
    pub ended_by_stop: bool,
}

impl Interruption {
    /// A pause asked by `by` at `requested_at`, taking effect now before point `point`.
    pub(super) fn pause(by: &str, now: bool, requested_at: DateTime<Utc>, point: u64) -> Self {
        Self::new(InterruptionKind::Pause, by, None, now, requested_at, point)
    }

    /// A hold of `kind` (a suspension or a reconnection) by `by` for `cause`, taking effect
    /// now before point `point`.
    pub(super) fn hold(kind: InterruptionKind, by: &str, cause: &str, point: u64) -> Self {
        Self::new(kind, by, Some(cause), true, Utc::now(), point)
    }

    fn new(
        kind: InterruptionKind,
        by: &str,
        cause: Option<&str>,
        now: bool,
        requested_at: DateTime<Utc>,
        point: u64,
    ) -> Self {
        Self {
            kind,
            by: by.to_string(),
            cause: cause.map(str::to_string),
            now,
            requested_at,
            at: Utc::now(),
            point,
            abandoned_point: None,
            resumed_at: None,
            resumed_by: None,
            seconds: None,
            ended_by_stop: false,
        }
    }

    /// Marks it over now, let go by `by`.
    pub(super) fn close(&mut self, by: &str) {
        let now = Utc::now();
        self.resumed_at = Some(now);
        self.resumed_by = Some(by.to_string());
        self.seconds = Some((now - self.at).num_microseconds().unwrap_or(0) as f64 / 1e6);
    }
}
