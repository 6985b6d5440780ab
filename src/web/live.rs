//! The live view's data: status from the run's shared counters, plots from the streams' taps.
//!
//! Everything here runs on the web server's thread. It reads counters (atomics) and the taps
//! (`try_lock` on the producer side, so a reader never holds up a producer), and folds the
//! tapped batches into fixed-size envelopes per stream ([`StreamFold`]), from which plots are
//! answered.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ensemble_actors::budget::MemoryBudget;
use serde_json::{Value, json};

use super::api::{ChannelInfo, StreamData, StreamKind, StreamQuery};
use super::decimate::Decimator;
use super::error::ApiError;
use super::frames::{decimate_batch, latest_spectrum, pick, scan_points, timestamps};
use super::stream_fold::{FoldMemory, StreamFold};
use crate::coordinator::StreamView;

/// A producer whose heartbeat has not moved for this long while not waiting is shown stalled.
const STALLED_AFTER: Duration = Duration::from_secs(2);

/// What `ensemble run --serve` hands to the view about the run.
pub struct LiveRun {
    /// The run id.
    pub run_id: String,
    /// The run directory.
    pub run_dir: PathBuf,
    /// `[experiment] name`.
    pub experiment: String,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// A stream plan's duration (`None` for point plans, which end with their last point).
    pub duration: Option<Duration>,
    /// `[experiment] max_memory_mb`.
    pub max_memory_mb: u64,
    /// The streams, with their counters and taps.
    pub streams: Vec<StreamView>,
    /// The run's memory budget for batches in flight.
    pub budget: Arc<MemoryBudget>,
    /// What the taps may hold in all (reserved from `budget` for the whole run).
    pub view_budget_bytes: u64,
}

/// Per stream: what the server folded in so far.
struct Folded {
    fold: StreamFold,
    /// Rows and time at the previous tick, for the measured rate.
    last_rows: u64,
    last_tick: Instant,
    rate: f64,
    /// Heartbeats at the last change, and when that was.
    heartbeats: u64,
    heartbeat_at: Instant,
}

/// The live run as the API sees it.
pub struct LiveSource {
    run: LiveRun,
    folded: Mutex<Vec<Folded>>,
    clock: Instant,
}

impl LiveSource {
    /// A source over `run`.
    pub fn new(run: LiveRun) -> Self {
        let now = Instant::now();
        let mut memory = FoldMemory::new();
        let folded = run
            .streams
            .iter()
            .map(|s| Folded {
                fold: if kind_of(s) == StreamKind::Time {
                    memory.fold_for(s.channels.len(), now)
                } else {
                    StreamFold::new(0, 0, now)
                },
                last_rows: 0,
                last_tick: now,
                rate: 0.0,
                heartbeats: 0,
                heartbeat_at: now,
            })
            .collect();
        Self {
            run,
            folded: Mutex::new(folded),
            clock: now,
        }
    }

    fn folded(&self) -> MutexGuard<'_, Vec<Folded>> {
        // Only the server thread takes it; a panic in a handler leaves whole values behind.
        self.folded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Folds what the taps got since the last tick into the histories and updates rates.
    pub fn tick(&self) {
        let now = Instant::now();
        let mut folded = self.folded();
        for (view, f) in self.run.streams.iter().zip(folded.iter_mut()) {
            let rows = view.stats.rows();
            let dt = now.duration_since(f.last_tick).as_secs_f64();
            if dt >= 0.5 {
                f.rate = (rows - f.last_rows.min(rows)) as f64 / dt;
                f.last_rows = rows;
                f.last_tick = now;
            }
            let beats = view.stats.heartbeats();
            if beats != f.heartbeats {
                f.heartbeats = beats;
                f.heartbeat_at = now;
            }
            if let Some(tap) = view
                .tap
                .as_deref()
                .filter(|_| kind_of(view) == StreamKind::Time)
            {
                f.fold.fold_from(tap, &view.channels, now);
            }
        }
    }

    /// `GET /api/status`.
    pub fn status(&self, can_pause: bool, paused: bool) -> Value {
        let now = Instant::now();
        let elapsed = now.duration_since(self.clock);
        let folded = self.folded();
        let components: Vec<Value> = self
            .run
            .streams
            .iter()
            .zip(folded.iter())
            .map(|(view, f)| {
                let rows = view.stats.rows();
                let state = state_of(view, f, now);
                json!({
                    "name": view.component,
                    "type": view.component_type,
                    "stream": view.name.to_string(),
                    "kind": kind_of(view),
                    "rows": rows,
                    "expected_rows": view.expected_rows,
                    "rate_hz": f.rate,
                    "nominal_rate_hz": view.rate_hz,
                    "queue_depth": view.queue_depth(),
                    "dropped_rows": view.dropped_rows(),
                    "restarts": view.stats.restarts(),
                    "state": state,
                    "channels": view.channels.iter().map(|c| json!({"name": c.name, "unit": c.unit})).collect::<Vec<_>>(),
                    "view_skipped_batches": view.tap.as_ref().map_or(0, |t| t.skipped()),
                    "view_folded_share": f.fold.folded_share(),
                })
            })
            .collect();
        let view_held: u64 = self
            .run
            .streams
            .iter()
            .filter_map(|s| s.tap.as_ref())
            .map(|t| t.held_bytes())
            .sum();
        let history_bytes: usize = folded.iter().map(|f| f.fold.bytes()).sum();
        json!({
            "mode": "live",
            "run_id": self.run.run_id,
            "run_dir": self.run.run_dir.display().to_string(),
            "experiment": self.run.experiment,
            "started_at": self.run.started_at.to_rfc3339(),
            "elapsed_s": elapsed.as_secs_f64(),
            "remaining_s": self.run.duration.map(|d| d.saturating_sub(elapsed).as_secs_f64()),
            "can_pause": can_pause,
            "paused": paused,
            "memory": {
                "in_flight_bytes": self.run.budget.used(),
                "in_flight_limit_bytes": self.run.budget.limit(),
                "cap_bytes": self.run.max_memory_mb * 1024 * 1024,
                "view_budget_bytes": self.run.view_budget_bytes,
                "view_held_bytes": view_held,
                "view_history_bytes": history_bytes,
            },
            "components": components,
        })
    }

    /// `GET /api/streams/{name}`.
    pub fn stream(&self, name: &str, q: &StreamQuery) -> Result<StreamData, ApiError> {
        let Some(index) = self.run.streams.iter().position(|s| &*s.name == name) else {
            return Err(ApiError::NotFound(format!(
                "no stream `{name}`; streams: {}",
                self.run
                    .streams
                    .iter()
                    .map(|s| s.name.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        let view = &self.run.streams[index];
        let channels: Vec<ChannelInfo> = view
            .channels
            .iter()
            .map(|c| ChannelInfo {
                name: c.name.clone(),
                unit: c.unit.clone(),
            })
            .collect();
        let points = q.points()?;
        let window = q.window_ns()?;
        let kind = kind_of(view);
        let tapped = || view.tap.as_ref().map(|t| t.since(0)).unwrap_or_default();
        let mut data = StreamData {
            kind,
            channels: channels.clone(),
            rows: view.stats.rows(),
            ..StreamData::empty(name, "tap")
        };
        match kind {
            StreamKind::Time => {
                data.picked = pick(&channels, q.channel_names())?;
                let to = view.stats.last_timestamp_ns().unwrap_or(0);
                let first = view.stats.first_timestamp_ns().unwrap_or(0);
                let from = window.map_or(first, |w| (to - w).max(first));
                let picks: Vec<usize> = data
                    .picked
                    .iter()
                    .filter_map(|p| channels.iter().position(|c| c.name == p.name))
                    .collect();
                let mut folded = self.folded();
                let f = &mut folded[index];
                // Fold what came since the last tick first, so the answer reaches the newest
                // rows without reading the tap again.
                if let Some(tap) = view.tap.as_deref() {
                    f.fold.fold_from(tap, &view.channels, Instant::now());
                }
                data.folded_share = f.fold.folded_share();
                let out = match f.fold.decimate(&picks, from, to + 1, points) {
                    Some((out, source)) => {
                        data.source = source.into();
                        out
                    }
                    None => {
                        // Channels beyond the folded ones: decimate what the tap holds.
                        drop(folded);
                        let mut d = Decimator::new(from, to + 1, points, data.picked.len());
                        for b in view.tap.as_ref().map(|t| t.since(0)).unwrap_or_default() {
                            let last = timestamps(&b.batch).and_then(|t| t.last().copied());
                            if last.is_some_and(|t| t >= from) {
                                decimate_batch(&mut d, &b.batch, &data.picked);
                            }
                        }
                        d.finish()
                    }
                };
                data.from_ns = from;
                data.to_ns = to;
                data.bucket_ns = out.bucket_ns;
                data.t_ns = out.t_ns;
                data.series = out.series;
            }
            StreamKind::Spectrum => {
                data.picked = pick(&channels, q.channel_names())?;
                if let Some(b) = tapped().last() {
                    let (x, series) = latest_spectrum(&b.batch, &data.picked, points);
                    data.x = x;
                    data.series = series;
                }
                data.x_label = "frequency".into();
                data.x_unit = "Hz".into();
            }
            StreamKind::Scan => {
                let Some((x, rest)) = channels.split_first() else {
                    return Ok(data);
                };
                data.picked = pick(rest, q.channel_names())?;
                let tapped = tapped();
                let batches: Vec<&arrow_array::RecordBatch> =
                    tapped.iter().map(|b| b.batch.as_ref()).collect();
                let (xs, series) = scan_points(&batches, &x.name, &data.picked);
                data.x = xs;
                data.series = series;
                data.x_label = x.name.clone();
                data.x_unit = x.unit.clone();
                data.points_done = Some(view.stats.rows());
                data.points_total = view.expected_rows;
            }
        }
        Ok(data)
    }

    /// The streams' names, in order.
    pub fn stream_names(&self) -> Vec<String> {
        self.run
            .streams
            .iter()
            .map(|s| s.name.to_string())
            .collect()
    }
}

/// How a live stream is drawn: fft stages as spectra, the plan's `primary` as scan points.
fn kind_of(view: &StreamView) -> StreamKind {
    if view.component_type == "fft" {
        StreamKind::Spectrum
    } else if view.component_type == "plan" {
        StreamKind::Scan
    } else {
        StreamKind::Time
    }
}

/// `ended` (all planned rows in), `reconnecting` (an SCPI session's connection is lost now),
/// `stalled` (no sign of life for a while, not waiting on its consumers), else `running`.
fn state_of(view: &StreamView, f: &Folded, now: Instant) -> &'static str {
    if view.expected_rows.is_some_and(|n| view.stats.rows() >= n) {
        return "ended";
    }
    let lost = view.report.json().is_some_and(|r| {
        r.get("gaps")
            .and_then(Value::as_array)
            .and_then(|g| g.last())
            .is_some_and(|g| g.get("end_ns").is_some_and(Value::is_null))
    });
    if lost {
        return "reconnecting";
    }
    if !view.stats.is_waiting() && now.duration_since(f.heartbeat_at) > STALLED_AFTER {
        return "stalled";
    }
    "running"
}
