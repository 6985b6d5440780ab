//! The publishing logic of the NATS sink, as plain async code: what goes out when. Batches of
//! a stream become messages, in `seq` order, one message in flight per stream; the window of
//! unacknowledged messages (`window.rs`) sees that each arrives. No actors here; `task` runs it
//! as a tokio task behind a `PublisherHandle`.
//!
//! # Delivery
//! A batch counts as stored only once JetStream acknowledged it. At most `max_in_flight`
//! messages wait for their acknowledgement, and at most one *per input stream*: a message goes
//! out only once its predecessor of the same stream is acknowledged, so a lost message can
//! never be overtaken by its successor (after a reconnect, a leader election or a timeout), and
//! batches of a stream reach JetStream in `seq` order. Several streams still share the window.
//! When an acknowledgement fails (timeout, broken connection, server error), every
//! unacknowledged message is published again *in order, one at a time*, until each is
//! acknowledged or `retry_for` has passed since the failure. Re-sent copies carry the same
//! `Nats-Msg-Id`, so JetStream stores each message once (within the stream's duplicate window,
//! which the sink sets to at least `retry_for` plus a minute).
//!
//! # Batching
//! Batches of a stream that arrive while its message is in flight are *staged* and go out
//! together, as one message, as soon as that message is acknowledged: one acknowledgement
//! round trip then covers several batches, so a fast stream is not bound to one round trip per
//! batch, and an idle one waits for none. A message holds batches contiguous in `seq` (a gap,
//! e.g. rows an instrument skipped, starts a new message) up to the server's `max_payload`.
//!
//! # Limits
//! One stream's throughput is bounded by one acknowledgement round trip per `max_payload`
//! bytes: on a replicated stream, raise the servers' `max_payload` (e.g. to 8 MB) for the
//! fastest streams.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_nats::jetstream;
use bytes::Bytes;

use super::codec::{
    BatchMeta, ControlKind, RunEnd, StreamEnd, batch_headers, control_headers, control_subject,
    data_subject, encode_batches, schema_fingerprint,
};
use super::config::NatsSinkConfig;
use super::error::NatsSinkError;
use super::pending::Pending;
use crate::batch::{DataBatch, StreamId};
use crate::control::{SinkReport, StreamWriteReport};
use crate::sinks::SinkInput;

/// Encode on a blocking thread when the batches are larger than this (bytes in memory).
const ENCODE_INLINE_LIMIT: usize = 256 * 1024;
/// Room left in each message for headers and protocol overhead.
const HEADER_ROOM: usize = 1024;

/// Batches of one stream waiting for the stream's message in flight, to go out as its next
/// message.
struct Staged {
    batches: Vec<RecordBatch>,
    fingerprint: String,
    first_seq: u64,
    rows: u64,
    /// Bytes the batches take in memory: about their encoded size.
    bytes: usize,
}

/// Per input stream: where it goes and what was delivered.
pub(super) struct StreamState {
    /// The input stream.
    pub(super) name: StreamId,
    component: String,
    subject: String,
    fingerprint: Option<(SchemaRef, String)>,
    rows_published: u64,
    batches_published: u64,
    rows_undelivered: u64,
    undelivered: Vec<(u64, u64)>,
    error: Option<String>,
    /// Messages of this stream in the window (0 or 1, but while re-sending after a failure).
    pub(super) in_flight: usize,
    /// Batches waiting for this stream's message in flight.
    staged: Option<Staged>,
}

/// Turns a run id or stream name into one subject token: `.`, `*`, `>` and whitespace become `_`.
///
/// Run ids carry a `.` before their milliseconds; the real id travels in the headers.
pub fn subject_token(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_whitespace() || matches!(c, '.' | '*' | '>') {
                '_'
            } else {
                c
            }
        })
        .collect()
}
/// The sink's publishing state: the window of unacknowledged messages and per-stream totals.
pub struct Publisher {
    pub(super) js: Option<jetstream::Context>,
    pub(super) config: NatsSinkConfig,
    pub(super) sink: String,
    pub(super) run_id: String,
    run_token: String,
    experiment: String,
    pub(super) streams: Vec<StreamState>,
    index: HashMap<StreamId, usize>,
    pub(super) in_flight: VecDeque<Pending>,
    /// Largest message the server takes; bigger batches are split.
    pub(super) max_payload: usize,
    /// Set once the sink gave up on a message: later batches are counted as undelivered.
    pub(super) failure: Option<NatsSinkError>,
    /// Failures not yet reported to the actor.
    reported: bool,
}

impl Publisher {
    /// A publisher for `inputs` of run `run_id`; `js` is `None` when the connection failed (every
    /// batch is then counted as undelivered).
    pub fn new(
        js: impl Into<Option<jetstream::Context>>,
        config: NatsSinkConfig,
        sink: &str,
        run_id: &str,
        experiment: &str,
        inputs: &[SinkInput],
    ) -> Self {
        let run_token = subject_token(run_id);
        let streams: Vec<StreamState> = inputs
            .iter()
            .map(|i| StreamState {
                name: i.stream.clone(),
                component: i.component.clone(),
                subject: data_subject(
                    &config.subject_prefix,
                    &run_token,
                    &subject_token(&i.stream),
                ),
                fingerprint: None,
                rows_published: 0,
                batches_published: 0,
                rows_undelivered: 0,
                undelivered: Vec::new(),
                error: None,
                in_flight: 0,
                staged: None,
            })
            .collect();
        let index = streams
            .iter()
            .enumerate()
            .map(|(i, s)| (s.name.clone(), i))
            .collect();
        Self {
            js: js.into(),
            config,
            sink: sink.to_string(),
            run_id: run_id.to_string(),
            run_token,
            experiment: experiment.to_string(),
            streams,
            index,
            in_flight: VecDeque::new(),
            max_payload: 1024 * 1024,
            failure: None,
            reported: false,
        }
    }

    /// Marks the publisher failed before it could connect.
    pub fn fail(&mut self, error: NatsSinkError) {
        self.failure.get_or_insert(error);
    }

    /// The failure to report, once.
    pub fn take_new_failure(&mut self) -> Option<String> {
        if self.reported {
            return None;
        }
        let text = self.failure.as_ref()?.to_string();
        self.reported = true;
        Some(text)
    }

    /// Publishes `batch`: at once when its stream has no message in flight, else staged to go
    /// out with the stream's next message. Waits while the window is full, or while the
    /// stream's staged batches cannot take this one (full, or not contiguous) and its message
    /// is in flight.
    pub async fn publish(&mut self, batch: DataBatch) {
        let Some(&index) = self.index.get(&batch.stream) else {
            return;
        };
        let rows = batch.rows() as u64;
        if rows == 0 {
            return;
        }
        if self.failure.is_some() || self.js.is_none() {
            self.count_undelivered(index, batch.first_seq, rows);
            return;
        }
        self.settle_arrived().await;
        let fingerprint = self.fingerprint(index, &batch.batch.schema());
        let bytes = batch.batch.get_array_memory_size();
        let limit = self.payload_limit();
        loop {
            let state = &mut self.streams[index];
            if state.in_flight == 0 {
                if state.staged.is_some() {
                    self.send_staged(index).await;
                    continue;
                }
                break;
            }
            match &mut state.staged {
                None => break,
                Some(staged)
                    if staged.first_seq + staged.rows == batch.first_seq
                        && staged.fingerprint == fingerprint
                        && staged.bytes + bytes <= limit =>
                {
                    staged.batches.push((*batch.batch).clone());
                    staged.rows += rows;
                    staged.bytes += bytes;
                    return;
                }
                Some(_) => self.settle_oldest().await,
            }
        }
        self.streams[index].staged = Some(Staged {
            batches: vec![(*batch.batch).clone()],
            fingerprint,
            first_seq: batch.first_seq,
            rows,
            bytes,
        });
        if self.streams[index].in_flight == 0 {
            self.send_staged(index).await;
        }
    }

    /// Whether batches are staged, waiting for their stream's message in flight.
    pub fn has_staged(&self) -> bool {
        self.streams.iter().any(|s| s.staged.is_some())
    }

    /// Waits for the oldest acknowledgement, then sends the staged batches of every stream
    /// whose message is no longer in flight. For the idle publisher task: staged batches go
    /// out without waiting for the next batch.
    pub async fn progress(&mut self) {
        self.settle_oldest().await;
        self.send_ready_staged().await;
    }

    async fn send_ready_staged(&mut self) {
        for index in 0..self.streams.len() {
            if self.streams[index].in_flight == 0 && self.streams[index].staged.is_some() {
                self.send_staged(index).await;
            }
        }
    }

    /// Largest payload of one message.
    fn payload_limit(&self) -> usize {
        self.max_payload.saturating_sub(HEADER_ROOM).max(1)
    }

    /// Encodes stream `index`'s staged batches (split into several messages if they exceed
    /// the server's message size) and puts them in the window.
    async fn send_staged(&mut self, index: usize) {
        let Some(staged) = self.streams[index].staged.take() else {
            return;
        };
        if self.failure.is_some() {
            self.count_undelivered(index, staged.first_seq, staged.rows);
            return;
        }
        let pieces = match self.encode(staged.batches, staged.bytes).await {
            Ok(p) => p,
            Err(source) => {
                let stream = self.streams[index].name.to_string();
                let e = NatsSinkError::Encode { stream, source };
                tracing::error!(stream = %self.streams[index].name, "{e}.");
                self.streams[index].error.get_or_insert(e.to_string());
                self.count_undelivered(index, staged.first_seq, staged.rows);
                self.failure.get_or_insert(e);
                return;
            }
        };
        for (offset, piece_rows, payload) in pieces {
            let first_seq = staged.first_seq + offset;
            let state = &self.streams[index];
            let headers = batch_headers(&BatchMeta {
                run_id: self.run_id.clone(),
                stream: state.name.to_string(),
                first_seq,
                rows: piece_rows,
                schema: staged.fingerprint.clone(),
                component: state.component.clone(),
                experiment: self.experiment.clone(),
            });
            let pending = Pending {
                stream: Some(index),
                subject: state.subject.clone(),
                headers,
                payload,
                first_seq,
                rows: piece_rows,
                ack: None,
            };
            // Pieces of one staged set: each waits for its predecessor (in order per stream).
            while self.streams[index].in_flight > 0 {
                self.settle_oldest().await;
            }
            self.push(pending).await;
        }
    }

    /// Publishes a control message of this run and waits until it (and everything before it)
    /// is acknowledged.
    pub async fn publish_control(&mut self, kind: ControlKind, payload: Vec<u8>) {
        if self.failure.is_some() || self.js.is_none() {
            return;
        }
        let pending = Pending {
            stream: None,
            subject: control_subject(&self.config.subject_prefix, &self.run_token, kind),
            headers: control_headers(&self.run_id, kind, &self.sink),
            payload: Bytes::from(payload),
            first_seq: 0,
            rows: 0,
            ack: None,
        };
        self.push(pending).await;
        self.drain().await;
    }

    /// Waits until every batch is published and acknowledged (or given up on).
    pub async fn drain(&mut self) {
        while !self.in_flight.is_empty() || self.has_staged() {
            self.send_ready_staged().await;
            self.settle_all().await;
        }
    }

    /// Drains, publishes this sink's end message and returns what was delivered.
    pub async fn finish(&mut self) -> SinkReport {
        self.drain().await;
        let end = RunEnd {
            run_id: self.run_id.clone(),
            experiment: self.experiment.clone(),
            sink: self.sink.clone(),
            streams: self
                .streams
                .iter()
                .map(|s| StreamEnd {
                    stream: s.name.to_string(),
                    rows_published: s.rows_published,
                    batches_published: s.batches_published,
                    rows_undelivered: s.rows_undelivered,
                    undelivered: s.undelivered.clone(),
                })
                .collect(),
        };
        match serde_json::to_vec_pretty(&end) {
            Ok(payload) => self.publish_control(ControlKind::End, payload).await,
            Err(e) => tracing::error!(sink = %self.sink, "Cannot encode the end message: {e}."),
        }
        SinkReport {
            streams: self
                .streams
                .iter()
                .map(|s| StreamWriteReport {
                    stream: s.name.clone(),
                    rows: s.rows_published,
                    parts: Vec::new(),
                    rows_lost: s.rows_undelivered,
                    error: s.error.clone(),
                })
                .collect(),
            // Sample-to-durable latency is measured by the Parquet sinks only.
            latency: None,
        }
    }

    fn fingerprint(&mut self, index: usize, schema: &SchemaRef) -> String {
        let state = &mut self.streams[index];
        match &state.fingerprint {
            Some((cached, text)) if Arc::ptr_eq(cached, schema) => text.clone(),
            _ => {
                let text = schema_fingerprint(schema);
                state.fingerprint = Some((schema.clone(), text.clone()));
                text
            }
        }
    }

    /// Encodes batches into `(row offset, rows, payload)` pieces that each fit a message.
    async fn encode(
        &self,
        batches: Vec<RecordBatch>,
        bytes: usize,
    ) -> Result<Vec<(u64, u64, Bytes)>, super::codec::CodecError> {
        let compression = self.config.compression;
        let limit = self.payload_limit();
        let work = move || split_encode(&batches, compression, limit);
        if bytes > ENCODE_INLINE_LIMIT {
            tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
                Err(arrow_schema::ArrowError::ExternalError(Box::new(e)).into())
            })
        } else {
            work()
        }
    }

    /// Counts an acknowledged message as delivered.
    pub(super) fn delivered(&mut self, p: &Pending) {
        if let Some(i) = p.stream {
            let s = &mut self.streams[i];
            s.in_flight -= 1;
            s.rows_published += p.rows;
            s.batches_published += 1;
        }
    }

    /// Counts rows of stream `index` as undelivered (never silently dropped).
    pub(super) fn count_undelivered(&mut self, index: usize, first_seq: u64, rows: u64) {
        let s = &mut self.streams[index];
        s.rows_undelivered += rows;
        match s.undelivered.last_mut() {
            Some((_, end)) if *end == first_seq => *end += rows,
            _ => s.undelivered.push((first_seq, first_seq + rows)),
        }
        if s.error.is_none() {
            s.error = Some(match &self.failure {
                Some(e) => e.to_string(),
                None => "not delivered to JetStream".to_string(),
            });
        }
    }
}

/// Encodes `batches` (contiguous rows of one stream) into messages that fit `limit` bytes:
/// all in one if they fit, else halved by batches, and a single batch too large by rows.
fn split_encode(
    batches: &[RecordBatch],
    compression: super::config::IpcCompression,
    limit: usize,
) -> Result<Vec<(u64, u64, Bytes)>, super::codec::CodecError> {
    let mut out = Vec::new();
    // Pushed in reverse, popped in order: the first rows are encoded (and published) first.
    let mut todo: Vec<(u64, Vec<RecordBatch>)> = vec![(0, batches.to_vec())];
    while let Some((offset, group)) = todo.pop() {
        let rows: usize = group.iter().map(RecordBatch::num_rows).sum();
        let payload = encode_batches(&group, compression)?;
        if payload.len() > limit && rows > 1 {
            let (first, second) = if group.len() > 1 {
                let half = group.len() / 2;
                (group[..half].to_vec(), group[half..].to_vec())
            } else {
                let half = rows / 2;
                (
                    vec![group[0].slice(0, half)],
                    vec![group[0].slice(half, rows - half)],
                )
            };
            let first_rows: usize = first.iter().map(RecordBatch::num_rows).sum();
            todo.push((offset + first_rows as u64, second));
            todo.push((offset, first));
            continue;
        }
        out.push((offset, rows as u64, Bytes::from(payload)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruments::sim::{SimGenerator, SimInstrumentConfig};
    use crate::sinks::nats::codec::{decode_batches, encode_batch};
    use crate::sinks::nats::config::IpcCompression;

    #[test]
    fn run_ids_and_names_become_single_subject_tokens() {
        assert_eq!(
            subject_token("20261127T101225.123Z-abc"),
            "20261127T101225_123Z-abc"
        );
        assert_eq!(subject_token("a b*c>d"), "a_b_c_d");
    }

    #[test]
    fn oversized_batches_split_in_order_into_pieces_that_fit() {
        let cfg: SimInstrumentConfig =
            serde_json::from_str(r#"{"rate_hz": 100.0, "channels": ["a", "b"]}"#).expect("valid");
        let batch = SimGenerator::new(&cfg, 0, 0).generate(10_000);
        let whole = encode_batch(&batch, IpcCompression::None)
            .expect("encode")
            .len();
        let pieces = split_encode(
            std::slice::from_ref(&batch),
            IpcCompression::None,
            whole / 3,
        )
        .expect("split");
        assert!(pieces.len() >= 3, "{} pieces", pieces.len());
        let mut next = 0;
        for (offset, rows, payload) in &pieces {
            assert_eq!(*offset, next, "pieces are in order and contiguous");
            assert!(payload.len() <= whole / 3);
            assert_eq!(
                decode_batches(payload.clone()).expect("decode")[0].num_rows() as u64,
                *rows
            );
            next += rows;
        }
        assert_eq!(next, 10_000);
    }

    #[tokio::test]
    async fn without_a_server_every_row_is_counted_undelivered() {
        let input = SinkInput {
            stream: "s".into(),
            schema: crate::batch::stream_schema(&[]),
            component: "s".into(),
        };
        let mut p = Publisher::new(None, NatsSinkConfig::default(), "bus", "r", "e", &[input]);
        p.fail(NatsSinkError::Closed);
        let cfg: SimInstrumentConfig =
            serde_json::from_str(r#"{"rate_hz": 100.0}"#).expect("valid");
        let mut g = SimGenerator::new(&cfg, 0, 0);
        for _ in 0..3 {
            let first = g.next_seq();
            p.publish(DataBatch::new("s".into(), first, g.generate(10)))
                .await;
        }
        let report = p.finish().await;
        assert_eq!(report.streams[0].rows, 0);
        assert_eq!(report.streams[0].rows_lost, 30);
        assert_eq!(p.streams[0].undelivered, [(0, 30)]);
        assert!(p.take_new_failure().is_some());
        assert!(p.take_new_failure().is_none(), "reported once");
    }
}
