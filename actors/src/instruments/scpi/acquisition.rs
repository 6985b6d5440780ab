//! The acquisition loop of an SCPI instrument: poll on a clock, batch, emit; serve set and
//! read requests in between. Plain tokio, no actors.

use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, Float64Array, RecordBatch, TimestampNanosecondArray, UInt64Array};
use arrow_schema::SchemaRef;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::{Instant, MissedTickBehavior};

use super::session::{Row, ScpiError, Session, SessionReport};
use crate::batch::stream_schema;
use crate::outputs::Outputs;

/// One row read on request, for count and scan plans.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    /// When the first answer arrived, ns since the Unix epoch, UTC.
    pub timestamp_ns: i64,
    /// The channel names, in column order.
    pub channels: Arc<[String]>,
    /// One value per channel; null where the answer timed out or did not parse.
    pub values: Vec<Option<f64>>,
}

/// The session report, shared between the running loop and whoever builds the run manifest.
///
/// Updated after every emitted batch, every set and at the end; reading it never waits on the
/// device.
#[derive(Debug, Clone, Default)]
pub struct ScpiReport(Arc<Mutex<SessionReport>>);

impl ScpiReport {
    /// A copy of the report as of the last update.
    pub fn snapshot(&self) -> SessionReport {
        self.lock().clone()
    }

    fn store(&self, report: &SessionReport) {
        self.lock().clone_from(report);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SessionReport> {
        // The report is replaced whole; a panic elsewhere cannot leave it half written.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A request to the running loop, answered through its oneshot.
#[derive(Debug)]
pub(crate) enum Command {
    /// Set a parameter; reply with the reached or commanded value.
    Set {
        param: String,
        value: f64,
        reply: oneshot::Sender<Result<f64, ScpiError>>,
    },
    /// Read one row now (it is recorded in the stream too).
    ReadNow {
        reply: oneshot::Sender<Result<Reading, ScpiError>>,
    },
}

/// Everything one run of an SCPI instrument's loop owns.
pub(crate) struct ScpiAcquisition {
    session: Session,
    outputs: Outputs,
    schema: SchemaRef,
    channels: Arc<[String]>,
    /// `seq` of the first buffered row.
    next_seq: u64,
    /// Buffered rows, column by column: reused between rows, handed to Arrow per batch.
    timestamps: Vec<i64>,
    columns: Vec<Vec<Option<f64>>>,
    /// When the oldest buffered row was added.
    oldest: Option<Instant>,
    row: Row,
    report: ScpiReport,
}

impl ScpiAcquisition {
    /// A loop around `session` that continues `outputs`' stream from its next `seq`.
    pub(crate) fn new(session: Session, outputs: Outputs, report: ScpiReport) -> Self {
        let specs = session.channels();
        let max_rows = session.config().max_batch_rows.min(4096);
        Self {
            schema: stream_schema(&specs),
            channels: specs.iter().map(|c| c.name.clone()).collect(),
            next_seq: outputs.stats().rows(),
            timestamps: Vec::with_capacity(max_rows),
            columns: vec![Vec::with_capacity(max_rows); specs.len()],
            oldest: None,
            row: Row::default(),
            session,
            outputs,
            report,
        }
    }

    /// Connects, then polls every `poll_interval` until `stop` turns true (or its sender is
    /// gone), serving `commands` in between; then emits the buffered rows and ends the stream.
    ///
    /// `Err` when the first connection fails (the stream is ended all the same).
    pub(crate) async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut stop: watch::Receiver<bool>,
    ) -> Result<SessionReport, ScpiError> {
        let connected = self.session.connect().await;
        self.report.store(self.session.report());
        if let Err(e) = connected {
            self.outputs.end().await;
            return Err(e);
        }
        let config = self.session.config();
        let (poll_interval, batch_interval, max_rows) = (
            config.poll_interval,
            config.batch_interval,
            config.max_batch_rows,
        );
        let polling = !self.channels.is_empty();
        let mut tick = tokio::time::interval(poll_interval);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut commands_open = true;
        loop {
            let flush_at = self.oldest.map(|t| t + batch_interval);
            tokio::select! {
                biased;
                changed = stop.changed() => {
                    if changed.is_err() || *stop.borrow() {
                        break;
                    }
                }
                command = commands.recv(), if commands_open => match command {
                    Some(command) => self.serve(command).await,
                    None => commands_open = false,
                },
                _ = sleep_until_opt(flush_at) => self.flush().await,
                _ = tick.tick(), if polling => {
                    let polled = self.session.poll(&mut self.row).await;
                    self.outputs.stats().heartbeat();
                    if polled.is_ok() {
                        self.push_row();
                    }
                    if self.timestamps.len() >= max_rows {
                        self.flush().await;
                    }
                }
            }
        }
        self.flush().await;
        self.outputs.end().await;
        self.session.disconnect();
        let report = self.session.report().clone();
        self.report.store(&report);
        Ok(report)
    }

    async fn serve(&mut self, command: Command) {
        match command {
            Command::Set {
                param,
                value,
                reply,
            } => {
                let result = self.session.set(&param, value).await;
                self.report.store(self.session.report());
                let _ = reply.send(result);
            }
            Command::ReadNow { reply } => {
                let result = self.session.poll(&mut self.row).await.map(|()| Reading {
                    timestamp_ns: self.row.timestamp_ns,
                    channels: self.channels.clone(),
                    values: self.row.values.clone(),
                });
                if result.is_ok() {
                    self.push_row();
                }
                let _ = reply.send(result);
            }
        }
    }

    fn push_row(&mut self) {
        if self.row.values.len() != self.columns.len() {
            return;
        }
        self.oldest.get_or_insert_with(Instant::now);
        self.timestamps.push(self.row.timestamp_ns);
        for (column, value) in self.columns.iter_mut().zip(&self.row.values) {
            column.push(*value);
        }
    }

    /// Emits the buffered rows as one batch.
    async fn flush(&mut self) {
        self.oldest = None;
        let rows = self.timestamps.len();
        if rows == 0 {
            return;
        }
        let first_seq = self.next_seq;
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len() + 2);
        arrays.push(Arc::new(
            TimestampNanosecondArray::from(std::mem::replace(
                &mut self.timestamps,
                Vec::with_capacity(rows),
            ))
            .with_timezone("UTC"),
        ));
        arrays.push(Arc::new(UInt64Array::from_iter_values(
            first_seq..first_seq + rows as u64,
        )));
        for column in &mut self.columns {
            arrays.push(Arc::new(Float64Array::from(std::mem::replace(
                column,
                Vec::with_capacity(rows),
            ))));
        }
        self.next_seq += rows as u64;
        match RecordBatch::try_new(self.schema.clone(), arrays) {
            Ok(batch) => self.outputs.emit(first_seq, batch).await,
            // The columns are built from the schema's own channel list; this cannot happen.
            Err(e) => {
                tracing::error!(stream = %self.outputs.stream(), error = %e, "Could not build a batch; rows lost.")
            }
        }
        self.report.store(self.session.report());
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
