//! The plain, synchronous half of `ensemble ingest`: decode messages, write Parquet parts into
//! run directories, drop redelivered rows, make everything durable on [`Store::commit`].
//!
//! # Layout
//! One run directory per run id, the same as the local Parquet sink writes, except that part
//! files carry the worker's name so that several workers can share one output directory:
//!
//! ```text
//! <output>/<run_id>/run.json                          the run's manifest as published
//! <output>/<run_id>/end-<sink>.json                   the sink's per-stream totals (RunEnd)
//! <output>/<run_id>/ingest-<worker>.json              what this worker wrote
//! <output>/<run_id>/<stream>/part-<worker>-NNNNNN.parquet
//! ```
//!
//! # Durability
//! A commit finishes every part that received rows (footer written, file synced, renamed,
//! directory synced); only then are the messages acknowledged. A killed worker leaves at most
//! `*.partial` files of rows it never acknowledged; they are deleted when a worker of the same
//! name starts, and JetStream delivers their rows again. The price is one part per stream per
//! commit: raise the commit interval for fewer, larger files.
//!
//! # Duplicates
//! Rows are identified by `(run, stream, seq)`. A worker remembers the `seq` ranges it wrote
//! (read back from its own parts when it restarts), so a message delivered twice is stored once.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use ensemble_actors::batch::DataBatch;
use ensemble_actors::control::PartFile;
use ensemble_actors::sinks::nats::codec::{
    BatchMessage, ControlKind, Incoming, RunEnd, decode_message,
};
use ensemble_actors::sinks::parquet::{
    ParquetSinkConfig, PartSettings, Rotation, StreamPartWriter, file_metadata,
};
use serde::{Deserialize, Serialize};

use super::check::read_seq_ranges;
use super::error::{StoreError, io_err};
use super::seq_ranges::SeqRanges;
use crate::manifest::MANIFEST_FILE;

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Its rows were written (durable at the next commit).
    Stored,
    /// Every row was stored before: nothing written.
    Duplicate,
    /// A control message, handled.
    Control,
    /// It cannot be stored (undecodable, or its schema differs from the stream's); the reason.
    Rejected(String),
}

/// What one worker wrote of one run: `ingest-<worker>.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerReport {
    /// The worker.
    pub worker: String,
    /// The run.
    pub run_id: String,
    /// Per stream.
    pub streams: BTreeMap<String, WorkerStream>,
}

/// What one worker wrote of one stream.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkerStream {
    /// Rows in finished parts (this session and earlier ones).
    pub rows: u64,
    /// `seq` ranges written.
    pub seq: SeqRanges,
    /// Parts finished in this session.
    pub parts: Vec<PartFile>,
    /// Rows of messages delivered again and not written twice.
    pub duplicate_rows: u64,
}

struct StreamState {
    writer: StreamPartWriter,
    fingerprint: String,
    report: WorkerStream,
    /// Rows written since the last commit.
    dirty: bool,
}

struct RunState {
    dir: PathBuf,
    streams: HashMap<String, StreamState>,
    dirty: bool,
}

/// The run directories one ingest worker writes.
pub struct Store {
    output: PathBuf,
    worker: String,
    parquet: ParquetSinkConfig,
    runs: HashMap<String, RunState>,
}

impl Store {
    /// A store writing run directories under `output` as worker `worker`, with the Parquet
    /// settings of `parquet` (compression, row groups; rotation and subdirectory are ignored).
    pub fn new(
        output: &Path,
        worker: &str,
        parquet: ParquetSinkConfig,
    ) -> Result<Self, StoreError> {
        fs::create_dir_all(output).map_err(io_err(output))?;
        Ok(Self {
            output: output.to_path_buf(),
            worker: worker.to_string(),
            parquet,
            runs: HashMap::new(),
        })
    }

    /// Handles one message of the data or control stream. Errors are file-system errors: the
    /// message must not be acknowledged then. A message that can never be stored is
    /// [`Outcome::Rejected`].
    pub fn handle(
        &mut self,
        subject: &str,
        headers: Option<&async_nats::HeaderMap>,
        payload: bytes::Bytes,
    ) -> Result<Outcome, StoreError> {
        match decode_message(subject, headers, payload) {
            Ok(Incoming::Batch(b)) => self.write(b),
            Ok(Incoming::Control {
                run_id,
                kind,
                payload,
            }) => {
                self.control(&run_id, kind, &payload)?;
                Ok(Outcome::Control)
            }
            Err(e) => Ok(Outcome::Rejected(format!("{subject}: {e}"))),
        }
    }

    /// Writes a batch unless every row of it was written before.
    pub fn write(&mut self, message: BatchMessage) -> Result<Outcome, StoreError> {
        let meta = &message.meta;
        if !is_plain_name(&meta.run_id) || !is_plain_name(&meta.stream) {
            return Ok(Outcome::Rejected(format!(
                "run `{}` / stream `{}`: not a plain file name",
                meta.run_id, meta.stream
            )));
        }
        self.run(&meta.run_id)?;
        let (worker, parquet) = (&self.worker, &self.parquet);
        let run = self
            .runs
            .get_mut(&meta.run_id)
            .expect("self.run() just made sure it exists");
        let run_dir = run.dir.clone();
        let stream = match run.streams.get_mut(&meta.stream) {
            Some(s) => s,
            None => {
                let state = open_stream(&run_dir, worker, parquet, &message)?;
                run.streams.entry(meta.stream.clone()).or_insert(state)
            }
        };
        let (start, end) = (meta.first_seq, meta.first_seq + meta.rows);
        if stream.report.seq.covers(start, end) {
            stream.report.duplicate_rows += meta.rows;
            return Ok(Outcome::Duplicate);
        }
        if stream.report.seq.overlaps(start, end) {
            return Ok(Outcome::Rejected(format!(
                "{}/{} seq {start}..{end} overlaps rows already written",
                meta.run_id, meta.stream
            )));
        }
        // `decode_message` checked that the header's fingerprint is the batches' own.
        if meta.schema != stream.fingerprint {
            return Ok(Outcome::Rejected(format!(
                "{}/{} seq {start}: its schema differs from the stream's",
                meta.run_id, meta.stream
            )));
        }
        let mut seq = start;
        for batch in message.batches {
            let rows = batch.num_rows() as u64;
            stream
                .writer
                .write(&DataBatch::new(meta.stream.as_str().into(), seq, batch))?;
            seq += rows;
        }
        stream.report.seq.insert(start, end);
        stream.dirty = true;
        run.dirty = true;
        Ok(Outcome::Stored)
    }

    /// Handles a control message: writes `run.json` (start: only if absent; final: always) or
    /// the sink's `end-<sink>.json`.
    pub fn control(
        &mut self,
        run_id: &str,
        kind: ControlKind,
        payload: &[u8],
    ) -> Result<(), StoreError> {
        if !is_plain_name(run_id) {
            return Ok(());
        }
        let dir = self.run(run_id)?.dir.clone();
        match kind {
            ControlKind::Start => {
                if !dir.join(MANIFEST_FILE).exists() {
                    write_atomic(&dir, MANIFEST_FILE, &self.worker, payload)?;
                }
            }
            ControlKind::Final => write_atomic(&dir, MANIFEST_FILE, &self.worker, payload)?,
            ControlKind::End => {
                let sink = serde_json::from_slice::<RunEnd>(payload)
                    .map(|e| e.sink)
                    .unwrap_or_else(|_| "unknown".to_string());
                let sink = if is_plain_name(&sink) {
                    sink
                } else {
                    "unknown".into()
                };
                write_atomic(&dir, &format!("end-{sink}.json"), &self.worker, payload)?;
                tracing::info!(
                    run_id,
                    sink,
                    "The run's sink ended; its parts are finished at the next commit."
                );
            }
        }
        Ok(())
    }

    /// Finishes every part that received rows since the last commit and writes this worker's
    /// report of each such run. After `Ok`, every row handled so far is durable.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        for (run_id, run) in &mut self.runs {
            if !run.dirty {
                continue;
            }
            let mut report = WorkerReport {
                worker: self.worker.clone(),
                run_id: run_id.clone(),
                streams: BTreeMap::new(),
            };
            for (name, s) in &mut run.streams {
                if s.dirty {
                    s.writer.close_part()?;
                    s.dirty = false;
                }
                s.report.parts = s.writer.parts().to_vec();
                s.report.rows = s.report.seq.len();
                report.streams.insert(name.clone(), s.report.clone());
            }
            let text = serde_json::to_vec_pretty(&report).map_err(|e| StoreError::Io {
                path: run.dir.clone(),
                source: std::io::Error::other(e),
            })?;
            write_atomic(
                &run.dir,
                &format!("ingest-{}.json", self.worker),
                &self.worker,
                &text,
            )?;
            run.dirty = false;
        }
        Ok(())
    }

    /// Rows written per run and stream (for logs and tests).
    pub fn rows(&self) -> BTreeMap<(String, String), u64> {
        self.runs
            .iter()
            .flat_map(|(r, run)| {
                run.streams
                    .iter()
                    .map(move |(s, st)| ((r.clone(), s.clone()), st.report.seq.len()))
            })
            .collect()
    }

    fn run(&mut self, run_id: &str) -> Result<&mut RunState, StoreError> {
        if !self.runs.contains_key(run_id) {
            let dir = self.output.join(run_id);
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            tracing::info!(run_id, dir = %dir.display(), "Ingesting a new run.");
            self.runs.insert(
                run_id.to_string(),
                RunState {
                    dir,
                    streams: HashMap::new(),
                    dirty: false,
                },
            );
        }
        Ok(self
            .runs
            .get_mut(run_id)
            .expect("inserted just above if it was missing"))
    }
}

/// A run id or stream name usable as one path component.
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains(['/', '\\', '\0'])
}

/// Starts writing a stream of a run: removes this worker's torn `*.partial` parts, reads back
/// which rows its finished parts hold, and continues their numbering.
fn open_stream(
    run_dir: &Path,
    worker: &str,
    parquet: &ParquetSinkConfig,
    first: &BatchMessage,
) -> Result<StreamState, StoreError> {
    let meta = &first.meta;
    let dir = run_dir.join(&meta.stream);
    fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    let prefix = format!("part-{worker}-");
    let mut seq = SeqRanges::default();
    let mut next_part = 0u32;
    let mut rows = 0u64;
    for entry in fs::read_dir(&dir).map_err(io_err(&dir))? {
        let path = entry.map_err(io_err(&dir))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        if rest.ends_with(".parquet.partial") {
            // Never acknowledged: JetStream delivers these rows again.
            fs::remove_file(&path).map_err(io_err(&path))?;
            tracing::warn!(path = %path.display(), "Removed a part left unfinished by a stopped worker; its rows are delivered again.");
            continue;
        }
        let Some(number) = rest.strip_suffix(".parquet") else {
            continue;
        };
        if let Ok(n) = number.parse::<u32>() {
            next_part = next_part.max(n + 1);
        }
        for (start, end) in read_seq_ranges(&path)? {
            rows += end - start;
            seq.insert(start, end);
        }
    }
    let mut metadata = file_metadata(
        &meta.run_id,
        &meta.experiment,
        &meta.stream,
        &meta.component,
    );
    metadata.push(("ensemble.ingest_worker".into(), worker.to_string()));
    let mut settings = PartSettings::from_config(parquet, metadata)?;
    // Messages are acknowledged only once their part is finished, so no write-ahead log is
    // needed, and parts end at commits, not by rotation.
    settings.write_ahead_log = false;
    settings.rotation = Rotation::default();
    let writer = StreamPartWriter::new(
        run_dir,
        PathBuf::from(&meta.stream),
        meta.stream.as_str().into(),
        first.batches[0].schema(),
        settings,
    )?
    .with_part_names(prefix, next_part);
    if rows > 0 {
        tracing::info!(run_id = %meta.run_id, stream = %meta.stream, rows, "Continuing a stream this worker wrote before.");
    }
    Ok(StreamState {
        writer,
        fingerprint: meta.schema.clone(),
        report: WorkerStream {
            rows,
            seq,
            parts: Vec::new(),
            duplicate_rows: 0,
        },
        dirty: false,
    })
}

/// Writes `name` in `dir` through a temporary file and a rename, synced.
///
/// `writer` makes the temporary name unique, so that workers sharing the directory (and writing
/// the same manifest) never rename each other's temporary file.
fn write_atomic(dir: &Path, name: &str, writer: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = dir.join(format!(".{name}.{writer}.tmp"));
    let path = dir.join(name);
    let mut file = File::create(&tmp).map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    file.sync_all().map_err(io_err(&tmp))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(io_err(&path))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::check::check_run;
    use ensemble_actors::instruments::sim::{SimGenerator, SimInstrumentConfig};
    use ensemble_actors::sinks::nats::IpcCompression;
    use ensemble_actors::sinks::nats::codec::{
        BatchMeta, batch_headers, encode_batch, schema_fingerprint,
    };

    fn message(g: &mut SimGenerator, rows: usize) -> (async_nats::HeaderMap, bytes::Bytes) {
        let first_seq = g.next_seq();
        let batch = g.generate(rows);
        let meta = BatchMeta {
            run_id: "r1".into(),
            stream: "daq".into(),
            first_seq,
            rows: rows as u64,
            schema: schema_fingerprint(&batch.schema()),
            component: "daq".into(),
            experiment: "e".into(),
        };
        (
            batch_headers(&meta),
            encode_batch(&batch, IpcCompression::None)
                .expect("encode")
                .into(),
        )
    }

    fn sim() -> SimGenerator {
        let cfg: SimInstrumentConfig =
            serde_json::from_str(r#"{"rate_hz": 100.0, "channels": ["a"]}"#).expect("valid");
        SimGenerator::new(&cfg, 0, 0)
    }

    #[test]
    fn redelivery_is_stored_once_and_a_restart_continues_numbering() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut g = sim();
        let msgs: Vec<_> = (0..4).map(|_| message(&mut g, 25)).collect();
        let mut store = Store::new(dir.path(), "w1", ParquetSinkConfig::default()).expect("store");
        for (h, p) in &msgs[..2] {
            assert_eq!(
                store
                    .handle("ensemble.r1.daq", Some(h), p.clone())
                    .expect("write"),
                Outcome::Stored
            );
        }
        assert_eq!(
            store
                .handle("ensemble.r1.daq", Some(&msgs[0].0), msgs[0].1.clone())
                .expect("write"),
            Outcome::Duplicate
        );
        store.commit().expect("commit");
        // An unacknowledged message in an open part, then the worker dies.
        store
            .handle("ensemble.r1.daq", Some(&msgs[2].0), msgs[2].1.clone())
            .expect("write");
        drop(store);
        let stream_dir = dir.path().join("r1/daq");
        assert!(stream_dir.join("part-w1-000001.parquet.partial").exists());

        let mut store = Store::new(dir.path(), "w1", ParquetSinkConfig::default()).expect("store");
        for (h, p) in &msgs {
            store
                .handle("ensemble.r1.daq", Some(h), p.clone())
                .expect("write");
        }
        store.commit().expect("commit");
        assert!(!stream_dir.join("part-w1-000001.parquet.partial").exists());
        assert!(stream_dir.join("part-w1-000001.parquet").exists());
        let end = RunEnd {
            run_id: "r1".into(),
            experiment: "e".into(),
            sink: "bus".into(),
            streams: vec![ensemble_actors::sinks::nats::codec::StreamEnd {
                stream: "daq".into(),
                rows_published: 100,
                batches_published: 4,
                rows_undelivered: 0,
                undelivered: vec![],
            }],
        };
        store
            .control(
                "r1",
                ControlKind::End,
                &serde_json::to_vec(&end).expect("json"),
            )
            .expect("end");
        let check = check_run(&dir.path().join("r1")).expect("check");
        assert!(check.is_complete(), "{check:?}");
        assert_eq!(check.streams["daq"].rows, 100);
    }

    #[test]
    fn undecodable_message_is_rejected_not_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::new(dir.path(), "w", ParquetSinkConfig::default()).expect("store");
        let (h, _) = message(&mut sim(), 5);
        let outcome = store
            .handle(
                "ensemble.r1.daq",
                Some(&h),
                bytes::Bytes::from_static(b"garbage"),
            )
            .expect("no io error");
        assert!(matches!(outcome, Outcome::Rejected(_)), "{outcome:?}");
    }
}
