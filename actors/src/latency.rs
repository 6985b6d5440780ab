//! Latency histograms: how long a sample took from its timestamp to a durable write.
//!
//! A [`LatencyHistogram`] is a plain log-linear histogram of nanosecond values (64 linear
//! sub-buckets per power of two, so any reported quantile is within 1.6% of the true value).
//! Writers record one value per batch, never per sample; reports merge the histograms of every
//! writer thread and read quantiles from the result.
//!
//! ```
//! use ensemble_actors::latency::LatencyHistogram;
//!
//! let mut h = LatencyHistogram::default();
//! for ms in 1..=100u64 {
//!     h.record(ms * 1_000_000);
//! }
//! let p50 = h.quantile(0.5);
//! assert!((p50 as f64 - 50e6).abs() / 50e6 < 0.02, "{p50}");
//! assert_eq!(h.count(), 100);
//! assert_eq!(h.max(), 100_000_000);
//! ```
//!
//! # Limits
//! Values are `u64` nanoseconds; a negative latency (a clock step backwards) is recorded as 0.

use serde::Serialize;

/// Linear sub-buckets per power of two (2^6).
const SUB_BITS: u32 = 6;
const SUB: usize = 1 << SUB_BITS;
/// Powers of two covered: up to 2^64 ns.
const RANGES: usize = 64 - SUB_BITS as usize + 1;

/// A log-linear histogram of nanosecond latencies; one `record` per batch.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    /// Counts per bucket: range `r` (the power of two) times `SUB` linear sub-buckets.
    counts: Vec<u64>,
    count: u64,
    max: u64,
    sum: u128,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            counts: vec![0; RANGES * SUB],
            count: 0,
            max: 0,
            sum: 0,
        }
    }
}

/// Bucket index of a value: exact below `SUB`, then 64 linear steps per power of two.
fn bucket_of(value: u64) -> usize {
    if value < SUB as u64 {
        return value as usize;
    }
    let range = 63 - value.leading_zeros() - SUB_BITS + 1;
    let sub = (value >> (range - 1)) as usize & (SUB - 1);
    range as usize * SUB + sub
}

/// The largest value that falls into bucket `index` (what quantiles report: an upper bound).
fn bucket_high(index: usize) -> u64 {
    let range = index / SUB;
    let sub = (index % SUB) as u64;
    if range == 0 {
        return sub;
    }
    let shift = range as u32 - 1;
    let base = (SUB as u64 | sub) << shift;
    base.saturating_add((1u64 << shift) - 1)
}

impl LatencyHistogram {
    /// Records one latency in nanoseconds.
    pub fn record(&mut self, nanos: u64) {
        self.counts[bucket_of(nanos)] += 1;
        self.count += 1;
        self.max = self.max.max(nanos);
        self.sum += u128::from(nanos);
    }

    /// Records `now_ns - timestamp_ns` (0 if the timestamp is in the future).
    pub fn record_since(&mut self, timestamp_ns: i64, now_ns: i64) {
        self.record(u64::try_from(now_ns.saturating_sub(timestamp_ns)).unwrap_or(0));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The largest value recorded (exact), 0 if none.
    pub fn max(&self) -> u64 {
        self.max
    }

    /// The value at quantile `q` (0 to 1): an upper bound within 1.6%, never above the maximum.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return bucket_high(i).min(self.max);
            }
        }
        self.max
    }

    /// A summary in milliseconds for reports.
    pub fn summary(&self) -> LatencySummary {
        let ms = |ns: u64| ns as f64 / 1e6;
        LatencySummary {
            batches: self.count,
            p50_ms: ms(self.quantile(0.5)),
            p99_ms: ms(self.quantile(0.99)),
            max_ms: ms(self.max),
            mean_ms: if self.count == 0 {
                0.0
            } else {
                (self.sum / u128::from(self.count)) as f64 / 1e6
            },
        }
    }
}

/// Quantiles of a [`LatencyHistogram`], in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct LatencySummary {
    /// Batches measured.
    pub batches: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

/// Wall-clock now in nanoseconds since the Unix epoch (the clock sample timestamps use).
pub fn now_ns() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_nanos()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_bound_their_values_within_two_percent() {
        for v in [
            0u64,
            1,
            63,
            64,
            65,
            127,
            128,
            1000,
            123_456_789,
            u64::MAX / 3,
        ] {
            let b = bucket_of(v);
            let high = bucket_high(b);
            assert!(high >= v, "{v} -> {high}");
            assert!((high - v) as f64 <= v as f64 * 0.016 + 1.0, "{v} -> {high}");
            if b > 0 {
                assert!(bucket_high(b - 1) < v, "{v}");
            }
        }
    }

    #[test]
    fn quantiles_merge_and_empty() {
        let mut a = LatencyHistogram::default();
        assert_eq!(a.quantile(0.99), 0);
        let mut b = LatencyHistogram::default();
        for v in 0..1000u64 {
            a.record(v * 1000);
        }
        b.record(5_000_000_000);
        a.merge(&b);
        assert_eq!(a.count(), 1001);
        assert_eq!(a.max(), 5_000_000_000);
        let p99 = a.quantile(0.99);
        assert!((980_000..=1_000_000).contains(&p99), "{p99}");
        assert_eq!(a.quantile(1.0), 5_000_000_000);
        a.record_since(10, 5);
        assert_eq!(a.count(), 1002);
    }
}
