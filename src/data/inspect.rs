//! `ensemble inspect RUN_DIR`: how a run ended and what each stream holds, read from the files
//! themselves and joined with the manifest. Works on a killed run before `ensemble recover`:
//! its write-ahead logs are memory-mapped read-only, nothing in the directory changes, and the
//! report says what recovery would restore.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampNanosecondType, UInt64Type};
use chrono::{DateTime, Utc};
use ensemble_actors::batch::{SEQ_COLUMN, TIMESTAMP_COLUMN, UNIT_METADATA_KEY};
use ensemble_actors::sinks::parquet::recoverable_part;
use serde::Serialize;

use super::error::DataError;
use super::rundir::{StreamFiles, check_run_dir, read_footer};
use super::stats::{sizes, timestamp_range};
use crate::coordinator::RunEvent;
use crate::manifest::{Manifest, StreamEntry};

/// Everything `inspect` reports about a run.
#[derive(Debug, Clone, Serialize)]
pub struct Inspection {
    /// The run directory.
    pub path: PathBuf,
    /// The run id.
    pub run_id: String,
    /// The experiment's name.
    pub experiment: Option<String>,
    /// The manifest's status, or `crashed-unrecovered` for a run that left unfinished parts
    /// behind and whose manifest still says `running`, or `unknown` without a manifest.
    pub status: String,
    /// How the run ended, in a sentence.
    pub ended: String,
    /// When it started and stopped.
    pub started_at: Option<DateTime<Utc>>,
    /// When it stopped.
    pub stopped_at: Option<DateTime<Utc>>,
    /// The run's metadata.
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// A point plan's progress: the `primary` stream's report (plan, total and done points).
    pub plan: Option<serde_json::Value>,
    /// Per stream directory.
    pub streams: Vec<StreamInspection>,
    /// Failures, restarts and other events from the manifest.
    pub events: Vec<RunEvent>,
    /// Rows that `ensemble recover` would restore from unfinished parts, over all streams
    /// (0 when there is nothing to recover).
    pub recoverable_rows: u64,
}

/// What one stream directory holds.
#[derive(Debug, Clone, Serialize)]
pub struct StreamInspection {
    /// The stream.
    pub stream: String,
    /// Its directory inside the run.
    pub directory: PathBuf,
    /// Rows in finished parts (what readers see now).
    pub rows: u64,
    /// Finished parts.
    pub parts: usize,
    /// First timestamp in the finished parts (ns since the epoch, UTC).
    pub first_timestamp_ns: Option<i64>,
    /// Last timestamp in the finished parts.
    pub last_timestamp_ns: Option<i64>,
    /// Rows per second between the first and last timestamp.
    pub effective_rate_hz: Option<f64>,
    /// The nominal rate from the manifest.
    pub nominal_rate_hz: Option<f64>,
    /// Smallest `seq` written.
    pub first_seq: Option<u64>,
    /// Largest `seq` written.
    pub last_seq: Option<u64>,
    /// Holes in `seq` inside the finished parts, in order.
    pub gaps: Vec<SeqGap>,
    /// Rows missing in those holes.
    pub missing_rows: u64,
    /// What the manifest counted that makes holes: rows the source could not acquire because
    /// the pipeline pushed back (`overflow`), batches dropped on best-effort links to sinks.
    pub causes: GapCauses,
    /// Per sink reading the stream: drops and losses from the manifest.
    pub sinks: BTreeMap<String, SinkCounts>,
    /// Restarts of the producer.
    pub restarts: u64,
    /// Bytes of every file in the directory.
    pub bytes_on_disk: u64,
    /// Bytes of the finished parts' column data before compression.
    pub uncompressed_bytes: u64,
    /// Uncompressed over compressed bytes of the column data.
    pub compression_ratio: Option<f64>,
    /// Channel columns and their units, from the field metadata.
    pub channels: Vec<ChannelUnit>,
    /// Unfinished parts and what recovery would make of them.
    pub unfinished: Vec<UnfinishedPart>,
}

/// A hole in `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeqGap {
    /// The last `seq` before the hole.
    pub after_seq: u64,
    /// `seq`s missing.
    pub missing: u64,
    /// Timestamp of the row before the hole (ns).
    pub at_ns: i64,
    /// What the manifest says made it: `overflow`, `dropped`, `overflow or dropped`, or
    /// `unexplained`.
    pub cause: String,
}

/// Counters from the manifest that explain holes in `seq`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GapCauses {
    /// Rows the producer skipped because the pipeline pushed back.
    pub overflow_rows: u64,
    /// Rows dropped on the link to the sink that wrote this directory.
    pub dropped_rows: u64,
    /// Reconnects of an SCPI instrument (time gaps, no `seq` skipped).
    pub reconnects: u64,
    /// Missing rows the counters do not account for (0 when every hole is explained).
    pub unexplained_rows: u64,
}

/// A sink's counts for one stream.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SinkCounts {
    /// Rows in finished files, as the sink reported.
    pub rows_written: u64,
    /// Batches dropped on the link to the sink.
    pub dropped_batches: u64,
    /// Rows in them.
    pub dropped_rows: u64,
    /// Rows that reached the sink but could not be written.
    pub rows_lost: u64,
}

/// A channel column and its unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChannelUnit {
    /// Column name.
    pub name: String,
    /// Unit (empty when none).
    pub unit: String,
}

/// An unfinished part a killed run left, and what `ensemble recover` would do with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnfinishedPart {
    /// The log, or the `.partial` file when there is no log.
    pub path: PathBuf,
    /// Rows recovery would restore (0: the part would be removed).
    pub rows: u64,
    /// Of those, rows in checkpointed row groups of the `.partial` file.
    pub checkpointed_rows: u64,
    /// Of those, rows from the write-ahead log.
    pub logged_rows: u64,
    /// The log's last frame was cut off by the kill (those rows were never promised).
    pub torn_log: bool,
}

/// Inspects `run_dir` without changing anything in it.
pub fn inspect(run_dir: &Path) -> Result<Inspection, DataError> {
    let (manifest, dirs) = check_run_dir(run_dir)?;
    let mut streams = Vec::new();
    for dir in &dirs {
        let entry = manifest.as_ref().and_then(|m| m.streams.get(&dir.stream));
        streams.push(inspect_stream(dir, entry, manifest.as_ref())?);
    }
    let recoverable_rows = streams
        .iter()
        .flat_map(|s| &s.unfinished)
        .map(|u| u.rows)
        .sum();
    let unfinished = dirs.iter().any(StreamFiles::unfinished);
    let run_id = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let Some(m) = manifest else {
        return Ok(Inspection {
            path: run_dir.to_path_buf(),
            run_id,
            experiment: None,
            status: "unknown".to_string(),
            ended: "unknown: the run directory has no run.json".to_string(),
            started_at: None,
            stopped_at: None,
            metadata: BTreeMap::new(),
            plan: None,
            streams,
            events: Vec::new(),
            recoverable_rows,
        });
    };
    let (status, ended) = how_it_ended(&m, unfinished, recoverable_rows);
    Ok(Inspection {
        path: run_dir.to_path_buf(),
        run_id: m.run_id.clone(),
        experiment: Some(m.experiment.clone()),
        status,
        ended,
        started_at: Some(m.started_at),
        stopped_at: m.stopped_at,
        metadata: m.metadata.clone(),
        plan: m
            .streams
            .get("primary")
            .and_then(|p| p.instrument_report.clone())
            .filter(|r| r.get("points_done").is_some()),
        streams,
        events: m.events.clone(),
        recoverable_rows,
    })
}

fn how_it_ended(m: &Manifest, unfinished: bool, recoverable: u64) -> (String, String) {
    let reason = m
        .stop_reason
        .as_deref()
        .map_or(String::new(), |r| format!(": {r}"));
    match m.status.as_str() {
        "running" if unfinished => (
            "crashed-unrecovered".to_string(),
            format!(
                "the process ended without finishing (killed or crashed); `ensemble recover` \
                 would restore {recoverable} rows from unfinished parts"
            ),
        ),
        "running" => (
            "running".to_string(),
            "still running, or killed before it wrote anything".to_string(),
        ),
        "completed" => (
            "completed".to_string(),
            format!("completed its plan{reason}"),
        ),
        "stopped" => ("stopped".to_string(), format!("stopped early{reason}")),
        "failed" => ("failed".to_string(), format!("failed{reason}")),
        "crashed" => (
            "crashed".to_string(),
            format!("crashed and was recovered{reason}"),
        ),
        other => (other.to_string(), format!("{other}{reason}")),
    }
}

fn inspect_stream(
    dir: &StreamFiles,
    entry: Option<&StreamEntry>,
    manifest: Option<&Manifest>,
) -> Result<StreamInspection, DataError> {
    let mut rows = 0;
    let (mut uncompressed, mut compressed) = (0, 0);
    let mut range: Option<(i64, i64)> = None;
    let mut channels = Vec::new();
    for part in &dir.parts {
        let footer = read_footer(part)?;
        rows += footer.file_metadata().num_rows().max(0) as u64;
        let (u, c) = sizes(&footer);
        uncompressed += u;
        compressed += c;
        if let Some((a, b)) = timestamp_range(&footer) {
            range = Some(range.map_or((a, b), |(x, y)| (x.min(a), y.max(b))));
        }
        if channels.is_empty() {
            channels = channel_units(part)?;
        }
    }
    let seqs = scan_seq(&dir.parts)?;
    let sink = manifest.and_then(|m| sink_of(m, &dir.stream, &dir.relative));
    let sinks: BTreeMap<String, SinkCounts> = entry
        .map(|e| {
            e.sinks
                .iter()
                .map(|(name, s)| {
                    (
                        name.clone(),
                        SinkCounts {
                            rows_written: s.rows_written,
                            dropped_batches: s.dropped_batches,
                            dropped_rows: s.dropped_rows,
                            rows_lost: s.rows_lost,
                        },
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut causes = GapCauses {
        overflow_rows: entry.map_or(0, |e| e.overflow_rows),
        dropped_rows: sink
            .as_ref()
            .and_then(|s| sinks.get(s))
            .map_or(0, |s| s.dropped_rows),
        reconnects: entry
            .and_then(|e| e.instrument_report.as_ref())
            .and_then(|r| r.get("reconnects"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0),
        unexplained_rows: 0,
    };
    let missing_rows: u64 = seqs.gaps.iter().map(|g| g.1).sum();
    causes.unexplained_rows =
        missing_rows.saturating_sub(causes.overflow_rows + causes.dropped_rows);
    let cause = match (causes.overflow_rows > 0, causes.dropped_rows > 0) {
        (true, false) => "overflow",
        (false, true) => "dropped",
        (true, true) => "overflow or dropped",
        (false, false) => "unexplained",
    };
    let gaps = seqs
        .gaps
        .iter()
        .map(|&(after_seq, missing, at_ns)| SeqGap {
            after_seq,
            missing,
            at_ns,
            cause: cause.to_string(),
        })
        .collect();
    let mut unfinished = Vec::new();
    for log in &dir.logs {
        let part = recoverable_part(log)?;
        unfinished.push(UnfinishedPart {
            path: log.clone(),
            rows: part.map_or(0, |p| p.rows()),
            checkpointed_rows: part.map_or(0, |p| p.checkpointed_rows),
            logged_rows: part.map_or(0, |p| p.logged_rows),
            torn_log: part.is_some_and(|p| p.torn_log),
        });
    }
    for partial in &dir.partials {
        let Some(stem) = partial
            .to_str()
            .and_then(|p| p.strip_suffix(".parquet.partial"))
        else {
            continue;
        };
        if !dir
            .logs
            .iter()
            .any(|l| l.with_extension("").to_str() == Some(stem))
        {
            // No log: recovery removes it (written with `write_ahead_log = false`).
            unfinished.push(UnfinishedPart {
                path: partial.clone(),
                rows: 0,
                checkpointed_rows: 0,
                logged_rows: 0,
                torn_log: false,
            });
        }
    }
    let effective_rate_hz = range
        .and_then(|(a, b)| (b > a && rows > 1).then(|| (rows - 1) as f64 / ((b - a) as f64 / 1e9)));
    Ok(StreamInspection {
        stream: dir.stream.clone(),
        directory: dir.relative.clone(),
        rows,
        parts: dir.parts.len(),
        first_timestamp_ns: range.map(|r| r.0),
        last_timestamp_ns: range.map(|r| r.1),
        effective_rate_hz,
        nominal_rate_hz: entry.and_then(|e| e.rate_hz),
        first_seq: seqs.first,
        last_seq: seqs.last,
        gaps,
        missing_rows,
        causes,
        sinks,
        restarts: entry.map_or(0, |e| e.restarts),
        bytes_on_disk: dir.bytes,
        uncompressed_bytes: uncompressed,
        compression_ratio: (compressed > 0).then(|| uncompressed as f64 / compressed as f64),
        channels,
        unfinished,
    })
}

/// The sink whose parts are in `relative` (by the manifest's part paths, else the only one).
fn sink_of(m: &Manifest, stream: &str, relative: &Path) -> Option<String> {
    let entry = m.streams.get(stream)?;
    entry
        .sinks
        .iter()
        .find(|(_, s)| s.parts.iter().any(|p| p.path.parent() == Some(relative)))
        .or_else(|| {
            let parquet: Vec<_> = entry
                .sinks
                .iter()
                .filter(|(name, _)| m.sinks.get(*name).is_some_and(|s| s.sink_type == "parquet"))
                .collect();
            (parquet.len() == 1).then(|| parquet[0])
        })
        .map(|(name, _)| name.clone())
}

fn channel_units(part: &Path) -> Result<Vec<ChannelUnit>, DataError> {
    Ok(super::read::part_schema(part)?
        .fields()
        .iter()
        .filter(|f| f.name() != TIMESTAMP_COLUMN && f.name() != SEQ_COLUMN)
        .map(|f| ChannelUnit {
            name: f.name().clone(),
            unit: f
                .metadata()
                .get(UNIT_METADATA_KEY)
                .cloned()
                .unwrap_or_default(),
        })
        .collect())
}

/// `seq` over the parts, read column by column: its range and holes.
#[derive(Default)]
struct SeqScan {
    first: Option<u64>,
    last: Option<u64>,
    /// `(after_seq, missing, timestamp of the row before)`.
    gaps: Vec<(u64, u64, i64)>,
}

fn scan_seq(parts: &[PathBuf]) -> Result<SeqScan, DataError> {
    let mut scan = SeqScan::default();
    let mut previous: Option<(u64, i64)> = None;
    let keep = |name: &str| name == TIMESTAMP_COLUMN || name == SEQ_COLUMN;
    super::read::for_each_batch(parts, &keep, None, None, |batch| {
        let (Some(ts), Some(seq)) = (
            batch
                .column_by_name(TIMESTAMP_COLUMN)
                .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>()),
            batch
                .column_by_name(SEQ_COLUMN)
                .and_then(|c| c.as_primitive_opt::<UInt64Type>()),
        ) else {
            return Ok::<(), DataError>(());
        };
        for (&s, &t) in seq.values().iter().zip(ts.values().iter()) {
            scan.first = Some(scan.first.map_or(s, |f| f.min(s)));
            scan.last = Some(scan.last.map_or(s, |l| l.max(s)));
            if let Some((p, pt)) = previous {
                if s > p + 1 {
                    scan.gaps.push((p, s - p - 1, pt));
                }
            }
            previous = Some((s, t));
        }
        Ok(())
    })?;
    Ok(scan)
}

/// The inspection as text for a terminal.
pub fn inspection_text(i: &Inspection) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let time = |t: Option<DateTime<Utc>>| t.map_or("-".to_string(), |t| t.to_rfc3339());
    let _ = writeln!(out, "run        {}", i.run_id);
    let _ = writeln!(out, "experiment {}", i.experiment.as_deref().unwrap_or("-"));
    let _ = writeln!(out, "status     {} ({})", i.status, i.ended);
    let _ = writeln!(out, "started    {}", time(i.started_at));
    let _ = writeln!(out, "stopped    {}", time(i.stopped_at));
    if !i.metadata.is_empty() {
        let m: Vec<String> = i
            .metadata
            .iter()
            .map(|(k, v)| format!("{k}={}", super::catalog::scalar_text(v)))
            .collect();
        let _ = writeln!(out, "metadata   {}", m.join(" "));
    }
    if let Some(plan) = &i.plan {
        let _ = writeln!(
            out,
            "plan       {} {}/{} points",
            plan["plan"].as_str().unwrap_or("?"),
            plan["points_done"],
            plan["total_points"]
        );
    }
    for s in &i.streams {
        let _ = writeln!(out, "\nstream {} ({})", s.stream, s.directory.display());
        let _ = writeln!(
            out,
            "  rows {} in {} part(s), seq {}..{}, {} missing in {} gap(s)",
            s.rows,
            s.parts,
            s.first_seq.map_or("-".into(), |v| v.to_string()),
            s.last_seq.map_or("-".into(), |v| v.to_string()),
            s.missing_rows,
            s.gaps.len()
        );
        let ts = |ns: Option<i64>| {
            ns.map_or("-".to_string(), |n| {
                DateTime::from_timestamp_nanos(n).to_rfc3339()
            })
        };
        let _ = writeln!(
            out,
            "  time {} .. {}, {} Hz effective ({} nominal)",
            ts(s.first_timestamp_ns),
            ts(s.last_timestamp_ns),
            s.effective_rate_hz
                .map_or("-".into(), |r| format!("{r:.3}")),
            s.nominal_rate_hz.map_or("-".into(), |r| r.to_string())
        );
        for g in s.gaps.iter().take(10) {
            let _ = writeln!(
                out,
                "  gap after seq {}: {} missing at {} ({})",
                g.after_seq,
                g.missing,
                ts(Some(g.at_ns)),
                g.cause
            );
        }
        if s.gaps.len() > 10 {
            let _ = writeln!(out, "  ... {} more gaps (see --json)", s.gaps.len() - 10);
        }
        let _ = writeln!(
            out,
            "  causes: {} overflow, {} dropped, {} reconnects, {} unexplained; {} restarts",
            s.causes.overflow_rows,
            s.causes.dropped_rows,
            s.causes.reconnects,
            s.causes.unexplained_rows,
            s.restarts
        );
        for (sink, c) in &s.sinks {
            let _ = writeln!(
                out,
                "  sink {sink}: {} written, {} batches ({} rows) dropped, {} lost",
                c.rows_written, c.dropped_batches, c.dropped_rows, c.rows_lost
            );
        }
        let _ = writeln!(
            out,
            "  {} on disk, compression {}",
            super::catalog::human_bytes(s.bytes_on_disk),
            s.compression_ratio
                .map_or("-".into(), |r| format!("{r:.2}x"))
        );
        let units: Vec<String> = s
            .channels
            .iter()
            .map(|c| format!("{} [{}]", c.name, c.unit))
            .collect();
        let _ = writeln!(out, "  channels {}", units.join(", "));
        for u in &s.unfinished {
            let _ = writeln!(
                out,
                "  unfinished {}: recover restores {} rows ({} checkpointed, {} logged{})",
                u.path.display(),
                u.rows,
                u.checkpointed_rows,
                u.logged_rows,
                if u.torn_log { ", torn last frame" } else { "" }
            );
        }
    }
    if i.recoverable_rows > 0 {
        let _ = writeln!(
            out,
            "\n`ensemble recover {}` would restore {} rows.",
            i.path.display(),
            i.recoverable_rows
        );
    }
    out
}
