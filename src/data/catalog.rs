//! `ensemble runs`: the catalog of a directory of runs, newest first, from manifests alone
//! (and Parquet footers where a manifest is missing or still says `running`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use chrono::{DateTime, NaiveDate, Utc};
use ensemble_actors::sinks::parquet::RUN_METADATA_KEY;
use serde::Serialize;

use super::error::DataError;
use super::rundir::{StreamFiles, file_key_value, read_footer, read_manifest, stream_dirs};
use crate::manifest::Manifest;

/// A run whose manifest says `running` but whose files have not changed for this long is
/// listed as `crashed-unrecovered` (the process is gone; `ensemble recover` finishes it).
/// A live run writes its logs at least every flush interval (1 s by default).
pub const STALE_AFTER: Duration = Duration::from_secs(120);

/// One line of the catalog.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSummary {
    /// The run id (the directory's name).
    pub id: String,
    /// The experiment's name.
    pub name: String,
    /// `completed`, `stopped`, `failed`, `crashed` (recovered), `crashed-unrecovered` (killed,
    /// not yet recovered), `running`, or `unknown` (no manifest).
    pub status: String,
    /// When it started (from the manifest, or the earliest timestamp in its files).
    pub started_at: Option<DateTime<Utc>>,
    /// How long it ran, in seconds (absent while running or unknown).
    pub duration_s: Option<f64>,
    /// Streams recorded.
    pub streams: usize,
    /// Rows recorded over all streams (the manifest's, or the footers' when it has none).
    pub rows: u64,
    /// Bytes of the stream directories on disk.
    pub bytes: u64,
    /// The run's metadata.
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// The run directory.
    pub path: PathBuf,
    /// Why the run could not be read (status `unreadable`): names the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Which runs to list.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// `KEY=VALUE` conditions, all of which must hold: `status`, `name`, `id`, or a metadata
    /// key. `status=crashed` also matches `crashed-unrecovered`.
    pub conditions: Vec<(String, String)>,
    /// Only runs that started at or after this.
    pub since: Option<DateTime<Utc>>,
}

impl RunFilter {
    /// Parses `--where KEY=VALUE` arguments and `--since DATE` (RFC 3339 or `YYYY-MM-DD`, UTC).
    pub fn parse(conditions: &[String], since: Option<&str>) -> Result<Self, DataError> {
        let conditions = conditions
            .iter()
            .map(|c| {
                c.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.to_string()))
                    .ok_or_else(|| DataError::Usage(format!("--where {c}: expected KEY=VALUE")))
            })
            .collect::<Result<_, _>>()?;
        let since = since
            .map(|s| parse_time(s).map_err(|e| DataError::Usage(format!("--since {e}"))))
            .transpose()?;
        Ok(Self { conditions, since })
    }

    /// Whether `run` passes.
    pub fn matches(&self, run: &RunSummary) -> bool {
        if let Some(since) = self.since {
            if run.started_at.is_none_or(|t| t < since) {
                return false;
            }
        }
        self.conditions
            .iter()
            .all(|(key, want)| match key.as_str() {
                "status" if want == "crashed" => run.status.starts_with("crashed"),
                "status" => run.status == *want,
                "name" => run.name == *want,
                "id" => run.id == *want,
                _ => run
                    .metadata
                    .get(key)
                    .is_some_and(|v| scalar_text(v) == *want),
            })
    }
}

/// A metadata value as `--where` compares it: strings as they are, others as JSON text.
pub fn scalar_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A time given on the command line: RFC 3339 (`2026-12-01T09:00:00Z`) or a UTC date
/// (`2026-12-01`, its midnight).
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| format!("`{text}`: expected RFC 3339 (2026-12-01T09:00:00Z) or 2026-12-01"))
}

/// The runs under `dir` that pass `filter`, newest first.
///
/// A directory that is not a run (neither a manifest nor stream directories) is skipped; one
/// whose manifest or footers cannot be read is listed with status `unreadable` and the error
/// naming the file, so a damaged run is never silently left out nor hides the others.
pub fn list_runs(dir: &Path, filter: &RunFilter) -> Result<Vec<RunSummary>, DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            path: dir.to_path_buf(),
        });
    }
    let mut runs = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(DataError::read(dir))?;
    for entry in entries {
        let path = entry.map_err(DataError::read(dir))?.path();
        if !path.is_dir() {
            continue;
        }
        let run = match summarize_run(&path) {
            Ok(Some(run)) => run,
            Ok(None) => continue,
            // A damaged run is listed, not hidden, and does not hide the others.
            Err(e) => unreadable(&path, &e),
        };
        if filter.matches(&run) {
            runs.push(run);
        }
    }
    runs.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
    Ok(runs)
}

/// The line of a run whose manifest or footers cannot be read: status `unreadable`, and why.
fn unreadable(run_dir: &Path, e: &DataError) -> RunSummary {
    RunSummary {
        id: run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        name: String::new(),
        status: "unreadable".to_string(),
        started_at: None,
        duration_s: None,
        streams: 0,
        rows: 0,
        bytes: 0,
        metadata: BTreeMap::new(),
        path: run_dir.to_path_buf(),
        error: Some(e.to_string()),
    }
}

/// One run's line, `None` when `run_dir` is not a run.
pub fn summarize_run(run_dir: &Path) -> Result<Option<RunSummary>, DataError> {
    let manifest = read_manifest(run_dir)?;
    let id = run_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let streams = stream_dirs(run_dir)?;
    let bytes = streams.iter().map(|s| s.bytes).sum();
    match manifest {
        Some(m) if m.status != "running" => Ok(Some(from_manifest(id, run_dir, &m, bytes))),
        Some(m) => {
            let mut run = from_manifest(id, run_dir, &m, bytes);
            let footers = from_footers(&streams)?;
            run.rows = run.rows.max(footers.rows);
            run.streams = run.streams.max(streams.len());
            if is_stale(run_dir, &streams) {
                run.status = "crashed-unrecovered".to_string();
            }
            Ok(Some(run))
        }
        None if streams.is_empty() => Ok(None),
        None => {
            let footers = from_footers(&streams)?;
            Ok(Some(RunSummary {
                id,
                name: footers.experiment.unwrap_or_default(),
                status: "unknown".to_string(),
                started_at: footers.first_ns.map(DateTime::from_timestamp_nanos),
                duration_s: None,
                streams: streams.len(),
                rows: footers.rows,
                bytes,
                metadata: footers.metadata,
                path: run_dir.to_path_buf(),
                error: None,
            }))
        }
    }
}

fn from_manifest(id: String, run_dir: &Path, m: &Manifest, bytes: u64) -> RunSummary {
    RunSummary {
        id,
        name: m.experiment.clone(),
        status: m.status.clone(),
        started_at: Some(m.started_at),
        duration_s: m
            .stopped_at
            .map(|end| (end - m.started_at).num_milliseconds() as f64 / 1000.0),
        streams: m.streams.len(),
        rows: m.streams.values().map(|s| s.rows).sum(),
        bytes,
        metadata: m.metadata.clone(),
        path: run_dir.to_path_buf(),
        error: None,
    }
}

/// What the footers of a run's finished parts say.
#[derive(Default)]
struct FooterSummary {
    rows: u64,
    first_ns: Option<i64>,
    experiment: Option<String>,
    metadata: BTreeMap<String, serde_json::Value>,
}

fn from_footers(streams: &[StreamFiles]) -> Result<FooterSummary, DataError> {
    let mut s = FooterSummary::default();
    for part in streams.iter().flat_map(|st| &st.parts) {
        let footer = read_footer(part)?;
        s.rows += footer.file_metadata().num_rows().max(0) as u64;
        if s.experiment.is_none() {
            s.experiment = file_key_value(&footer, "ensemble.experiment").map(str::to_string);
        }
        if s.metadata.is_empty() {
            if let Some(json) = file_key_value(&footer, RUN_METADATA_KEY) {
                s.metadata = serde_json::from_str(json).unwrap_or_default();
            }
        }
        if let Some((min, _)) = super::stats::timestamp_range(&footer) {
            s.first_ns = Some(s.first_ns.map_or(min, |f: i64| f.min(min)));
        }
    }
    Ok(s)
}

/// Whether nothing in the run's stream directories (or its manifest) changed for
/// [`STALE_AFTER`].
fn is_stale(run_dir: &Path, streams: &[StreamFiles]) -> bool {
    let mut newest = modified(&run_dir.join(crate::manifest::MANIFEST_FILE));
    for stream in streams {
        for file in stream
            .parts
            .iter()
            .chain(&stream.logs)
            .chain(&stream.partials)
        {
            newest = newest.max(modified(file));
        }
    }
    newest.is_some_and(|t| {
        SystemTime::now()
            .duration_since(t)
            .is_ok_and(|age| age > STALE_AFTER)
    })
}

fn modified(path: &Path) -> Option<SystemTime> {
    path.metadata().and_then(|m| m.modified()).ok()
}

/// The catalog as a table, one line per run.
pub fn runs_table(runs: &[RunSummary]) -> String {
    let mut out = format!(
        "{:<29} {:<16} {:<19} {:<20} {:>9} {:>7} {:>12} {:>9}  {}\n",
        "ID", "NAME", "STATUS", "START (UTC)", "DURATION", "STREAMS", "ROWS", "SIZE", "METADATA"
    );
    for r in runs {
        let metadata: Vec<String> = r
            .metadata
            .iter()
            .map(|(k, v)| format!("{k}={}", scalar_text(v)))
            .collect();
        out.push_str(&format!(
            "{:<29} {:<16} {:<19} {:<20} {:>9} {:>7} {:>12} {:>9}  {}\n",
            r.id,
            r.name,
            r.status,
            r.started_at.map_or("-".to_string(), |t| t
                .format("%Y-%m-%d %H:%M:%S")
                .to_string()),
            r.duration_s.map_or("-".to_string(), |d| format!("{d:.1}s")),
            r.streams,
            r.rows,
            human_bytes(r.bytes),
            metadata.join(" "),
        ));
    }
    out
}

/// Bytes as `12.3 MB` (powers of 1,000) for tables.
pub fn human_bytes(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(status: &str, sample: serde_json::Value) -> RunSummary {
        RunSummary {
            id: "r".into(),
            name: "n".into(),
            status: status.into(),
            started_at: parse_time("2026-12-01T10:00:00Z").ok(),
            duration_s: None,
            streams: 1,
            rows: 1,
            bytes: 1,
            metadata: BTreeMap::from([("sample".to_string(), sample)]),
            path: PathBuf::new(),
            error: None,
        }
    }

    #[test]
    fn conditions_match_status_name_and_metadata_as_text() {
        let f =
            RunFilter::parse(&["status=crashed".into(), "sample=7".into()], None).expect("valid");
        assert!(f.matches(&run("crashed-unrecovered", json!(7))));
        assert!(f.matches(&run("crashed", json!("7"))));
        assert!(!f.matches(&run("completed", json!(7))));
        assert!(!f.matches(&run("crashed", json!(8))));
        let since = RunFilter::parse(&[], Some("2026-12-02")).expect("valid");
        assert!(!since.matches(&run("completed", json!(7))));
        assert!(RunFilter::parse(&["nokey".into()], None).is_err());
        assert!(RunFilter::parse(&[], Some("yesterday")).is_err());
    }

    #[test]
    fn bytes_read_like_a_person_would_write_them() {
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(12_345_678), "12.3 MB");
    }
}
