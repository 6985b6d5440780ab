//! The two inner loops every decimation shares: cutting timestamps into runs of samples that
//! fall into one bucket, and the smallest and largest value of a run.
//!
//! Both run on the web server's thread over every sample a fast stream delivers (a 1 MHz,
//! 4-channel stream is 4 million values a second), so they are written to cost well under a
//! nanosecond per sample: the bucket ends of time-ordered samples are found by binary search
//! (one per bucket, not one comparison per sample), and min/max keeps eight independent
//! accumulators the compiler turns into vector instructions.

use std::ops::Range;

/// Calls `f(bucket, range)` for each run of consecutive samples of `t_ns` that fall into one
/// bucket of `width` ns counted from `from`, for samples in `[from, to)` (others are skipped).
/// Samples out of time order start a new run, so every sample is in exactly one run or
/// skipped, whatever the order.
pub fn for_each_run(
    t_ns: &[i64],
    from: i64,
    to: i64,
    width: i64,
    mut f: impl FnMut(usize, Range<usize>),
) {
    let width = width.max(1);
    let n = t_ns.len();
    let sorted = t_ns.windows(2).all(|w| w[0] <= w[1]);
    let mut i = 0;
    while i < n {
        let t = t_ns[i];
        if t < from || t >= to {
            i += 1;
            continue;
        }
        let bucket = (t - from) / width;
        let end = from
            .saturating_add((bucket + 1).saturating_mul(width))
            .min(to);
        let j = if sorted {
            i + 1 + t_ns[i + 1..].partition_point(|&x| x < end)
        } else {
            let mut j = i + 1;
            while j < n && t_ns[j] < end && t_ns[j] >= t_ns[j - 1] {
                j += 1;
            }
            j
        };
        f(bucket as usize, i..j);
        i = j;
    }
}

/// Lanes of [`min_max`]: independent accumulators, so that the loop is not one long chain of
/// dependent comparisons and vectorises.
const LANES: usize = 8;

/// Smallest and largest of `values`, NaN ignored (±infinity when all are NaN).
pub fn min_max(values: &[f64]) -> (f64, f64) {
    let mut lo = [f64::INFINITY; LANES];
    let mut hi = [f64::NEG_INFINITY; LANES];
    let chunks = values.chunks_exact(LANES);
    let rest = chunks.remainder();
    for chunk in chunks {
        for k in 0..LANES {
            // NaN compares false both ways: the accumulator is kept.
            lo[k] = if chunk[k] < lo[k] { chunk[k] } else { lo[k] };
            hi[k] = if chunk[k] > hi[k] { chunk[k] } else { hi[k] };
        }
    }
    let (mut l, mut h) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in rest.iter().chain(lo.iter()) {
        if v < l {
            l = v;
        }
    }
    for &v in rest.iter().chain(hi.iter()) {
        if v > h {
            h = v;
        }
    }
    (l, h)
}

/// Index of the last value of `values[range]` that is not NaN.
pub fn last_valid(values: &[f64], range: Range<usize>) -> Option<usize> {
    range.rev().find(|&k| !values[k].is_nan())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runs(t: &[i64], from: i64, to: i64, width: i64) -> Vec<(usize, Range<usize>)> {
        let mut out = Vec::new();
        for_each_run(t, from, to, width, |b, r| out.push((b, r)));
        out
    }

    #[test]
    fn time_ordered_samples_are_cut_at_bucket_ends() {
        let t: Vec<i64> = (0..10).collect();
        assert_eq!(runs(&t, 0, 10, 4), vec![(0, 0..4), (1, 4..8), (2, 8..10)]);
        assert_eq!(runs(&t, 2, 7, 4), vec![(0, 2..6), (1, 6..7)]);
    }

    #[test]
    fn samples_out_of_order_start_new_runs_and_none_is_lost_or_counted_twice() {
        let t = [0, 1, 5, 2, 3, 9, 9, 4];
        let got = runs(&t, 0, 10, 4);
        assert_eq!(
            got,
            vec![(0, 0..2), (1, 2..3), (0, 3..5), (2, 5..7), (1, 7..8)]
        );
        let covered: usize = got.iter().map(|(_, r)| r.len()).sum();
        assert_eq!(covered, t.len());
    }

    #[test]
    fn min_max_ignores_nan_and_sees_a_single_spike_anywhere() {
        for at in 0..37 {
            let mut v: Vec<f64> = (0..37).map(|i| (i as f64).sin()).collect();
            v[at] = 50.0;
            v[(at + 5) % 37] = f64::NAN;
            v[(at + 11) % 37] = -50.0;
            assert_eq!(min_max(&v), (-50.0, 50.0), "spike at {at}");
        }
        assert_eq!(min_max(&[f64::NAN; 9]), (f64::INFINITY, f64::NEG_INFINITY));
        assert_eq!(min_max(&[]), (f64::INFINITY, f64::NEG_INFINITY));
    }

    #[test]
    fn the_last_valid_value_skips_trailing_nan() {
        let v = [1.0, 2.0, f64::NAN];
        assert_eq!(last_valid(&v, 0..3), Some(1));
        assert_eq!(last_valid(&v, 2..3), None);
    }
}
