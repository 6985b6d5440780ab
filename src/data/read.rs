//! Reading parts batch by batch: only the columns asked for, only the row groups whose
//! statistics may hold the time window, one batch at a time.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::error::DataError;
use super::stats::row_groups_in_range;

/// Rows per batch read: large enough to amortize per-batch work, small enough that a batch of
/// a few channels stays a few MB.
pub const READ_BATCH_ROWS: usize = 65_536;

/// Calls `each` with every batch of `parts`, in order, holding the columns `keep` accepts (by
/// name), from the row groups that may hold times in `from..=to` (rows outside the window
/// are still in the batches: clip them if that matters). Returns the row groups skipped.
///
/// A part that cannot be read stops it with an error naming the part.
pub fn for_each_batch<E: From<DataError>>(
    parts: &[PathBuf],
    keep: &dyn Fn(&str) -> bool,
    from: Option<i64>,
    to: Option<i64>,
    mut each: impl FnMut(&RecordBatch) -> Result<(), E>,
) -> Result<usize, E> {
    let mut skipped = 0;
    for part in parts {
        let file = File::open(part).map_err(DataError::read(part))?;
        let builder = ParquetRecordBatchReaderBuilder::try_new(file)
            .map_err(|e| DataError::parquet(part, e))?;
        let roots: Vec<usize> = builder
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| keep(f.name()))
            .map(|(i, _)| i)
            .collect();
        let groups = row_groups_in_range(builder.metadata(), from, to);
        skipped += builder.metadata().num_row_groups() - groups.len();
        let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
        let reader = builder
            .with_row_groups(groups)
            .with_projection(mask)
            .with_batch_size(READ_BATCH_ROWS)
            .build()
            .map_err(|e| DataError::parquet(part, e))?;
        for batch in reader {
            each(&batch.map_err(|e| DataError::parquet(part, e))?)?;
        }
    }
    Ok(skipped)
}

/// The Arrow schema of a part (units and other field metadata included), from its footer.
pub fn part_schema(part: &Path) -> Result<SchemaRef, DataError> {
    let file = File::open(part).map_err(DataError::read(part))?;
    Ok(ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| DataError::parquet(part, e))?
        .schema()
        .clone())
}
