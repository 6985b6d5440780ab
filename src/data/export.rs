//! `ensemble export`: a run's streams as CSV, NDJSON, Arrow IPC or Parquet, one batch at a
//! time (memory stays flat however big the run), with row groups outside `--from/--to`
//! skipped by their statistics.
//!
//! Output goes to a temporary file (or directory, for several streams) beside the target,
//! renamed into place only once everything is written: an error leaves nothing behind.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use ensemble_actors::batch::{SEQ_COLUMN, TIMESTAMP_COLUMN};

use super::error::DataError;
use super::export_writers::{BatchWriter, ExportFormat, TimeFormat, writer_for};
use super::read::{for_each_batch, part_schema};
use super::rundir::{StreamFiles, check_run_dir, read_footer};
use super::stats::timestamp_range;

/// What to export and how.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Streams to export (empty: all of them).
    pub streams: Vec<String>,
    /// Channel columns to keep (empty: all); `timestamp` and `seq` are always kept.
    pub channels: Vec<String>,
    /// Only rows at or after this time (ns since the epoch).
    pub from: Option<i64>,
    /// Only rows at or before this time (ns since the epoch).
    pub to: Option<i64>,
    /// The output format.
    pub format: ExportFormat,
    /// How times are written.
    pub time: TimeFormat,
    /// CSV: a second header row with each column's unit.
    pub unit_row: bool,
    /// Where to write: a file (one stream), a directory to create (several), or `None` for
    /// standard output (one stream).
    pub out: Option<PathBuf>,
}

/// What an export wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportSummary {
    /// Rows written, over all streams.
    pub rows: u64,
    /// Row groups skipped by their statistics.
    pub row_groups_skipped: usize,
    /// Files written (empty for standard output).
    pub files: Vec<PathBuf>,
}

/// Exports from `run_dir` as `options` say; see the module docs.
pub fn export(run_dir: &Path, options: &ExportOptions) -> Result<ExportSummary, DataError> {
    if let (Some(from), Some(to)) = (options.from, options.to) {
        if from > to {
            return Err(DataError::Usage(format!(
                "--from {} is after --to {}",
                fmt_ns(from),
                fmt_ns(to)
            )));
        }
    }
    let (manifest, all) = check_run_dir(run_dir)?;
    let streams = select_streams(run_dir, &all, &options.streams)?;
    // Every footer is read before anything is written: a truncated part fails here. Without a
    // manifest, relative times count from the first row of the data.
    let mut first_row: Option<i64> = None;
    for part in streams.iter().flat_map(|s| &s.parts) {
        if let Some((min, _)) = timestamp_range(&read_footer(part)?) {
            first_row = Some(first_row.map_or(min, |f| f.min(min)));
        }
    }
    let run_start = manifest
        .as_ref()
        .and_then(|m| m.started_at.timestamp_nanos_opt())
        .or(first_row);
    let mut summary = ExportSummary::default();
    match (&options.out, streams.as_slice()) {
        (None, [one]) => {
            let stdout = std::io::stdout();
            export_stream(one, options, run_start, stdout, &mut summary)
                .map_err(|e| e.at(Path::new("-")))?;
        }
        (None, _) => {
            return Err(DataError::Usage(format!(
                "{} streams selected: standard output takes one (--stream NAME), or give \
                 --out DIR for one file per stream",
                streams.len()
            )));
        }
        (Some(out), [one]) if !out.is_dir() => {
            write_atomically(out, |tmp| {
                let file = File::create(tmp).map_err(DataError::write(tmp))?;
                export_stream(one, options, run_start, file, &mut summary).map_err(|e| e.at(tmp))
            })?;
            summary.files.push(out.clone());
        }
        (Some(out), _) => {
            if out.exists() {
                return Err(DataError::Usage(format!(
                    "{}: exists; several streams are written into a new directory",
                    out.display()
                )));
            }
            let tmp = temp_path(out);
            std::fs::create_dir_all(&tmp).map_err(DataError::write(&tmp))?;
            let result = streams.iter().try_for_each(|stream| {
                let name = format!("{}.{}", stream.stream, options.format.extension());
                let path = tmp.join(&name);
                let file = File::create(&path).map_err(DataError::write(&path))?;
                export_stream(stream, options, run_start, file, &mut summary)
                    .map_err(|e| e.at(&path))?;
                summary.files.push(out.join(name));
                Ok(())
            });
            if let Err(e) =
                result.and_then(|()| std::fs::rename(&tmp, out).map_err(DataError::write(out)))
            {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        }
    }
    Ok(summary)
}

/// The streams named in `wanted` (all when empty), or an error listing the ones there are.
fn select_streams(
    run_dir: &Path,
    all: &[StreamFiles],
    wanted: &[String],
) -> Result<Vec<StreamFiles>, DataError> {
    if wanted.is_empty() {
        return Ok(all.to_vec());
    }
    wanted
        .iter()
        .map(|name| {
            all.iter()
                .find(|s| s.stream == *name || s.relative.to_string_lossy() == *name)
                .cloned()
                .ok_or_else(|| {
                    let names: Vec<&str> = all.iter().map(|s| s.stream.as_str()).collect();
                    DataError::Usage(format!(
                        "{}: no stream `{name}` (streams: {})",
                        run_dir.display(),
                        names.join(", ")
                    ))
                })
        })
        .collect()
}

/// An error while writing a stream: the output's, or a part's.
enum StreamError {
    /// Reading a part failed (named by the error).
    Input(DataError),
    /// Writing failed.
    Output(std::io::Error),
}

impl StreamError {
    fn at(self, out: &Path) -> DataError {
        match self {
            Self::Input(e) => e,
            Self::Output(source) => DataError::Write {
                path: out.to_path_buf(),
                source,
            },
        }
    }
}

impl From<DataError> for StreamError {
    fn from(e: DataError) -> Self {
        Self::Input(e)
    }
}

impl From<std::io::Error> for StreamError {
    fn from(e: std::io::Error) -> Self {
        Self::Output(e)
    }
}

fn export_stream(
    stream: &StreamFiles,
    options: &ExportOptions,
    run_start: Option<i64>,
    out: impl Write + Send + 'static,
    summary: &mut ExportSummary,
) -> Result<(), StreamError> {
    let mut writer: Option<Box<dyn BatchWriter>> = None;
    let mut out = Some(BufWriter::with_capacity(1 << 20, out));
    let mut t0 = run_start;
    for part in &stream.parts {
        let schema = part_schema(part)?;
        for wanted in &options.channels {
            if schema.field_with_name(wanted).is_err() {
                return Err(DataError::Usage(format!(
                    "{}: no channel `{wanted}` in stream `{}`",
                    part.display(),
                    stream.stream
                ))
                .into());
            }
        }
    }
    let keep = |name: &str| {
        name == TIMESTAMP_COLUMN
            || name == SEQ_COLUMN
            || options.channels.is_empty()
            || options.channels.iter().any(|c| c == name)
    };
    let dir = stream.relative.clone();
    summary.row_groups_skipped += for_each_batch(
        &stream.parts,
        &keep,
        options.from,
        options.to,
        |batch| -> Result<(), StreamError> {
            let batch =
                clip(batch, options.from, options.to).map_err(|e| DataError::parquet(&dir, e))?;
            if batch.num_rows() == 0 {
                return Ok(());
            }
            if t0.is_none() {
                t0 = first_timestamp(&batch);
            }
            let w = match &mut writer {
                Some(w) => w,
                none => {
                    let sink = out.take().ok_or_else(|| {
                        std::io::Error::other("the output was handed to a writer already")
                    })?;
                    none.insert(writer_for(
                        options.format,
                        options.time,
                        t0.unwrap_or(0),
                        options.unit_row,
                        batch.schema(),
                        Box::new(sink),
                    )?)
                }
            };
            w.write(&batch)?;
            summary.rows += batch.num_rows() as u64;
            Ok(())
        },
    )?;
    match writer {
        Some(w) => w.finish()?,
        None => {
            // No row in range: still a valid, empty file with the header.
            if let (Some(sink), Some(part)) = (out.take(), stream.parts.first()) {
                let schema = part_schema(part)?;
                let kept: Vec<usize> = (0..schema.fields().len())
                    .filter(|&i| keep(schema.field(i).name()))
                    .collect();
                let projected = schema
                    .project(&kept)
                    .map_err(|e| DataError::parquet(part, e))?;
                let empty = RecordBatch::new_empty(std::sync::Arc::new(projected));
                let w = writer_for(
                    options.format,
                    options.time,
                    t0.unwrap_or(0),
                    options.unit_row,
                    empty.schema(),
                    Box::new(sink),
                )?;
                w.finish()?;
            }
        }
    }
    Ok(())
}

/// The rows of `batch` with timestamps in `from..=to`.
fn clip(
    batch: &RecordBatch,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<RecordBatch, arrow_schema::ArrowError> {
    if from.is_none() && to.is_none() {
        return Ok(batch.clone());
    }
    let Some(ts) = batch
        .column_by_name(TIMESTAMP_COLUMN)
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
    else {
        return Ok(batch.clone());
    };
    let keep: arrow_array::BooleanArray = ts
        .values()
        .iter()
        .map(|&t| Some(from.is_none_or(|f| t >= f) && to.is_none_or(|e| t <= e)))
        .collect();
    arrow_select::filter::filter_record_batch(batch, &keep)
}

fn first_timestamp(batch: &RecordBatch) -> Option<i64> {
    batch
        .column_by_name(TIMESTAMP_COLUMN)
        .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
        .and_then(|t| t.values().first().copied())
}

/// A sibling of `target` to write into before the rename.
fn temp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.{}.partial", std::process::id()))
}

/// Runs `write` on a temporary file beside `target`, then renames it over `target`; on error
/// the temporary file is removed and `target` is untouched.
pub(crate) fn write_atomically(
    target: &Path,
    write: impl FnOnce(&Path) -> Result<(), DataError>,
) -> Result<(), DataError> {
    let tmp = temp_path(target);
    let result =
        write(&tmp).and_then(|()| std::fs::rename(&tmp, target).map_err(DataError::write(target)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn fmt_ns(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true)
}

/// Parses `--from`/`--to`: RFC 3339, a UTC date, or `+SECONDS` after the run's start.
pub fn parse_bound(text: &str, run_start_ns: Option<i64>) -> Result<i64, DataError> {
    if let Some(offset) = text.strip_prefix('+') {
        let seconds: f64 = offset
            .parse()
            .map_err(|_| DataError::Usage(format!("`{text}`: expected +SECONDS, e.g. +2.5")))?;
        let start = run_start_ns.ok_or_else(|| {
            DataError::Usage(format!("`{text}`: the run has no manifest to count from"))
        })?;
        return Ok(start + (seconds * 1e9) as i64);
    }
    let t = super::catalog::parse_time(text).map_err(DataError::Usage)?;
    t.timestamp_nanos_opt()
        .ok_or_else(|| DataError::Usage(format!("`{text}`: out of range")))
}
