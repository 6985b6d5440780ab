//! The thin actix shell around a NATS sink's [`PublisherHandle`].

use actix::prelude::*;

use crate::sinks::{SinkExit, SinkInputs};

use super::task::{PublisherFailures, PublisherHandle};
use crate::batch::{StreamEvent, StreamId};
use crate::control::{ComponentExited, SinkReport};
use crate::sinks::WriteFailure;

/// A NATS sink as an actor: hands batches to its publisher task (waiting while the publisher's
/// window of unacknowledged messages is full), publishes the end message once all its inputs
/// have ended, and reports to the coordinator with [`ComponentExited`].
///
/// Giving up on a message (JetStream unreachable for `retry_for`) is reported at once as
/// [`ExitOutcome::Failed`]; the rows are counted as lost in the sink's report.
pub struct NatsSinkActor {
    publisher: PublisherHandle,
    /// Which inputs have ended, and the order of the report.
    inputs: SinkInputs,
    failures: Option<PublisherFailures>,
    exit: SinkExit,
}

impl NatsSinkActor {
    /// A sink named `name` publishing `inputs` through `publisher`.
    pub fn new(
        name: String,
        publisher: PublisherHandle,
        inputs: Vec<StreamId>,
        failures: PublisherFailures,
        coordinator: Recipient<ComponentExited>,
    ) -> Self {
        Self {
            publisher,
            inputs: SinkInputs::new(inputs),
            failures: Some(failures),
            exit: SinkExit::new(name, coordinator),
        }
    }

    fn input_ended(&mut self, stream: &StreamId, ctx: &mut Context<Self>) {
        if !self.inputs.end(stream) {
            return;
        }
        let publisher = self.publisher.clone();
        ctx.wait(
            async move { publisher.finish().await }
                .into_actor(self)
                .map(|result, act, ctx| {
                    // A failure still queued on the feed would be lost when the actor stops:
                    // report it first, so the run's status reflects it.
                    let error = result
                        .as_ref()
                        .ok()
                        .and_then(|r| r.streams.iter().find_map(|s| s.error.clone()));
                    if let Some(message) = error {
                        act.exit.fail_once(message);
                    }
                    act.exit.finished(
                        result
                            .map(|mut report| {
                                act.inputs.sort(&mut report.streams);
                                SinkReport {
                                    streams: report.streams,
                                    latency: report.latency,
                                }
                            })
                            .map_err(|e| e.to_string()),
                    );
                    ctx.stop();
                }),
        );
    }
}

impl Actor for NatsSinkActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(failures) = self.failures.take() {
            ctx.add_stream(failures.into_stream());
        }
    }
}

impl Handler<StreamEvent> for NatsSinkActor {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, event: StreamEvent, _: &mut Self::Context) -> Self::Result {
        let publisher = self.publisher.clone();
        match event {
            StreamEvent::Data(batch) => Box::pin(
                async move {
                    // A finished publisher has reported its failure; its rows are counted there.
                    let _ = publisher.publish(batch).await;
                }
                .into_actor(self),
            ),
            StreamEvent::End(end) => {
                Box::pin(async {}.into_actor(self).map(move |(), act, ctx| {
                    act.input_ended(&end.stream, ctx);
                }))
            }
        }
    }
}

impl StreamHandler<WriteFailure> for NatsSinkActor {
    fn handle(&mut self, failure: WriteFailure, _: &mut Self::Context) {
        self.exit.fail_once(failure.message);
    }

    fn finished(&mut self, _: &mut Self::Context) {
        // The feed ends with the publisher task; the sink stops after its report.
    }
}
