//! The compiled experiment: checked, defaults applied, ready for the coordinator to build.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use ensemble_actors::instruments::scpi::ScpiInstrumentConfig;
use ensemble_actors::instruments::sim::SimInstrumentConfig;

pub use super::stages::{StageKind, StageSpec, UseStage};
use crate::plan::PointPlan;
use ensemble_actors::link::Delivery;
use ensemble_actors::sinks::nats::NatsSinkConfig;
use ensemble_actors::sinks::null::NullSinkConfig;
use ensemble_actors::sinks::parquet::ParquetSinkConfig;

/// A whole experiment, compiled from its file by [`compile`](super::compile).
///
/// Everything here has been checked: names are unique, every input exists, the graph has no
/// cycle and every value is in range. Building it can still fail on the outside world (a full
/// disk, a device that does not answer), never on the file.
#[derive(Debug, Clone)]
pub struct Experiment {
    /// `[experiment] name`.
    pub name: String,
    /// `[experiment] description`, if given.
    pub description: Option<String>,
    /// Directory under which run directories are created (`[experiment] output`, default `runs`).
    pub output: PathBuf,
    /// `[experiment.metadata]`, copied as given into the run manifest and the files.
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// How long a stream plan runs (`[experiment] duration`).
    pub duration: Duration,
    /// How long a stop may take to drain and flush before components are named as stuck.
    pub grace_period: Duration,
    /// The run's memory cap in MiB (`[experiment] max_memory_mb`, default
    /// [`DEFAULT_MAX_MEMORY_MB`](super::DEFAULT_MAX_MEMORY_MB)), enforced on batches in flight
    /// by [`MemoryGovernor`](crate::memory::MemoryGovernor).
    pub max_memory_mb: u64,
    /// `[experiment] thumbnails`: once the run's data is safe, draw `plots/STREAM.png` per
    /// stream (see `ensemble::data::thumbnails`).
    pub thumbnails: bool,
    /// The plan (`[plan]`; default: stream for `duration`).
    pub plan: Plan,
    /// `[plan] pause_streams`: while the plan is paused, the streaming instruments stop
    /// recording too (default false: they keep recording).
    pub pause_streams: bool,
    /// Instruments in file order.
    pub instruments: Vec<InstrumentSpec>,
    /// Processing stages in topological order: each after the stage it reads, if any.
    pub stages: Vec<StageSpec>,
    /// Sinks in file order.
    pub sinks: Vec<SinkSpec>,
    /// The file the experiment came from.
    pub source_path: PathBuf,
    /// The file's text as given, kept for the run manifest.
    pub source_text: String,
}

/// What the run does once the graph is built.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// Every instrument streams for the experiment's duration.
    Stream,
    /// `count`, `scan` or `grid`: visit points, one row of the `primary` stream each, then end.
    /// Every instrument also streams freely until the plan ends.
    Points(PointPlan),
}

/// One `[instruments.NAME]` table.
#[derive(Debug, Clone)]
pub struct InstrumentSpec {
    /// The table's name; also the name of the stream the instrument produces.
    pub name: String,
    /// The instrument's own configuration, by `type`.
    pub kind: InstrumentKind,
    /// What the coordinator does when it fails.
    pub supervision: Supervision,
    /// How long the instrument may go without a sign of life (a row, a poll) while nothing
    /// pushes back before it counts as stalled and fails (`stall_timeout`; `None`: not watched).
    pub stall_timeout: Option<Duration>,
}

/// Instrument types (closed: an unknown `type` is a config error).
#[derive(Debug, Clone)]
pub enum InstrumentKind {
    /// `type = "sim"`.
    Sim(SimInstrumentConfig),
    /// `type = "scpi"` (after merging its `profile`, if any).
    Scpi(ScpiInstrumentConfig),
}

/// One `[sinks.NAME]` table.
#[derive(Debug, Clone)]
pub struct SinkSpec {
    /// The table's name.
    pub name: String,
    /// Names of the components (instruments, stages, the plan's `primary`) whose streams it
    /// stores.
    pub inputs: Vec<String>,
    /// Lossless (backpressure) or best-effort (drop oldest, counted) for every input link.
    pub delivery: Delivery,
    /// Capacity of each input link, in batches (`queue_batches`, default 16).
    pub queue_batches: usize,
    /// The sink's own configuration, by `type`.
    pub kind: SinkKind,
    /// What the coordinator does when it fails.
    pub supervision: Supervision,
}

/// Sink types (closed: an unknown `type` is a config error).
#[derive(Debug, Clone)]
pub enum SinkKind {
    /// `type = "parquet"`.
    Parquet(ParquetSinkConfig),
    /// `type = "null"`: counts and discards (load tests).
    Null(NullSinkConfig),
    /// `type = "nats"`: publish to NATS JetStream (see `docs/nats.md`).
    Nats(NatsSinkConfig),
}

/// A component's failure policy: `on_failure`, `max_restarts`, `restart_window`, `restart_backoff`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Supervision {
    /// What to do when the component fails.
    pub on_failure: OnFailure,
    /// Most restarts allowed within `restart_window` before the policy escalates to abort.
    pub max_restarts: u32,
    /// The window in which restarts are counted.
    pub restart_window: Duration,
    /// Wait before the first restart; doubled for each further restart in the window.
    pub restart_backoff: Duration,
}

impl Default for Supervision {
    fn default() -> Self {
        Self {
            on_failure: OnFailure::Restart,
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            restart_backoff: Duration::from_millis(100),
        }
    }
}

/// `on_failure` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Restart the component (with backoff, up to `max_restarts` in the window), then abort.
    #[default]
    Restart,
    /// Stop the whole run cleanly (drain, flush, manifest) with status `failed`.
    Abort,
    /// Leave the component stopped and let the rest of the run go on.
    Continue,
}

impl Experiment {
    /// Names of every component (instruments, stages, then sinks); instruments and sinks in
    /// file order, stages in topological order.
    pub fn component_names(&self) -> impl Iterator<Item = &str> {
        self.instruments
            .iter()
            .map(|i| i.name.as_str())
            .chain(self.stages.iter().map(|s| s.name.as_str()))
            .chain(self.sinks.iter().map(|s| s.name.as_str()))
    }

    /// Names of the stages that read `name`'s stream, then of the sinks that store it.
    pub fn consumers_of(&self, name: &str) -> Vec<&str> {
        self.stages
            .iter()
            .filter(|s| s.selection.stream == name)
            .map(|s| s.name.as_str())
            .chain(
                self.sinks
                    .iter()
                    .filter(|s| s.inputs.iter().any(|i| i == name))
                    .map(|s| s.name.as_str()),
            )
            .collect()
    }
}
