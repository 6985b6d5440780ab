//! The load test report: offered versus achieved, losses, latency, memory, CPU.
//!
//! [`LoadtestReport`] serializes with stable keys (`--json PATH`); [`LoadtestReport::table`]
//! is the human form. [`LoadtestReport::passed`] decides the exit code: a lossless test fails
//! if any row is missing or dropped, any test fails if rows vanished without being counted, and
//! a real-time test fails if it achieved less than 99% of the offered rate.

use std::fmt::Write;

use ensemble_actors::instruments::sim::Pace;
use ensemble_actors::latency::LatencySummary;
use ensemble_actors::link::Delivery;
use serde::Serialize;

use super::build::SINK_NAME;
use super::spec::{LoadSink, LoadtestSpec};
use crate::run::RunReport;

/// Achieved throughput may fall this far short of the offered rate (a fraction).
pub const THROUGHPUT_TOLERANCE: f64 = 0.01;

/// Everything a load test measured. Field names are the JSON keys; they are stable.
#[derive(Debug, Clone, Serialize)]
pub struct LoadtestReport {
    /// Version of this report's layout.
    pub report_version: u32,
    /// The run directory.
    pub run_dir: String,
    /// The run's status (`completed`, `stopped`, `failed`).
    pub status: String,
    /// Simulated instruments.
    pub instruments: usize,
    /// Channels over all instruments.
    pub channels: usize,
    /// `parquet` or `null`.
    pub sink: String,
    /// `realtime` or `max`.
    pub pace: String,
    /// `lossless` or `best_effort`.
    pub delivery: String,
    /// The plan's duration, seconds.
    pub duration_s: f64,
    /// From the start to the last batch emitted, less one batch interval (the designed wait
    /// of the last batch), and at least the duration, seconds.
    pub production_s: f64,
    /// Wall time of the whole run, including finishing every file, seconds.
    pub elapsed_s: f64,
    /// Starting: from the moment the load test began the run (before the run directory, the
    /// sink and the instruments exist) to the moment the last instrument started producing,
    /// seconds (`null` if not every instrument started).
    pub start_s: Option<f64>,
    /// Stopping: from the stop request (the plan's end, the run's start plus `duration`, or an
    /// earlier Ctrl-C) to the moment the last instrument had stopped and ended its stream,
    /// seconds. It includes the wait for each instrument's last batch (up to one batch
    /// interval: rows due just before the end go out at the instrument's next tick).
    pub stop_s: Option<f64>,
    /// Finishing: from the stop request to the end of the run (every file finished, synced
    /// and renamed, the manifest written), seconds.
    pub finish_s: f64,
    /// Rows the plan asks for.
    pub offered_rows: u64,
    /// Samples (rows times channels) the plan asks for.
    pub offered_samples: u64,
    /// Rows the sink wrote (to finished files, or counted by the null sink).
    pub written_rows: u64,
    /// Samples the sink wrote.
    pub written_samples: u64,
    /// Rows dropped and counted (best-effort links, source overflow, write errors).
    pub dropped_rows: u64,
    /// Rows neither written nor counted as dropped: offered − written − dropped.
    pub lost_rows: i64,
    /// Offered rows per second of plan time (`null` at `pace = "max"`).
    pub offered_rows_per_s: Option<f64>,
    /// Offered samples per second (`null` at `pace = "max"`).
    pub offered_samples_per_s: Option<f64>,
    /// Written rows per second of production time.
    pub achieved_rows_per_s: f64,
    /// Written samples per second of production time.
    pub achieved_samples_per_s: f64,
    /// Where latency was measured: `durable_write` (Parquet) or `sink_arrival` (null).
    pub latency_measured_at: String,
    /// Sample timestamp to durable write (or sink arrival), per batch.
    pub latency: LatencySummary,
    /// Deepest link queue of any instrument, in batches.
    pub max_queue_depth: usize,
    /// Instrument restarts.
    pub restarts: u64,
    /// Instruments set to fail once.
    pub faults_injected: usize,
    /// Peak resident memory of the process, MiB.
    pub peak_rss_mib: Option<f64>,
    /// Resident memory once per second during the run, MiB.
    pub rss_samples_mib: Vec<f64>,
    /// CPU time in user mode, seconds.
    pub cpu_user_s: f64,
    /// CPU time in the kernel, seconds.
    pub cpu_system_s: f64,
    /// CPU time over wall time: how many cores the run kept busy.
    pub cpu_cores_used: f64,
    /// Whether the test passed.
    pub passed: bool,
    /// Why it did not pass (empty when it did).
    pub failures: Vec<String>,
}

/// What was measured around the run, besides the run itself.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    /// Wall time of the run, seconds.
    pub elapsed_s: f64,
    /// CPU (user, system) seconds used during the run.
    pub cpu_s: (f64, f64),
    /// Peak RSS, MiB.
    pub peak_rss_mib: Option<f64>,
    /// RSS samples, MiB.
    pub rss_samples_mib: Vec<f64>,
    /// Instruments set to fail once.
    pub faults_injected: usize,
    /// When the load test began the run (wall clock, ns since the Unix epoch).
    pub began_at_ns: i64,
    /// When the run returned (wall clock, ns since the Unix epoch).
    pub ended_at_ns: i64,
    /// When a stop was asked for before the plan's end (Ctrl-C), if it was.
    pub stop_asked_at_ns: Option<i64>,
}

impl LoadtestReport {
    /// Builds the report of a finished run of `spec`.
    pub fn new(spec: &LoadtestSpec, run: &RunReport, measured: Measured) -> Self {
        let m = &run.manifest;
        let mut offered_rows = 0u64;
        let mut offered_samples = 0u64;
        let mut written_rows = 0u64;
        let mut written_samples = 0u64;
        let mut dropped_rows = 0u64;
        let mut restarts = 0u64;
        let mut max_queue_depth = 0usize;
        let mut channels = 0usize;
        for s in m.streams.values() {
            let width = s.channels.len() as u64;
            channels += s.channels.len();
            let offered = s.expected_rows.unwrap_or(s.rows);
            offered_rows += offered;
            offered_samples += offered * width;
            let written = s.sinks.get(SINK_NAME).map_or(0, |k| k.rows_written);
            written_rows += written;
            written_samples += written * width;
            let lost_in_sink = s.sinks.get(SINK_NAME).map_or(0, |k| k.rows_lost);
            dropped_rows += s.dropped_rows + s.overflow_rows + lost_in_sink;
            restarts += s.restarts;
            max_queue_depth = max_queue_depth.max(s.max_queue_depth);
        }
        let lost_rows = offered_rows as i64 - written_rows as i64 - dropped_rows as i64;
        let duration_s = spec.duration.as_secs_f64();
        let started_ns = m.started_at.timestamp_nanos_opt().unwrap_or(0);
        // An instrument emits the rows that came due once per batch interval, so its last batch
        // leaves up to one interval after its last row was due: that wait is batching, not lag.
        let batching_s = if spec.pace == Pace::Realtime {
            spec.batch_interval.as_secs_f64()
        } else {
            0.0
        };
        let production_s = run
            .last_emitted_at_ns
            .map_or(duration_s, |t| (t - started_ns) as f64 / 1e9 - batching_s)
            .max(if spec.pace == Pace::Realtime {
                duration_s
            } else {
                0.0
            })
            .max(1e-9);
        let realtime = spec.pace == Pace::Realtime;
        let offered_rows_per_s = realtime.then(|| offered_rows as f64 / duration_s);
        let offered_samples_per_s = realtime.then(|| offered_samples as f64 / duration_s);
        let achieved_rows_per_s = written_rows as f64 / production_s;
        let achieved_samples_per_s = written_samples as f64 / production_s;
        let latency = run
            .sinks
            .get(SINK_NAME)
            .and_then(|s| s.report.as_ref())
            .and_then(|r| r.latency.clone())
            .unwrap_or_default();

        let mut failures = Vec::new();
        if !run.is_clean() {
            failures.push(format!(
                "the run ended with status `{}`{}",
                m.status,
                m.stop_reason
                    .as_ref()
                    .map_or_else(String::new, |r| format!(": {r}"))
            ));
        }
        if lost_rows != 0 {
            failures.push(format!(
                "{lost_rows} rows are neither written nor counted as dropped"
            ));
        }
        if spec.delivery == Delivery::Lossless && dropped_rows > 0 {
            failures.push(format!("a lossless test dropped {dropped_rows} rows"));
        }
        if let Some(offered) = offered_rows_per_s {
            if achieved_rows_per_s < offered * (1.0 - THROUGHPUT_TOLERANCE) {
                failures.push(format!(
                    "achieved {achieved_rows_per_s:.0} rows/s, {:.1}% short of the offered \
                     {offered:.0} rows/s (tolerance {:.0}%)",
                    100.0 * (1.0 - achieved_rows_per_s / offered),
                    100.0 * THROUGHPUT_TOLERANCE
                ));
            }
        }
        let (cpu_user_s, cpu_system_s) = measured.cpu_s;
        let plan_end_ns = started_ns.saturating_add(spec.duration.as_nanos() as i64);
        let stop_ns = measured
            .stop_asked_at_ns
            .map_or(plan_end_ns, |t| t.min(plan_end_ns));
        let seconds = |from: i64, to: i64| (to - from) as f64 / 1e9;
        let start_s = run
            .last_started_at_ns
            .filter(|_| run.producers_started == m.streams.len())
            .map(|t| seconds(measured.began_at_ns, t));
        let stop_s = run.last_ended_at_ns.map(|t| seconds(stop_ns, t).max(0.0));
        let finish_s = seconds(stop_ns, measured.ended_at_ns).max(0.0);
        Self {
            report_version: 1,
            run_dir: run.run_dir.display().to_string(),
            status: m.status.clone(),
            instruments: m.streams.len(),
            channels,
            sink: match spec.sink {
                LoadSink::Parquet => "parquet",
                LoadSink::Null => "null",
            }
            .to_string(),
            pace: match spec.pace {
                Pace::Realtime => "realtime",
                Pace::Max => "max",
            }
            .to_string(),
            delivery: match spec.delivery {
                Delivery::Lossless => "lossless",
                Delivery::BestEffort => "best_effort",
            }
            .to_string(),
            duration_s,
            production_s,
            elapsed_s: measured.elapsed_s,
            start_s,
            stop_s,
            finish_s,
            offered_rows,
            offered_samples,
            written_rows,
            written_samples,
            dropped_rows,
            lost_rows,
            offered_rows_per_s,
            offered_samples_per_s,
            achieved_rows_per_s,
            achieved_samples_per_s,
            latency_measured_at: match spec.sink {
                LoadSink::Parquet => "durable_write",
                LoadSink::Null => "sink_arrival",
            }
            .to_string(),
            latency: latency.summary(),
            max_queue_depth,
            restarts,
            faults_injected: measured.faults_injected,
            peak_rss_mib: measured.peak_rss_mib,
            rss_samples_mib: measured.rss_samples_mib,
            cpu_user_s,
            cpu_system_s,
            cpu_cores_used: (cpu_user_s + cpu_system_s) / measured.elapsed_s.max(1e-9),
            passed: failures.is_empty(),
            failures,
        }
    }

    /// Whether the test passed (exit code 0).
    pub fn passed(&self) -> bool {
        self.passed
    }

    /// The human-readable report.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let rate = |v: Option<f64>| v.map_or_else(|| "max".to_string(), |v| format!("{v:.0}"));
        let _ = writeln!(
            out,
            "loadtest: {} instruments, {} channels, {} sink, {} pace, {} delivery, {:.1} s",
            self.instruments, self.channels, self.sink, self.pace, self.delivery, self.duration_s
        );
        let _ = writeln!(out, "{:<14} {:>16} {:>16}", "", "offered", "achieved");
        let _ = writeln!(
            out,
            "{:<14} {:>16} {:>16.0}",
            "rows/s",
            rate(self.offered_rows_per_s),
            self.achieved_rows_per_s
        );
        let _ = writeln!(
            out,
            "{:<14} {:>16} {:>16.0}",
            "samples/s",
            rate(self.offered_samples_per_s),
            self.achieved_samples_per_s
        );
        let _ = writeln!(
            out,
            "{:<14} {:>16} {:>16}",
            "rows", self.offered_rows, self.written_rows
        );
        let _ = writeln!(
            out,
            "rows dropped (counted) {}, lost {}",
            self.dropped_rows, self.lost_rows
        );
        let _ = writeln!(
            out,
            "latency (sample → {}): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {} batches",
            self.latency_measured_at.replace('_', " "),
            self.latency.p50_ms,
            self.latency.p99_ms,
            self.latency.max_ms,
            self.latency.batches
        );
        let _ = writeln!(
            out,
            "deepest queue {} batches; restarts {} ({} instruments with a fault)",
            self.max_queue_depth, self.restarts, self.faults_injected
        );
        let secs =
            |v: Option<f64>| v.map_or_else(|| "unknown".to_string(), |v| format!("{v:.2} s"));
        let _ = writeln!(
            out,
            "start {} (run begun → last instrument producing); stop {} (plan end or stop → \
             last instrument ended); finish {:.2} s (→ every file sealed)",
            secs(self.start_s),
            secs(self.stop_s),
            self.finish_s
        );
        let _ = writeln!(
            out,
            "peak RSS {}; CPU {:.1} s user + {:.1} s system = {:.2} cores over {:.1} s \
             (producing took {:.2} s)",
            self.peak_rss_mib
                .map_or_else(|| "unknown".to_string(), |m| format!("{m:.0} MiB")),
            self.cpu_user_s,
            self.cpu_system_s,
            self.cpu_cores_used,
            self.elapsed_s,
            self.production_s
        );
        if self.passed {
            let _ = writeln!(out, "result: PASS");
        } else {
            let _ = writeln!(out, "result: FAIL");
            for f in &self.failures {
                let _ = writeln!(out, "  - {f}");
            }
        }
        out
    }
}
