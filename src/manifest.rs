//! The run manifest `run.json`: what ran, how it ended, and what every stream wrote.
//!
//! Written when the run starts (`status: "running"`) and replaced atomically when it ends, so a
//! reader always finds a whole file.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use ensemble_actors::control::PartFile;
use serde::{Deserialize, Serialize};

use crate::coordinator::{RunEvent, RunOutcome, RunStatus, StreamView};

/// File name of the manifest inside a run directory.
pub const MANIFEST_FILE: &str = "run.json";

/// The whole manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Unique, sorts by start time.
    pub run_id: String,
    /// `[experiment] name`.
    pub experiment: String,
    /// `[experiment] description`.
    pub description: Option<String>,
    /// `[experiment.metadata]` as given.
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// `running`, `completed`, `stopped`, `failed` (or `crashed` after recovery).
    pub status: String,
    /// Why the run stopped early, if it did.
    pub stop_reason: Option<String>,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it ended (absent while running).
    pub stopped_at: Option<DateTime<Utc>>,
    /// Version of ensemble that wrote the run.
    pub ensemble_version: String,
    /// Path of the experiment file as given.
    pub config_path: PathBuf,
    /// The experiment file's text as given.
    pub config: String,
    /// Per stream, by name.
    pub streams: BTreeMap<String, StreamEntry>,
    /// Per sink, by name.
    pub sinks: BTreeMap<String, SinkEntry>,
    /// Failures, restarts and other events in order.
    pub events: Vec<RunEvent>,
    /// Every pause and suspension of the plan: when, who or what, at which point, how long.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interruptions: Vec<crate::control::Interruption>,
    /// The memory cap and what the run used of it (absent in manifests of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryEntry>,
}

/// The run's memory: its cap, the budget for batches in flight, and what was used.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct MemoryEntry {
    /// `[experiment] max_memory_mb`.
    pub max_memory_mb: u64,
    /// Bytes batches in flight could hold at the end (the limit moves with what the rest of
    /// the process holds; see `ensemble::memory`).
    pub in_flight_limit_bytes: u64,
    /// Most bytes batches in flight held at once.
    pub in_flight_peak_bytes: u64,
    /// How often an acquiring stream had to wait for memory (backpressure from the cap).
    pub waits_for_memory: u64,
    /// Most memory the process held besides batches in flight (MiB): what the run needs
    /// whatever the cap (program, open row groups, encoders). A cap below it cannot hold.
    pub rest_peak_mib: f64,
    /// Peak resident memory of the process (MiB), where the system tells it.
    pub peak_rss_mib: Option<f64>,
}

impl MemoryEntry {
    /// The entry for a run whose cap is `max_memory_mb`, as `budget` and `governor` stand now.
    pub fn read(
        max_memory_mb: u64,
        budget: &ensemble_actors::budget::MemoryBudget,
        governor: &crate::memory::MemoryGovernor,
    ) -> Self {
        Self {
            max_memory_mb,
            in_flight_limit_bytes: budget.limit(),
            in_flight_peak_bytes: budget.peak(),
            waits_for_memory: budget.waits(),
            rest_peak_mib: governor.rest_peak_bytes() as f64 / (1024.0 * 1024.0),
            peak_rss_mib: crate::process::peak_rss_mib(),
        }
    }
}

/// One stream's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamEntry {
    /// The producing component.
    pub component: String,
    /// Its type.
    pub component_type: String,
    /// Nominal rate, if fixed.
    pub rate_hz: Option<f64>,
    /// Channel names and units.
    pub channels: Vec<ChannelEntry>,
    /// Rows the plan asked for, if fixed.
    pub expected_rows: Option<u64>,
    /// Rows produced.
    pub rows: u64,
    /// `seq` of the first row produced.
    pub first_seq: Option<u64>,
    /// `seq` of the last row produced.
    pub last_seq: Option<u64>,
    /// Timestamp of the first row (ns since the Unix epoch, UTC).
    pub first_timestamp_ns: Option<i64>,
    /// Timestamp of the last row (ns since the Unix epoch, UTC).
    pub last_timestamp_ns: Option<i64>,
    /// Restarts of the producer.
    pub restarts: u64,
    /// Rows the producer could not acquire because the pipeline pushed back.
    pub overflow_rows: u64,
    /// Batches dropped on all links (best-effort overflow or a consumer gone).
    pub dropped_batches: u64,
    /// Rows in those batches.
    pub dropped_rows: u64,
    /// Deepest queue seen on any of its links.
    pub max_queue_depth: usize,
    /// Per consuming sink: what it wrote of this stream.
    pub sinks: BTreeMap<String, StreamSinkEntry>,
    /// The producer's own report: an SCPI instrument's session (identity, warnings, per
    /// channel timeouts, parse errors and out-of-range answers, reconnects, gaps), or a plan's
    /// points done and read failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instrument_report: Option<serde_json::Value>,
}

/// A channel's name and unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelEntry {
    /// Column name.
    pub name: String,
    /// Physical unit.
    pub unit: String,
}

/// What one sink wrote of one stream.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StreamSinkEntry {
    /// Rows in finished files.
    pub rows_written: u64,
    /// Batches dropped on the link to this sink.
    pub dropped_batches: u64,
    /// Rows in those batches.
    pub dropped_rows: u64,
    /// Rows that reached the sink but could not be written.
    pub rows_lost: u64,
    /// Finished part files.
    pub parts: Vec<PartFile>,
    /// The first write error.
    pub error: Option<String>,
}

/// One sink's record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SinkEntry {
    /// Its type.
    pub sink_type: String,
    /// Its inputs.
    pub inputs: Vec<String>,
    /// `lossless` or `best_effort`.
    pub delivery: String,
    /// Its first error.
    pub error: Option<String>,
}

impl Manifest {
    /// The stream entries as they stand now (counters read from the live views).
    pub fn update_streams(&mut self, views: &[StreamView]) {
        for view in views {
            let rows = view.stats.rows();
            let previous = self.streams.remove(&*view.name);
            let mut sinks = previous.map(|p| p.sinks).unwrap_or_default();
            for (sink, link) in &view.links {
                let entry = sinks.entry(sink.clone()).or_default();
                entry.dropped_batches = link.dropped_batches();
                entry.dropped_rows = link.dropped_rows();
            }
            self.streams.insert(
                view.name.to_string(),
                StreamEntry {
                    component: view.component.clone(),
                    component_type: view.component_type.to_string(),
                    rate_hz: view.rate_hz,
                    channels: view
                        .channels
                        .iter()
                        .map(|c| ChannelEntry {
                            name: c.name.clone(),
                            unit: c.unit.clone(),
                        })
                        .collect(),
                    expected_rows: view.expected_rows,
                    rows,
                    first_seq: (rows > 0).then_some(0),
                    // Rows skipped at the source (overflow) used up their `seq`s too.
                    last_seq: (rows > 0).then(|| rows + view.stats.overflow_rows() - 1),
                    first_timestamp_ns: view.stats.first_timestamp_ns(),
                    last_timestamp_ns: view.stats.last_timestamp_ns(),
                    restarts: view.stats.restarts(),
                    overflow_rows: view.stats.overflow_rows(),
                    dropped_batches: view.dropped_batches(),
                    dropped_rows: view.dropped_rows(),
                    max_queue_depth: view.max_queue_depth(),
                    sinks,
                    instrument_report: view.report.json(),
                },
            );
        }
    }

    /// Records the outcome: status, stop time, what each sink wrote, events.
    pub fn record_outcome(&mut self, outcome: &RunOutcome, views: &[StreamView]) {
        self.update_streams(views);
        self.status = status_text(outcome.status).to_string();
        self.stop_reason = outcome.stop_reason.clone();
        self.stopped_at = Some(Utc::now());
        self.events = outcome.events.clone();
        for (sink_name, sink) in &outcome.sinks {
            if let Some(entry) = self.sinks.get_mut(sink_name) {
                entry.error = sink.error.clone();
            }
            let Some(report) = &sink.report else {
                continue;
            };
            for written in &report.streams {
                let Some(stream) = self.streams.get_mut(&*written.stream) else {
                    continue;
                };
                let entry = stream.sinks.entry(sink_name.clone()).or_default();
                entry.rows_written = written.rows;
                entry.rows_lost = written.rows_lost;
                entry.parts = written.parts.clone();
                entry.error = written.error.clone();
            }
        }
    }

    /// Writes the manifest into `run_dir`, replacing any earlier one atomically.
    pub fn write(&self, run_dir: &Path) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let tmp = run_dir.join(format!("{MANIFEST_FILE}.tmp"));
        let mut file = File::create(&tmp)?;
        file.write_all(&text)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, run_dir.join(MANIFEST_FILE))?;
        File::open(run_dir)?.sync_all()
    }

    /// Reads the manifest of a run directory.
    pub fn read(run_dir: &Path) -> std::io::Result<Self> {
        let text = fs::read(run_dir.join(MANIFEST_FILE))?;
        serde_json::from_slice(&text).map_err(std::io::Error::other)
    }
}

/// The manifest's word for a status.
pub fn status_text(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Completed => "completed",
        RunStatus::Stopped => "stopped",
        RunStatus::Failed => "failed",
    }
}
