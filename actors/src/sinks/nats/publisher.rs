//! The publishing logic of the NATS sink, as plain async code: connect, make sure the streams
//! exist, publish batches with a bounded window of unacknowledged messages, re-send on a lost
//! connection, count what could not be delivered. No actors here; [`spawn_publisher`] runs it as
//! a tokio task behind a [`PublisherHandle`].
//!
//! # Delivery
//! A batch counts as stored only once JetStream acknowledged it. At most `max_in_flight`
//! messages wait for their acknowledgement; the oldest is awaited first. When an
//! acknowledgement fails (timeout, broken connection, server error), every unacknowledged
//! message is published again *in order, one at a time*, until each is acknowledged or
//! `retry_for` has passed since the failure. Re-sent copies carry the same `Nats-Msg-Id`, so
//! JetStream stores each batch once (within the stream's duplicate window, which the sink sets to
//! at least `retry_for` plus a minute).
//!
//! # Limits
//! A batch whose first send was lost with the old connection while its successor, queued in the
//! client, went out on the new one, lands in JetStream after that successor. Ingest stores rows
//! in arrival order, so after a reconnect a part file can hold one batch out of `seq` order; no
//! row is lost or duplicated. Sort by `seq` when reading runs that saw a reconnect.

use std::collections::{HashMap, VecDeque};
use std::future::{Future, IntoFuture};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::publish::PublishAck;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::codec::{
    BatchMeta, ControlKind, RunEnd, StreamEnd, batch_headers, control_filter, control_headers,
    control_subject, data_filter, data_subject, encode_batch, schema_fingerprint,
};
use super::config::{NatsSinkConfig, Retention};
use crate::batch::{DataBatch, StreamId};
use crate::control::{SinkReport, StreamWriteReport};
use crate::sinks::{SinkContext, SinkInput, WriteFailure};

/// Commands a [`PublisherHandle`] may hold queued before the sender waits.
const COMMAND_QUEUE: usize = 4;
/// Encode on a blocking thread when a batch is larger than this (bytes in memory).
const ENCODE_INLINE_LIMIT: usize = 256 * 1024;
/// Room left in each message for headers and protocol overhead.
const HEADER_ROOM: usize = 1024;
/// First and longest wait between re-sends.
const BACKOFF: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// Why the NATS sink could not connect or publish.
#[derive(Debug, thiserror::Error)]
pub enum NatsSinkError {
    /// The server did not accept a connection within `retry_for`.
    #[error("cannot connect to NATS at {url}: {message}")]
    Connect {
        /// The URL tried.
        url: String,
        /// The last error.
        message: String,
    },
    /// A JetStream stream could not be found or created.
    #[error("cannot create or find JetStream stream `{stream}`: {message}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// What the server said.
        message: String,
    },
    /// A batch could not be encoded.
    #[error("cannot encode a batch of `{stream}`: {source}")]
    Encode {
        /// The stream.
        stream: String,
        /// Why.
        source: super::codec::CodecError,
    },
    /// JetStream did not acknowledge messages within `retry_for`.
    #[error("JetStream did not acknowledge {rows} rows within {retry_for:?}: {message}")]
    Undelivered {
        /// Rows given up on.
        rows: u64,
        /// The configured retry time.
        retry_for: Duration,
        /// The last error.
        message: String,
    },
    /// The sink's publisher task has finished.
    #[error("the NATS publisher has finished")]
    Closed,
}

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
struct StreamState {
    name: StreamId,
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

/// Connects to `url`, retrying for up to `retry_for`.
pub async fn connect(
    url: &str,
    name: &str,
    retry_for: Duration,
) -> Result<async_nats::Client, NatsSinkError> {
    let deadline = Instant::now() + retry_for;
    let mut wait = BACKOFF.0;
    loop {
        let options = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None);
        match options.connect(url).await {
            Ok(client) => return Ok(client),
            Err(e) if Instant::now() + wait > deadline => {
                return Err(NatsSinkError::Connect {
                    url: url.to_string(),
                    message: e.to_string(),
                });
            }
            Err(e) => {
                tracing::warn!(url, "Cannot connect to NATS yet ({e}); retrying.");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(BACKOFF.1);
            }
        }
    }
}

/// The JetStream context the sink publishes through: acknowledgements time out after
/// `ack_timeout`.
pub fn jetstream_context(
    client: async_nats::Client,
    config: &NatsSinkConfig,
) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(config.ack_timeout)
        .max_ack_inflight(config.max_in_flight * 4 + 16)
        .backpressure_on_inflight(true)
        .build(client)
}

/// Makes sure the data stream and the control stream exist, creating them as configured.
/// Retries for up to `retry_for` (a cluster may still be electing its leaders).
pub async fn ensure_streams(
    js: &jetstream::Context,
    config: &NatsSinkConfig,
) -> Result<(), NatsSinkError> {
    let duplicate_window =
        (config.retry_for + Duration::from_secs(60)).max(Duration::from_secs(120));
    let data = stream::Config {
        name: config.stream.clone(),
        subjects: vec![data_filter(&config.subject_prefix)],
        retention: match config.retention {
            Retention::Limits => stream::RetentionPolicy::Limits,
            Retention::Workqueue => stream::RetentionPolicy::WorkQueue,
        },
        num_replicas: config.replicas,
        max_bytes: config
            .max_bytes
            .map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX)),
        duplicate_window,
        ..Default::default()
    };
    let control = stream::Config {
        name: config.control_stream(),
        subjects: vec![control_filter(&config.subject_prefix)],
        num_replicas: config.replicas,
        duplicate_window,
        ..Default::default()
    };
    for cfg in [data, control] {
        let deadline = Instant::now() + config.retry_for;
        let mut wait = BACKOFF.0;
        loop {
            match js.get_or_create_stream(cfg.clone()).await {
                Ok(_) => break,
                Err(e) if Instant::now() + wait > deadline => {
                    return Err(NatsSinkError::Stream {
                        stream: cfg.name.clone(),
                        message: e.to_string(),
                    });
                }
                Err(e) => {
                    tracing::warn!(stream = %cfg.name, "JetStream stream not ready ({e}); retrying.");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(BACKOFF.1);
                }
            }
        }
    }
    Ok(())
}

/// Publishes one control message of a run and waits for its acknowledgement, retrying for up to
/// `config.retry_for`. Used by `ensemble run` to publish the final manifest after every sink
/// has finished.
pub async fn publish_control(
    config: &NatsSinkConfig,
    sink: &str,
    run_id: &str,
    kind: ControlKind,
    payload: Vec<u8>,
) -> Result<(), NatsSinkError> {
    let client = connect(&config.url, &format!("ensemble {sink}"), config.retry_for).await?;
    let js = jetstream_context(client.clone(), config);
    let mut publisher = Publisher::new(js, config.clone(), sink, run_id, "", &[]);
    publisher.max_payload = client.server_info().max_payload;
    publisher.publish_control(kind, payload).await;
    let _ = client.flush().await;
    match publisher.failure.take() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The sink's publishing state: the window of unacknowledged messages and per-stream totals.
pub struct Publisher {
    js: Option<jetstream::Context>,
    config: NatsSinkConfig,
    sink: String,
    run_id: String,
    run_token: String,
    experiment: String,
    streams: Vec<StreamState>,
    index: HashMap<StreamId, usize>,
    in_flight: VecDeque<Pending>,
    /// Largest message the server takes; bigger batches are split.
    max_payload: usize,
    /// Set once the sink gave up on a message: later batches are counted as undelivered.
    failure: Option<NatsSinkError>,
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
        while self.in_flight.len() >= self.config.max_in_flight {
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

enum Command {
    Publish(DataBatch),
    Flush(oneshot::Sender<Result<(), String>>),
    Finish(oneshot::Sender<SinkReport>),
}

/// Handle to a running publisher task. Cheap to clone.
#[derive(Clone)]
pub struct PublisherHandle {
    tx: mpsc::Sender<Command>,
}

impl PublisherHandle {
    /// Queues a batch, waiting while the publisher is busy (this is the sink's backpressure).
    pub async fn publish(&self, batch: DataBatch) -> Result<(), NatsSinkError> {
        self.tx
            .send(Command::Publish(batch))
            .await
            .map_err(|_| NatsSinkError::Closed)
    }

    /// Waits until everything published so far is acknowledged by JetStream.
    pub async fn flush(&self) -> Result<(), String> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Flush(tx))
            .await
            .map_err(|_| NatsSinkError::Closed.to_string())?;
        rx.await.map_err(|_| NatsSinkError::Closed.to_string())?
    }

    /// Drains, publishes the end message and stops the task; returns what was delivered.
    pub async fn finish(&self) -> Result<SinkReport, NatsSinkError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Command::Finish(tx))
            .await
            .map_err(|_| NatsSinkError::Closed)?;
        rx.await.map_err(|_| NatsSinkError::Closed)
    }
}

/// Where the publisher reports that it gave up (the sink then fails, and the run with it).
pub type PublisherFailures = flume::Receiver<WriteFailure>;

/// Starts the publisher task of sink `sink`: it connects, makes sure the streams exist,
/// publishes the run's start manifest (`run.json` in the run directory), then serves the handle.
///
/// Must be called inside a tokio runtime.
pub fn spawn_publisher(
    config: NatsSinkConfig,
    sink: String,
    context: &SinkContext,
    inputs: &[SinkInput],
) -> (PublisherHandle, PublisherFailures) {
    let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
    let (failures_tx, failures_rx) = flume::unbounded();
    let publisher = Publisher::new(
        None,
        config,
        &sink,
        &context.run_id,
        &context.experiment,
        inputs,
    );
    let manifest = context.run_dir.join("run.json");
    tokio::spawn(serve(publisher, manifest, rx, failures_tx));
    (PublisherHandle { tx }, failures_rx)
}

async fn serve(
    mut publisher: Publisher,
    manifest: PathBuf,
    mut rx: mpsc::Receiver<Command>,
    failures: flume::Sender<WriteFailure>,
) {
    let config = publisher.config.clone();
    let name = format!("ensemble sink {}", publisher.sink);
    let setup = async {
        let client = connect(&config.url, &name, config.retry_for).await?;
        let js = jetstream_context(client.clone(), &config);
        ensure_streams(&js, &config).await?;
        Ok::<_, NatsSinkError>((client, js))
    };
    match setup.await {
        Ok((client, js)) => {
            publisher.max_payload = client.server_info().max_payload;
            publisher.js = Some(js);
            match tokio::fs::read(&manifest).await {
                Ok(text) => publisher.publish_control(ControlKind::Start, text).await,
                Err(e) => tracing::warn!(
                    path = %manifest.display(),
                    "Cannot read the run manifest to publish it: {e}."
                ),
            }
            tracing::info!(url = %config.url, stream = %config.stream, "Publishing to JetStream.");
        }
        Err(e) => {
            tracing::error!(sink = %publisher.sink, "{e}.");
            publisher.fail(e);
        }
    }
    let report_failure = |p: &mut Publisher| {
        if let Some(message) = p.take_new_failure() {
            let _ = failures.send(WriteFailure {
                stream: p
                    .streams
                    .first()
                    .map_or_else(|| "".into(), |s| s.name.clone()),
                message,
            });
        }
    };
    report_failure(&mut publisher);
    while let Some(command) = rx.recv().await {
        match command {
            Command::Publish(batch) => publisher.publish(batch).await,
            Command::Flush(reply) => {
                publisher.drain().await;
                let result = match &publisher.failure {
                    Some(e) => Err(e.to_string()),
                    None => Ok(()),
                };
                let _ = reply.send(result);
            }
            Command::Finish(reply) => {
                let report = publisher.finish().await;
                report_failure(&mut publisher);
                let _ = reply.send(report);
                return;
            }
        }
        report_failure(&mut publisher);
    }
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
