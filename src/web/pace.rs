//! How fast the view may send, in all: a byte budget per second shared by every answer and
//! every event, so that clients polling as fast as they can cost the machine a bounded amount
//! of CPU (copying and sending bytes is most of an answer's cost), however many they are.
//!
//! The budget is a token bucket kept as a "theoretical arrival time" (GCRA): an answer may
//! go out at once while the bucket holds a second's worth of bytes; beyond that it waits its
//! turn, and one that would wait longer than [`MAX_WAIT`] is refused (503) rather than queued.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Bytes per second the view sends at most, answers and events together.
pub const BYTES_PER_SECOND: u64 = 8 * 1024 * 1024;
/// How much may go out at once before pacing starts (the bucket's size), in seconds of budget.
const BURST: Duration = Duration::from_secs(1);
/// Longest an answer waits for its turn before it is refused instead.
pub const MAX_WAIT: Duration = Duration::from_secs(5);

/// A shared budget of units a second: bytes for what is sent, or answers for what is computed.
#[derive(Debug)]
pub struct Pacer {
    per_second: u64,
    /// When the bucket will be full again if nothing more is sent.
    full_at: Mutex<Option<Instant>>,
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new(BYTES_PER_SECOND)
    }
}

impl Pacer {
    /// A budget of `per_second` units a second.
    pub fn new(per_second: u64) -> Self {
        Self {
            per_second: per_second.max(1),
            full_at: Mutex::new(None),
        }
    }

    /// Reserves `units` at `now`: `Some(when)` they may be spent (`now` or later), or `None`
    /// when that would be longer than [`MAX_WAIT`] away (nothing is reserved then).
    pub fn reserve(&self, now: Instant, units: usize) -> Option<Instant> {
        let cost = Duration::from_secs_f64(units as f64 / self.per_second as f64);
        let mut full_at = self.full_at.lock().unwrap_or_else(|e| e.into_inner());
        let start = full_at.map_or(now, |t| t.max(now));
        let finish = start + cost;
        // It may go once the bucket, after taking it, holds no more than BURST of debt.
        let send_at = finish.checked_sub(BURST).map_or(now, |t| t.max(now));
        if send_at.duration_since(now) > MAX_WAIT {
            return None;
        }
        *full_at = Some(finish);
        Some(send_at)
    }

    /// Waits until `units` may be spent; `false` when refused (see [`Pacer::reserve`]).
    pub async fn wait(&self, units: usize) -> bool {
        match self.reserve(Instant::now(), units) {
            Some(at) => {
                tokio::time::sleep_until(at.into()).await;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn a_second_of_budget_goes_at_once_and_the_rest_at_the_budgets_pace() {
        let pacer = Pacer::new(MIB as u64);
        let t0 = Instant::now();
        assert_eq!(pacer.reserve(t0, MIB / 2), Some(t0));
        assert_eq!(
            pacer.reserve(t0, MIB / 2),
            Some(t0),
            "still within the burst"
        );
        let third = pacer.reserve(t0, MIB / 2).expect("within the longest wait");
        let waited = third.duration_since(t0).as_secs_f64();
        assert!((waited - 0.5).abs() < 1e-3, "waited {waited} s");
    }

    #[test]
    fn sending_at_most_the_budget_never_waits() {
        let pacer = Pacer::new(MIB as u64);
        let t0 = Instant::now();
        for i in 0..100u32 {
            let now = t0 + Duration::from_millis(100) * i;
            assert_eq!(pacer.reserve(now, MIB / 10), Some(now), "answer {i}");
        }
    }

    #[test]
    fn a_flood_is_refused_beyond_the_longest_wait_and_refusals_cost_nothing() {
        let pacer = Pacer::new(MIB as u64);
        let t0 = Instant::now();
        let mut sent = 0;
        while pacer.reserve(t0, MIB / 4).is_some() {
            sent += 1;
            assert!(sent < 1000, "never refused");
        }
        // A burst of one second plus five of waiting: 6 MiB in quarters.
        assert_eq!(sent, 24);
        let later = t0 + MAX_WAIT + Duration::from_secs(2);
        assert!(
            pacer.reserve(later, MIB / 4).is_some(),
            "the budget refills with time"
        );
    }
}
