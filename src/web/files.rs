//! `ensemble serve DIR`: the same page over finished runs, read from their manifests and
//! Parquet parts.
//!
//! `DIR` is one run directory (with `run.json`) or an output directory of runs. A run left by a
//! killed process (`status: "running"`, `.partial` parts beside the finished ones) is shown
//! with what its finished parts hold and flagged unrecovered; it is never changed (that is
//! `ensemble recover`'s job).

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::api::{StreamData, StreamKind, StreamQuery};
use super::control::ControlPort;
use super::decimate::Decimator;
use super::error::{ApiError, WebError};
use super::frames::{
    channel_infos, decimate_batch, latest_spectrum, pick, scan_points, stream_kind,
};
use super::parquet_read::{Group, Part, groups, read, stream_parts, value_range};
use super::server::ViewSource;
use crate::manifest::{MANIFEST_FILE, Manifest};

/// Above this many rows in the window, row-group statistics stand in for the rows.
pub const READ_ROWS_MAX: u64 = 4_000_000;

/// One run directory and its manifest.
struct RunDir {
    dir: PathBuf,
    manifest: Manifest,
}

/// Finished runs on disk.
pub struct FileSource {
    runs: Vec<RunDir>,
    /// Whether `DIR` was one run (no run list).
    single: bool,
}

impl FileSource {
    /// Opens `dir`: a run directory, or a directory of them (manifests read now, data later).
    pub fn open(dir: &Path) -> Result<Self, WebError> {
        let read = |path: &Path| {
            Manifest::read(path).map_err(|source| WebError::Read {
                path: path.join(MANIFEST_FILE),
                source,
            })
        };
        if dir.join(MANIFEST_FILE).is_file() {
            return Ok(Self {
                runs: vec![RunDir {
                    dir: dir.to_path_buf(),
                    manifest: read(dir)?,
                }],
                single: true,
            });
        }
        let entries = std::fs::read_dir(dir).map_err(|source| WebError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let mut runs = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if path.join(MANIFEST_FILE).is_file() {
                match read(&path) {
                    Ok(manifest) => runs.push(RunDir {
                        dir: path,
                        manifest,
                    }),
                    Err(e) => tracing::warn!("Skipping a run whose manifest cannot be read: {e}."),
                }
            }
        }
        if runs.is_empty() {
            return Err(WebError::NoRuns {
                path: dir.to_path_buf(),
            });
        }
        runs.sort_by(|a, b| a.manifest.run_id.cmp(&b.manifest.run_id));
        Ok(Self {
            runs,
            single: false,
        })
    }

    fn run(&self, id: Option<&str>) -> Result<&RunDir, ApiError> {
        match id {
            None if self.single => Ok(&self.runs[0]),
            None => Err(ApiError::BadRequest(
                "this directory holds several runs: add ?run=RUN_ID".into(),
            )),
            Some(id) => self
                .runs
                .iter()
                .find(|r| r.manifest.run_id == id)
                .ok_or_else(|| ApiError::NotFound(format!("no run `{id}` here"))),
        }
    }
}

/// A killed run that `ensemble recover` has not finished yet.
fn unrecovered(run: &RunDir) -> bool {
    run.manifest.status == "running"
}

fn parts_of(run: &RunDir, stream: &str) -> Result<(Vec<Part>, usize), ApiError> {
    stream_parts(&run.dir.join(stream)).map_err(|e| ApiError::Internal(e.to_string()))
}

/// Rows a stream's finished parts hold (from their footers).
fn rows_on_disk(parts: &[Part]) -> u64 {
    parts
        .iter()
        .map(|p| p.metadata.file_metadata().num_rows().max(0) as u64)
        .sum()
}

fn run_summary(run: &RunDir) -> Value {
    let m = &run.manifest;
    let rows: u64 = if unrecovered(run) {
        m.streams
            .keys()
            .filter_map(|s| parts_of(run, s).ok())
            .map(|(p, _)| rows_on_disk(&p))
            .sum()
    } else {
        m.streams.values().map(|s| s.rows).sum()
    };
    json!({
        "run_id": m.run_id,
        "experiment": m.experiment,
        "status": m.status,
        "unrecovered": unrecovered(run),
        "started_at": m.started_at.to_rfc3339(),
        "duration_s": m.stopped_at.map(|t| (t - m.started_at).num_milliseconds() as f64 / 1e3),
        "streams": m.streams.keys().collect::<Vec<_>>(),
        "rows": rows,
    })
}

impl ViewSource for FileSource {
    fn status(&self, run: Option<&str>, _control: &dyn ControlPort) -> Result<Value, ApiError> {
        if run.is_none() && !self.single {
            return Ok(json!({ "mode": "runs", "runs": self.runs() }));
        }
        let run = self.run(run)?;
        let m = &run.manifest;
        let mut partial_total = 0;
        let components: Vec<Value> = m
            .streams
            .iter()
            .map(|(name, s)| {
                let (parts, partial) = parts_of(run, name).unwrap_or_default();
                partial_total += partial;
                let kind = match s.component_type.as_str() {
                    "fft" => StreamKind::Spectrum,
                    "plan" => StreamKind::Scan,
                    _ => StreamKind::Time,
                };
                json!({
                    "name": s.component,
                    "type": s.component_type,
                    "stream": name,
                    "kind": kind,
                    "rows": rows_on_disk(&parts),
                    "rows_in_manifest": s.rows,
                    "dropped_rows": s.dropped_rows,
                    "restarts": s.restarts,
                    "state": if unrecovered(run) { "unrecovered" } else { "ended" },
                    "parts": parts.len(),
                    "partial_parts": partial,
                    "channels": s.channels.iter().map(|c| json!({"name": c.name, "unit": c.unit})).collect::<Vec<_>>(),
                })
            })
            .collect();
        let note = unrecovered(run).then(|| {
            format!(
                "This run is unrecovered: it was killed while running ({partial_total} unfinished \
                 part(s) not shown). The plots show what its finished parts hold; \
                 `ensemble recover {}` rebuilds the rest from the logs.",
                run.dir.display()
            )
        });
        Ok(json!({
            "mode": "files",
            "run_id": m.run_id,
            "run_dir": run.dir.display().to_string(),
            "experiment": m.experiment,
            "status": m.status,
            "started_at": m.started_at.to_rfc3339(),
            "stopped_at": m.stopped_at.map(|t| t.to_rfc3339()),
            "unrecovered": note,
            "can_pause": false,
            "paused": false,
            "components": components,
        }))
    }

    fn runs(&self) -> Value {
        Value::Array(self.runs.iter().map(run_summary).collect())
    }

    fn stream(&self, name: &str, q: &StreamQuery) -> Result<StreamData, ApiError> {
        let run = self.run(q.run.as_deref())?;
        if !run.manifest.streams.contains_key(name) {
            return Err(ApiError::NotFound(format!(
                "no stream `{name}` in run {}; streams: {}",
                run.manifest.run_id,
                run.manifest
                    .streams
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let (parts, _) = parts_of(run, name)?;
        let points = q.points()?;
        let window = q.window_ns()?;
        let Some(first) = parts.first() else {
            return Ok(empty(name));
        };
        let channels = channel_infos(&first.schema);
        let kind = stream_kind(name, &first.schema);
        let mut data = empty(name);
        data.kind = kind;
        data.channels = channels.clone();
        data.rows = rows_on_disk(&parts);
        data.source = "parquet".into();
        let all = groups(&parts);
        let err = |e: super::parquet_read::ReadError| ApiError::Internal(e.to_string());
        match kind {
            StreamKind::Time => {
                data.picked = pick(&channels, q.channel_names())?;
                time_window(&parts, &all, window, points, &mut data).map_err(err)?;
            }
            StreamKind::Spectrum => {
                data.picked = pick(&channels, q.channel_names())?;
                let (part, last) = (
                    parts.len() - 1,
                    all.iter().rev().find(|g| g.part == parts.len() - 1),
                );
                if let Some(g) = last {
                    let names: Vec<&str> = data.picked.iter().map(|c| c.name.as_str()).collect();
                    let batches = read(&parts[part], vec![g.group], &names).map_err(err)?;
                    if let Some(b) = batches.last() {
                        (data.x, data.series) = latest_spectrum(b, &data.picked, points);
                    }
                }
                data.x_label = "frequency".into();
                data.x_unit = "Hz".into();
            }
            StreamKind::Scan => {
                let Some((x, rest)) = channels.split_first() else {
                    return Ok(data);
                };
                data.picked = pick(rest, q.channel_names())?;
                let mut names: Vec<&str> = vec![x.name.as_str()];
                names.extend(data.picked.iter().map(|c| c.name.as_str()));
                let mut batches = Vec::new();
                for part in &parts {
                    let n = part.metadata.num_row_groups();
                    batches.extend(read(part, (0..n).collect(), &names).map_err(err)?);
                }
                let refs: Vec<&arrow_array::RecordBatch> = batches.iter().collect();
                (data.x, data.series) = scan_points(&refs, &x.name, &data.picked);
                data.x_label = x.name.clone();
                data.x_unit = x.unit.clone();
                data.points_done = Some(data.rows);
                data.points_total = run.manifest.streams.get(name).and_then(|s| s.expected_rows);
            }
        }
        Ok(data)
    }
}

/// Decimates the window of a time stream: reads the row groups in it (projected to the
/// picked channels), or, past [`READ_ROWS_MAX`] rows, uses each row group's statistics.
fn time_window(
    parts: &[Part],
    all: &[Group],
    window: Option<i64>,
    points: usize,
    data: &mut StreamData,
) -> Result<(), super::parquet_read::ReadError> {
    let start = all
        .iter()
        .filter_map(|g| g.time.map(|t| t.0))
        .min()
        .unwrap_or(0);
    let end = all
        .iter()
        .filter_map(|g| g.time.map(|t| t.1))
        .max()
        .unwrap_or(0);
    let from = window.map_or(start, |w| (end - w).max(start));
    let chosen: Vec<&Group> = all
        .iter()
        .filter(|g| g.time.is_none_or(|(_, hi)| hi >= from))
        .collect();
    let rows: u64 = chosen.iter().map(|g| g.rows).sum();
    let mut d = Decimator::new(from, end + 1, points, data.picked.len());
    if rows > READ_ROWS_MAX {
        data.source = "parquet statistics".into();
        for g in &chosen {
            let Some((t, _)) = g.time else { continue };
            for (i, c) in data.picked.iter().enumerate() {
                if let Some((lo, hi)) = value_range(&parts[g.part], g.group, &c.name) {
                    d.add_envelope(i, t.max(from), lo, hi, None);
                }
            }
        }
    } else {
        let mut names: Vec<&str> = vec![ensemble_actors::batch::TIMESTAMP_COLUMN];
        names.extend(data.picked.iter().map(|c| c.name.as_str()));
        for (p, part) in parts.iter().enumerate() {
            let ids: Vec<usize> = chosen
                .iter()
                .filter(|g| g.part == p)
                .map(|g| g.group)
                .collect();
            if ids.is_empty() {
                continue;
            }
            for b in read(part, ids, &names)? {
                decimate_batch(&mut d, &b, &data.picked);
            }
        }
    }
    let out = d.finish();
    data.from_ns = from;
    data.to_ns = end;
    data.bucket_ns = out.bucket_ns;
    data.t_ns = out.t_ns;
    data.series = out.series;
    Ok(())
}

fn empty(name: &str) -> StreamData {
    StreamData::empty(name, "parquet")
}
