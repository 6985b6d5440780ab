//! [`ScpiError`]: why an SCPI session operation failed.

use std::time::Duration;

use super::parse::ParseError;
use super::transport::TransportError;

/// Why a session operation failed. Each variant names the parameter, value or address involved.
#[derive(Debug, thiserror::Error)]
pub enum ScpiError {
    /// The configuration does not pass
    /// [`ScpiInstrumentConfig::check`](super::ScpiInstrumentConfig::check).
    #[error("invalid configuration: {}", .0.iter().map(|(k, m)| format!("{k}: {m}")).collect::<Vec<_>>().join("; "))]
    InvalidConfig(Vec<(&'static str, String)>),
    /// No `[set.NAME]` table of that name.
    #[error("unknown parameter `{param}`; settable parameters: {known:?}")]
    UnknownParam {
        /// The requested name.
        param: String,
        /// The names that exist.
        known: Vec<String>,
    },
    /// The value is outside `min`/`max` (or not finite); nothing was sent.
    #[error("value {value} for `{param}` is outside its limits [{}, {}]; nothing was sent",
        .min.map_or("-inf".to_string(), |v| v.to_string()), .max.map_or("inf".to_string(), |v| v.to_string()))]
    OutOfLimits {
        /// The parameter.
        param: String,
        /// The refused value.
        value: f64,
        /// Its lower limit.
        min: Option<f64>,
        /// Its upper limit.
        max: Option<f64>,
    },
    /// The device is not connected right now (a reconnection is pending).
    #[error("not connected to {address}")]
    NotConnected {
        /// The device address.
        address: String,
    },
    /// The transport failed (connect, timeout, closed, i/o).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The device's reply to a set matched `error_pattern`.
    #[error("the device rejected `{param}`: {reply:?}")]
    Rejected {
        /// The parameter.
        param: String,
        /// The reply as received.
        reply: String,
    },
    /// The readback did not come within `tolerance` of the target within `settle_timeout`.
    #[error("`{param}` did not settle at {target} within {waited:?} (last readback {last:?})")]
    NotSettled {
        /// The parameter.
        param: String,
        /// The target value.
        target: f64,
        /// The last readback that parsed, if any.
        last: Option<f64>,
        /// How long the session waited.
        waited: Duration,
    },
    /// The instrument has stopped; it takes no more requests.
    #[error("instrument `{0}` has stopped")]
    Stopped(String),
    /// After a reconnection, a setpoint could not be put back to its last commanded value;
    /// the connection is dropped and the restore is tried again on the next reconnection.
    #[error("after reconnecting, `{param}` could not be restored to {value}: {reason}")]
    RestoreFailed {
        /// The parameter.
        param: String,
        /// The value last commanded.
        value: f64,
        /// Why.
        reason: String,
    },
    /// The readback answer is not a number.
    #[error("readback of `{param}` could not be parsed: {error}")]
    Readback {
        /// The parameter.
        param: String,
        /// Why.
        error: ParseError,
    },
}

impl ScpiError {
    /// Whether the device is unreachable right now (not connected, connection lost, or not
    /// restored after a reconnection), as opposed to a request it refused or answered wrong:
    /// retrying after a reconnection can succeed.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            ScpiError::NotConnected { .. } | ScpiError::RestoreFailed { .. } => true,
            ScpiError::Transport(t) => t.is_connection_lost(),
            _ => false,
        }
    }
}
