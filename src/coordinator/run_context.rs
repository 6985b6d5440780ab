//! The fixed facts of a run that every component's launch needs.

use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::watch;

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
    /// Set once the coordinator has launched every component: simulated instruments emit their
    /// first rows only then. Launching 10,000 instruments keeps the coordinator's thread, which
    /// also moves batches into the sinks, busy for 1-2 s; the first batches of the instruments
    /// launched early waited that long in their links (the 1.7% of a minute's batches that made
    /// the p99 latency at 10,000 instruments).
    pub launched: Arc<watch::Sender<bool>>,
}

impl RunContext {
    /// A watch that turns `true` once every component is launched.
    pub fn launched(&self) -> watch::Receiver<bool> {
        self.launched.subscribe()
    }
}
