//! Helpers shared by the Parquet sink's unit tests.

use std::fs::File;
use std::path::Path;

use arrow_array::{RecordBatch, UInt64Array};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{ParquetSinkConfig, PartSettings, StreamPartWriter};
use crate::batch::DataBatch;
use crate::instruments::sim::{SimGenerator, SimInstrumentConfig};

/// A writer of stream `s` into `run/s` with `config`, and a 100 Hz generator of two channels
/// for its rows.
pub(super) fn sim_writer(
    run: &Path,
    config: &ParquetSinkConfig,
) -> (StreamPartWriter, SimGenerator) {
    sim_writer_with(
        run,
        PartSettings::from_config(config, vec![]).expect("settings"),
    )
}

/// [`sim_writer`] with `settings` as given.
pub(super) fn sim_writer_with(
    run: &Path,
    settings: PartSettings,
) -> (StreamPartWriter, SimGenerator) {
    let cfg: SimInstrumentConfig =
        serde_json::from_str(r#"{"rate_hz": 100.0, "channels": ["a", "b"]}"#).expect("valid");
    let g = SimGenerator::new(&cfg, 0, 0);
    let w = StreamPartWriter::new(run, "s".into(), "s".into(), g.schema().clone(), settings)
        .expect("writer");
    (w, g)
}

/// Writes the next `rows` rows of `g` to `writer`, as stream `s`.
pub(super) fn write_rows(writer: &mut StreamPartWriter, g: &mut SimGenerator, rows: usize) {
    let first = g.next_seq();
    writer
        .write(&DataBatch::new("s".into(), first, g.generate(rows)))
        .expect("write");
}

/// The `seq` column of `batches`, in order.
pub(super) fn seqs(batches: &[RecordBatch]) -> Vec<u64> {
    batches
        .iter()
        .flat_map(|b| {
            let seq = b.column(1).as_any().downcast_ref::<UInt64Array>();
            seq.expect("seq is u64").values().to_vec()
        })
        .collect()
}

/// The `seq` column of the Parquet file at `path`, in order.
pub(super) fn seqs_of(path: &Path) -> Vec<u64> {
    let file = File::open(path).expect("part exists");
    let batches: Vec<RecordBatch> = ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("valid parquet")
        .build()
        .expect("reader")
        .map(|b| b.expect("batch"))
        .collect();
    seqs(&batches)
}
