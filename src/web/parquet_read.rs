//! A small reader of a run's finished Parquet parts for `ensemble serve`: footers first, row
//! group statistics to choose (or stand in for) row groups, projection to read only the
//! columns a plot needs.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use ensemble_actors::batch::TIMESTAMP_COLUMN;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::ParquetMetaData;
use parquet::file::statistics::Statistics;

/// Why a part could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file system.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// Not valid Parquet (or not what a sink writes).
    #[error("{path}: {source}")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// What the reader said.
        source: parquet::errors::ParquetError,
    },
}

/// One finished part: its footer and Arrow schema (the data is read later, if at all).
pub struct Part {
    /// The file.
    pub path: PathBuf,
    /// Its footer.
    pub metadata: Arc<ParquetMetaData>,
    /// Its Arrow schema (with the channels' units).
    pub schema: SchemaRef,
}

/// The finished parts of a stream directory, in order, and how many unfinished (`.partial`)
/// parts lie beside them. A missing directory has neither.
pub fn stream_parts(dir: &Path) -> Result<(Vec<Part>, usize), ReadError> {
    let io = |source| ReadError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(io(e)),
    };
    let mut finished = Vec::new();
    let mut partial = 0;
    for entry in entries {
        let path = entry.map_err(io)?.path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.ends_with(".partial") {
            partial += 1;
        } else if name.ends_with(".parquet") {
            finished.push(path);
        }
    }
    finished.sort();
    let parts = finished
        .into_iter()
        .map(|path| open_part(&path))
        .collect::<Result<_, _>>()?;
    Ok((parts, partial))
}

fn open_part(path: &Path) -> Result<Part, ReadError> {
    let builder = builder(path)?;
    Ok(Part {
        path: path.to_path_buf(),
        metadata: builder.metadata().clone(),
        schema: builder.schema().clone(),
    })
}

fn builder(path: &Path) -> Result<ParquetRecordBatchReaderBuilder<File>, ReadError> {
    let file = File::open(path).map_err(|source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|source| ReadError::Parquet {
        path: path.to_path_buf(),
        source,
    })
}

/// A row group: where it is, its rows and its time range (from statistics).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Group {
    /// Index of the part in the list.
    pub part: usize,
    /// Index of the row group in the part.
    pub group: usize,
    /// Rows in it.
    pub rows: u64,
    /// Smallest and largest timestamp, if the statistics have them.
    pub time: Option<(i64, i64)>,
}

/// Index of a column among the Parquet leaves (flat streams: the same as the Arrow field).
fn leaf_index(metadata: &ParquetMetaData, name: &str) -> Option<usize> {
    metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().parts().first().is_some_and(|p| p == name))
}

/// Every row group of `parts` with its time range.
pub fn groups(parts: &[Part]) -> Vec<Group> {
    let mut out = Vec::new();
    for (p, part) in parts.iter().enumerate() {
        let ts = leaf_index(&part.metadata, TIMESTAMP_COLUMN);
        for (g, rg) in part.metadata.row_groups().iter().enumerate() {
            let time = ts.and_then(|i| match rg.column(i).statistics() {
                Some(Statistics::Int64(s)) => Some((*s.min_opt()?, *s.max_opt()?)),
                _ => None,
            });
            out.push(Group {
                part: p,
                group: g,
                rows: rg.num_rows().max(0) as u64,
                time,
            });
        }
    }
    out
}

/// Smallest and largest value of a Float64 column in a row group, from its statistics.
pub fn value_range(part: &Part, group: usize, column: &str) -> Option<(f64, f64)> {
    let i = leaf_index(&part.metadata, column)?;
    match part
        .metadata
        .row_groups()
        .get(group)?
        .column(i)
        .statistics()
    {
        Some(Statistics::Double(s)) => Some((*s.min_opt()?, *s.max_opt()?)),
        Some(Statistics::Float(s)) => Some((f64::from(*s.min_opt()?), f64::from(*s.max_opt()?))),
        _ => None,
    }
}

/// Reads row groups `groups` of `part`, only the columns `columns` (top-level names).
pub fn read(
    part: &Part,
    groups: Vec<usize>,
    columns: &[&str],
) -> Result<Vec<RecordBatch>, ReadError> {
    let err = |source| ReadError::Parquet {
        path: part.path.clone(),
        source,
    };
    let builder = builder(&part.path)?;
    let roots: Vec<usize> = columns
        .iter()
        .filter_map(|c| part.schema.index_of(c).ok())
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
    let reader = builder
        .with_row_groups(groups)
        .with_projection(mask)
        .build()
        .map_err(err)?;
    reader.map(|b| b.map_err(|e| err(e.into()))).collect()
}
