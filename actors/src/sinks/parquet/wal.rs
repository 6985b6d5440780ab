//! The write-ahead log of an open part (`part-NNNNNN.wal`): the rows of the part that are not
//! yet in a row group recorded by its checkpoints (`checkpoint.rs`), so that a killed process
//! leaves them behind in a form `ensemble recover` can read.
//!
//! Format: the magic `ENSWAL01`, then frames of `[u64 payload length][u64 first row][payload]`
//! (little-endian; 16 bytes keep the payload 8-byte aligned). The first frame's payload is the
//! Arrow IPC schema message, every later one an Arrow IPC record batch message holding rows
//! `first row ..` of the part. Rows already in a checkpointed row group are not logged, so a
//! log's rows can skip exactly what the Parquet file covers.
//!
//! Durability: each append is handed to the kernel at once (it survives a killed process); the
//! sink's group commit (the syncer's next `syncfs` after the append) makes it survive a power
//! cut. A part's
//! log is deleted once the part's Parquet file is finished, synced and renamed.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_ipc::reader::StreamReader;
use arrow_ipc::writer::StreamWriter;
use arrow_schema::{Schema, SchemaRef};

use super::error::{SinkError, io_err};

/// File extension of a write-ahead log.
pub const WAL_EXTENSION: &str = "wal";

/// The first bytes of every log.
const MAGIC: &[u8; 8] = b"ENSWAL01";
/// Bytes before each frame's payload: its length and its first row.
const FRAME_HEADER: usize = 16;
/// An encoding buffer that grew past this is given back after its append: 1,000 streams that
/// each kept a 1 MiB buffer from one catch-up held a gigabyte. Larger appends allocate anew.
const KEEP_BUFFER_BYTES: usize = 64 << 10;

/// Appends rows of one part to its log.
pub struct WalWriter {
    path: PathBuf,
    file: File,
    /// Encodes IPC messages into its in-memory buffer, which gathers a whole append (the
    /// header and payload of every frame) for one `write`; reused between appends.
    ipc: StreamWriter<Vec<u8>>,
}

impl WalWriter {
    /// Creates the log at `path` for batches of `schema`; `metadata` is stored with the schema
    /// (run id, stream, ...) so that a recovered part can carry it.
    pub fn create(
        path: PathBuf,
        schema: &Schema,
        metadata: &[(String, String)],
    ) -> Result<Self, SinkError> {
        let mut meta = schema.metadata().clone();
        meta.extend(metadata.iter().cloned());
        let logged = schema.clone().with_metadata(meta);
        let mut head = MAGIC.to_vec();
        head.extend_from_slice(&[0; FRAME_HEADER]);
        // `try_new` writes the schema message into the buffer, after the frame header.
        let ipc = StreamWriter::try_new(head, &logged).map_err(|e| wal_err(&path, e))?;
        let file = File::create(&path).map_err(io_err(&path))?;
        let mut wal = Self { path, file, ipc };
        seal_frame(wal.ipc.get_mut(), MAGIC.len(), u64::MAX);
        wal.write_out()?;
        Ok(wal)
    }

    /// Appends `batches`, each with the part row of its first row, in one write that hands them
    /// to the kernel.
    pub fn append<'a>(
        &mut self,
        batches: impl IntoIterator<Item = (u64, &'a RecordBatch)>,
    ) -> Result<(), SinkError> {
        for (first_row, batch) in batches {
            let start = self.ipc.get_ref().len();
            self.ipc.get_mut().extend_from_slice(&[0; FRAME_HEADER]);
            self.ipc.write(batch).map_err(|e| wal_err(&self.path, e))?;
            seal_frame(self.ipc.get_mut(), start, first_row);
        }
        self.write_out()
    }

    /// Writes the buffer to the file and empties it.
    fn write_out(&mut self) -> Result<(), SinkError> {
        let buffer = self.ipc.get_mut();
        if buffer.is_empty() {
            return Ok(());
        }
        let written = self.file.write_all(buffer);
        buffer.clear();
        if buffer.capacity() > KEEP_BUFFER_BYTES {
            *buffer = Vec::new();
        }
        written.map_err(io_err(&self.path))
    }

    /// Where the log is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes everything appended durable.
    pub fn sync(&mut self) -> Result<(), SinkError> {
        self.file.sync_data().map_err(io_err(&self.path))
    }

    /// Closes the log and returns its path, for deleting it later (see `seal_parts`).
    pub fn into_path(self) -> PathBuf {
        self.path
    }
}

/// Fills in the header of the frame that starts at `start` and runs to the end of `buffer`.
fn seal_frame(buffer: &mut [u8], start: usize, first_row: u64) {
    let payload = (buffer.len() - start - FRAME_HEADER) as u64;
    buffer[start..start + 8].copy_from_slice(&payload.to_le_bytes());
    buffer[start + 8..start + FRAME_HEADER].copy_from_slice(&first_row.to_le_bytes());
}

fn wal_err(path: &Path, e: arrow_schema::ArrowError) -> SinkError {
    SinkError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    }
}

/// What a log holds: its schema (without the stored metadata), the metadata, and every complete
/// batch with the part row of its first row. A torn last frame (the process died while writing
/// it) is left out and flagged.
#[derive(Debug)]
pub struct WalContents {
    /// The batches' schema, as the sink received them.
    pub schema: SchemaRef,
    /// Metadata stored with the log (run id, stream, ...).
    pub metadata: HashMap<String, String>,
    /// Every complete batch, in order, with the part row of its first row.
    pub batches: Vec<(u64, RecordBatch)>,
    /// Whether the log ended in the middle of a frame.
    pub torn_tail: bool,
}

impl WalContents {
    /// The logged rows from part row `from` on, as long as they follow each other without a
    /// gap: rows before `from` (already in the Parquet file) are skipped.
    pub fn rows_from(&self, from: u64) -> Vec<RecordBatch> {
        let mut next = from;
        let mut rows = Vec::new();
        for (first, batch) in &self.batches {
            let end = first + batch.num_rows() as u64;
            if end <= next {
                continue;
            }
            if *first > next {
                break;
            }
            let skip = (next - first) as usize;
            rows.push(batch.slice(skip, batch.num_rows() - skip));
            next = end;
        }
        rows
    }
}

/// Reads a log, keeping every complete batch.
///
/// Returns `Ok(None)` for a log that ended before its schema was complete (nothing to recover).
pub fn read_wal(path: &Path, metadata_keys: &[&str]) -> Result<Option<WalContents>, SinkError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    let mut frames = Frames {
        bytes: bytes.strip_prefix(MAGIC).unwrap_or_default(),
    };
    // The frames' payloads, joined, are an Arrow IPC stream: read it with the stream reader and
    // pair its batches with the frames' first rows.
    let mut stream = Vec::with_capacity(bytes.len());
    let mut first_rows = Vec::new();
    for (i, (first_row, payload)) in frames.by_ref().enumerate() {
        stream.extend_from_slice(payload);
        if i > 0 {
            first_rows.push(first_row);
        }
    }
    let cut = !frames.bytes.is_empty();
    let Ok(reader) = StreamReader::try_new(std::io::Cursor::new(stream), None) else {
        return Ok(None);
    };
    let (schema, metadata) = split_metadata(&reader.schema(), metadata_keys);
    let mut batches = Vec::new();
    let mut torn_tail = cut;
    for (item, first_row) in reader.zip(first_rows) {
        match item.and_then(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec())) {
            Ok(batch) => batches.push((first_row, batch)),
            Err(_) => {
                torn_tail = true;
                break;
            }
        }
    }
    Ok(Some(WalContents {
        schema,
        metadata,
        batches,
        torn_tail,
    }))
}

/// Reads a log without copying or changing it: the file is memory-mapped read-only and the
/// batches are views into the map (it stays mapped while any of them lives). For looking at
/// a killed run before `ensemble recover` (which uses [`read_wal`]): a log is only ever
/// appended to, and a log whose writer is still alive shows the frames complete when mapped.
///
/// Returns what [`read_wal`] returns for the same file.
pub fn read_wal_mapped(
    path: &Path,
    metadata_keys: &[&str],
) -> Result<Option<WalContents>, SinkError> {
    let io = |source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    if file.metadata().map_err(io)?.len() == 0 {
        return Ok(None);
    }
    // SAFETY: the map is read-only and private to this call's batches. A writer only appends
    // to a log (never truncates or rewrites what is there), and recovery deletes a log only
    // by unlinking it, which leaves an existing map valid.
    #[allow(unsafe_code)]
    let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
    let all = arrow_buffer::Buffer::from(bytes::Bytes::from_owner(map));
    let Some(start) = all.strip_prefix(MAGIC).map(|_| MAGIC.len()) else {
        return Ok(None);
    };
    let mut frames = Frames {
        bytes: &all[start..],
    };
    // The first frame is the schema message. The decoder only takes a message without a body
    // (a schema) in on its next call, so the schema is read from it directly as well.
    let Some((_, schema_payload)) = frames.next() else {
        return Ok(None);
    };
    let Ok(head) = StreamReader::try_new(schema_payload, None) else {
        return Ok(None);
    };
    let (schema, metadata) = split_metadata(&head.schema(), metadata_keys);
    let mut decoder = arrow_ipc::reader::StreamDecoder::new();
    let mut offset = start + FRAME_HEADER;
    let mut buffer = all.slice_with_length(offset, schema_payload.len());
    offset += schema_payload.len();
    let mut torn_tail = decoder.decode(&mut buffer).is_err();
    let mut batches = Vec::new();
    for (first_row, payload) in frames.by_ref() {
        if torn_tail {
            break;
        }
        let payload_at = offset + FRAME_HEADER;
        offset = payload_at + payload.len();
        let mut buffer = all.slice_with_length(payload_at, payload.len());
        match decoder
            .decode(&mut buffer)
            .map(|b| b.map(|b| RecordBatch::try_new(Arc::clone(&schema), b.columns().to_vec())))
        {
            Ok(Some(Ok(batch))) => batches.push((first_row, batch)),
            _ => torn_tail = true,
        }
    }
    Ok(Some(WalContents {
        schema,
        metadata,
        batches,
        torn_tail: torn_tail || !frames.bytes.is_empty(),
    }))
}

/// The logged schema without the stored metadata, and the stored metadata under `keys`.
fn split_metadata(logged: &Schema, keys: &[&str]) -> (SchemaRef, HashMap<String, String>) {
    let mut metadata = HashMap::new();
    let mut plain = logged.metadata().clone();
    for key in keys {
        if let Some(v) = plain.remove(key) {
            metadata.insert((*key).to_string(), v);
        }
    }
    (Arc::new(logged.clone().with_metadata(plain)), metadata)
}

/// The complete frames of a log, after its magic; stops at a torn one (left in `bytes`).
struct Frames<'a> {
    bytes: &'a [u8],
}

impl<'a> Iterator for Frames<'a> {
    type Item = (u64, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        let header = self.bytes.get(..FRAME_HEADER)?;
        let (len, first_row) = header.split_at(8);
        let len = usize::try_from(u64::from_le_bytes(len.try_into().ok()?)).ok()?;
        let first_row = u64::from_le_bytes(first_row.try_into().ok()?);
        let payload = self
            .bytes
            .get(FRAME_HEADER..FRAME_HEADER.checked_add(len)?)?;
        self.bytes = &self.bytes[FRAME_HEADER + len..];
        Some((first_row, payload))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruments::sim::{SimGenerator, SimInstrumentConfig};
    use crate::sinks::parquet::test_util::seqs;

    fn generator() -> SimGenerator {
        let cfg: SimInstrumentConfig =
            serde_json::from_str(r#"{"rate_hz": 100.0, "channels": ["a"]}"#).expect("valid");
        SimGenerator::new(&cfg, 0, 0)
    }

    #[test]
    fn a_torn_log_yields_every_complete_batch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("part-000000.wal");
        let mut g = generator();
        let meta = vec![("ensemble.stream".to_string(), "s".to_string())];
        let mut wal = WalWriter::create(path.clone(), g.schema(), &meta).expect("create");
        for i in 0..3 {
            wal.append([(i * 50, &g.generate(50))]).expect("append");
        }
        drop(wal);
        let whole = fs::read(&path).expect("read");
        // Cut the file in the middle of the third batch, as a killed process would.
        fs::write(&path, &whole[..whole.len() - 100]).expect("truncate");
        let contents = read_wal(&path, &["ensemble.stream"])
            .expect("readable")
            .expect("schema complete");
        assert_eq!(contents.batches.len(), 2);
        assert!(contents.torn_tail);
        assert_eq!(contents.metadata["ensemble.stream"], "s");
        assert_eq!(contents.schema.as_ref(), g.schema().as_ref());
        assert_eq!(contents.batches[1].0, 50);
    }

    #[test]
    fn rows_from_skips_what_the_parquet_file_covers_and_stops_at_a_gap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("part-000000.wal");
        let mut g = generator();
        let mut wal = WalWriter::create(path.clone(), g.schema(), &[]).expect("create");
        let (a, b) = (g.generate(10), g.generate(10));
        g.generate(10); // rows 20..30: in a checkpointed row group, never logged
        let d = g.generate(10);
        wal.append([(0, &a), (10, &b)]).expect("append");
        wal.append([(30, &d)]).expect("append");
        drop(wal);
        let contents = read_wal(&path, &[]).expect("readable").expect("schema");
        assert!(!contents.torn_tail);
        // From row 5: rows 5..20, then the gap at 20 ends the run.
        assert_eq!(seqs(&contents.rows_from(5)), (5..20).collect::<Vec<u64>>());
        // From row 30 (rows up to 30 in the file): the last batch only.
        assert_eq!(
            seqs(&contents.rows_from(30)),
            (30..40).collect::<Vec<u64>>()
        );
    }

    #[test]
    fn the_mapped_reader_sees_what_the_copying_reader_sees_and_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("part-000000.wal");
        let mut g = generator();
        let meta = vec![("ensemble.stream".to_string(), "s".to_string())];
        let mut wal = WalWriter::create(path.clone(), g.schema(), &meta).expect("create");
        for i in 0..4 {
            wal.append([(i * 30, &g.generate(30))]).expect("append");
        }
        drop(wal);
        let whole = fs::read(&path).expect("read");
        for cut in [0, 7, 100] {
            fs::write(&path, &whole[..whole.len() - cut]).expect("write");
            let before = fs::read(&path).expect("read");
            let copied = read_wal(&path, &["ensemble.stream"])
                .expect("ok")
                .expect("schema");
            let mapped = read_wal_mapped(&path, &["ensemble.stream"])
                .expect("ok")
                .expect("schema");
            assert_eq!(mapped.torn_tail, copied.torn_tail, "cut {cut}");
            assert_eq!(mapped.metadata, copied.metadata);
            assert_eq!(mapped.schema, copied.schema);
            let rows = |c: &WalContents| -> Vec<(u64, RecordBatch)> { c.batches.clone() };
            assert_eq!(rows(&mapped), rows(&copied), "cut {cut}");
            assert_eq!(
                fs::read(&path).expect("read"),
                before,
                "the log is unchanged"
            );
        }
        fs::write(&path, [0xff, 0xff, 0xff]).expect("write");
        assert!(read_wal_mapped(&path, &[]).expect("readable").is_none());
    }

    #[test]
    fn a_log_cut_inside_its_schema_has_nothing_to_recover() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.wal");
        fs::write(&path, [0xff, 0xff, 0xff]).expect("write");
        assert!(read_wal(&path, &[]).expect("readable").is_none());
    }
}
