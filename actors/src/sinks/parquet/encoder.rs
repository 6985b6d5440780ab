//! The Parquet encoder of one part file: Arrow batches in, row groups out, with the columns of
//! a large batch encoded (and compressed) in parallel. Plain, no actors; it runs on a writer
//! thread and borrows the rayon pool for the columns.
//!
//! Built on arrow-rs's column-writer API (`ArrowRowGroupWriterFactory`, one
//! `ArrowColumnWriter` per leaf column, `compute_leaves`, `SerializedFileWriter::next_row_group`)
//! instead of [`ArrowWriter`], which encodes the columns of a batch one after another: for one
//! fast stream that leaves every core but one idle.
//!
//! Two things keep both cores busy for one fast stream: each field's leaves are computed inside
//! its own parallel task (not on the calling thread before the tasks start), and a row group
//! that such a stream fills is written to the file while the next one's first columns encode
//! (the write was 10.8% of the samples, on the calling thread alone; BENCHMARKS.md, issue 16).
//!
//! A column whose compression saves too little is stored uncompressed for a few row groups
//! (`codec_choice.rs`): such row groups get their column writers from a second factory, with
//! the part's properties but no compression for the columns chosen.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_array::{RecordBatch, new_empty_array};
use arrow_schema::SchemaRef;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{
    ArrowColumnChunk, ArrowColumnWriter, ArrowRowGroupWriterFactory, compute_leaves,
};
use parquet::basic::Compression;
use parquet::errors::ParquetError;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use rayon::prelude::*;

use super::checkpoint::CheckpointLog;
use super::codec_choice::{CodecChoice, factory_storing_raw};
use super::error::{SinkError, io_err};

/// Runs of at least this many rows have their columns encoded in parallel; smaller ones are
/// encoded on the calling thread (handing 100 rows to other threads costs more than encoding
/// them).
pub(super) const PARALLEL_MIN_ROWS: usize = 4096;
/// Batches are queued (not copied) until this many rows are waiting, then encoded in one
/// parallel run: one hand-over to the pool per 32,768 rows, not per batch.
const DISPATCH_ROWS: usize = 131_072;

/// Writes one Parquet file from Arrow batches, closing a row group every `row_group_rows` rows
/// (the writer properties' `max_row_group_row_count`) or once its encoded pages take about
/// `max_row_group_bytes` (when set), whichever comes first: the open row group's pages are held
/// in memory until it closes.
///
/// The verbs are those of [`ArrowWriter`]: [`write`](Self::write) queues or encodes,
/// [`flush`](Self::flush) closes the row group, [`finish`](Self::finish) writes the footer.
pub(super) struct PartEncoder {
    /// The file, named in errors.
    path: PathBuf,
    file: SerializedFileWriter<File>,
    factory: ArrowRowGroupWriterFactory,
    /// Column writers for row groups where the columns marked are stored uncompressed, made
    /// when such a row group first comes (kept for the next with the same columns).
    raw_factory: Option<(Vec<bool>, ArrowRowGroupWriterFactory)>,
    /// Which columns of the next row group are compressed.
    codecs: CodecChoice,
    schema: SchemaRef,
    /// How many leaf columns (column writers) each field of `schema` has, in order.
    leaves_per_field: Vec<usize>,
    /// Column writers of the open row group (none between row groups).
    columns: Option<Vec<ArrowColumnWriter>>,
    /// A closed row group not in the file yet: a fast stream's row group is written while the
    /// next one's first rows encode, or when [`flush`](Self::flush) is called, whichever is
    /// first. Only a row group closed by a batch worth encoding in parallel waits here: a slow
    /// stream's next rows may be far off, and 1,000 of them would hold a row group each.
    closed: Option<Vec<ArrowColumnChunk>>,
    /// Rows in the open row group, encoded or queued.
    buffered_rows: usize,
    /// Batches of the open row group not encoded yet, and their rows.
    queued: Vec<RecordBatch>,
    queued_rows: usize,
    row_group_rows: usize,
    row_group_bytes: usize,
    /// Row groups closed so far (the index of the next one).
    row_groups: usize,
    /// Where closed row groups are recorded, if the part keeps checkpoints.
    checkpoints: Option<CheckpointLog>,
}

impl PartEncoder {
    /// Creates `path` and writes the Parquet header; `props` as for an [`ArrowWriter`]. With
    /// `checkpoints`, every closed row group is handed to the kernel and recorded there (see
    /// `checkpoint.rs`). A column chunk whose compression saved less than `min_saving` of its
    /// bytes makes that column uncompressed for a few row groups (0: always compressed).
    pub(super) fn create(
        path: &Path,
        schema: SchemaRef,
        props: WriterProperties,
        checkpoints: Option<PathBuf>,
        min_saving: f64,
    ) -> Result<Self, SinkError> {
        let row_group_rows = props.max_row_group_row_count().unwrap_or(usize::MAX).max(1);
        let row_group_bytes = props.max_row_group_bytes().unwrap_or(usize::MAX);
        let file = File::create(path).map_err(io_err(path))?;
        // `ArrowWriter` converts the schema and stores it in the file metadata the way readers
        // expect; we then take its file writer and column-writer factory over.
        let (file, factory) = ArrowWriter::try_new(file, schema.clone(), Some(props))
            .and_then(ArrowWriter::into_serialized_writer)
            .map_err(pq_err(path))?;
        let leaves_per_field = schema
            .fields()
            .iter()
            .map(|f| compute_leaves(f, &new_empty_array(f.data_type())).map(|l| l.len()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(pq_err(path))?;
        let columns = leaves_per_field.iter().sum();
        Ok(Self {
            path: path.to_path_buf(),
            file,
            factory,
            raw_factory: None,
            codecs: CodecChoice::new(columns, min_saving),
            schema,
            leaves_per_field,
            columns: None,
            closed: None,
            buffered_rows: 0,
            queued: Vec::new(),
            queued_rows: 0,
            row_group_rows,
            row_group_bytes,
            row_groups: 0,
            checkpoints: checkpoints.map(CheckpointLog::new),
        })
    }

    /// Takes a batch and closes row groups as they fill. A large batch is queued and encoded in
    /// parallel once the queue is long enough; a small one is encoded at once on this thread
    /// (queueing the 100-row batches of 1,000 streams would hold their raw rows in memory).
    pub(super) fn write(&mut self, batch: &RecordBatch) -> Result<(), SinkError> {
        let step = self.step_rows(batch);
        let mut offset = 0;
        while offset < batch.num_rows() {
            let take = (self.row_group_rows - self.buffered_rows)
                .min(batch.num_rows() - offset)
                .min(step);
            self.queued
                .push(if offset == 0 && take == batch.num_rows() {
                    batch.clone()
                } else {
                    batch.slice(offset, take)
                });
            self.queued_rows += take;
            self.buffered_rows += take;
            offset += take;
            if take < PARALLEL_MIN_ROWS || self.queued_rows >= DISPATCH_ROWS {
                self.encode_queued()?;
            }
            if self.buffered_rows >= self.row_group_rows
                || self.encoded_bytes() >= self.row_group_bytes
            {
                self.close_row_group()?;
                if take < PARALLEL_MIN_ROWS {
                    self.write_closed()?;
                }
            }
        }
        Ok(())
    }

    /// Most rows of `batch` taken in one step. Queued rows count toward the row group's byte
    /// cap only once encoded, so a part whose row group's rows would take more than that cap
    /// unencoded (a sink of many streams shares one budget: 128 KiB each for 1,000 streams)
    /// takes a large batch in slices below [`PARALLEL_MIN_ROWS`], each encoded at once, and its
    /// row group closes at the cap (queued, 1,000 streams × 4 channels × 5 kHz in 1 s batches
    /// held 5.2 GiB against a 1 GiB cap). One fast stream (128 MiB cap) takes it whole, to encode
    /// its columns in parallel.
    fn step_rows(&self, batch: &RecordBatch) -> usize {
        let rows = batch.num_rows();
        if self.row_group_bytes == usize::MAX || rows < PARALLEL_MIN_ROWS {
            return usize::MAX;
        }
        let bytes_per_row = (batch.get_array_memory_size() / rows).max(1);
        if self.row_group_rows.saturating_mul(bytes_per_row) > self.row_group_bytes {
            PARALLEL_MIN_ROWS - 1
        } else {
            usize::MAX
        }
    }

    /// Estimated encoded size of the open row group.
    fn encoded_bytes(&self) -> usize {
        self.columns.as_ref().map_or(0, |c| {
            c.iter()
                .map(ArrowColumnWriter::get_estimated_total_bytes)
                .sum()
        })
    }

    /// Encodes the queued batches, each field (its leaves computed and written) on its own task
    /// when there are enough rows; a closed row group waiting to be written is written meanwhile.
    fn encode_queued(&mut self) -> Result<(), SinkError> {
        if self.queued.is_empty() {
            return self.write_closed();
        }
        if self.columns.is_none() {
            self.columns = Some(self.column_writers().map_err(pq_err(&self.path))?);
        }
        let Self {
            path,
            file,
            schema,
            leaves_per_field,
            columns,
            closed,
            queued,
            queued_rows,
            checkpoints,
            ..
        } = self;
        let path: &Path = path;
        let columns = columns
            .as_mut()
            .expect("the column writers were made just above");
        if leaves_per_field.iter().sum::<usize>() != columns.len() {
            return Err(SinkError::Parquet {
                path: path.to_path_buf(),
                source: ParquetError::General(format!(
                    "{} leaf columns in the schema, {} column writers",
                    leaves_per_field.iter().sum::<usize>(),
                    columns.len()
                )),
            });
        }
        // The column writers of each field, in field order.
        let mut fields: Vec<(usize, &mut [ArrowColumnWriter])> =
            Vec::with_capacity(leaves_per_field.len());
        let mut rest = columns.as_mut_slice();
        for (i, &n) in leaves_per_field.iter().enumerate() {
            let (writers, after) = rest.split_at_mut(n);
            fields.push((i, writers));
            rest = after;
        }
        let queued: &[RecordBatch] = queued;
        let schema: &SchemaRef = schema;
        let encode = |(i, writers): &mut (usize, &mut [ArrowColumnWriter])| {
            let field = &schema.fields()[*i];
            queued.iter().try_for_each(|batch| {
                let leaves = compute_leaves(field, batch.column(*i))?;
                writers
                    .iter_mut()
                    .zip(&leaves)
                    .try_for_each(|(w, leaf)| w.write(leaf))
            })
        };
        let mut write = || match closed.take() {
            Some(chunks) => write_row_group(path, file, chunks, checkpoints.as_mut()),
            None => Ok(()),
        };
        let (written, encoded) = if *queued_rows >= PARALLEL_MIN_ROWS {
            rayon::join(write, || fields.par_iter_mut().try_for_each(encode))
        } else {
            (write(), fields.iter_mut().try_for_each(encode))
        };
        written?;
        encoded.map_err(pq_err(path))?;
        self.queued.clear();
        self.queued_rows = 0;
        Ok(())
    }

    /// Column writers for the next row group: from the part's properties, but uncompressed for
    /// the columns [`CodecChoice`] says. Each writer is made once, by the factory whose
    /// properties fit (a compressing writer made in vain costs a zstd context).
    fn column_writers(&mut self) -> Result<Vec<ArrowColumnWriter>, ParquetError> {
        let row_group = self.row_groups;
        let Some(raw) = self.codecs.raw_columns(row_group) else {
            return self.factory.create_column_writers(row_group);
        };
        let factory = match &mut self.raw_factory {
            Some((mask, f)) if *mask == raw => f,
            slot => {
                let f = factory_storing_raw(&self.file, &self.schema, &raw)?;
                &mut slot.insert((raw, f)).1
            }
        };
        factory.create_column_writers(row_group)
    }

    /// Closes the open row group (its last pages are compressed in parallel when it is large)
    /// and keeps it to be written: by the next [`encode_queued`](Self::encode_queued) or
    /// [`write_closed`](Self::write_closed). A row group closed before is written first.
    fn close_row_group(&mut self) -> Result<(), SinkError> {
        self.encode_queued()?;
        self.write_closed()?;
        let Some(columns) = self.columns.take() else {
            return Ok(());
        };
        let path = &self.path;
        let chunks = if self.buffered_rows >= PARALLEL_MIN_ROWS {
            columns
                .into_par_iter()
                .map(ArrowColumnWriter::close)
                .collect::<Result<Vec<_>, _>>()
        } else {
            columns.into_iter().map(ArrowColumnWriter::close).collect()
        }
        .map_err(pq_err(path))?;
        for (i, chunk) in chunks.iter().enumerate() {
            let meta = &chunk.close().metadata;
            if meta.compression() != Compression::UNCOMPRESSED {
                self.codecs.observe(
                    i,
                    self.row_groups,
                    meta.compressed_size(),
                    meta.uncompressed_size(),
                );
            }
        }
        self.closed = Some(chunks);
        self.buffered_rows = 0;
        self.row_groups += 1;
        Ok(())
    }

    /// Writes the closed row group to the file, if one is waiting (and records it in the
    /// checkpoints).
    fn write_closed(&mut self) -> Result<(), SinkError> {
        match self.closed.take() {
            Some(chunks) => write_row_group(
                &self.path,
                &mut self.file,
                chunks,
                self.checkpoints.as_mut(),
            ),
            None => Ok(()),
        }
    }

    /// Closes the open row group and writes it to the file, with any closed before. Nothing
    /// happens between row groups.
    pub(super) fn flush(&mut self) -> Result<(), SinkError> {
        self.close_row_group()?;
        self.write_closed()
    }

    /// Rows in row groups recorded by the checkpoints (0 without them): a killed process leaves
    /// them recoverable from the file alone.
    pub(super) fn checkpointed_rows(&self) -> u64 {
        self.checkpoints.as_ref().map_or(0, CheckpointLog::rows)
    }

    /// Stops recording checkpoints if none was recorded yet (no checkpoint file exists). For a
    /// part about to be finished whose every row is in its write-ahead log: a checkpoint file
    /// created for the footer's last row group only, then deleted at sealing, protects nothing
    /// the log does not (10,000 slow streams finishing together created and deleted 10,000).
    pub(super) fn skip_first_checkpoint(&mut self) {
        if self.checkpoints.as_ref().is_some_and(|c| !c.has_records()) {
            self.checkpoints = None;
        }
    }

    /// Makes the checkpoints durable.
    pub(super) fn sync_checkpoints(&self) -> Result<(), SinkError> {
        self.checkpoints
            .as_ref()
            .map_or(Ok(()), CheckpointLog::sync)
    }

    /// Hands the bytes written so far to the OS (no sync).
    pub(super) fn flush_to_os(&mut self) -> Result<(), SinkError> {
        self.file.flush().map_err(io_err(&self.path))
    }

    /// The file being written.
    pub(super) fn file(&self) -> &File {
        self.file.inner()
    }

    /// Closes the open row group, writes the footer and returns the file (not synced), with the
    /// path of the checkpoints if any were written (to delete once the file is sealed).
    pub(super) fn finish(mut self) -> Result<(File, Option<PathBuf>), SinkError> {
        self.flush()?;
        let path = self.path;
        let file = self.file.into_inner().map_err(pq_err(&path))?;
        Ok((file, self.checkpoints.and_then(CheckpointLog::into_path)))
    }
}

/// Appends a closed row group's column chunks to `file`; with `checkpoints`, hands its bytes to
/// the kernel and records it there.
fn write_row_group(
    path: &Path,
    file: &mut SerializedFileWriter<File>,
    chunks: Vec<ArrowColumnChunk>,
    checkpoints: Option<&mut CheckpointLog>,
) -> Result<(), SinkError> {
    let mut row_group = file.next_row_group().map_err(pq_err(path))?;
    for chunk in chunks {
        chunk
            .append_to_row_group(&mut row_group)
            .map_err(pq_err(path))?;
    }
    row_group.close().map_err(pq_err(path))?;
    if let Some(checkpoints) = checkpoints {
        file.flush().map_err(io_err(path))?;
        checkpoints.record(file)?;
    }
    Ok(())
}

fn pq_err(path: &Path) -> impl FnOnce(ParquetError) -> SinkError + '_ {
    move |source| SinkError::Parquet {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruments::sim::{SimGenerator, SimInstrumentConfig};
    use crate::sinks::parquet::{ParquetSinkConfig, writer_properties};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::file::metadata::RowGroupMetaData;

    /// Encodes `batches` into a new part of `row_group_rows`-row row groups (`min_saving` as for
    /// [`PartEncoder::create`]), finishes it and reads it back: its row groups, and its rows
    /// and `batches` each concatenated (read, written).
    fn round_trip(
        batches: &[RecordBatch],
        row_group_rows: usize,
        min_saving: f64,
    ) -> (Vec<RowGroupMetaData>, RecordBatch, RecordBatch) {
        let schema = batches[0].schema();
        let config = ParquetSinkConfig {
            row_group_rows,
            ..Default::default()
        };
        let props = writer_properties(&config, vec![]).expect("props");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.parquet");
        let mut encoder =
            PartEncoder::create(&path, schema.clone(), props, None, min_saving).expect("create");
        for b in batches {
            encoder.write(b).expect("write");
        }
        drop(encoder.finish().expect("finish"));
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(File::open(&path).expect("open")).expect("ok");
        let groups = builder.metadata().row_groups().to_vec();
        let read: Vec<RecordBatch> = builder
            .build()
            .expect("reader")
            .map(|b| b.expect("batch"))
            .collect();
        let concat =
            |b: &[RecordBatch]| arrow_select::concat::concat_batches(&schema, b).expect("concat");
        (groups, concat(&read), concat(batches))
    }

    #[test]
    fn parallel_and_serial_batches_read_back_equal_with_row_groups_cut_at_the_limit() {
        let cfg: SimInstrumentConfig = serde_json::from_str(
            r#"{"rate_hz": 1000.0, "channels": ["a", "b", "c"], "signal": {"noise": 0.1}}"#,
        )
        .expect("valid");
        let mut g = SimGenerator::new(&cfg, 0, 0);
        let batches: Vec<RecordBatch> = [10, PARALLEL_MIN_ROWS + 7, 3, 20_000]
            .iter()
            .map(|&n| g.generate(n))
            .collect();
        let (groups, got, want) = round_trip(&batches, 10_000, 0.1);
        let groups: Vec<i64> = groups.iter().map(|r| r.num_rows()).collect();
        let total: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(groups, [10_000, 10_000, (total - 20_000) as i64]);
        assert_eq!(got.columns(), want.columns());
    }

    #[test]
    fn a_fast_streams_full_row_group_is_written_while_the_next_encodes_and_at_flush() {
        let cfg: SimInstrumentConfig =
            serde_json::from_str(r#"{"rate_hz": 1000.0, "channels": ["a"]}"#).expect("valid");
        let mut g = SimGenerator::new(&cfg, 0, 0);
        let config = ParquetSinkConfig {
            row_group_rows: PARALLEL_MIN_ROWS,
            ..Default::default()
        };
        let props = writer_properties(&config, vec![]).expect("props");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("p.parquet");
        let checkpoints = dir.path().join("p.rowgroups");
        let mut encoder =
            PartEncoder::create(&path, g.schema().clone(), props, Some(checkpoints), 0.1)
                .expect("create");
        let rows = PARALLEL_MIN_ROWS as u64;
        encoder
            .write(&g.generate(PARALLEL_MIN_ROWS))
            .expect("write");
        assert_eq!(encoder.checkpointed_rows(), 0, "closed, not yet written");
        encoder
            .write(&g.generate(PARALLEL_MIN_ROWS))
            .expect("write");
        assert_eq!(
            encoder.checkpointed_rows(),
            rows,
            "written with the next one's encode"
        );
        encoder.flush().expect("flush");
        assert_eq!(
            encoder.checkpointed_rows(),
            2 * rows,
            "flush writes everything"
        );
        // A slow stream's (small batches) full row group is written at once.
        for _ in 0..PARALLEL_MIN_ROWS / 512 {
            encoder.write(&g.generate(512)).expect("write");
        }
        assert_eq!(encoder.checkpointed_rows(), 3 * rows);
        drop(encoder.finish().expect("finish"));
        let builder =
            ParquetRecordBatchReaderBuilder::try_new(File::open(&path).expect("open")).expect("ok");
        assert_eq!(
            builder.metadata().file_metadata().num_rows(),
            3 * rows as i64
        );
    }

    #[test]
    fn a_column_that_does_not_compress_is_stored_uncompressed_between_probes() {
        use super::super::codec_choice::RAW_ROW_GROUPS;
        use arrow_array::Float64Array;
        use arrow_schema::{DataType, Field, Schema};
        use parquet::basic::Compression;
        use std::sync::Arc;

        let schema = Arc::new(Schema::new(vec![
            Field::new("noisy", DataType::Float64, false),
            Field::new("flat", DataType::Float64, false),
        ]));
        let rows = 1000;
        let groups = RAW_ROW_GROUPS + 4;
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let batches: Vec<RecordBatch> = (0..groups)
            .map(|_| {
                let noisy: Float64Array = (0..rows)
                    .map(|_| {
                        state = state
                            .wrapping_mul(6_364_136_223_846_793_005)
                            .wrapping_add(1);
                        (state >> 11) as f64 / (1u64 << 53) as f64
                    })
                    .collect();
                let flat = Float64Array::from(vec![1.5; rows]);
                RecordBatch::try_new(schema.clone(), vec![Arc::new(noisy), Arc::new(flat)])
                    .expect("batch")
            })
            .collect();
        let codecs = |min_saving: f64| {
            let (groups, got, want) = round_trip(&batches, rows, min_saving);
            assert_eq!(got, want, "every value reads back");
            groups
                .iter()
                .map(|g| {
                    let raw = |c: usize| g.column(c).compression() == Compression::UNCOMPRESSED;
                    (raw(0), raw(1))
                })
                .collect::<Vec<(bool, bool)>>()
        };
        let adaptive = codecs(0.1);
        let mut want = vec![(true, false); groups];
        want[0] = (false, false);
        want[RAW_ROW_GROUPS + 1] = (false, false);
        assert_eq!(
            adaptive, want,
            "noisy: compressed, then raw for {RAW_ROW_GROUPS} row groups, probed again, raw again; flat: always compressed"
        );
        assert_eq!(
            codecs(0.0),
            vec![(false, false); groups],
            "0 always compresses"
        );
    }
}
