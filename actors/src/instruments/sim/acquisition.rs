//! The acquisition loop of a simulated instrument: pacing plus the generator, no actors.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::config::{Pace, SignalConfig, SimFault, SimFaultKind, SimInstrumentConfig};
use super::generator::SimGenerator;
use super::params::SimParams;
use crate::instruments::pacing::{rows_due, rows_in};
use crate::instruments::pauses::Pauses;
use crate::outputs::Outputs;

/// Everything one run of a simulated instrument's loop owns.
pub struct SimAcquisition {
    generator: SimGenerator,
    pace: Pace,
    rate_hz: f64,
    batch_interval: Duration,
    max_batch_rows: usize,
    /// Rows the plan asks for (`None`: until stopped).
    limit: Option<u64>,
    /// The moment row 0 was due; a restarted loop keeps the original one.
    clock_start: Instant,
    outputs: Outputs,
    /// New signals set by a plan, taken before the next batch (see [`Self::attach_params`]).
    signal_updates: Option<watch::Receiver<SignalConfig>>,
    /// Most rows the simulated device holds while the pipeline pushes back.
    device_buffer_rows: u64,
    /// A failure to inject, if this start is one that fails.
    fault: Option<SimFault>,
    /// Rows emitted since this loop started (for `fault.after_rows`).
    rows_this_start: u64,
    /// The plan's pauses, if this loop follows them (see [`Self::follow_pauses`]).
    follow: Option<Follow>,
    /// Emit nothing until this turns `true` (see [`start_after`](Self::start_after)).
    start: Option<watch::Receiver<bool>>,
}

/// How a loop follows the plan's pauses.
struct Follow {
    pauses: watch::Receiver<Pauses>,
    /// Hold the rows while paused (`pause_streams`); otherwise keep recording and lengthen the
    /// row limit by the time paused.
    hold_rows: bool,
    /// The row limit before any pause.
    limit: Option<u64>,
    /// When the hold in effect began (`hold_rows` only): when the pause took hold.
    held_since: Option<Instant>,
    /// The plan's total time paused when the hold began: at its end, the difference is exactly
    /// how long this pause lasted, however late the loop noticed either edge.
    paused_for_at_hold: Duration,
}

/// Why a simulated instrument's loop ended early.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("injected fault after {rows} rows")]
pub struct InjectedFault {
    /// Rows emitted in this start before the fault.
    pub rows: u64,
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
        // Skipped rows (device overflow) took their `seq`s too.
        let stats = outputs.stats();
        let next_seq = stats.rows() + stats.overflow_rows();
        let fault = config
            .fault
            .clone()
            .filter(|f| f.times.is_none_or(|t| stats.restarts() < t));
        Self {
            generator: SimGenerator::new(config, start_ns, next_seq),
            pace: config.pace,
            rate_hz: config.rate_hz,
            batch_interval: config.batch_interval,
            max_batch_rows: config.max_batch_rows,
            limit,
            clock_start,
            outputs,
            signal_updates: None,
            device_buffer_rows: ((config.device_buffer.as_secs_f64() * config.rate_hz) as u64)
                .max(1),
            fault,
            rows_this_start: 0,
            follow: None,
            start: None,
        }
    }

    /// Emits its first rows only once `start` turns `true` (the run has launched every
    /// component). The rows due by then come in the first batch: timestamps and the row count
    /// follow the run's clock, not the moment the loop began.
    pub fn start_after(&mut self, start: watch::Receiver<bool>) {
        self.start = Some(start);
    }

    /// Follows the plan's `pauses` (realtime pace only). With `hold_rows` (the plan's
    /// `pause_streams`) no row is produced while paused, and after the pause the rows go on
    /// from where they stopped, stamped in wall-clock time (the loop's clock moves on by the
    /// pause); the stream has a gap and no row is lost or skipped. Without it the instrument
    /// keeps recording while paused and its row limit grows by the rows of the time paused (a
    /// `duration` plan whose clock was paused runs that much longer).
    pub fn follow_pauses(&mut self, pauses: watch::Receiver<Pauses>, hold_rows: bool) {
        self.follow = Some(Follow {
            pauses,
            hold_rows,
            limit: self.limit,
            held_since: None,
            paused_for_at_hold: Duration::ZERO,
        });
    }

    /// Applies the plan's pauses now; whether the rows are held.
    fn apply_pauses(&mut self) -> bool {
        let Some(f) = &mut self.follow else {
            return false;
        };
        let p = *f.pauses.borrow_and_update();
        if !f.hold_rows {
            self.limit = match p.paused {
                true => None,
                false => f.limit.map(|l| l + rows_in(p.paused_for, self.rate_hz)),
            };
            return false;
        }
        match (p.paused, f.held_since) {
            (true, None) => {
                let now = Instant::now();
                // When the pause took hold, as the plan's clock saw it (never in the future).
                let since = p.since.map_or(now, |s| Instant::from_std(s).min(now));
                f.held_since = Some(since);
                f.paused_for_at_hold = p.paused_for;
            }
            (false, Some(since)) => {
                let held = p
                    .paused_for
                    .checked_sub(f.paused_for_at_hold)
                    .filter(|d| !d.is_zero())
                    .unwrap_or_else(|| since.elapsed());
                self.clock_start += held;
                self.generator.delay(held);
                f.held_since = None;
            }
            _ => {}
        }
        f.held_since.is_some()
    }

    fn holding(&self) -> bool {
        self.follow.as_ref().is_some_and(|f| f.held_since.is_some())
    }

    /// Connects the loop to the parameters a plan sets: the returned [`SimParams`] starts from
    /// this loop's signal, and every signal sent on the returned sender is used from the next
    /// batch on.
    pub fn attach_params(&mut self) -> (SimParams, watch::Sender<SignalConfig>) {
        let (tx, rx) = watch::channel(self.generator.signal().clone());
        self.signal_updates = Some(rx);
        (SimParams::new(self.generator.clone()), tx)
    }

    /// Produces until the limit is reached or `stop` turns true, then ends the stream.
    ///
    /// On a stop, every row already due is still emitted: nothing acquired before the stop is
    /// lost. An injected fault of kind `error` returns `Err` without ending the stream (the
    /// coordinator restarts or ends it); one of kind `panic` panics; one of kind `stall` never
    /// returns (the coordinator abandons the loop).
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), InjectedFault> {
        self.outputs.stats().record_started();
        if let Some(mut start) = self.start.take() {
            tokio::select! {
                // A dropped sender (the run is gone) starts the loop too: the stop decides.
                _ = start.wait_for(|launched| *launched) => {}
                _ = stop.wait_for(|stopping| *stopping) => {}
            }
        }
        match self.pace {
            Pace::Realtime => self.run_realtime(&mut stop).await?,
            Pace::Max => self.run_max(&stop).await?,
        }
        self.outputs.end().await;
        Ok(())
    }

    /// Skips the oldest due rows that no longer fit the device buffer, counting them.
    fn overflow(&mut self, due: u64) {
        let backlog = due.saturating_sub(self.generator.next_seq());
        if backlog > self.device_buffer_rows {
            let skipped = backlog - self.device_buffer_rows;
            self.generator.skip(skipped);
            self.outputs.stats().record_overflow(skipped);
        }
    }

    async fn run_realtime(
        &mut self,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), InjectedFault> {
        let mut next_tick = Instant::now();
        // The first batch goes at once; after it, this instrument's ticks are offset within the
        // interval so that many instruments do not all emit in the same instant.
        let mut phase = Some(tick_phase(self.outputs.stream(), self.batch_interval));
        let mut pauses = self.follow.as_ref().map(|f| f.pauses.clone());
        loop {
            self.outputs.stats().heartbeat();
            let stopping = *stop.borrow();
            let was_held = self.holding();
            let held = self.apply_pauses();
            if !was_held {
                // Up to now, or up to the instant a pause that has just come took hold: the
                // rows due before it are emitted, none stamped inside it.
                let upto = match (held, self.follow.as_ref().and_then(|f| f.held_since)) {
                    (true, Some(since)) => since,
                    _ => Instant::now(),
                };
                let elapsed = upto.saturating_duration_since(self.clock_start);
                let due = rows_due(elapsed, self.rate_hz, self.limit);
                self.overflow(due);
                self.emit_until(due).await?;
            }
            if stopping || (!held && self.limit.is_some_and(|l| self.generator.next_seq() >= l)) {
                return Ok(());
            }
            next_tick += phase.take().unwrap_or(self.batch_interval);
            if next_tick < Instant::now() {
                next_tick = Instant::now();
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next_tick) => {}
                changed = stop.changed() => {
                    if changed.is_err() {
                        // The actor is gone; emit what is due and end.
                        if self.holding() {
                            return Ok(());
                        }
                        let due = rows_due(self.clock_start.elapsed(), self.rate_hz, self.limit);
                        self.overflow(due);
                        return self.emit_until(due).await;
                    }
                }
                _ = pauses_changed(&mut pauses) => {}
            }
        }
    }

    async fn run_max(&mut self, stop: &watch::Receiver<bool>) -> Result<(), InjectedFault> {
        while !*stop.borrow() {
            self.outputs.stats().heartbeat();
            let next = self.generator.next_seq();
            let rows = match self.limit {
                Some(l) if next >= l => return Ok(()),
                Some(l) => (l - next).min(self.max_batch_rows as u64),
                None => self.max_batch_rows as u64,
            };
            self.emit_until(next + rows).await?;
            // Let control messages (a stop) through between batches even if the links never wait.
            tokio::task::yield_now().await;
        }
        Ok(())
    }

    /// Emits rows `next_seq..end` in batches of at most `max_batch_rows`.
    async fn emit_until(&mut self, end: u64) -> Result<(), InjectedFault> {
        if let Some(updates) = &mut self.signal_updates {
            if updates.has_changed().unwrap_or(false) {
                self.generator
                    .set_signal(updates.borrow_and_update().clone());
            }
        }
        while self.generator.next_seq() < end {
            let first = self.generator.next_seq();
            let rows = (end - first).min(self.max_batch_rows as u64) as usize;
            let rows = match &self.fault {
                Some(f) if self.rows_this_start >= f.after_rows => {
                    let fault = InjectedFault {
                        rows: self.rows_this_start,
                    };
                    match f.kind {
                        SimFaultKind::Panic => panic!("{fault}"),
                        SimFaultKind::Error => return Err(fault),
                        SimFaultKind::Stall => std::future::pending::<usize>().await,
                    }
                }
                Some(f) => rows.min((f.after_rows - self.rows_this_start) as usize),
                None => rows,
            };
            let batch = self.generator.generate(rows);
            self.outputs.emit(first, batch).await;
            self.rows_this_start += rows as u64;
        }
        Ok(())
    }
}

/// Resolves when the plan's pauses change; never when not followed (or the sender is gone).
async fn pauses_changed(pauses: &mut Option<watch::Receiver<Pauses>>) {
    let gone = match pauses {
        Some(rx) => rx.changed().await.is_err(),
        None => true,
    };
    if gone {
        std::future::pending::<()>().await;
    }
}

/// Where in each `interval` the ticks of `stream` fall: a fixed fraction of it, from the
/// stream's name, so that instruments started together spread their batches over the interval
/// (10,000 instruments emitting in the same instant queue behind each other for most of it).
fn tick_phase(stream: &str, interval: Duration) -> Duration {
    // FNV-1a: stable across runs and platforms.
    let hash = stream.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    interval.mul_f64((hash % 1024) as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_phases_are_stable_within_the_interval_and_spread() {
        let interval = Duration::from_secs(1);
        let phases: Vec<Duration> = (0..1000)
            .map(|i| tick_phase(&format!("inst-{i:05}"), interval))
            .collect();
        assert!(phases.iter().all(|p| *p < interval));
        assert_eq!(
            tick_phase("inst-00001", interval),
            phases[1],
            "same name, same phase"
        );
        // Spread: every tenth of the interval gets some instruments, none gets a third.
        for decile in 0..10 {
            let n = phases
                .iter()
                .filter(|p| (p.as_secs_f64() * 10.0) as usize == decile)
                .count();
            assert!((30..=330).contains(&n), "decile {decile}: {n}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_is_emitted_before_the_start_and_the_first_batch_holds_every_row_due() {
        use crate::link::link;
        use crate::stats::{LinkStats, StreamStats};
        use std::sync::Arc;

        let config: SimInstrumentConfig =
            serde_json::from_str(r#"{"rate_hz": 100.0, "channels": ["a"]}"#).expect("valid");
        let (tx, rx) = link(100, Default::default(), Arc::new(LinkStats::default()));
        let outputs = Outputs::new("s".into(), vec![tx], Arc::new(StreamStats::default()));
        let clock_start = Instant::now();
        let mut acquisition = SimAcquisition::new(&config, 0, clock_start, Some(1000), outputs);
        let (launched, gate) = watch::channel(false);
        acquisition.start_after(gate);
        let (_stop_tx, stop) = watch::channel(false);
        let task = tokio::spawn(acquisition.run(stop));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            tokio::time::timeout(Duration::ZERO, rx.pop())
                .await
                .is_err(),
            "nothing before the start"
        );
        launched.send_replace(true);
        let first = tokio::time::timeout(Duration::from_secs(1), rx.pop())
            .await
            .expect("a batch after the start");
        match first {
            // Rows 0..=50 were due 0.5 s after row 0 at 100 Hz: all of them, none skipped.
            crate::batch::StreamEvent::Data(b) => assert_eq!((b.first_seq, b.rows()), (0, 51)),
            other => panic!("expected data, got {other:?}"),
        }
        drop(task);
    }
}
