//! The publishing logic of the NATS sink, as plain async code: publish batches with a bounded
//! window of unacknowledged messages, re-send on a lost connection, count what could not be
//! delivered. No actors here; `task` runs it as a tokio task behind a `PublisherHandle`.
//!
//! # Delivery
//! A batch counts as stored only once JetStream acknowledged it. At most `max_in_flight`
//! messages wait for their acknowledgement, and at most one *per input stream*: a batch goes out
//! only once its predecessor of the same stream is acknowledged, so a lost message can never be
//! overtaken by its successor (after a reconnect, a leader election or a timeout), and batches
//! of a stream reach JetStream in `seq` order. Several streams still share the window. When an
//! acknowledgement fails (timeout, broken connection, server error), every unacknowledged
//! message is published again *in order, one at a time*, until each is acknowledged or
//! `retry_for` has passed since the failure. Re-sent copies carry the same `Nats-Msg-Id`, so
//! JetStream stores each batch once (within the stream's duplicate window, which the sink sets to
//! at least `retry_for` plus a minute).
//!
//! # Limits
//! One stream's throughput is bounded by one acknowledgement round trip per message (about a
//! millisecond on a replicated stream): large batches keep that cheap per row; many small
//! batches of one stream do not pipeline.

use std::collections::{HashMap, VecDeque};
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_nats::HeaderMap;
use async_nats::jetstream;
use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::publish::PublishAck;
use bytes::Bytes;

use super::codec::{
    BatchMeta, ControlKind, RunEnd, StreamEnd, batch_headers, control_headers, control_subject,
    data_subject, encode_batch, schema_fingerprint,
};
use super::config::NatsSinkConfig;
use super::connection::BACKOFF;
use super::error::NatsSinkError;
use crate::batch::{DataBatch, StreamId};
use crate::control::{SinkReport, StreamWriteReport};
use crate::sinks::SinkInput;

/// Encode on a blocking thread when a batch is larger than this (bytes in memory).
const ENCODE_INLINE_LIMIT: usize = 256 * 1024;
/// Room left in each message for headers and protocol overhead.
const HEADER_ROOM: usize = 1024;

type AckFuture = Pin<Box<dyn Future<Output = Result<PublishAck, PublishError>> + Send>>;

/// A message waiting for its acknowledgement (or for a re-send).
struct Pending {
    /// Index of the stream in `streams`, or `None` for a control message.
    stream: Option<usize>,
    subject: String,
    headers: HeaderMap,
    payload: Bytes,
    first_seq: u64,
    rows: u64,
    /// Behind a mutex only so that `Pending` is `Sync` (the future itself is `Send` only).
    ack: Option<std::sync::Mutex<AckFuture>>,
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
    run_id: String,
    run_token: String,
    experiment: String,
    pub(super) streams: Vec<StreamState>,
    index: HashMap<StreamId, usize>,
    in_flight: VecDeque<Pending>,
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

    /// Publishes `batch` (split if it exceeds the server's message size), waiting while the
    /// window of unacknowledged messages is full.
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
        let fingerprint = self.fingerprint(index, &batch.batch.schema());
        let pieces = match self.encode(&batch.batch).await {
            Ok(p) => p,
            Err(source) => {
                let e = NatsSinkError::Encode {
                    stream: batch.stream.to_string(),
                    source,
                };
                tracing::error!(stream = %batch.stream, "{e}.");
                self.streams[index].error.get_or_insert(e.to_string());
                self.count_undelivered(index, batch.first_seq, rows);
                self.failure.get_or_insert(e);
                return;
            }
        };
        for (offset, piece_rows, payload) in pieces {
            let first_seq = batch.first_seq + offset;
            let state = &self.streams[index];
            let headers = batch_headers(&BatchMeta {
                run_id: self.run_id.clone(),
                stream: state.name.to_string(),
                first_seq,
                rows: piece_rows,
                schema: fingerprint.clone(),
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

    /// Waits until every published message is acknowledged (or given up on).
    pub async fn drain(&mut self) {
        while !self.in_flight.is_empty() {
            self.settle_oldest().await;
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

    /// Encodes a batch into `(row offset, rows, payload)` pieces that each fit a message.
    async fn encode(
        &self,
        batch: &Arc<RecordBatch>,
    ) -> Result<Vec<(u64, u64, Bytes)>, super::codec::CodecError> {
        let compression = self.config.compression;
        let limit = self.max_payload.saturating_sub(HEADER_ROOM).max(1);
        let size = batch.get_array_memory_size();
        let batch = batch.clone();
        let work = move || split_encode(&batch, compression, limit);
        if size > ENCODE_INLINE_LIMIT {
            tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| {
                Err(arrow_schema::ArrowError::ExternalError(Box::new(e)).into())
            })
        } else {
            work()
        }
    }

    async fn push(&mut self, mut pending: Pending) {
        // In order per stream: wait for this stream's predecessor (settled oldest first).
        while self.in_flight.len() >= self.config.max_in_flight
            || (pending.stream.is_some()
                && self.in_flight.iter().any(|p| p.stream == pending.stream))
        {
            self.settle_oldest().await;
        }
        if self.failure.is_some() {
            self.give_up_on(pending);
            return;
        }
        // A failed send (disconnected client) leaves `ack` empty: the next settle re-sends it.
        pending.ack = self.send(&pending).await.ok().map(std::sync::Mutex::new);
        self.in_flight.push_back(pending);
    }

    fn send(
        &self,
        p: &Pending,
    ) -> impl Future<Output = Result<AckFuture, PublishError>> + Send + use<> {
        let js = self.js.clone();
        let (subject, headers, payload) = (p.subject.clone(), p.headers.clone(), p.payload.clone());
        async move {
            let Some(js) = js else {
                return Err(PublishError::new(
                    async_nats::jetstream::context::PublishErrorKind::Other,
                ));
            };
            let future = js.publish_with_headers(subject, headers, payload).await?;
            Ok(Box::pin(future.into_future()) as AckFuture)
        }
    }

    async fn settle_oldest(&mut self) {
        let Some(mut head) = self.in_flight.pop_front() else {
            return;
        };
        let result = match head.ack.take() {
            Some(ack) => {
                let ack = ack.into_inner().unwrap_or_else(|e| e.into_inner());
                ack.await.map_err(|e| e.to_string())
            }
            None => Err("not sent (connection down)".to_string()),
        };
        match result {
            Ok(_) => self.delivered(&head),
            Err(e) => {
                self.in_flight.push_front(head);
                self.resend_all(e).await;
            }
        }
    }

    /// Publishes every unacknowledged message again, in order and one at a time, until each is
    /// acknowledged or `retry_for` has passed.
    async fn resend_all(&mut self, first_error: String) {
        tracing::warn!(
            sink = %self.sink,
            run_id = %self.run_id,
            pending = self.in_flight.len(),
            "JetStream did not acknowledge a message ({first_error}); re-sending in order."
        );
        for p in &mut self.in_flight {
            p.ack = None;
        }
        let deadline = Instant::now() + self.config.retry_for;
        let mut last_error;
        let mut wait = BACKOFF.0;
        while let Some(head) = self.in_flight.pop_front() {
            let result = match self.send(&head).await {
                Ok(ack) => ack.await.map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match result {
                Ok(_) => {
                    self.delivered(&head);
                    wait = BACKOFF.0;
                }
                Err(e) => {
                    last_error = e;
                    self.in_flight.push_front(head);
                    if Instant::now() + wait > deadline {
                        let rows = self.in_flight.iter().map(|p| p.rows).sum();
                        let error = NatsSinkError::Undelivered {
                            rows,
                            retry_for: self.config.retry_for,
                            message: last_error,
                        };
                        tracing::error!(sink = %self.sink, run_id = %self.run_id, "{error}.");
                        self.failure.get_or_insert(error);
                        while let Some(p) = self.in_flight.pop_front() {
                            self.give_up_on(p);
                        }
                        return;
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(BACKOFF.1);
                }
            }
        }
        tracing::warn!(sink = %self.sink, run_id = %self.run_id, "JetStream acknowledged every re-sent message; nothing lost.");
    }

    fn delivered(&mut self, p: &Pending) {
        if let Some(i) = p.stream {
            let s = &mut self.streams[i];
            s.rows_published += p.rows;
            s.batches_published += 1;
        }
    }

    fn give_up_on(&mut self, p: Pending) {
        if let Some(i) = p.stream {
            self.count_undelivered(i, p.first_seq, p.rows);
        }
    }

    fn count_undelivered(&mut self, index: usize, first_seq: u64, rows: u64) {
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

/// Encodes `batch`, halving it until every piece fits `limit` bytes.
fn split_encode(
    batch: &RecordBatch,
    compression: super::config::IpcCompression,
    limit: usize,
) -> Result<Vec<(u64, u64, Bytes)>, super::codec::CodecError> {
    let mut out = Vec::new();
    let mut todo = vec![(0usize, batch.num_rows())];
    while let Some((offset, rows)) = todo.pop() {
        let slice = batch.slice(offset, rows);
        let payload = encode_batch(&slice, compression)?;
        if payload.len() > limit && rows > 1 {
            let half = rows / 2;
            // Pushed in reverse so the first half is encoded (and published) first.
            todo.push((offset + half, rows - half));
            todo.push((offset, half));
            continue;
        }
        out.push((offset as u64, rows as u64, Bytes::from(payload)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instruments::sim::{SimGenerator, SimInstrumentConfig};
    use crate::sinks::nats::codec::decode_batch;
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
        let pieces = split_encode(&batch, IpcCompression::None, whole / 3).expect("split");
        assert!(pieces.len() >= 3, "{} pieces", pieces.len());
        let mut next = 0;
        for (offset, rows, payload) in &pieces {
            assert_eq!(*offset, next, "pieces are in order and contiguous");
            assert!(payload.len() <= whole / 3);
            assert_eq!(
                decode_batch(payload).expect("decode").num_rows() as u64,
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
