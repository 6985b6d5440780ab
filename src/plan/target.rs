//! [`PlanTarget`]: what a plan asks of the instruments, and [`TargetError`], how that fails.

use std::future::Future;

/// Why an instrument request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The instrument cannot be reached now (its connection is lost): the plan holds, brings
    /// it back with [`PlanTarget::recover`] and takes the point again.
    #[error("{0}")]
    Unreachable(String),
    /// The instrument refused or failed the request; retrying would not help.
    #[error("{0}")]
    Failed(String),
}

impl From<String> for TargetError {
    fn from(why: String) -> Self {
        TargetError::Failed(why)
    }
}

impl From<&str> for TargetError {
    fn from(why: &str) -> Self {
        TargetError::Failed(why.to_string())
    }
}

/// What a plan asks of the instruments.
///
/// `set` returns the value reached (a readback where the instrument has one). `read` returns
/// one value per channel of the instrument (null where it had none). On
/// [`TargetError::Unreachable`] the executor holds the plan, calls [`recover`](Self::recover)
/// until it succeeds and takes the point again; on [`TargetError::Failed`] a set ends the plan
/// as failed, and a read is counted and written as nulls for that detector at that point.
///
/// The `_now` variants answer at once, without waiting, for instruments that can (a
/// simulated one); `None` means "not this instrument: use the async method".
pub trait PlanTarget {
    /// Sets `instrument`'s `param` to `value`.
    fn set(
        &self,
        instrument: &str,
        param: &str,
        value: f64,
    ) -> impl Future<Output = Result<f64, TargetError>>;
    /// Reads every channel of `instrument` now.
    fn read(&self, instrument: &str)
    -> impl Future<Output = Result<Vec<Option<f64>>, TargetError>>;
    /// The current value of `instrument`'s `param` (a `rel_scan`'s origin).
    fn current(&self, instrument: &str, param: &str) -> Result<f64, String>;
    /// Brings an unreachable `instrument` back (reconnects, puts its last commanded setpoints
    /// back) and says what was done; `Err` if it cannot yet (the executor tries again).
    fn recover(&self, _instrument: &str) -> impl Future<Output = Result<String, TargetError>> {
        async { Ok("reachable".to_string()) }
    }
    /// [`set`](Self::set) at once, if this instrument can.
    fn set_now(
        &self,
        _instrument: &str,
        _param: &str,
        _value: f64,
    ) -> Option<Result<f64, TargetError>> {
        None
    }
    /// [`read`](Self::read) at once into `out` (one slot per channel), if this instrument can;
    /// `Ok` holds the number of channels it has.
    fn read_now(
        &self,
        _instrument: &str,
        _out: &mut [Option<f64>],
    ) -> Option<Result<usize, TargetError>> {
        None
    }
}
