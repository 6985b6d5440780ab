//! Stall detection: an instrument that shows no sign of life for too long, while nothing pushes
//! back on it, has stalled.

use std::time::{Duration, Instant};

/// Watches one instrument's heartbeat counter.
#[derive(Debug, Clone)]
pub(super) struct StallWatch {
    timeout: Option<Duration>,
    last: u64,
    since: Instant,
}

impl StallWatch {
    /// A watch that calls a stall after `timeout` without a heartbeat (`None`: never).
    pub(super) fn new(timeout: Option<Duration>, now: Instant) -> Self {
        Self {
            timeout,
            last: 0,
            since: now,
        }
    }

    /// Starts the clock again (the instrument was just started or restarted).
    pub(super) fn restart(&mut self, heartbeats: u64, now: Instant) {
        self.last = heartbeats;
        self.since = now;
    }

    /// The timeout, if the instrument is watched.
    pub(super) fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Feeds the supervision tick; `true` once the instrument has stalled: its heartbeat count
    /// has not moved for the timeout, and it was not waiting on its consumers meanwhile.
    pub(super) fn observe(&mut self, heartbeats: u64, waiting: bool, now: Instant) -> bool {
        let Some(timeout) = self.timeout else {
            return false;
        };
        if heartbeats != self.last || waiting {
            self.restart(heartbeats, now);
            return false;
        }
        now.duration_since(self.since) >= timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn a_silent_instrument_stalls_after_the_timeout() {
        let t0 = Instant::now();
        let mut watch = StallWatch::new(Some(2 * SECOND), t0);
        assert!(!watch.observe(0, false, t0 + SECOND));
        assert!(watch.observe(0, false, t0 + 2 * SECOND));
    }

    #[test]
    fn heartbeats_and_backpressure_keep_it_alive() {
        let t0 = Instant::now();
        let mut watch = StallWatch::new(Some(2 * SECOND), t0);
        assert!(!watch.observe(1, false, t0 + SECOND));
        assert!(!watch.observe(2, false, t0 + 2 * SECOND));
        // Waiting on a full link for a long time is not a stall...
        assert!(!watch.observe(2, true, t0 + 10 * SECOND));
        // ...and the clock starts from the last moment it was seen waiting.
        assert!(!watch.observe(2, false, t0 + 11 * SECOND));
        assert!(watch.observe(2, false, t0 + 12 * SECOND));
    }

    #[test]
    fn an_unwatched_instrument_never_stalls() {
        let t0 = Instant::now();
        let mut watch = StallWatch::new(None, t0);
        assert!(!watch.observe(0, false, t0 + 1000 * SECOND));
    }

    #[test]
    fn a_restart_starts_the_clock_again() {
        let t0 = Instant::now();
        let mut watch = StallWatch::new(Some(2 * SECOND), t0);
        watch.restart(5, t0 + 5 * SECOND);
        assert!(!watch.observe(5, false, t0 + 6 * SECOND));
        assert!(watch.observe(5, false, t0 + 7 * SECOND));
    }
}
