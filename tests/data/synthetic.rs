//! Run directories made by hand: a Parquet part with chosen values (NaN, infinities, nulls)
//! and row groups, and copies of a real run with a changed manifest.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{Float64Array, RecordBatch, TimestampNanosecondArray, UInt64Array};
use ensemble_actors::batch::{ChannelSpec, stream_schema};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

/// First timestamp of the synthetic stream (2025-12-01T00:00:00Z) and its spacing (1 ms).
pub const T0: i64 = 1_764_547_200_000_000_000;
/// Rows of the synthetic stream, in row groups of [`GROUP_ROWS`].
pub const ROWS: usize = 3000;
/// Rows per row group.
pub const GROUP_ROWS: usize = 1000;

/// A run directory `dir/run` with one stream `s` of [`ROWS`] rows (`v` in V, `w` in A) whose
/// values include NaN, +inf, -inf and nulls, in row groups of [`GROUP_ROWS`]; no manifest.
pub fn special_values_run(dir: &Path) -> PathBuf {
    let run = dir.join("run");
    let stream = run.join("s");
    std::fs::create_dir_all(&stream).expect("mkdir");
    let schema = stream_schema(&[ChannelSpec::new("v", "V"), ChannelSpec::new("w", "A")]);
    let v: Float64Array = (0..ROWS)
        .map(|i| match i % 7 {
            0 => Some(f64::NAN),
            1 => Some(f64::INFINITY),
            2 => Some(f64::NEG_INFINITY),
            3 => None,
            _ => Some(i as f64 * 0.1 - 17.0),
        })
        .collect();
    let w: Float64Array = (0..ROWS).map(|i| Some((i as f64).sqrt() * 1e-7)).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(
                TimestampNanosecondArray::from_iter_values(
                    (0..ROWS).map(|i| T0 + i as i64 * 1_000_000),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(UInt64Array::from_iter_values(0..ROWS as u64)),
            Arc::new(v),
            Arc::new(w),
        ],
    )
    .expect("valid batch");
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(GROUP_ROWS))
        .build();
    let file = File::create(stream.join("part-000000.parquet")).expect("create");
    let mut writer = ArrowWriter::try_new(file, schema, Some(props)).expect("writer");
    writer.write(&batch).expect("write");
    writer.close().expect("close");
    run
}

/// Copies a run directory's files (not its subdirectories' subdirectories).
pub fn copy_run(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read run") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            for inner in std::fs::read_dir(&path).expect("read stream") {
                let inner = inner.expect("entry").path();
                std::fs::copy(&inner, target.join(inner.file_name().expect("name"))).expect("copy");
            }
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

/// Every file under `dir` with its bytes, sorted by path: for "nothing changed" checks. A
/// socket (a killed run's `control.sock`) has no bytes to read; it is listed empty.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                files.push((path.clone(), Vec::new()));
                stack.push(path);
            } else if !path.is_file() {
                files.push((path, Vec::new()));
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                files.push((path, bytes));
            }
        }
    }
    files.sort();
    files
}
