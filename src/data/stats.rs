//! What a Parquet footer's row-group statistics say about a part: its time range, which row
//! groups a time window touches, and its sizes before and after compression.

use ensemble_actors::batch::TIMESTAMP_COLUMN;
use parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};
use parquet::file::statistics::Statistics;

/// The `timestamp` column's index in the file, if it has one.
fn timestamp_index(metadata: &ParquetMetaData) -> Option<usize> {
    metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().string() == TIMESTAMP_COLUMN)
}

/// `(min, max)` of a row group's timestamps (ns since the epoch) from its statistics.
fn row_group_range(group: &RowGroupMetaData, column: usize) -> Option<(i64, i64)> {
    match group.column(column).statistics()? {
        Statistics::Int64(s) => Some((*s.min_opt()?, *s.max_opt()?)),
        _ => None,
    }
}

/// `(min, max)` of the file's timestamps from its row-group statistics; `None` without them
/// (an empty file, or statistics turned off).
pub fn timestamp_range(metadata: &ParquetMetaData) -> Option<(i64, i64)> {
    let column = timestamp_index(metadata)?;
    metadata
        .row_groups()
        .iter()
        .filter_map(|g| row_group_range(g, column))
        .reduce(|(a, b), (c, d)| (a.min(c), b.max(d)))
}

/// The row groups whose timestamps may fall in `from..=to` (bounds in ns; `None` is open).
/// A row group without statistics is always kept: pruning only ever skips what it can prove
/// is outside.
pub fn row_groups_in_range(
    metadata: &ParquetMetaData,
    from: Option<i64>,
    to: Option<i64>,
) -> Vec<usize> {
    let column = timestamp_index(metadata);
    (0..metadata.num_row_groups())
        .filter(|&i| {
            let Some((min, max)) = column.and_then(|c| row_group_range(metadata.row_group(i), c))
            else {
                return true;
            };
            from.is_none_or(|f| max >= f) && to.is_none_or(|t| min <= t)
        })
        .collect()
}

/// `(uncompressed, compressed)` bytes of the file's column data.
pub fn sizes(metadata: &ParquetMetaData) -> (u64, u64) {
    metadata.row_groups().iter().fold((0, 0), |(u, c), g| {
        (
            u + g.total_byte_size().max(0) as u64,
            c + g.compressed_size().max(0) as u64,
        )
    })
}
