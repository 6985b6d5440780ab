//! [`StageActor`]: the actix shell around any [`Stage`].

use std::sync::Arc;

use actix::prelude::*;
use arrow_array::RecordBatch;
use arrow_array::cast::AsArray;
use arrow_array::types::UInt64Type;

use super::Stage;
use crate::batch::StreamEvent;
use crate::control::{ComponentExited, ExitOutcome};
use crate::outputs::Outputs;
use crate::stats::LinkStats;

/// Runs a [`Stage`] in the graph: receives its input stream, emits its output stream.
///
/// For each `Data` event the stage processes the batch synchronously, then the output batches
/// are emitted in order with [`Outputs::emit`]. The handler returns an [`AtomicResponse`], so the
/// next event is handled only after every output of this one was accepted downstream: order is
/// kept and a full lossless link pushes back through the stage to its producer (the pump that
/// feeds this actor waits on `send().await`).
///
/// On `End` the stage is flushed, the flushed batches are emitted, the output stream is ended,
/// and [`ComponentExited`] with [`ExitOutcome::StageFinished`] goes to the coordinator. If the
/// stage rejects a batch (it does not match the input the stage was built for), the actor logs
/// it, reports [`ExitOutcome::Failed`] and stops *without* ending its output: the coordinator
/// decides, per the stage's failure policy, whether a new stage continues the stream
/// ([`Stage::continue_at`]) or the stream ends there.
///
/// # Limits
///
/// One input stream per stage (v1): the first `End` ends the stage.
pub struct StageActor<S: Stage> {
    /// The component's name, for logs and the exit report.
    component: String,
    /// The plain stage that does the work.
    stage: S,
    /// Where the output goes.
    outputs: Outputs,
    /// Who is told when the stage has ended.
    exited: Recipient<ComponentExited>,
    /// Reused between batches: the stage appends here, the handler drains it.
    scratch: Vec<RecordBatch>,
    /// Set once the stage has ended (flushed or failed); later events are ignored.
    done: bool,
    /// The counters of the link into the stage: a batch the stage rejects is counted there as
    /// dropped, so that the loss is in the manifest, not only in the failure's text.
    input: Option<Arc<LinkStats>>,
}

impl<S: Stage> StageActor<S> {
    /// A stage actor named `component` that reports its exit to `exited`.
    pub fn new(
        component: impl Into<String>,
        stage: S,
        outputs: Outputs,
        exited: Recipient<ComponentExited>,
    ) -> Self {
        Self {
            component: component.into(),
            stage,
            outputs,
            exited,
            scratch: Vec::new(),
            done: false,
            input: None,
        }
    }

    /// Counts a batch the stage rejects as dropped on `input` (the link into the stage).
    pub fn counting_losses_on(mut self, input: Arc<LinkStats>) -> Self {
        self.input = Some(input);
        self
    }

    /// Emits `batches` in order, then (if `outcome` is set) reports it; a finished stage also
    /// ends its stream first.
    fn emit_all(
        &mut self,
        batches: Vec<RecordBatch>,
        outcome: Option<ExitOutcome>,
    ) -> AtomicResponse<Self, ()> {
        let outputs = self.outputs.clone();
        let exited = self.exited.clone();
        let component = self.component.clone();
        AtomicResponse::new(Box::pin(
            async move {
                for batch in batches {
                    // Every stage output has a non-null UInt64 `seq` in column 1.
                    let first_seq = batch
                        .column(1)
                        .as_primitive_opt::<UInt64Type>()
                        .filter(|s| !s.is_empty())
                        .map_or(0, |s| s.value(0));
                    outputs.emit(first_seq, batch).await;
                }
                if let Some(outcome) = outcome {
                    if matches!(outcome, ExitOutcome::StageFinished { .. }) {
                        outputs.end().await;
                    }
                    let report = ComponentExited { component, outcome };
                    if exited.send(report).await.is_err() {
                        tracing::warn!("Coordinator gone before the stage reported its exit.");
                    }
                }
            }
            .into_actor(self)
            .map(|(), actor, ctx| {
                if actor.done {
                    ctx.stop();
                }
            }),
        ))
    }
}

impl<S: Stage> Actor for StageActor<S> {
    type Context = Context<Self>;
}

impl<S: Stage> Handler<StreamEvent> for StageActor<S> {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, event: StreamEvent, _ctx: &mut Context<Self>) -> Self::Result {
        if self.done {
            return AtomicResponse::new(Box::pin(fut::ready(())));
        }
        self.scratch.clear();
        let (result, ending) = match &event {
            StreamEvent::Data(batch) => (self.stage.process(batch, &mut self.scratch), false),
            StreamEvent::End(_) => (self.stage.flush(&mut self.scratch), true),
        };
        let batches: Vec<RecordBatch> = self.scratch.drain(..).collect();
        match result {
            Ok(()) if !ending => self.emit_all(batches, None),
            Ok(()) => {
                self.done = true;
                let rows = self.outputs.stats().rows()
                    + batches.iter().map(|b| b.num_rows() as u64).sum::<u64>();
                tracing::info!(component_id = %self.component, rows, "Stage finished.");
                self.emit_all(batches, Some(ExitOutcome::StageFinished { rows }))
            }
            Err(e) => {
                self.done = true;
                tracing::error!(component_id = %self.component, error = %e, "Stage failed.");
                if let (StreamEvent::Data(b), Some(input)) = (&event, &self.input) {
                    input.record_drop(b.batch.num_rows() as u64);
                }
                let reason = match &event {
                    StreamEvent::Data(b) => format!(
                        "{e}; its input batch (seq {}, {} rows) is lost",
                        b.first_seq,
                        b.batch.num_rows()
                    ),
                    StreamEvent::End(_) => format!("{e} (while flushing)"),
                };
                self.emit_all(batches, Some(ExitOutcome::Failed(reason)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tokio::sync::mpsc;

    use super::*;
    use crate::batch::{EndOfStream, StreamEvent};
    use crate::link::{Delivery, link};
    use crate::stages::fir::{FirConfig, FirStage};
    use crate::stages::test_support::{next_batch, seqs, sim};
    use crate::stages::{InputSelection, StageInput};
    use crate::stats::{LinkStats, StreamStats};

    /// Stands in for the coordinator: forwards exit reports to the test.
    struct Coordinator(mpsc::UnboundedSender<ComponentExited>);

    impl Actor for Coordinator {
        type Context = Context<Self>;
    }

    impl Handler<ComponentExited> for Coordinator {
        type Result = ();
        fn handle(&mut self, msg: ComponentExited, _ctx: &mut Context<Self>) {
            let _ = self.0.send(msg);
        }
    }

    #[actix::test]
    async fn the_actor_emits_in_order_ends_its_stream_and_reports() {
        let rate = 1000.0;
        let mut g = sim(rate, 2, 5.0, 1.0, 0.1);
        let first = next_batch(&mut g, 100, rate);
        let selection = InputSelection::parse(&["sim.ch1"]).expect("valid");
        let input =
            StageInput::from_schema(&selection, first.batch.schema_ref()).expect("resolves");
        let stage = FirStage::new(
            &FirConfig {
                taps: Some(vec![0.25; 4]),
                design: None,
            },
            &input,
        )
        .expect("valid");
        let (tx, rx) = link(4, Delivery::Lossless, Arc::new(LinkStats::default()));
        let outputs = Outputs::new("lp".into(), vec![tx], Arc::new(StreamStats::default()));
        let (exit_tx, mut exit_rx) = mpsc::unbounded_channel();
        let coordinator = Coordinator(exit_tx).start();
        let addr = StageActor::new("lp", stage, outputs, coordinator.recipient()).start();
        let collector = tokio::spawn(async move {
            let mut batches = Vec::new();
            loop {
                match rx.pop().await {
                    StreamEvent::Data(b) => batches.push(b),
                    StreamEvent::End(end) => return (batches, end),
                }
            }
        });
        addr.send(StreamEvent::Data(first))
            .await
            .expect("actor alive");
        for _ in 0..9 {
            let batch = next_batch(&mut g, 100, rate);
            addr.send(StreamEvent::Data(batch))
                .await
                .expect("actor alive");
        }
        addr.send(StreamEvent::End(EndOfStream {
            stream: "sim".into(),
            rows: 1000,
        }))
        .await
        .expect("actor alive");
        let (batches, end) = collector.await.expect("collector finished");
        assert_eq!(end.rows, 1000);
        let firsts: Vec<u64> = batches.iter().map(|b| b.first_seq).collect();
        assert_eq!(firsts, (0..10).map(|i| i * 100).collect::<Vec<_>>());
        let records: Vec<_> = batches.iter().map(|b| (*b.batch).clone()).collect();
        assert_eq!(seqs(&records), (0..1000).collect::<Vec<_>>());
        let exit = exit_rx.recv().await.expect("exit reported");
        assert_eq!(exit.component, "lp");
        assert!(
            matches!(exit.outcome, ExitOutcome::StageFinished { rows: 1000 }),
            "{:?}",
            exit.outcome
        );
    }
}
