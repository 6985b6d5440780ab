//! A stream's whole-run envelope in fixed memory, for the live view's long windows.
//!
//! The tap holds only the newest batches; for "10 min" or "whole run" the server folds every
//! batch it reads from the tap into a [`History`]: [`SLOTS`] buckets per channel of min, max
//! and last. When a sample falls past the last bucket, neighbouring buckets merge in pairs and
//! the bucket width doubles, so the history always spans the run so far at the finest width
//! that fits, and never grows.

use super::bucket_runs::for_each_run;
use super::decimate::Decimator;
use super::envelope::Envelope;

/// Buckets per channel.
pub const SLOTS: usize = 2048;
/// Width of a bucket before the first merge.
const FIRST_BUCKET_NS: i64 = 1_000_000;

/// Min/max/last of every channel over the whole run, in [`SLOTS`] buckets per channel.
#[derive(Debug, Clone)]
pub struct History {
    /// Start of bucket 0 (the first sample's time), once a sample came.
    t0_ns: Option<i64>,
    bucket_ns: i64,
    channels: usize,
    /// `channels × SLOTS`, channel-major.
    slots: Vec<Envelope>,
}

impl History {
    /// An empty history of `channels` channels (its memory is taken now, once).
    pub fn new(channels: usize) -> Self {
        Self {
            t0_ns: None,
            bucket_ns: FIRST_BUCKET_NS,
            channels,
            slots: vec![Envelope::EMPTY; channels * SLOTS],
        }
    }

    /// Time of the first sample folded in, if any.
    pub fn t0_ns(&self) -> Option<i64> {
        self.t0_ns
    }

    /// Channels it keeps (the first ones of the stream).
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Width of a bucket now.
    pub fn bucket_ns(&self) -> i64 {
        self.bucket_ns
    }

    /// Bytes this history holds (fixed).
    pub fn bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Envelope>()
    }

    /// Folds in samples of several channels that share the timestamps `t_ns`:
    /// `(channel, values)` with `values[i]` at `t_ns[i]` (NaN ignored; samples before the first
    /// one are ignored). The buckets are found once for all channels.
    pub fn add_columns(&mut self, t_ns: &[i64], columns: &[(usize, &[f64])]) {
        let columns: Vec<(usize, &[f64])> = columns
            .iter()
            .copied()
            .filter(|&(channel, _)| channel < self.channels)
            .collect();
        let n = columns
            .iter()
            .map(|(_, v)| v.len())
            .fold(t_ns.len(), usize::min);
        if columns.is_empty() || n == 0 {
            return;
        }
        let t_ns = &t_ns[..n];
        let t0 = *self.t0_ns.get_or_insert(t_ns[0]);
        // Widen the buckets first, so that every sample of this slice has its slot.
        let latest = t_ns.iter().copied().max().unwrap_or(t0);
        while latest.saturating_sub(t0) / self.bucket_ns >= SLOTS as i64 {
            self.merge_pairs();
        }
        let slots = &mut self.slots;
        for_each_run(t_ns, t0, i64::MAX, self.bucket_ns, |index, run| {
            for &(channel, values) in &columns {
                slots[channel * SLOTS + index].fold(values, run.clone());
            }
        });
    }

    /// Halves the resolution: bucket `i` becomes buckets `2i` and `2i + 1` merged.
    fn merge_pairs(&mut self) {
        for channel in self.slots.chunks_mut(SLOTS) {
            for i in 0..SLOTS / 2 {
                channel[i] = channel[2 * i].merge(channel[2 * i + 1]);
            }
            channel[SLOTS / 2..].fill(Envelope::EMPTY);
        }
        self.bucket_ns *= 2;
    }

    /// Adds every bucket that starts before `before_ns` of the channels in `pick` (history
    /// channel per output channel) to `d`.
    pub fn decimate_into(&self, d: &mut Decimator, pick: &[usize], before_ns: i64) {
        let Some(t0) = self.t0_ns else {
            return;
        };
        for (out, &channel) in pick.iter().enumerate() {
            let Some(slots) = self.slots.chunks(SLOTS).nth(channel) else {
                continue;
            };
            for (i, slot) in slots.iter().enumerate().filter(|(_, s)| !s.is_empty()) {
                let t = t0 + i as i64 * self.bucket_ns;
                if t >= before_ns {
                    break;
                }
                d.add_envelope(out, t, slot.min, slot.max, Some(slot.last));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_run_merges_buckets_and_keeps_every_extreme() {
        let mut h = History::new(1);
        let n = 200_000i64;
        // 200 s at 1 kHz: far more than SLOTS buckets of the first width.
        let ts: Vec<i64> = (0..n).map(|i| i * 1_000_000).collect();
        let mut values = vec![0.0; n as usize];
        values[12_345] = 7.0;
        values[199_999] = -7.0;
        h.add_columns(&ts, &[(0, &values)]);
        assert!(h.bucket_ns() * SLOTS as i64 >= n * 1_000_000);
        assert!(
            h.bucket_ns() * SLOTS as i64 / 2 < n * 1_000_000,
            "finest width that fits"
        );
        let mut d = Decimator::new(0, n * 1_000_000, 500, 1);
        h.decimate_into(&mut d, &[0], i64::MAX);
        let out = d.finish();
        assert_eq!(out.extremes(0), Some((-7.0, 7.0)));
        assert_eq!(out.series[0].last.last(), Some(&Some(-7.0)));
    }

    #[test]
    fn memory_is_fixed_whatever_the_run_length() {
        let mut h = History::new(2);
        let before = h.bytes();
        let ts: Vec<i64> = (0..10_000).map(|i| i * 1_000_000_000).collect();
        let ones = vec![1.0; 10_000];
        h.add_columns(&ts, &[(1, &ones), (5, &ones)]);
        assert_eq!(h.bytes(), before);
    }
}
