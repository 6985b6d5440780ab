//! The acquisition loop of an SCPI instrument: poll on a clock, batch, emit. Plans set and
//! read through its [`ScpiProbe`] in between. Plain tokio, no actors.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::{ArrayRef, Float64Array, RecordBatch, TimestampNanosecondArray, UInt64Array};
use arrow_schema::SchemaRef;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

use super::probe::ScpiProbe;
use crate::instruments::pauses::Pauses;

use super::error::ScpiError;
use super::report::{ScpiReport, SessionReport};
use super::session::Session;
use crate::batch::stream_schema;
use crate::outputs::Outputs;

/// Everything one run of an SCPI instrument's loop owns.
pub(crate) struct ScpiAcquisition {
    probe: ScpiProbe,
    outputs: Outputs,
    schema: SchemaRef,
    /// `seq` of the first buffered row.
    next_seq: u64,
    /// While paused (`pause_streams`), the loop does not poll.
    paused: Option<watch::Receiver<Pauses>>,
}

impl ScpiAcquisition {
    /// A loop around `session` that continues `outputs`' stream from its next `seq`; plans
    /// reach the same session through the returned loop's [`probe`](Self::probe).
    pub(crate) fn new(
        name: String,
        session: Session,
        outputs: Outputs,
        report: ScpiReport,
    ) -> Self {
        let specs = session.channels();
        Self {
            schema: stream_schema(&specs),
            next_seq: outputs.stats().rows(),
            probe: ScpiProbe::new(name, session, report),
            outputs,
            paused: None,
        }
    }

    /// The handle plans set and read through.
    pub(crate) fn probe(&self) -> ScpiProbe {
        self.probe.clone()
    }

    /// Holds the polls while `paused` is true (a plan's `pause_streams`); requests from the
    /// plan are still served.
    pub(crate) fn pause_on(&mut self, paused: watch::Receiver<Pauses>) {
        self.paused = Some(paused);
    }

    /// Connects, then polls every `poll_interval` until `stop` turns true (or its sender is
    /// gone), while plans set and read through the probe; then emits the buffered rows, ends
    /// the stream and closes the session (later requests fail with `Stopped`).
    ///
    /// `Err` when the first connection fails (the stream is ended all the same).
    pub(crate) async fn run(
        mut self,
        mut stop: watch::Receiver<bool>,
    ) -> Result<SessionReport, ScpiError> {
        if let Err(e) = self.probe.connect().await {
            self.probe.stop().await;
            self.outputs.end().await;
            return Err(e);
        }
        let (poll_interval, batch_interval, polling) = self.probe.timing().await;
        let mut tick = tokio::time::interval(poll_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut paused = self.paused.take();
        loop {
            let flush_at = self.probe.rows().oldest.map(|t| t + batch_interval);
            let held = paused.as_ref().is_some_and(|p| p.borrow().paused);
            tokio::select! {
                biased;
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                () = self.probe.full() => self.flush().await,
                _ = sleep_until_opt(flush_at) => self.flush().await,
                changed = changed_opt(&mut paused) => {
                    if !changed {
                        paused = None;
                    }
                }
                // A poll that fills the buffer wakes `full` above (as a plan's read does), so
                // the next turn emits it.
                _ = tick.tick(), if polling && !held => {
                    let _ = self.probe.poll().await;
                    self.outputs.stats().heartbeat();
                }
                // Paused: no polls, but the coordinator still hears that the loop is alive.
                _ = tokio::time::sleep(poll_interval.min(Duration::from_millis(500))), if held => {
                    self.outputs.stats().heartbeat();
                }
            }
        }
        let report = self.probe.stop().await;
        self.flush().await;
        self.outputs.end().await;
        Ok(report)
    }

    /// Emits the buffered rows as one batch (nothing when none are buffered: a `full` wake-up
    /// may come after a timed flush has already taken them).
    async fn flush(&mut self) {
        let (timestamps, columns) = {
            let mut rows = self.probe.rows();
            if rows.timestamps.is_empty() {
                return;
            }
            rows.take()
        };
        let rows = timestamps.len();
        let first_seq = self.next_seq;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(columns.len() + 2);
        arrays.push(Arc::new(
            TimestampNanosecondArray::from(timestamps).with_timezone("UTC"),
        ));
        arrays.push(Arc::new(UInt64Array::from_iter_values(
            first_seq..first_seq + rows as u64,
        )));
        for column in columns {
            arrays.push(Arc::new(Float64Array::from(column)));
        }
        self.next_seq += rows as u64;
        match RecordBatch::try_new(self.schema.clone(), arrays) {
            Ok(batch) => self.outputs.emit(first_seq, batch).await,
            // The columns are built from the schema's own channel list; this cannot happen.
            Err(e) => {
                tracing::error!(stream = %self.outputs.stream(), error = %e, "Could not build a batch; rows lost.")
            }
        }
        self.probe.store_report().await;
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Resolves when `paused` changes (`true`) or its sender is gone (`false`); never without one.
async fn changed_opt(paused: &mut Option<watch::Receiver<Pauses>>) -> bool {
    match paused {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}
