//! A stream's last minutes at a fixed, fine bucket width, in fixed memory: what the live
//! view's "10 s", "1 min" and "10 min" windows are answered from.
//!
//! The whole-run [`History`](super::history::History) widens its buckets as the run grows, so
//! after a few minutes it is too coarse for a 10 s window, and re-reading the tap for every
//! answer would mean reading the stream's newest megabytes again for each plot refresh. A
//! [`Recent`] keeps [`RECENT_SLOTS`] buckets of one width per channel as a ring: a bucket is
//! cleared when the ring comes round to it again, so it always holds the last
//! `RECENT_SLOTS × width` of the stream. The view keeps one per width of [`RECENT_WIDTHS_NS`].

use super::bucket_runs::for_each_run;
use super::decimate::Decimator;
use super::envelope::Envelope;

/// Buckets per channel in each ring.
pub const RECENT_SLOTS: usize = 4096;
/// The widths the view keeps a ring of: spans of 16 s, 2 min 11 s and 17 min 29 s, so a
/// window of 10 s, 1 min or 10 min at 2,000 points is answered from buckets at least as fine
/// as the ones asked for.
pub const RECENT_WIDTHS_NS: [i64; 3] = [4_000_000, 32_000_000, 256_000_000];

/// The last `RECENT_SLOTS × width` of some channels, in buckets of `width`.
#[derive(Debug, Clone)]
pub struct Recent {
    /// Start of bucket 0 (the first sample's time), once a sample came; buckets are counted
    /// from it, so rings of different widths share their edges.
    t0_ns: Option<i64>,
    width_ns: i64,
    /// `channels × RECENT_SLOTS`, channel-major; bucket `b` lives at `b % RECENT_SLOTS`.
    slots: Vec<Envelope>,
    /// The latest bucket that holds (or held) a sample; `None` before the first.
    newest: Option<i64>,
}

impl Recent {
    /// An empty ring of `channels` channels in buckets of `width_ns` (memory taken now, once).
    pub fn new(channels: usize, width_ns: i64) -> Self {
        Self {
            t0_ns: None,
            width_ns: width_ns.max(1),
            slots: vec![Envelope::EMPTY; channels * RECENT_SLOTS],
            newest: None,
        }
    }

    /// Width of a bucket.
    pub fn width_ns(&self) -> i64 {
        self.width_ns
    }

    /// Time of bucket 0's start (the first sample), if any.
    pub fn t0_ns(&self) -> Option<i64> {
        self.t0_ns
    }

    /// Channels it keeps (the first ones of the stream).
    pub fn channels(&self) -> usize {
        self.slots.len() / RECENT_SLOTS
    }

    /// Bytes it holds (fixed).
    pub fn bytes(&self) -> usize {
        self.slots.len() * std::mem::size_of::<Envelope>()
    }

    /// The earliest time from which it still holds every bucket (`None` before any sample).
    pub fn holds_from_ns(&self) -> Option<i64> {
        let (t0, newest) = (self.t0_ns?, self.newest?);
        let oldest = (newest - RECENT_SLOTS as i64 + 1).max(0);
        Some(t0 + oldest * self.width_ns)
    }

    /// Whether it holds every bucket from `from_ns` on: its span reaches back that far, or it
    /// has never come round (then it holds everything since the stream's first sample).
    pub fn holds(&self, from_ns: i64) -> bool {
        let never_wrapped = self.newest.is_some_and(|n| n < RECENT_SLOTS as i64);
        never_wrapped || self.holds_from_ns().is_some_and(|held| held <= from_ns)
    }

    /// Folds in samples of several channels that share the timestamps `t_ns` (see
    /// [`History::add_columns`](super::history::History::add_columns)). Samples older than
    /// the ring's span, or before the first sample, are ignored.
    pub fn add_columns(&mut self, t_ns: &[i64], columns: &[(usize, &[f64])]) {
        let Some(&first) = t_ns.first() else {
            return;
        };
        let t0 = *self.t0_ns.get_or_insert(first);
        let channels = self.channels();
        let (slots, newest) = (&mut self.slots, &mut self.newest);
        for_each_run(t_ns, t0, i64::MAX, self.width_ns, |bucket, run| {
            let bucket = bucket as i64;
            match *newest {
                Some(n) if bucket <= n - RECENT_SLOTS as i64 => return,
                Some(n) if bucket > n => {
                    // The ring comes round: clear the buckets it passes over.
                    for b in (n + 1..=bucket).rev().take(RECENT_SLOTS) {
                        let at = b as usize % RECENT_SLOTS;
                        for c in 0..channels {
                            slots[c * RECENT_SLOTS + at] = Envelope::EMPTY;
                        }
                    }
                    *newest = Some(bucket);
                }
                Some(_) => {}
                None => *newest = Some(bucket),
            }
            let at = bucket as usize % RECENT_SLOTS;
            for &(channel, values) in columns {
                if channel < channels {
                    slots[channel * RECENT_SLOTS + at].fold(values, run.clone());
                }
            }
        });
    }

    /// Adds every bucket it holds that starts at `from_ns` or later, or that holds `from_ns`,
    /// of the channels in `pick` (ring channel per output channel) to `d`.
    pub fn decimate_into(&self, d: &mut Decimator, pick: &[usize], from_ns: i64) {
        let (Some(t0), Some(newest)) = (self.t0_ns, self.newest) else {
            return;
        };
        let oldest = (newest - RECENT_SLOTS as i64 + 1).max(0);
        let start = ((from_ns - t0).div_euclid(self.width_ns)).max(oldest);
        for (out, &channel) in pick.iter().enumerate() {
            if channel >= self.channels() {
                continue;
            }
            let ring = &self.slots[channel * RECENT_SLOTS..(channel + 1) * RECENT_SLOTS];
            for bucket in start..=newest {
                let e = ring[bucket as usize % RECENT_SLOTS];
                if !e.is_empty() {
                    d.add_envelope(out, t0 + bucket * self.width_ns, e.min, e.max, Some(e.last));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn it_keeps_the_last_span_at_its_width_and_every_extreme_in_it() {
        let mut r = Recent::new(1, 4 * MS);
        // 60 s at 1 kHz: far longer than 4,096 buckets of 4 ms (16.4 s).
        let n = 60_000i64;
        let ts: Vec<i64> = (0..n).map(|i| i * MS).collect();
        let mut v = vec![0.0; n as usize];
        v[10_000] = 9.0; // 10 s: no longer held
        v[55_555] = 7.0; // 55.555 s: held
        v[59_999] = -3.0; // the last sample
        r.add_columns(&ts, &[(0, &v)]);
        let from = r.holds_from_ns().expect("has samples");
        assert_eq!(from, (14_999 - RECENT_SLOTS as i64 + 1) * 4 * MS);
        let mut d = Decimator::on_grid(from, n * MS, 2_000, 1, 0, r.width_ns());
        r.decimate_into(&mut d, &[0], from);
        let out = d.finish();
        assert_eq!(
            out.extremes(0),
            Some((-3.0, 7.0)),
            "the 9.0 at 10 s has left the ring"
        );
        assert_eq!(
            out.bucket_ns,
            12 * MS,
            "the smallest multiple of 4 ms giving <= 2,000"
        );
        assert!(out.t_ns.len() <= 2_000);
        assert_eq!(out.series[0].last.last(), Some(&Some(-3.0)));
    }

    #[test]
    fn a_gap_longer_than_the_ring_clears_it_and_late_samples_are_ignored() {
        let mut r = Recent::new(2, MS);
        r.add_columns(&[0, MS], &[(0, &[5.0, 6.0]), (1, &[1.0, 1.0])]);
        // Far later: every old bucket is cleared.
        let late = 100_000 * MS;
        r.add_columns(&[late], &[(0, &[2.0]), (1, &[3.0])]);
        // A sample older than the ring's span is ignored, not folded into a reused slot.
        r.add_columns(&[2 * MS], &[(0, &[50.0])]);
        let mut d = Decimator::on_grid(0, late + MS, 10, 2, 0, MS);
        r.decimate_into(&mut d, &[0, 1], 0);
        let out = d.finish();
        assert_eq!(out.t_ns.len(), 1);
        assert_eq!(out.series[0].max, vec![Some(2.0)]);
        assert_eq!(out.series[1].max, vec![Some(3.0)]);
    }

    #[test]
    fn memory_is_fixed_and_channels_beyond_its_own_are_ignored() {
        let mut r = Recent::new(1, MS);
        let before = r.bytes();
        let ts: Vec<i64> = (0..50_000).map(|i| i * MS).collect();
        let ones = vec![1.0; 50_000];
        r.add_columns(&ts, &[(0, &ones), (3, &ones)]);
        assert_eq!(r.bytes(), before);
        assert_eq!(r.bytes(), RECENT_SLOTS * std::mem::size_of::<Envelope>());
    }
}
