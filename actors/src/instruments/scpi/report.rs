//! What an SCPI session did, for the run manifest: per-channel counters, gaps, restores.

use std::sync::{Arc, Mutex};

use serde::Serialize;

/// Counters of one channel, for the run manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChannelCounters {
    /// The channel.
    pub channel: String,
    /// Answers that gave a number.
    pub values: u64,
    /// Queries with no answer in time (recorded as null).
    pub timeouts: u64,
    /// Answers that were not a number (recorded as null).
    pub parse_errors: u64,
    /// Answers that were SCPI overflow (`9.9E37`) or beyond `f64` (recorded as null).
    pub out_of_range: u64,
}

/// A time without connection, for the run manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// When the connection was lost, ns since the Unix epoch.
    pub start_ns: i64,
    /// When it was back, ns since the Unix epoch; `None` while still lost.
    pub end_ns: Option<i64>,
    /// Polls that produced no row during the gap.
    pub rows_missed: u64,
    /// Why the connection was lost.
    pub reason: String,
}

/// What a session did, for the run manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SessionReport {
    /// The device address.
    pub address: String,
    /// The answer to the identification query, if it came.
    pub identity: Option<String>,
    /// Recovered problems (no identification answer, device messages on set, ...).
    pub warnings: Vec<String>,
    /// Rows read.
    pub rows: u64,
    /// Per channel counters, in column order.
    pub channels: Vec<ChannelCounters>,
    /// Successful reconnections.
    pub reconnects: u64,
    /// Times without connection.
    pub gaps: Vec<Gap>,
    /// Sets that succeeded.
    pub sets_ok: u64,
    /// Sets that failed (refused, rejected, not settled, transport).
    pub sets_failed: u64,
    /// Every time the last commanded setpoints were sent again after a reconnection.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restores: Vec<Restore>,
}

/// The last commanded setpoints sent again after a reconnection (a device that lost power or
/// was reset in between would otherwise sit at its power-on values).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Restore {
    /// When the connection was back, ns since the Unix epoch.
    pub at_ns: i64,
    /// Each setpoint, in the order it was first set.
    pub setpoints: Vec<RestoredSetpoint>,
    /// Whether every setpoint was sent and read back within its tolerance. When not, the
    /// connection is dropped again and the restore is tried on the next reconnection.
    pub ok: bool,
}

/// One setpoint of a [`Restore`].
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RestoredSetpoint {
    /// The `[set.NAME]` parameter.
    pub param: String,
    /// The value last commanded, sent again.
    pub value: f64,
    /// The value reached: the readback, or the commanded value where there is no readback.
    pub reached: Option<f64>,
    /// Why it could not be restored, if it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Restore {
    /// One line for a log or a manifest entry: `voltage = 2.5 (read back 2.4999)`, ...
    pub fn describe(&self) -> String {
        let parts: Vec<String> = self
            .setpoints
            .iter()
            .map(|s| match (&s.error, s.reached) {
                (Some(e), _) => format!("{} = {} failed: {e}", s.param, s.value),
                (None, Some(r)) if r != s.value => {
                    format!("{} = {} (read back {r})", s.param, s.value)
                }
                (None, _) => format!("{} = {}", s.param, s.value),
            })
            .collect();
        if parts.is_empty() {
            "no setpoint to restore".to_string()
        } else {
            parts.join(", ")
        }
    }
}

/// One row read on request, for count and scan plans.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// When the first answer arrived, ns since the Unix epoch, UTC.
    pub timestamp_ns: i64,
    /// The channel names, in column order.
    pub channels: Arc<[String]>,
    /// One value per channel; null where the answer timed out or did not parse.
    pub values: Vec<Option<f64>>,
}

/// The session report, shared between the running loop and whoever builds the run manifest.
///
/// Updated after every emitted batch, every set and at the end; reading it never waits on the
/// device.
#[derive(Debug, Clone, Default)]
pub struct ScpiReport(Arc<Mutex<SessionReport>>);

impl ScpiReport {
    /// A copy of the report as of the last update.
    pub fn snapshot(&self) -> SessionReport {
        self.lock().clone()
    }

    pub(super) fn store(&self, report: &SessionReport) {
        self.lock().clone_from(report);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SessionReport> {
        // The report is replaced whole; a panic elsewhere cannot leave it half written.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}
