//! Holds a run under its memory cap (`[experiment] max_memory_mb`).
//!
//! Batches in flight (link queues, mailboxes, writer queues) are the part of a run's memory
//! that grows when sinks fall behind; everything else (the program, open files' row groups and
//! encoders) is roughly fixed once the run is going. So the governor measures the process's
//! resident memory every [`SAMPLE_EVERY`], takes off what batches in flight hold, and gives
//! batches whatever the cap leaves after the rest, minus a margin for the next interval's
//! growth. Producers then wait (lossless) or drop (best effort) at the
//! [`MemoryBudget`](ensemble_actors::budget::MemoryBudget).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use ensemble_actors::budget::MemoryBudget;

/// How often resident memory is measured.
pub const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// The arithmetic of the cap, apart from measuring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryCap {
    cap_bytes: u64,
}

impl MemoryCap {
    /// A cap of `max_memory_mb` MiB.
    pub fn from_mb(max_memory_mb: u64) -> Self {
        Self {
            cap_bytes: max_memory_mb.saturating_mul(1024 * 1024),
        }
    }

    /// The cap in bytes.
    pub fn bytes(&self) -> u64 {
        self.cap_bytes
    }

    /// The limit before anything is measured: a quarter of the cap.
    pub fn initial_in_flight_limit(&self) -> u64 {
        self.cap_bytes / 4
    }

    /// Most bytes batches in flight may hold, when the process is resident at `rss_bytes` and
    /// batches in flight hold `in_flight_bytes` of it: the cap, less everything else, less a
    /// quarter for growth until the next sample and for what the allocator keeps; never more
    /// than half the cap, and never less than a sixteenth (so that data keeps moving even when
    /// the rest crowds the cap).
    pub fn in_flight_limit(&self, rss_bytes: u64, in_flight_bytes: u64) -> u64 {
        let cap = self.cap_bytes;
        let everything_else = rss_bytes.saturating_sub(in_flight_bytes);
        cap.saturating_sub(everything_else)
            .saturating_sub(cap / 4)
            .clamp(cap / 16, cap / 2)
    }
}

/// Keeps adjusting a budget to the cap until dropped.
pub struct MemoryGovernor {
    /// Dropped to stop the thread: it wakes at once instead of finishing its sleep (a run's end
    /// waited up to [`SAMPLE_EVERY`] for it).
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Most bytes seen resident besides batches in flight.
    rest_peak: Arc<AtomicU64>,
}

impl MemoryGovernor {
    /// Starts measuring on its own thread (reading `/proc/self/status` must not stall the
    /// actors). Where resident memory cannot be read, the initial limit stays.
    pub fn start(budget: Arc<MemoryBudget>, cap: MemoryCap) -> Self {
        budget.set_limit(cap.initial_in_flight_limit());
        let (stop, stopped) = mpsc::channel::<()>();
        let rest_peak = Arc::new(AtomicU64::new(0));
        let peak = rest_peak.clone();
        let thread = std::thread::Builder::new()
            .name("memory-governor".into())
            .spawn(move || {
                let mut warned = false;
                loop {
                    let Some(rss_mib) = crate::process::rss_mib() else {
                        return;
                    };
                    let rss = (rss_mib * 1024.0 * 1024.0) as u64;
                    let in_flight = budget.used();
                    let rest = rss.saturating_sub(in_flight);
                    peak.fetch_max(rest, Ordering::Relaxed);
                    if !warned && rest + cap.bytes() / 16 > cap.bytes() {
                        warned = true;
                        tracing::warn!(
                            "max_memory_mb is too small for this run: besides batches in flight \
                             the process holds {} MiB of its {} MiB (open row groups, encoders, \
                             the program); raise the cap or lower row_group_rows",
                            rest / (1024 * 1024),
                            cap.bytes() / (1024 * 1024)
                        );
                    }
                    budget.set_limit(cap.in_flight_limit(rss, in_flight));
                    if stopped.recv_timeout(SAMPLE_EVERY) != Err(mpsc::RecvTimeoutError::Timeout) {
                        return;
                    }
                }
            })
            .ok();
        Self {
            stop: Some(stop),
            thread,
            rest_peak,
        }
    }

    /// Most bytes seen resident besides batches in flight so far (0 if never measured): what
    /// the run needs whatever the cap, for sizing `max_memory_mb`.
    pub fn rest_peak_bytes(&self) -> u64 {
        self.rest_peak.load(Ordering::Relaxed)
    }
}

impl Drop for MemoryGovernor {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn batches_get_what_the_rest_leaves_less_a_margin() {
        let cap = MemoryCap::from_mb(128);
        // 40 MiB resident, 10 of it batches: the rest is 30; 128 - 30 - 32 = 66, capped at 64.
        assert_eq!(cap.in_flight_limit(40 * MIB, 10 * MIB), 64 * MIB);
        // 100 MiB resident, 20 of it batches: 128 - 80 - 32 = 16.
        assert_eq!(cap.in_flight_limit(100 * MIB, 20 * MIB), 16 * MIB);
    }

    #[test]
    fn a_crowded_cap_still_lets_a_sixteenth_through() {
        let cap = MemoryCap::from_mb(128);
        assert_eq!(cap.in_flight_limit(200 * MIB, 0), 8 * MIB);
    }

    #[test]
    fn the_governor_sets_a_limit_within_the_bounds() {
        let budget = MemoryBudget::new(1);
        let cap = MemoryCap::from_mb(256);
        let governor = MemoryGovernor::start(budget.clone(), cap);
        std::thread::sleep(SAMPLE_EVERY * 3);
        assert!(governor.rest_peak_bytes() > 0, "this process is resident");
        drop(governor);
        let limit = budget.limit();
        assert!(
            (16 * MIB..=128 * MIB).contains(&limit),
            "limit {limit} out of bounds"
        );
    }
}
