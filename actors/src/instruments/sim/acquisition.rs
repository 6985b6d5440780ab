//! The acquisition loop of a simulated instrument: pacing plus the generator, no actors.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::config::{Pace, SimInstrumentConfig};
use super::generator::SimGenerator;
use crate::instruments::pacing::rows_due;
use crate::outputs::Outputs;

/// Everything one run of a simulated instrument's loop owns.
pub struct SimAcquisition {
    generator: SimGenerator,
    pace: Pace,
    rate_hz: f64,
    batch_interval: Duration,
    max_batch_rows: usize,
    /// When to panic once (a testing aid, see `SimInstrumentConfig::fail_after`).
    fail_after: Option<Duration>,
    /// Rows the plan asks for (`None`: until stopped).
    limit: Option<u64>,
    /// The moment row 0 was due; a restarted loop keeps the original one.
    clock_start: Instant,
    outputs: Outputs,
}

impl SimAcquisition {
    /// A loop that continues `outputs`' stream from its next `seq` (0 on a fresh run).
    ///
    /// `start_ns` is the wall-clock time of row 0 and `clock_start` the same moment on the
    /// monotonic clock.
    pub fn new(
        config: &SimInstrumentConfig,
        start_ns: i64,
        clock_start: Instant,
        limit: Option<u64>,
        outputs: Outputs,
    ) -> Self {
        let next_seq = outputs.stats().rows();
        Self {
            generator: SimGenerator::new(config, start_ns, next_seq),
            pace: config.pace,
            rate_hz: config.rate_hz,
            batch_interval: config.batch_interval,
            max_batch_rows: config.max_batch_rows,
            fail_after: config.fail_after,
            limit,
            clock_start,
            outputs,
        }
    }

    /// Produces until the limit is reached or `stop` turns true, then ends the stream.
    ///
    /// On a stop, every row already due is still emitted: nothing acquired before the stop is
    /// lost.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        match self.pace {
            Pace::Realtime => self.run_realtime(&mut stop).await,
            Pace::Max => self.run_max(&stop).await,
        }
        self.outputs.end().await;
    }

    async fn run_realtime(&mut self, stop: &mut watch::Receiver<bool>) {
        let mut next_tick = Instant::now();
        loop {
            let stopping = *stop.borrow();
            self.fail_if_due();
            let due = rows_due(self.clock_start.elapsed(), self.rate_hz, self.limit);
            self.emit_until(due).await;
            if stopping || self.limit.is_some_and(|l| self.generator.next_seq() >= l) {
                return;
            }
            next_tick += self.batch_interval;
            if next_tick < Instant::now() {
                next_tick = Instant::now();
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next_tick) => {}
                changed = stop.changed() => {
                    if changed.is_err() {
                        // The actor is gone; emit what is due and end.
                        let due = rows_due(self.clock_start.elapsed(), self.rate_hz, self.limit);
                        self.emit_until(due).await;
                        return;
                    }
                }
            }
        }
    }

    async fn run_max(&mut self, stop: &watch::Receiver<bool>) {
        while !*stop.borrow() {
            let next = self.generator.next_seq();
            let rows = match self.limit {
                Some(l) if next >= l => return,
                Some(l) => (l - next).min(self.max_batch_rows as u64),
                None => self.max_batch_rows as u64,
            };
            self.emit_until(next + rows).await;
            // Let control messages (a stop) through between batches even if the links never wait.
            tokio::task::yield_now().await;
        }
    }

    /// Panics once `fail_after` has passed, unless the instrument was restarted already.
    ///
    /// # Panics
    /// That is its purpose: it rehearses an instrument that crashes (see `fail_after`).
    fn fail_if_due(&self) {
        if let Some(after) = self.fail_after {
            if self.outputs.stats().restarts() == 0 && self.clock_start.elapsed() >= after {
                panic!(
                    "simulated fault: instrument `{}` fails after {after:?} (fail_after)",
                    self.outputs.stream()
                );
            }
        }
    }

    /// Emits rows `next_seq..end` in batches of at most `max_batch_rows`.
    async fn emit_until(&mut self, end: u64) {
        while self.generator.next_seq() < end {
            let first = self.generator.next_seq();
            let rows = (end - first).min(self.max_batch_rows as u64) as usize;
            let batch = self.generator.generate(rows);
            self.outputs.emit(first, batch).await;
        }
    }
}
