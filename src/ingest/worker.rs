//! The async half of `ensemble ingest`: a durable pull consumer on the data stream (shared by
//! every worker with the same durable name), an ordered consumer on the control stream (every
//! worker sees every run's start and end), a writer thread that owns the [`Store`], and the
//! commit cadence that makes rows durable before their messages are acknowledged.

use std::future::Future;
use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use async_nats::jetstream::{self, consumer};
use ensemble_actors::sinks::nats::codec::{control_filter, data_filter};
use ensemble_actors::sinks::nats::{NatsSecurity, connect, control_stream_name};
use ensemble_actors::sinks::parquet::ParquetSinkConfig;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::error::StoreError;
use super::store::{Outcome, Store};

/// How `ensemble ingest` runs.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// NATS server(s), comma-separated.
    pub url: String,
    /// The JetStream data stream (the sink's `stream`).
    pub stream: String,
    /// The sinks' `subject_prefix`.
    pub subject_prefix: String,
    /// Directory for run directories.
    pub output: PathBuf,
    /// Durable consumer name; workers with the same name share the messages.
    pub durable: String,
    /// This worker's name, in its part file names; unique among running workers.
    pub worker: String,
    /// Finish parts and acknowledge at least this often.
    pub commit_interval: Duration,
    /// ... or after this many messages, whichever comes first.
    pub commit_messages: usize,
    /// How long JetStream waits for an acknowledgement before delivering a message again (to
    /// this or another worker). Must exceed the commit interval by a good margin.
    pub ack_wait: Duration,
    /// Parquet settings of the parts.
    pub parquet: ParquetSinkConfig,
    /// Credentials and TLS: files and environment variable names, as the sink's `security`.
    pub security: NatsSecurity,
    /// Create the streams with this many replicas when they do not exist (and refuse to start
    /// when they exist with another number); `None`: wait for a sink to create them.
    pub replicas: Option<usize>,
}

impl IngestOptions {
    /// Options with the defaults of the command line.
    pub fn new(url: &str, stream: &str, output: PathBuf, durable: &str) -> Self {
        Self {
            url: url.to_string(),
            stream: stream.to_string(),
            subject_prefix: "ensemble".to_string(),
            output,
            durable: durable.to_string(),
            worker: default_worker_name(),
            commit_interval: Duration::from_secs(1),
            commit_messages: 1000,
            ack_wait: Duration::from_secs(30),
            parquet: ParquetSinkConfig::default(),
            security: NatsSecurity::default(),
            replicas: None,
        }
    }
}

/// The host name (containers get theirs from compose), else `worker`.
pub fn default_worker_name() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty() && !h.contains(['/', '\\']))
        .unwrap_or_else(|| "worker".to_string())
}

/// Why ingest stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Connecting or talking to JetStream failed.
    #[error("JetStream: {0}")]
    Nats(String),
    /// Writing the run directories failed; the messages involved were not acknowledged.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The writer thread is gone (it panicked).
    #[error("the ingest writer thread stopped")]
    WriterGone,
    /// The options are not usable.
    #[error("invalid option: {0}")]
    Options(String),
    /// `--replicas`: the streams could not be created, or exist with other replicas.
    #[error(transparent)]
    Streams(#[from] super::streams::StreamsError),
}

/// What a worker did before it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestSummary {
    /// Batch messages whose rows were written.
    pub stored: u64,
    /// Batch messages already written before (redeliveries), acknowledged without writing.
    pub duplicates: u64,
    /// Messages that can never be stored, terminated (logged at ERROR).
    pub rejected: u64,
    /// Control messages handled.
    pub control: u64,
    /// Commits made.
    pub commits: u64,
}

/// Longest pull of the control consumer (its idle heartbeat is half of it).
const CONTROL_PULL_EXPIRES: Duration = Duration::from_secs(4);

/// Most bytes one pull request asks for.
const PULL_BYTES: usize = 8 * 1024 * 1024;

/// A worker commits this long after the last data message when no other arrived meanwhile
/// (at most the commit interval): rows of a stream that pauses or ends become durable (and
/// their messages acknowledged) without waiting for the next tick.
const IDLE_COMMIT: Duration = Duration::from_millis(50);

enum Cmd {
    Handle {
        subject: String,
        headers: Option<async_nats::HeaderMap>,
        payload: bytes::Bytes,
        reply: Option<oneshot::Sender<Result<Outcome, StoreError>>>,
        index: usize,
    },
    Commit(oneshot::Sender<Result<Vec<(usize, Outcome)>, StoreError>>),
}

/// The writer thread: owns the store; answers a commit with the outcome of every message since
/// the previous one.
fn writer_thread(mut store: Store, mut rx: mpsc::Receiver<Cmd>) {
    let mut outcomes: Vec<(usize, Outcome)> = Vec::new();
    let mut failed: Option<StoreError> = None;
    while let Some(cmd) = rx.blocking_recv() {
        match cmd {
            Cmd::Handle {
                subject,
                headers,
                payload,
                reply,
                index,
            } => {
                if failed.is_some() {
                    continue;
                }
                let result = store.handle(&subject, headers.as_ref(), payload);
                match (result, reply) {
                    (r, Some(reply)) => {
                        let _ = reply.send(r);
                    }
                    (Ok(outcome), None) => outcomes.push((index, outcome)),
                    (Err(e), None) => failed = Some(e),
                }
            }
            Cmd::Commit(reply) => {
                let result = match failed.take() {
                    Some(e) => Err(e),
                    None => store.commit().map(|()| std::mem::take(&mut outcomes)),
                };
                let failed_now = result.is_err();
                let _ = reply.send(result);
                if failed_now {
                    return;
                }
            }
        }
    }
}

/// Runs one ingest worker until `shutdown` resolves; then commits what it holds, acknowledges
/// it and returns what it did.
///
/// Waits (logging once) until the JetStream streams exist, so workers may start before any
/// acquisition has. Must run on a multi-threaded tokio runtime; file I/O happens on a writer
/// thread of its own.
pub async fn run(
    options: IngestOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<IngestSummary, IngestError> {
    if options.commit_interval * 2 >= options.ack_wait {
        return Err(IngestError::Options(format!(
            "ack wait ({:?}) must be more than twice the commit interval ({:?})",
            options.ack_wait, options.commit_interval
        )));
    }
    if let Some((key, why)) = options.security.check().into_iter().next() {
        return Err(IngestError::Options(format!("{key}: {why}")));
    }
    if options.commit_messages == 0 {
        return Err(IngestError::Options(
            "commit messages must be at least 1".into(),
        ));
    }
    if let Some(r) = options.replicas.filter(|r| !(1..=5).contains(r)) {
        return Err(IngestError::Options(format!(
            "replicas must be 1 to 5, got {r}"
        )));
    }
    if options.worker.is_empty() || options.worker.contains(['/', '\\']) {
        return Err(IngestError::Options(format!(
            "worker name `{}` must be a plain file name",
            options.worker
        )));
    }
    let store = Store::new(&options.output, &options.worker, options.parquet.clone())?;
    let (tx, rx) = mpsc::channel(256);
    let writer = thread::Builder::new()
        .name("ingest-writer".into())
        .spawn(move || writer_thread(store, rx))
        .map_err(|e| IngestError::Nats(format!("cannot start the writer thread: {e}")))?;
    let mut worker = Worker {
        options,
        tx,
        pending: Vec::new(),
        summary: IngestSummary::default(),
    };
    tokio::pin!(shutdown);
    let result = worker.run(shutdown).await;
    let summary = worker.summary.clone();
    drop(worker);
    // The writer thread ends once its channel is closed.
    let _ = tokio::task::spawn_blocking(move || writer.join()).await;
    result.map(|()| summary)
}

struct Worker {
    options: IngestOptions,
    tx: mpsc::Sender<Cmd>,
    /// Messages handed to the writer since the last commit, to acknowledge after it.
    pending: Vec<jetstream::message::Acker>,
    summary: IngestSummary,
}

fn nats_err(what: &str) -> impl FnOnce(Box<dyn std::fmt::Display>) -> IngestError + '_ {
    move |e| IngestError::Nats(format!("{what}: {e}"))
}

impl Worker {
    async fn run(
        &mut self,
        mut shutdown: std::pin::Pin<&mut impl Future<Output = ()>>,
    ) -> Result<(), IngestError> {
        let o = self.options.clone();
        let name = format!("ensemble ingest {}", o.worker);
        let client = tokio::select! {
            c = connect(&o.url, &name, Duration::from_secs(24 * 3600), &o.security) => {
                c.map_err(|e| IngestError::Nats(e.to_string()))?
            }
            () = &mut shutdown => return Ok(()),
        };
        let js = jetstream::new(client);
        let control_name = control_stream_name(&o.stream);
        if let Some(replicas) = o.replicas {
            tokio::select! {
                made = super::streams::create_streams(&js, &o.stream, &o.subject_prefix, replicas) => made?,
                () = &mut shutdown => return Ok(()),
            }
        }
        let mut logged = false;
        let (data, control) = loop {
            let found = async {
                let d = js.get_stream(&o.stream).await;
                let c = js.get_stream(&control_name).await;
                (d, c)
            };
            tokio::select! {
                found = found => match found {
                    (Ok(d), Ok(c)) => break (d, c),
                    (d, c) => {
                        if !logged {
                            let why = d.err().map(|e| e.to_string()).or(c.err().map(|e| e.to_string()));
                            tracing::warn!(stream = %o.stream, "Waiting for the JetStream streams to exist ({}).", why.unwrap_or_default());
                            logged = true;
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                },
                () = &mut shutdown => return Ok(()),
            }
        };
        let consumer: consumer::PullConsumer = data
            .get_or_create_consumer(
                &o.durable,
                consumer::pull::Config {
                    durable_name: Some(o.durable.clone()),
                    filter_subject: data_filter(&o.subject_prefix),
                    ack_policy: consumer::AckPolicy::Explicit,
                    ack_wait: o.ack_wait,
                    max_ack_pending: i64::try_from(o.commit_messages * 4).unwrap_or(i64::MAX),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| nats_err("durable consumer")(Box::new(e)))?;
        // Stream sequence of the last control message handled: a re-created control consumer
        // continues after it.
        let mut control_seq = 0u64;
        let mut control_msgs = Some(open_control(&control, &o.subject_prefix, control_seq).await?);
        let mut data_msgs = data_stream(&consumer, &o).await?;
        tracing::info!(worker = %o.worker, durable = %o.durable, stream = %o.stream, "Ingesting.");
        let mut tick = tokio::time::interval(o.commit_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let idle = IDLE_COMMIT.min(o.commit_interval);
        let mut last_data = tokio::time::Instant::now();
        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => {
                    tracing::info!(worker = %o.worker, "Stopping: finishing parts and acknowledging.");
                    return self.commit().await;
                }
                m = next_control(&mut control_msgs) => match m {
                    Some(Ok(m)) => {
                        if let Ok(info) = m.info() {
                            control_seq = info.stream_sequence;
                        }
                        self.control(m).await?;
                    }
                    Some(Err(e)) => {
                        tracing::warn!("Control consumer failed ({e}); opening it again.");
                        control_msgs = None;
                    }
                    None => {
                        tracing::warn!("Control consumer ended; opening it again.");
                        control_msgs = None;
                    }
                },
                m = data_msgs.next() => match m {
                    Some(Ok(m)) => {
                        last_data = tokio::time::Instant::now();
                        self.data(m).await?;
                        if self.pending.len() >= o.commit_messages {
                            self.commit().await?;
                        }
                    }
                    Some(Err(e)) => tracing::warn!("Data consumer: {e}; retrying."),
                    None => {
                        tracing::warn!("The data consumer's message stream ended; opening it again.");
                        data_msgs = data_stream(&consumer, &o).await?;
                    }
                },
                () = tokio::time::sleep_until(last_data + idle), if !self.pending.is_empty() => {
                    self.commit().await?;
                }
                _ = tick.tick() => {
                    self.commit().await?;
                    if control_msgs.is_none() {
                        match open_control(&control, &o.subject_prefix, control_seq).await {
                            Ok(c) => control_msgs = Some(c),
                            Err(e) => tracing::warn!("{e}; retrying."),
                        }
                    }
                }
            }
        }
    }

    async fn data(&mut self, message: jetstream::Message) -> Result<(), IngestError> {
        let (message, acker) = message.split();
        let index = self.pending.len();
        self.pending.push(acker);
        self.tx
            .send(Cmd::Handle {
                subject: message.subject.to_string(),
                headers: message.headers,
                payload: message.payload,
                reply: None,
                index,
            })
            .await
            .map_err(|_| IngestError::WriterGone)
    }

    async fn control(&mut self, message: jetstream::Message) -> Result<(), IngestError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Handle {
                subject: message.subject.to_string(),
                headers: message.headers.clone(),
                payload: message.payload.clone(),
                reply: Some(reply),
                index: 0,
            })
            .await
            .map_err(|_| IngestError::WriterGone)?;
        match rx.await.map_err(|_| IngestError::WriterGone)?? {
            Outcome::Rejected(why) => {
                tracing::error!("Cannot use a control message: {why}.");
                self.summary.rejected += 1;
            }
            _ => self.summary.control += 1,
        }
        Ok(())
    }

    /// Finishes the parts, then acknowledges every message handled since the last commit.
    async fn commit(&mut self) -> Result<(), IngestError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Commit(reply))
            .await
            .map_err(|_| IngestError::WriterGone)?;
        let outcomes = rx.await.map_err(|_| IngestError::WriterGone)??;
        let acked = self.pending.len();
        for (index, outcome) in outcomes {
            let Some(acker) = self.pending.get(index) else {
                continue;
            };
            let result = match outcome {
                Outcome::Rejected(why) => {
                    tracing::error!(worker = %self.options.worker, "Message cannot be stored, terminating it: {why}.");
                    self.summary.rejected += 1;
                    acker.ack_with(jetstream::AckKind::Term).await
                }
                Outcome::Duplicate => {
                    self.summary.duplicates += 1;
                    acker.ack().await
                }
                Outcome::Stored | Outcome::Control => {
                    self.summary.stored += 1;
                    acker.ack().await
                }
            };
            if let Err(e) = result {
                // Not fatal: the message is delivered again and recognised as a duplicate.
                tracing::warn!("Cannot acknowledge a message ({e}); it will be delivered again.");
            }
        }
        self.pending.clear();
        self.summary.commits += 1;
        tracing::debug!(worker = %self.options.worker, acked, "Committed.");
        Ok(())
    }
}

async fn data_stream(
    consumer: &consumer::PullConsumer,
    o: &IngestOptions,
) -> Result<consumer::pull::Stream, IngestError> {
    consumer
        .stream()
        .max_messages_per_batch(o.commit_messages.clamp(1, 500))
        // Bounded in bytes too: a pull of hundreds of large batches at once would exceed the
        // server's per-client pending limit and get the connection dropped as a slow consumer.
        .max_bytes_per_batch(PULL_BYTES)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| nats_err("data messages")(Box::new(e)))
}

type ControlMessages = consumer::pull::Ordered;

/// An ordered consumer on the control stream, from the message after `after_seq` (all if 0).
async fn open_control(
    control: &jetstream::stream::Stream,
    prefix: &str,
    after_seq: u64,
) -> Result<ControlMessages, IngestError> {
    let deliver_policy = if after_seq == 0 {
        consumer::DeliverPolicy::All
    } else {
        consumer::DeliverPolicy::ByStartSequence {
            start_sequence: after_seq + 1,
        }
    };
    let c = control
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: control_filter(prefix),
            deliver_policy,
            // Short pulls keep the idle heartbeat at 2 s: when the node holding this (single
            // replica) consumer dies, two missed heartbeats make the client recreate it on
            // another node within seconds instead of half a minute.
            max_expires: CONTROL_PULL_EXPIRES,
            ..Default::default()
        })
        .await
        .map_err(|e| nats_err("control consumer")(Box::new(e)))?;
    c.messages()
        .await
        .map_err(|e| nats_err("control messages")(Box::new(e)))
}

async fn next_control(
    messages: &mut Option<ControlMessages>,
) -> Option<Result<jetstream::Message, consumer::pull::OrderedError>> {
    match messages {
        Some(m) => m.next().await,
        None => std::future::pending().await,
    }
}
