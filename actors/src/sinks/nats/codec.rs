//! The wire format of the NATS sink: one Arrow IPC stream per message, headers that describe it,
//! subjects, and the run's control messages. Plain functions, no I/O; `ensemble ingest` decodes
//! with the same functions the sink encodes with.
//!
//! | subject                               | `Ensemble-Kind` | payload                          |
//! |---------------------------------------|-----------------|----------------------------------|
//! | `PREFIX.RUN.STREAM`                   | `batch`         | Arrow IPC stream of its batches  |
//! | `PREFIX.RUN._manifest.start`          | `start`         | `run.json` as the run started    |
//! | `PREFIX.RUN._manifest.end`            | `end`           | [`RunEnd`] JSON (sink totals)    |
//! | `PREFIX.RUN._manifest.final`          | `final`         | `run.json` as the run ended      |
//!
//! A batch message holds one or more record batches of one stream whose rows are contiguous in
//! `seq` (the sink puts batches that arrive while their predecessor waits for its
//! acknowledgement into one message). It carries `Ensemble-Run`, `Ensemble-Stream`,
//! `Ensemble-Seq` (the `seq` of its first row), `Ensemble-Rows` (of all its batches), `Ensemble-Schema` (a fingerprint of the Arrow schema),
//! `Ensemble-Component` and `Ensemble-Experiment`, and a `Nats-Msg-Id` of `RUN:STREAM:SEQ` so
//! that JetStream drops a re-sent copy within its duplicate window.

use std::collections::BTreeMap;

use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_ipc::CompressionType;
use arrow_ipc::reader::StreamDecoder;
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
use arrow_schema::Schema;
use async_nats::HeaderMap;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::config::IpcCompression;

/// Header: what the message is (`batch`, `start`, `end`, `final`).
pub const HEADER_KIND: &str = "Ensemble-Kind";
/// Header: the run id.
pub const HEADER_RUN: &str = "Ensemble-Run";
/// Header: the stream name.
pub const HEADER_STREAM: &str = "Ensemble-Stream";
/// Header: `seq` of the batch's first row.
pub const HEADER_SEQ: &str = "Ensemble-Seq";
/// Header: rows in the batch.
pub const HEADER_ROWS: &str = "Ensemble-Rows";
/// Header: the schema fingerprint (see [`schema_fingerprint`]).
pub const HEADER_SCHEMA: &str = "Ensemble-Schema";
/// Header: the component that produced the stream.
pub const HEADER_COMPONENT: &str = "Ensemble-Component";
/// Header: the experiment's name.
pub const HEADER_EXPERIMENT: &str = "Ensemble-Experiment";
/// JetStream's de-duplication header.
pub const HEADER_MSG_ID: &str = "Nats-Msg-Id";
/// The subject token that marks control messages.
pub const MANIFEST_TOKEN: &str = "_manifest";

/// Why a message could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Arrow IPC refused the batch or the payload.
    #[error("Arrow IPC: {0}")]
    Ipc(#[from] arrow_schema::ArrowError),
    /// A header is missing or malformed.
    #[error("header {header}: {problem}")]
    Header {
        /// The header involved.
        header: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// The payload holds no batch.
    #[error("payload holds no batch")]
    NoBatch,
    /// The headers do not describe the payload (rows or schema differ).
    #[error("headers do not match the payload: {0}")]
    Mismatch(String),
    /// The subject is not one this format uses.
    #[error("unexpected subject `{0}`")]
    Subject(String),
    /// A control message's JSON is malformed.
    #[error("control message: {0}")]
    Json(#[from] serde_json::Error),
}

/// What a control message announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ControlKind {
    /// The run started; the payload is its first `run.json`.
    Start,
    /// A sink's inputs all ended; the payload is [`RunEnd`].
    End,
    /// The run ended; the payload is its final `run.json`.
    Final,
}

impl ControlKind {
    /// The word used in subjects and headers.
    pub fn as_str(self) -> &'static str {
        match self {
            ControlKind::Start => "start",
            ControlKind::End => "end",
            ControlKind::Final => "final",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "start" => Some(ControlKind::Start),
            "end" => Some(ControlKind::End),
            "final" => Some(ControlKind::Final),
            _ => None,
        }
    }
}

/// A sink's end-of-run message: what it published of each stream.
///
/// A consumer knows it holds a whole stream once it has every `seq` in
/// `0..rows_published + rows_undelivered` except the undelivered ones, i.e. when its rows equal
/// `rows_published` and the sink reports nothing undelivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEnd {
    /// The run.
    pub run_id: String,
    /// The experiment's name.
    pub experiment: String,
    /// The sink's name in the experiment.
    pub sink: String,
    /// Per input stream, in declaration order.
    pub streams: Vec<StreamEnd>,
}

/// What a sink published of one stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamEnd {
    /// The stream.
    pub stream: String,
    /// Rows JetStream acknowledged.
    pub rows_published: u64,
    /// Messages JetStream acknowledged.
    pub batches_published: u64,
    /// Rows the sink gave up on (counted, never silently dropped).
    pub rows_undelivered: u64,
    /// `seq` ranges `[first, end)` of the undelivered rows.
    pub undelivered: Vec<(u64, u64)>,
}

/// The facts carried in a batch message's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchMeta {
    /// The run.
    pub run_id: String,
    /// The stream.
    pub stream: String,
    /// `seq` of the first row.
    pub first_seq: u64,
    /// Rows in the batch.
    pub rows: u64,
    /// Fingerprint of the batch's schema.
    pub schema: String,
    /// The component producing the stream.
    pub component: String,
    /// The experiment's name.
    pub experiment: String,
}

/// A decoded batch message.
#[derive(Debug, Clone)]
pub struct BatchMessage {
    /// Its headers.
    pub meta: BatchMeta,
    /// Its rows, in `seq` order and contiguous (the first holds `meta.first_seq`), with the
    /// schema (and the schema's metadata) the producer used; one or more batches, all with the
    /// same schema.
    pub batches: Vec<RecordBatch>,
}

/// A decoded message of either kind.
#[derive(Debug, Clone)]
pub enum Incoming {
    /// Rows of a stream.
    Batch(BatchMessage),
    /// A run's start, a sink's end, or the run's final manifest.
    Control {
        /// The run.
        run_id: String,
        /// Which control message.
        kind: ControlKind,
        /// Its payload (JSON).
        payload: Vec<u8>,
    },
}

/// Subject of a stream's batches: `PREFIX.RUN.STREAM`.
pub fn data_subject(prefix: &str, run_id: &str, stream: &str) -> String {
    format!("{prefix}.{run_id}.{stream}")
}

/// Subject of a run's control message: `PREFIX.RUN._manifest.KIND`.
pub fn control_subject(prefix: &str, run_id: &str, kind: ControlKind) -> String {
    format!("{prefix}.{run_id}.{MANIFEST_TOKEN}.{}", kind.as_str())
}

/// Subjects of the data stream: `PREFIX.*.*` (exactly one run token and one stream token).
pub fn data_filter(prefix: &str) -> String {
    format!("{prefix}.*.*")
}

/// Subjects of the control stream: `PREFIX.*._manifest.*`.
pub fn control_filter(prefix: &str) -> String {
    format!("{prefix}.*.{MANIFEST_TOKEN}.*")
}

/// A stable fingerprint of a schema: 16 hex digits of FNV-1a over every field's name, type,
/// nullability and metadata and the schema's metadata, all in a fixed order.
///
/// Two schemas with the same fingerprint write the same Parquet schema; a stream whose
/// fingerprint changes mid-run is refused by ingest rather than mixed into one file.
pub fn schema_fingerprint(schema: &Schema) -> String {
    let mut text = String::new();
    for field in schema.fields() {
        let meta: BTreeMap<_, _> = field.metadata().iter().collect();
        text.push_str(&format!(
            "{}|{}|{}|{:?};",
            field.name(),
            field.data_type(),
            field.is_nullable(),
            meta
        ));
    }
    let meta: BTreeMap<_, _> = schema.metadata().iter().collect();
    text.push_str(&format!("{meta:?}"));
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Encodes one batch as an Arrow IPC stream (schema message, one batch, end marker).
pub fn encode_batch(
    batch: &RecordBatch,
    compression: IpcCompression,
) -> Result<Vec<u8>, CodecError> {
    encode_batches(std::slice::from_ref(batch), compression)
}

/// Encodes batches that share one schema as one Arrow IPC stream (schema message, the batches
/// in order, end marker). Empty `batches` gives [`CodecError::NoBatch`].
pub fn encode_batches(
    batches: &[RecordBatch],
    compression: IpcCompression,
) -> Result<Vec<u8>, CodecError> {
    let first = batches.first().ok_or(CodecError::NoBatch)?;
    let options = match compression {
        IpcCompression::None => IpcWriteOptions::default(),
        IpcCompression::Zstd => {
            IpcWriteOptions::default().try_with_compression(Some(CompressionType::ZSTD))?
        }
    };
    let size: usize = batches.iter().map(RecordBatch::get_array_memory_size).sum();
    let mut out = Vec::with_capacity(size + 1024);
    let mut writer = StreamWriter::try_new_with_options(&mut out, &first.schema(), options)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()?;
    drop(writer);
    Ok(out)
}

/// Decodes a payload made by [`encode_batches`]: one or more batches.
///
/// The batches' buffers point into `payload` (no copy) where they are aligned as Arrow wants
/// them; a misaligned buffer (the payload's place in the client's read buffer decides) is
/// copied once.
pub fn decode_batches(payload: Bytes) -> Result<Vec<RecordBatch>, CodecError> {
    let mut decoder = StreamDecoder::new();
    let mut buffer = Buffer::from(payload);
    let mut batches = Vec::new();
    while !buffer.is_empty() {
        match decoder.decode(&mut buffer)? {
            Some(batch) => batches.push(batch),
            None if buffer.is_empty() => break,
            None => {}
        }
    }
    decoder.finish()?;
    if batches.is_empty() {
        return Err(CodecError::NoBatch);
    }
    Ok(batches)
}

/// The headers of a batch message, including its `Nats-Msg-Id`.
pub fn batch_headers(meta: &BatchMeta) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(HEADER_KIND, "batch");
    h.insert(HEADER_RUN, meta.run_id.as_str());
    h.insert(HEADER_STREAM, meta.stream.as_str());
    h.insert(HEADER_SEQ, meta.first_seq.to_string().as_str());
    h.insert(HEADER_ROWS, meta.rows.to_string().as_str());
    h.insert(HEADER_SCHEMA, meta.schema.as_str());
    h.insert(HEADER_COMPONENT, meta.component.as_str());
    h.insert(HEADER_EXPERIMENT, meta.experiment.as_str());
    h.insert(
        HEADER_MSG_ID,
        format!("{}:{}:{}", meta.run_id, meta.stream, meta.first_seq).as_str(),
    );
    h
}

/// The headers of a control message, including its `Nats-Msg-Id`.
pub fn control_headers(run_id: &str, kind: ControlKind, sink: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(HEADER_KIND, kind.as_str());
    h.insert(HEADER_RUN, run_id);
    h.insert(
        HEADER_MSG_ID,
        format!("{run_id}:{MANIFEST_TOKEN}:{}:{sink}", kind.as_str()).as_str(),
    );
    h
}

fn header<'a>(headers: Option<&'a HeaderMap>, name: &'static str) -> Result<&'a str, CodecError> {
    headers
        .and_then(|h| h.get(name))
        .map(|v| v.as_str())
        .ok_or(CodecError::Header {
            header: name,
            problem: "missing".to_string(),
        })
}

fn number(headers: Option<&HeaderMap>, name: &'static str) -> Result<u64, CodecError> {
    let text = header(headers, name)?;
    text.parse().map_err(|_| CodecError::Header {
        header: name,
        problem: format!("`{text}` is not a number"),
    })
}

/// Decodes a message of the data or control stream from its subject, headers and payload.
///
/// A batch is checked against its headers: the rows and the schema fingerprint must match.
pub fn decode_message(
    subject: &str,
    headers: Option<&HeaderMap>,
    payload: Bytes,
) -> Result<Incoming, CodecError> {
    let kind = header(headers, HEADER_KIND)?;
    let run_id = header(headers, HEADER_RUN)?.to_string();
    if kind != "batch" {
        let kind = ControlKind::parse(kind).ok_or_else(|| CodecError::Header {
            header: HEADER_KIND,
            problem: format!("unknown kind `{kind}`"),
        })?;
        if !subject.contains(MANIFEST_TOKEN) {
            return Err(CodecError::Subject(subject.to_string()));
        }
        return Ok(Incoming::Control {
            run_id,
            kind,
            payload: payload.to_vec(),
        });
    }
    let meta = BatchMeta {
        run_id,
        stream: header(headers, HEADER_STREAM)?.to_string(),
        first_seq: number(headers, HEADER_SEQ)?,
        rows: number(headers, HEADER_ROWS)?,
        schema: header(headers, HEADER_SCHEMA)?.to_string(),
        component: header(headers, HEADER_COMPONENT)
            .unwrap_or_default()
            .to_string(),
        experiment: header(headers, HEADER_EXPERIMENT)
            .unwrap_or_default()
            .to_string(),
    };
    let batches = decode_batches(payload)?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    if rows as u64 != meta.rows {
        return Err(CodecError::Mismatch(format!(
            "{rows} rows in the payload, {} in the header",
            meta.rows
        )));
    }
    // One IPC stream has one schema: checking the first batch checks them all.
    let fingerprint = schema_fingerprint(&batches[0].schema());
    if fingerprint != meta.schema {
        return Err(CodecError::Mismatch(format!(
            "schema fingerprint {fingerprint}, header says {}",
            meta.schema
        )));
    }
    Ok(Incoming::Batch(BatchMessage { meta, batches }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{ChannelSpec, stream_schema_with_rate};
    use crate::instruments::sim::{SimGenerator, SimInstrumentConfig};

    fn batch(rows: usize) -> RecordBatch {
        let cfg: SimInstrumentConfig =
            serde_json::from_str(r#"{"rate_hz": 100.0, "channels": ["a", "b"], "unit": "V"}"#)
                .expect("valid");
        SimGenerator::new(&cfg, 0, 0).generate(rows)
    }

    fn meta(b: &RecordBatch) -> BatchMeta {
        BatchMeta {
            run_id: "r1".into(),
            stream: "daq".into(),
            first_seq: 0,
            rows: b.num_rows() as u64,
            schema: schema_fingerprint(&b.schema()),
            component: "daq".into(),
            experiment: "e".into(),
        }
    }

    #[test]
    fn batch_round_trips_with_schema_metadata() {
        for compression in [IpcCompression::None, IpcCompression::Zstd] {
            let b = batch(100);
            let payload = encode_batch(&b, compression).expect("encode");
            let headers = batch_headers(&meta(&b));
            let Incoming::Batch(m) =
                decode_message("ensemble.r1.daq", Some(&headers), payload.into()).expect("decode")
            else {
                panic!("a batch");
            };
            assert_eq!(m.batches, std::slice::from_ref(&b));
            assert_eq!(
                m.batches[0].schema(),
                b.schema(),
                "field and schema metadata survive"
            );
            assert_eq!(m.meta, meta(&b));
        }
    }

    #[test]
    fn several_batches_travel_in_one_message_in_order() {
        let whole = batch(300);
        let parts = [
            whole.slice(0, 100),
            whole.slice(100, 150),
            whole.slice(250, 50),
        ];
        for compression in [IpcCompression::None, IpcCompression::Zstd] {
            let payload = encode_batches(&parts, compression).expect("encode");
            let mut m = meta(&whole);
            m.rows = 300;
            let Incoming::Batch(decoded) =
                decode_message("ensemble.r1.daq", Some(&batch_headers(&m)), payload.into())
                    .expect("decode")
            else {
                panic!("a batch");
            };
            assert_eq!(decoded.batches, parts);
        }
        assert!(matches!(
            encode_batches(&[], IpcCompression::None),
            Err(CodecError::NoBatch)
        ));
        assert!(matches!(
            decode_batches(Bytes::new()),
            Err(CodecError::NoBatch)
        ));
    }

    #[test]
    fn wrong_rows_or_schema_header_is_refused() {
        let b = batch(10);
        let payload = encode_batch(&b, IpcCompression::None).expect("encode");
        let mut m = meta(&b);
        m.rows = 11;
        let payload = Bytes::from(payload);
        let err = decode_message("s", Some(&batch_headers(&m)), payload.clone()).expect_err("rows");
        assert!(err.to_string().contains("11"), "{err}");
        let mut m = meta(&b);
        m.schema = "0000".into();
        let err =
            decode_message("s", Some(&batch_headers(&m)), payload.clone()).expect_err("schema");
        assert!(err.to_string().contains("fingerprint"), "{err}");
        let err = decode_message("s", None, payload).expect_err("no headers");
        assert!(err.to_string().contains(HEADER_KIND), "{err}");
    }

    #[test]
    fn fingerprint_sees_units_and_rate() {
        let a = stream_schema_with_rate(&[ChannelSpec::new("x", "V")], 10.0);
        let b = stream_schema_with_rate(&[ChannelSpec::new("x", "A")], 10.0);
        let c = stream_schema_with_rate(&[ChannelSpec::new("x", "V")], 20.0);
        assert_ne!(schema_fingerprint(&a), schema_fingerprint(&b));
        assert_ne!(schema_fingerprint(&a), schema_fingerprint(&c));
        assert_eq!(
            schema_fingerprint(&a),
            schema_fingerprint(&a.as_ref().clone())
        );
    }

    #[test]
    fn subjects_and_filters_do_not_overlap() {
        assert_eq!(data_subject("ens", "r", "s"), "ens.r.s");
        assert_eq!(
            control_subject("ens", "r", ControlKind::End),
            "ens.r._manifest.end"
        );
        assert_eq!(data_filter("ens"), "ens.*.*");
        assert_eq!(control_filter("ens"), "ens.*._manifest.*");
        let h = control_headers("r", ControlKind::Start, "sink");
        let Incoming::Control { kind, run_id, .. } =
            decode_message("ens.r._manifest.start", Some(&h), Bytes::from_static(b"{}"))
                .expect("control")
        else {
            panic!("control");
        };
        assert_eq!((kind, run_id.as_str()), (ControlKind::Start, "r"));
    }
}
