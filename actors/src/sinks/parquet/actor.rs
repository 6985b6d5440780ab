//! The thin actix shell around a sink's [`WriterPool`].

use actix::prelude::*;

use crate::sinks::{SinkExit, SinkInputs};

use super::pool::WriterPool;
use crate::batch::{StreamEvent, StreamId};
use crate::control::{ComponentExited, SinkReport};
use crate::sinks::{FailureFeed, WriteFailure};

/// A Parquet sink as an actor: hands batches to its writer threads, finishes every file once all
/// its inputs have ended, and reports to the coordinator with [`ComponentExited`].
///
/// A write error is reported at once as [`ExitOutcome::Failed`] (naming the file); the other
/// streams of the sink keep being written until the run stops.
pub struct ParquetSinkActor {
    pool: WriterPool,
    /// Which inputs have ended, and the order of the report.
    inputs: SinkInputs,
    failures: Option<FailureFeed>,
    exit: SinkExit,
}

impl ParquetSinkActor {
    /// A sink named `name` writing `inputs` through `pool`; `failures` is the pool's failure feed.
    pub fn new(
        name: String,
        pool: WriterPool,
        inputs: Vec<StreamId>,
        failures: FailureFeed,
        coordinator: Recipient<ComponentExited>,
    ) -> Self {
        Self {
            pool,
            inputs: SinkInputs::new(inputs),
            failures: Some(failures),
            exit: SinkExit::new(name, coordinator),
        }
    }

    fn input_ended(&mut self, stream: &StreamId, ctx: &mut Context<Self>) {
        if !self.inputs.end(stream) {
            return;
        }
        let pool = self.pool.clone();
        ctx.wait(
            async move { pool.finish().await }
                .into_actor(self)
                .map(|result, act, ctx| {
                    act.exit.finished(
                        result
                            .map(|mut streams| {
                                act.inputs.sort(&mut streams);
                                SinkReport {
                                    streams,
                                    latency: Some(act.pool.latency()),
                                }
                            })
                            .map_err(|e| e.to_string()),
                    );
                    ctx.stop();
                }),
        );
    }
}

impl Actor for ParquetSinkActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(failures) = self.failures.take() {
            ctx.add_stream(failures.into_stream());
        }
    }
}

impl Handler<StreamEvent> for ParquetSinkActor {
    type Result = ();

    /// Hands a batch to its writer thread without waiting when that thread's queue has room
    /// (the usual case). Otherwise the actor waits (`ctx.wait`: no other message is handled
    /// meanwhile), so its mailbox fills and the pumps push back. Waiting in one future, not in
    /// one future per message, matters with thousands of inputs: thousands of concurrent sends
    /// parked on one queue cost more than the encoding (measured: the system thread at 100%).
    fn handle(&mut self, event: StreamEvent, ctx: &mut Self::Context) {
        let pool = self.pool.clone();
        match event {
            StreamEvent::Data(batch) => {
                if let Err(batch) = pool.try_write(batch) {
                    ctx.wait(
                        async move {
                            // A closed pool has reported its failure already; the rows are
                            // counted there.
                            let _ = pool.write(batch).await;
                        }
                        .into_actor(self),
                    );
                }
            }
            StreamEvent::End(end) => {
                let stream = end.stream;
                ctx.wait(
                    {
                        let stream = stream.clone();
                        async move {
                            let _ = pool.end(stream).await;
                        }
                    }
                    .into_actor(self)
                    .map(move |(), act, ctx| act.input_ended(&stream, ctx)),
                );
            }
        }
    }
}

impl StreamHandler<WriteFailure> for ParquetSinkActor {
    fn handle(&mut self, failure: WriteFailure, _: &mut Self::Context) {
        self.exit.fail_once(failure.message);
    }

    fn finished(&mut self, _: &mut Self::Context) {
        // The failure feed ends when the writer threads do; the sink stops after its report.
    }
}
