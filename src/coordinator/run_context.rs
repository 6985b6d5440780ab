//! The fixed facts of a run that every component's launch needs.

use std::path::PathBuf;

/// The fixed facts of a run every component needs.
#[derive(Debug, Clone)]
pub struct RunContext {
    /// The run's id.
    pub run_id: String,
    /// The run directory.
    pub run_dir: PathBuf,
    /// Wall-clock start, ns since the Unix epoch: the timestamp of every stream's row 0.
    pub start_ns: i64,
    /// The same moment on the monotonic clock.
    pub clock_start: tokio::time::Instant,
    /// The run's control handle: pause, resume, stop and the plan's state.
    pub control: crate::control::RunControl,
    /// `[plan] pause_streams`: the instruments stop recording while the plan is paused.
    pub pause_streams: bool,
}
