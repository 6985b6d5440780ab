//! Reading back what ingest wrote: the `seq` ranges of a part, and how complete a run
//! directory is against its sinks' end messages.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;
use ensemble_actors::sinks::nats::codec::RunEnd;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::error::{StoreError, io_err};

/// The `seq` ranges held by a Parquet part, read from its `seq` column.
pub fn read_seq_ranges(path: &Path) -> Result<Vec<(u64, u64)>, StoreError> {
    let read_err = |message: String| StoreError::ReadBack {
        path: path.to_path_buf(),
        message,
    };
    let file = File::open(path).map_err(io_err(path))?;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| read_err(e.to_string()))?;
    let column = builder
        .parquet_schema()
        .columns()
        .iter()
        .position(|c| c.name() == ensemble_actors::batch::SEQ_COLUMN)
        .ok_or_else(|| read_err("no seq column".to_string()))?;
    let mask = ProjectionMask::leaves(builder.parquet_schema(), [column]);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| read_err(e.to_string()))?;
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| read_err(e.to_string()))?;
        let seq = batch.column(0).as_primitive::<UInt64Type>();
        for &s in seq.values() {
            match ranges.last_mut() {
                Some((_, end)) if *end == s => *end += 1,
                _ => ranges.push((s, s + 1)),
            }
        }
    }
    Ok(ranges)
}

/// How complete a run directory is: per stream, what the sinks published and what the parts
/// (of every worker) hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunCheck {
    /// Per stream.
    pub streams: BTreeMap<String, StreamCheck>,
    /// Whether an end message (`end-*.json`) is there.
    pub ended: bool,
}

/// One stream of a [`RunCheck`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamCheck {
    /// Rows the sink says JetStream acknowledged (0 before its end message).
    pub published: u64,
    /// Rows the sink could not deliver.
    pub undelivered: u64,
    /// Rows in all parts.
    pub rows: u64,
    /// Distinct `seq` in all parts.
    pub distinct: u64,
    /// Whether the distinct `seq` are exactly `0..rows` (no gap).
    pub contiguous: bool,
}

impl RunCheck {
    /// Whether the run ended and every stream holds every published row exactly once.
    pub fn is_complete(&self) -> bool {
        self.ended
            && self
                .streams
                .values()
                .all(|s| s.rows == s.distinct && s.distinct == s.published && s.contiguous)
    }
}

/// Reads a run directory written by ingest workers and checks it against the end messages.
pub fn check_run(run_dir: &Path) -> Result<RunCheck, StoreError> {
    let mut check = RunCheck::default();
    for entry in fs::read_dir(run_dir).map_err(io_err(run_dir))? {
        let path = entry.map_err(io_err(run_dir))?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.starts_with("end-") && name.ends_with(".json") {
            let text = fs::read(&path).map_err(io_err(&path))?;
            let end: RunEnd = serde_json::from_slice(&text).map_err(|e| StoreError::ReadBack {
                path: path.clone(),
                message: e.to_string(),
            })?;
            check.ended = true;
            for s in end.streams {
                let entry = check.streams.entry(s.stream).or_default();
                entry.published += s.rows_published;
                entry.undelivered += s.rows_undelivered;
            }
        } else if path.is_dir() {
            let mut seqs = Vec::new();
            for part in fs::read_dir(&path).map_err(io_err(&path))? {
                let part = part.map_err(io_err(&path))?.path();
                if part.extension().is_some_and(|x| x == "parquet") {
                    for (s, e) in read_seq_ranges(&part)? {
                        seqs.extend(s..e);
                    }
                }
            }
            let entry = check.streams.entry(name).or_default();
            entry.rows = seqs.len() as u64;
            seqs.sort_unstable();
            seqs.dedup();
            entry.distinct = seqs.len() as u64;
            entry.contiguous = seqs.iter().enumerate().all(|(i, s)| *s == i as u64);
        }
    }
    Ok(check)
}
