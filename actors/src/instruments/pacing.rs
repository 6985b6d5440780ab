//! Real-time pacing: which rows of a fixed-rate stream are due at a given moment.

use std::time::Duration;

/// Rows due after `elapsed` since row 0 of a `rate_hz` stream, capped at `limit`.
///
/// Row `i` is due at `i / rate_hz` seconds, so at `elapsed` the rows `0..=floor(elapsed · rate)`
/// are due: `floor(elapsed · rate) + 1` of them.
pub fn rows_due(elapsed: Duration, rate_hz: f64, limit: Option<u64>) -> u64 {
    let due = (elapsed.as_secs_f64() * rate_hz).floor() as u64 + 1;
    limit.map_or(due, |l| due.min(l))
}

/// Rows a stream of `rate_hz` yields in `duration`: exactly `floor(duration · rate_hz)`.
pub fn rows_in(duration: Duration, rate_hz: f64) -> u64 {
    // Integer nanoseconds keep e.g. 10 s × 1 kHz exact.
    (duration.as_nanos() as f64 * rate_hz / 1e9).floor() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_zero_is_due_at_once_and_the_limit_caps() {
        assert_eq!(rows_due(Duration::ZERO, 10.0, None), 1);
        assert_eq!(rows_due(Duration::from_millis(99), 10.0, None), 1);
        assert_eq!(rows_due(Duration::from_millis(100), 10.0, None), 2);
        assert_eq!(rows_due(Duration::from_secs(100), 10.0, Some(100)), 100);
    }

    #[test]
    fn rows_in_a_duration_are_floored() {
        assert_eq!(rows_in(Duration::from_secs(10), 1000.0), 10_000);
        assert_eq!(rows_in(Duration::from_millis(250), 10.0), 2);
        assert_eq!(rows_in(Duration::from_secs(10), 100_000.0), 1_000_000);
        assert_eq!(rows_in(Duration::from_millis(1500), 3.0), 4);
    }
}
