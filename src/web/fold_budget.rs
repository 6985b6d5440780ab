//! How much of a stream the live view folds: everything up to a fixed number of samples a
//! second, an even sample of its batches beyond that.
//!
//! Folding reads every value the stream produced a second time. For a stream of a few
//! million samples a second that is cheap, but a `pace = "max"` stream can deliver fifty
//! million, and reading those again competes with the run for the machine's memory bandwidth
//! and caches even when the view's own thread is mostly idle. So each stream has a budget of
//! [`FOLD_SAMPLES_PER_SECOND`] (a token bucket holding at most one second's worth): while a
//! stream stays within it, every sample is folded and every spike shows; beyond it, the view
//! folds every `k`-th batch, spread evenly and always including the newest, and reports the
//! share it folded (the page's legend then says the trace is sampled). The recorded data is
//! never affected: this only decides what the view looks at.

use std::time::Instant;

/// Samples (rows × folded channels) a second the view folds of each stream in full: a 1 MHz
/// stream of 8 channels.
pub const FOLD_SAMPLES_PER_SECOND: f64 = 8_000_000.0;

/// One stream's folding budget and what it folded.
#[derive(Debug, Clone)]
pub struct FoldBudget {
    per_second: f64,
    /// Samples it may fold now (at most one second's worth; negative after a batch larger
    /// than what was left, paid back before the next).
    tokens: f64,
    last: Instant,
    /// Rows folded so far.
    folded_rows: u64,
    /// Rows passed over so far.
    skipped_rows: u64,
}

impl FoldBudget {
    /// A budget of `per_second` samples a second, starting with a second's worth.
    pub fn new(per_second: f64, now: Instant) -> Self {
        Self {
            per_second,
            tokens: per_second,
            last: now,
            folded_rows: 0,
            skipped_rows: 0,
        }
    }

    /// Which of the batches of `rows` rows each (oldest first, `channels` folded per row) to
    /// fold now: all of them while the budget lasts, else every `k`-th counted back from the
    /// newest, with `k` the smallest stride that fits. The result has one flag per batch.
    pub fn choose(&mut self, now: Instant, rows: &[usize], channels: usize) -> Vec<bool> {
        let dt = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + dt * self.per_second).min(self.per_second);
        let cost = |r: usize| (r * channels.max(1)) as f64;
        let total: f64 = rows.iter().map(|&r| cost(r)).sum();
        let stride = if total <= self.tokens {
            1
        } else {
            // At least one batch (the newest) is always folded, so the picture stays live.
            (total / self.tokens.max(1.0)).ceil().max(1.0) as usize
        };
        let n = rows.len();
        let chosen: Vec<bool> = (0..n).map(|i| (n - 1 - i) % stride == 0).collect();
        for (&r, &fold) in rows.iter().zip(&chosen) {
            if fold {
                self.tokens -= cost(r);
                self.folded_rows += r as u64;
            } else {
                self.skipped_rows += r as u64;
            }
        }
        self.tokens = self.tokens.max(-self.per_second);
        chosen
    }

    /// Counts `rows` the view never saw (its tap overwrote them before they were folded) as
    /// passed over.
    pub fn missed(&mut self, rows: u64) {
        self.skipped_rows += rows;
    }

    /// Rows folded so far.
    pub fn folded_rows(&self) -> u64 {
        self.folded_rows
    }

    /// Share of the rows offered to it that were folded (1 when none were passed over).
    pub fn folded_share(&self) -> f64 {
        let all = self.folded_rows + self.skipped_rows;
        if all == 0 {
            1.0
        } else {
            self.folded_rows as f64 / all as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_stream_within_the_budget_is_folded_whole() {
        let t = Instant::now();
        let mut b = FoldBudget::new(1_000.0, t);
        // 100 rows × 4 channels every 100 ms = 4,000 samples/s... too much; 25 rows = 1,000/s.
        for k in 1..=50u64 {
            let chosen = b.choose(t + Duration::from_millis(100 * k), &[10, 15], 4);
            assert_eq!(chosen, vec![true, true], "tick {k}");
        }
        assert_eq!(b.folded_share(), 1.0);
        assert_eq!(b.folded_rows(), 50 * 25);
        b.missed(50 * 25);
        assert_eq!(
            b.folded_share(),
            0.5,
            "rows the tap overwrote count as not folded"
        );
    }

    #[test]
    fn a_faster_stream_is_sampled_evenly_within_the_budget_and_the_newest_is_kept() {
        let t = Instant::now();
        let mut b = FoldBudget::new(1_000.0, t);
        b.choose(t, &[1_000], 1); // spend the first second's worth
        let mut folded = 0usize;
        for k in 1..=100u64 {
            // 40 batches of 10 rows every 100 ms: 4,000 samples/s against a budget of 1,000.
            let chosen = b.choose(t + Duration::from_millis(100 * k), &[10; 40], 1);
            assert_eq!(chosen.last(), Some(&true), "the newest batch is folded");
            let picked: Vec<usize> = (0..40).filter(|&i| chosen[i]).collect();
            let gaps: Vec<usize> = picked.windows(2).map(|w| w[1] - w[0]).collect();
            assert!(
                gaps.windows(2).all(|g| g[0] == g[1]),
                "evenly spread: {picked:?}"
            );
            folded += picked.len() * 10;
        }
        let rate = folded as f64 / 10.0;
        assert!((900.0..=1_100.0).contains(&rate), "{rate} samples/s folded");
        let share = b.folded_share();
        assert!(share > 0.2 && share < 0.3, "{share}");
    }

    #[test]
    fn a_single_batch_larger_than_the_budget_is_still_folded_and_paid_back() {
        let t = Instant::now();
        let mut b = FoldBudget::new(100.0, t);
        assert_eq!(b.choose(t, &[500], 1), vec![true]);
        // Paid back over the next seconds: a small batch soon after is passed over...
        assert_eq!(
            b.choose(t + Duration::from_millis(500), &[10, 10], 1),
            vec![false, true]
        );
        // ...and once the debt is paid, everything is folded again.
        assert_eq!(
            b.choose(t + Duration::from_secs(5), &[10, 10], 1),
            vec![true, true]
        );
    }
}
