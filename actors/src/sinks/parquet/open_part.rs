//! The part a stream is writing now: rows held until worth encoding, then encoded, logged and
//! checkpointed.

use std::path::PathBuf;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use super::checkpoint::CHECKPOINT_EXTENSION;
use super::encoder::PartEncoder;
use super::error::SinkError;
use super::properties::PartSettings;
use super::wal::{WalWriter, read_wal};

/// A part's rows are held, not encoded, until it has a row group's worth or batches of this
/// many bytes of Arrow memory (with a write-ahead log only: held rows live in the log, and are
/// read back from it when the encoder opens).
const HOLD_BYTES: usize = 64 * 1024;

/// The part being written: its encoder (once opened), log and the rows not yet logged.
pub(super) struct OpenPart {
    /// The Parquet encoder; opened only once the part has enough rows to be worth it (see
    /// [`HOLD_BYTES`]), so a slow stream costs no open file and no encoder buffers until then.
    pub(super) encoder: Option<PartEncoder>,
    /// Rows taken while the encoder was not open yet, and the Arrow memory their batches took.
    /// They are kept in the log only (not in memory), so that 10,000 slow streams cost memory
    /// that does not grow with the run.
    pub(super) held_rows: usize,
    pub(super) held_bytes: usize,
    pub(super) wal: Option<WalWriter>,
    /// Rows taken but not yet logged, each batch with the part row of its first row. They are
    /// logged in one append per [`log`](Self::log) call (the sink's log tick, a few times per
    /// flush interval, and before rows are reported handed to the OS); rows that reach a
    /// checkpointed row group first are never logged.
    pub(super) unlogged: Vec<(u64, RecordBatch)>,
    /// Rows the checkpoints covered at the last log tick (see [`log_tick`](Self::log_tick)).
    pub(super) checkpointed_at_tick: u64,
    pub(super) partial_path: PathBuf,
    pub(super) final_path: PathBuf,
    pub(super) relative_path: PathBuf,
    pub(super) rows: u64,
    pub(super) first_seq: u64,
    pub(super) opened_at: Instant,
}

impl OpenPart {
    /// The sink's log tick: appends the unlogged rows to the log, unless row groups of this
    /// part were checkpointed since the last tick. Such a fast stream's rows mostly reach a
    /// checkpoint within a row group's time, before the group commit (which logs whatever is
    /// still unlogged, [`log`](Self::log)) needs them: logging them at the tick wrote them twice.
    /// Returns whether every row taken is now logged or checkpointed.
    pub(super) fn log_tick(&mut self) -> Result<bool, SinkError> {
        let covered = self
            .encoder
            .as_ref()
            .map_or(0, PartEncoder::checkpointed_rows);
        let advancing = covered > self.checkpointed_at_tick;
        self.checkpointed_at_tick = covered;
        if advancing {
            self.forget_checkpointed();
            return Ok(self.unlogged.is_empty());
        }
        self.log()?;
        Ok(true)
    }

    /// Appends every unlogged row that no checkpoint covers to the log, in one write.
    pub(super) fn log(&mut self) -> Result<(), SinkError> {
        self.forget_checkpointed();
        if let Some(wal) = &mut self.wal {
            if !self.unlogged.is_empty() {
                wal.append(self.unlogged.iter().map(|(first, batch)| (*first, batch)))?;
            }
        }
        self.unlogged.clear();
        Ok(())
    }

    /// Drops the unlogged rows that the checkpoints now cover (the `.partial` file holds them).
    fn forget_checkpointed(&mut self) {
        let covered = self
            .encoder
            .as_ref()
            .map_or(0, PartEncoder::checkpointed_rows);
        self.unlogged.retain_mut(|(first, batch)| {
            let rows = batch.num_rows() as u64;
            if *first + rows <= covered {
                return false;
            }
            if *first < covered {
                let skip = (covered - *first) as usize;
                *batch = batch.slice(skip, batch.num_rows() - skip);
                *first = covered;
            }
            true
        });
    }

    /// Takes `rows` of the part, the first of which is part row `first_row`: holds them while
    /// that is allowed, otherwise encodes them.
    pub(super) fn add(
        &mut self,
        rows: RecordBatch,
        first_row: u64,
        settings: &PartSettings,
        schema: &SchemaRef,
    ) -> Result<(), SinkError> {
        let row_group_rows = settings
            .props
            .max_row_group_row_count()
            .unwrap_or(usize::MAX);
        let bytes = rows.get_array_memory_size();
        let hold = self.encoder.is_none()
            && self.wal.is_some()
            && self.held_rows + rows.num_rows() < row_group_rows
            && self.held_bytes + bytes < HOLD_BYTES;
        if hold {
            self.held_rows += rows.num_rows();
            self.held_bytes += bytes;
            self.unlogged.push((first_row, rows));
            return Ok(());
        }
        // `rows` joins the unlogged ones only after the encoder is open, so that the rows it
        // reads back from the log are exactly the held ones.
        self.encoder(settings, schema)?.write(&rows)?;
        if self.wal.is_some() {
            self.unlogged.push((first_row, rows));
        }
        self.forget_checkpointed();
        Ok(())
    }

    /// The encoder, opened now (with every held row, read back from the log, written to it)
    /// if it was not yet.
    pub(super) fn encoder(
        &mut self,
        settings: &PartSettings,
        schema: &SchemaRef,
    ) -> Result<&mut PartEncoder, SinkError> {
        if self.encoder.is_none() {
            let held = self.read_back_held(schema)?;
            let mut encoder = PartEncoder::create(
                &self.partial_path,
                schema.clone(),
                settings.props.clone(),
                settings
                    .write_ahead_log
                    .then(|| self.final_path.with_extension(CHECKPOINT_EXTENSION)),
                settings.min_compression_saving,
            )?;
            for batch in &held {
                encoder.write(batch)?;
            }
            (self.held_rows, self.held_bytes) = (0, 0);
            self.encoder = Some(encoder);
        }
        Ok(self
            .encoder
            .as_mut()
            .expect("the encoder was opened just above"))
    }

    /// The held rows, read back from the log (after logging what is still unlogged of them):
    /// every row of the part so far, since no row group was closed yet.
    fn read_back_held(&mut self, schema: &SchemaRef) -> Result<Vec<RecordBatch>, SinkError> {
        if self.held_rows == 0 {
            return Ok(Vec::new());
        }
        let held = self.held_rows;
        self.log()?;
        let Some(wal) = &self.wal else {
            return Ok(Vec::new());
        };
        let lost = || SinkError::Io {
            path: wal.path().to_path_buf(),
            source: std::io::Error::other(format!(
                "the log lost held rows: {held} rows were written to it"
            )),
        };
        let contents = read_wal(wal.path(), &[])?.ok_or_else(lost)?;
        let batches: Vec<RecordBatch> = contents
            .rows_from(0)
            .into_iter()
            .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| SinkError::Io {
                path: wal.path().to_path_buf(),
                source: std::io::Error::other(e),
            })?;
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows != held {
            return Err(lost());
        }
        Ok(batches)
    }
}

#[cfg(test)]
mod tests {
    use std::fs::File;

    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::super::encoder::PARALLEL_MIN_ROWS;
    use super::super::{ParquetSinkConfig, PartSettings};
    use crate::sinks::parquet::test_util::{seqs_of, sim_writer_with, write_rows};

    #[test]
    fn large_batches_of_a_byte_capped_part_close_row_groups_at_the_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut settings =
            PartSettings::from_config(&ParquetSinkConfig::default(), vec![]).expect("settings");
        // What the pool sets for a sink of 4,000 streams.
        let cap = 32 << 10;
        settings.props = settings
            .props
            .into_builder()
            .set_max_row_group_bytes(Some(cap))
            .build();
        let (mut w, mut g) = sim_writer_with(dir.path(), settings);
        for _ in 0..4 {
            write_rows(&mut w, &mut g, 5_000);
        }
        let report = w.finish().expect("finish");
        let path = dir.path().join(&report.parts[0].path);
        let reader = SerializedFileReader::new(File::open(&path).expect("part")).expect("parquet");
        let groups = reader.metadata().row_groups();
        // Queued unencoded, the 20,000 rows made one row group (about 640 KB of Arrow memory);
        // encoded at once, a row group closes at the first slice past the cap (a slice is below
        // PARALLEL_MIN_ROWS rows).
        assert!(groups.len() >= 4, "{} row groups", groups.len());
        let rows: Vec<i64> = groups.iter().map(|g| g.num_rows()).collect();
        assert!(
            rows.iter().all(|&r| r < 2 * PARALLEL_MIN_ROWS as i64),
            "{rows:?}"
        );
        assert_eq!(seqs_of(&path), (0..20_000).collect::<Vec<u64>>());
    }
}
