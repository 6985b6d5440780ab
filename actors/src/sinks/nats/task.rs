//! The publisher as a tokio task behind a cheap [`PublisherHandle`], and the one-shot
//! [`publish_control`] that `ensemble run` uses for the final manifest.

use std::path::PathBuf;

use tokio::sync::{mpsc, oneshot};

use super::codec::ControlKind;
use super::config::NatsSinkConfig;
use super::connection::{connect, ensure_streams, jetstream_context};
use super::error::NatsSinkError;
use super::publisher::Publisher;
use crate::batch::DataBatch;
use crate::control::SinkReport;
use crate::sinks::{SinkContext, SinkInput, WriteFailure};

/// Commands a [`PublisherHandle`] may hold queued before the sender waits: batches that arrive
/// while their stream's message is in flight queue here and go out together as one message.
const COMMAND_QUEUE: usize = 16;

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
    let client = connect(
        &config.url,
        &format!("ensemble {sink}"),
        config.retry_for,
        &config.security,
    )
    .await?;
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

enum Command {
    Publish(DataBatch),
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
        let client = connect(&config.url, &name, config.retry_for, &config.security).await?;
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
    loop {
        let command = match rx.try_recv() {
            Ok(command) => command,
            Err(mpsc::error::TryRecvError::Empty) if publisher.has_staged() => {
                // Nothing queued: send what is staged as soon as its stream's message is
                // acknowledged, rather than with the next batch.
                publisher.progress().await;
                report_failure(&mut publisher);
                continue;
            }
            Err(mpsc::error::TryRecvError::Empty) => match rx.recv().await {
                Some(command) => command,
                None => return,
            },
            Err(mpsc::error::TryRecvError::Disconnected) => return,
        };
        match command {
            Command::Publish(batch) => publisher.publish(batch).await,
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
