//! [`ScpiProbe`]: an SCPI instrument's session, shared between its acquisition loop and a plan.
//!
//! A plan that sends a request through the instrument's actor pays two cross-thread hops per
//! request on top of the device's round trip (plan task → actor → acquisition loop, and the
//! reply back). Through the probe the plan's own task locks the session and talks to the
//! device itself; the acquisition loop polls through the same lock, so requests and polls
//! never interleave on the wire. Rows a plan reads are added to the instrument's stream, which
//! the loop batches and emits as before.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use tokio::time::Instant;

use super::error::ScpiError;
use super::report::{Reading, ScpiReport, SessionReport};
use super::session::{Row, Session};

/// A cloneable handle on one SCPI instrument's session: set parameters and read rows from
/// any task (a plan's own), without a message to the actor.
///
/// Requests wait for a poll in progress (and a poll for a request): one conversation with the
/// device at a time. Once the instrument has stopped, every request fails with
/// [`ScpiError::Stopped`].
#[derive(Clone)]
pub struct ScpiProbe {
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    /// The session and the row it reads into, held for a whole conversation.
    core: tokio::sync::Mutex<Core>,
    /// Rows read (by polls and by plans) and not yet emitted.
    rows: Mutex<RowBuffer>,
    /// Woken when `rows` is full: the acquisition loop emits it.
    full: Notify,
    max_rows: usize,
    channels: Arc<[String]>,
    report: ScpiReport,
    /// Set (under the session lock) once the loop has ended.
    stopped: AtomicBool,
}

struct Core {
    session: Session,
    row: Row,
}

/// Buffered rows, column by column; handed to Arrow per batch.
pub(super) struct RowBuffer {
    pub(super) timestamps: Vec<i64>,
    pub(super) columns: Vec<Vec<Option<f64>>>,
    /// When the oldest buffered row was added.
    pub(super) oldest: Option<Instant>,
}

impl RowBuffer {
    fn push(&mut self, row: &Row) -> usize {
        if row.values.len() != self.columns.len() {
            return self.timestamps.len();
        }
        self.oldest.get_or_insert_with(Instant::now);
        self.timestamps.push(row.timestamp_ns);
        for (column, value) in self.columns.iter_mut().zip(&row.values) {
            column.push(*value);
        }
        self.timestamps.len()
    }

    /// The buffered rows, leaving empty buffers of the same capacity behind.
    pub(super) fn take(&mut self) -> (Vec<i64>, Vec<Vec<Option<f64>>>) {
        self.oldest = None;
        let rows = self.timestamps.capacity().max(self.timestamps.len());
        let timestamps = std::mem::replace(&mut self.timestamps, Vec::with_capacity(rows));
        let columns = self
            .columns
            .iter_mut()
            .map(|c| std::mem::replace(c, Vec::with_capacity(rows)))
            .collect();
        (timestamps, columns)
    }
}

impl ScpiProbe {
    /// A probe owning `session`, whose rows are batched `max_rows` at most.
    pub(super) fn new(name: String, session: Session, report: ScpiReport) -> Self {
        let specs = session.channels();
        let max_rows = session.config().max_batch_rows.max(1);
        let capacity = max_rows.min(4096);
        Self {
            shared: Arc::new(Shared {
                name,
                channels: specs.iter().map(|c| c.name.clone()).collect(),
                rows: Mutex::new(RowBuffer {
                    timestamps: Vec::with_capacity(capacity),
                    columns: vec![Vec::with_capacity(capacity); specs.len()],
                    oldest: None,
                }),
                core: tokio::sync::Mutex::new(Core {
                    session,
                    row: Row::default(),
                }),
                full: Notify::new(),
                max_rows,
                report,
                stopped: AtomicBool::new(false),
            }),
        }
    }

    /// Sets parameter `param` to `value`; the value reached (see [`Session::set`]).
    pub async fn set(&self, param: &str, value: f64) -> Result<f64, ScpiError> {
        let mut core = self.running().await?;
        core.session.set(param, value).await
    }

    /// Reads one row now; it is added to the instrument's stream too.
    pub async fn read(&self) -> Result<Reading, ScpiError> {
        let mut core = self.running().await?;
        let Core { session, row } = &mut *core;
        session.poll(row).await?;
        self.push(row);
        Ok(Reading {
            timestamp_ns: row.timestamp_ns,
            channels: self.shared.channels.clone(),
            values: row.values.clone(),
        })
    }

    /// Reads one row now into `out` (one slot per channel), without allocating; it is added
    /// to the instrument's stream too. `Ok` holds the number of channels.
    pub async fn read_into(&self, out: &mut [Option<f64>]) -> Result<usize, ScpiError> {
        let mut core = self.running().await?;
        let Core { session, row } = &mut *core;
        session.poll(row).await?;
        self.push(row);
        for (slot, value) in out.iter_mut().zip(&row.values) {
            *slot = *value;
        }
        Ok(row.values.len())
    }

    /// Brings a lost connection back now (waiting for the reconnection backoff first), with
    /// the commanded setpoints restored (see [`Session`]); says what was restored. `Ok` at once
    /// when connected.
    pub async fn recover(&self) -> Result<String, ScpiError> {
        let wait = {
            let core = self.running().await?;
            if core.session.is_connected() {
                return Ok("connected".to_string());
            }
            core.session.next_attempt()
        };
        if let Some(at) = wait {
            tokio::time::sleep_until(at).await;
        }
        let mut core = self.running().await?;
        core.session.reconnect_now().await?;
        let restored = core
            .session
            .report()
            .restores
            .last()
            .filter(|r| r.ok)
            .map(|r| r.describe());
        Ok(match restored {
            Some(what) => format!("reconnected; restored {what}"),
            None => "reconnected; nothing to restore".to_string(),
        })
    }

    /// The channel names, in column order.
    pub fn channels(&self) -> &Arc<[String]> {
        &self.shared.channels
    }

    /// The instrument's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    async fn running(&self) -> Result<tokio::sync::MutexGuard<'_, Core>, ScpiError> {
        let core = self.shared.core.lock().await;
        if self.shared.stopped.load(Ordering::Acquire) {
            return Err(ScpiError::Stopped(self.shared.name.clone()));
        }
        Ok(core)
    }

    fn push(&self, row: &Row) {
        if self.rows().push(row) >= self.shared.max_rows {
            self.shared.full.notify_one();
        }
    }

    // ---- The acquisition loop's side. ----

    /// Opens the first connection (see [`Session::connect`]).
    pub(super) async fn connect(&self) -> Result<(), ScpiError> {
        let mut core = self.shared.core.lock().await;
        let connected = core.session.connect().await;
        self.shared.report.store(core.session.report());
        connected
    }

    /// The session's `poll_interval`, `batch_interval` and whether it has `[[read]]`s.
    pub(super) async fn timing(&self) -> (std::time::Duration, std::time::Duration, bool) {
        let core = self.shared.core.lock().await;
        let c = core.session.config();
        (c.poll_interval, c.batch_interval, !c.read.is_empty())
    }

    /// Polls one row for the stream (no-op once stopped). The row is buffered; `Ok` if one was
    /// read.
    pub(super) async fn poll(&self) -> Result<(), ScpiError> {
        let mut core = self.running().await?;
        let Core { session, row } = &mut *core;
        session.poll(row).await?;
        self.push(row);
        Ok(())
    }

    /// Ends the session: disconnects and refuses every later request. Returns its report.
    pub(super) async fn stop(&self) -> SessionReport {
        let mut core = self.shared.core.lock().await;
        self.shared.stopped.store(true, Ordering::Release);
        core.session.disconnect();
        let report = core.session.report().clone();
        self.shared.report.store(&report);
        report
    }

    /// Copies the session report to the shared one (for the manifest).
    pub(super) async fn store_report(&self) {
        let core = self.shared.core.lock().await;
        self.shared.report.store(core.session.report());
    }

    /// Resolves when the buffered rows reach the batch size.
    pub(super) async fn full(&self) {
        self.shared.full.notified().await;
    }

    pub(super) fn rows(&self) -> MutexGuard<'_, RowBuffer> {
        // Rows are pushed and taken whole; a panic elsewhere cannot leave one half written.
        self.shared.rows.lock().unwrap_or_else(|e| e.into_inner())
    }
}
