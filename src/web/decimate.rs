//! Min/max/last per time bucket: how a million samples become a plot of two thousand points
//! in which a one-sample spike still shows.
//!
//! [`Decimator`] cuts a time window into equal buckets and keeps, per channel, the smallest,
//! largest and last value that fell into each. It takes single samples or whole envelopes
//! (a coarser bucket's min/max/last, or a Parquet row group's statistics), so the live view's
//! raw tap, its long-run [`History`](super::history::History) and finished files all decimate
//! the same way. It runs on the web server's thread only, never on an acquisition or writer
//! thread.
//!
//! ```
//! use ensemble::web::decimate::Decimator;
//! let mut d = Decimator::new(0, 1_000, 10, 1);
//! for t in 0..1_000 {
//!     let v = if t == 437 { 9.0 } else { 0.0 };
//!     d.add(0, t, v);
//! }
//! let out = d.finish();
//! assert_eq!(out.t_ns.len(), 10);
//! assert_eq!(out.series[0].max[4], Some(9.0), "the spike is in bucket 4");
//! ```

use serde::Serialize;

use super::bucket_runs::{for_each_run, last_valid, min_max};

/// One channel's decimated trace: per kept bucket, min, max and last (`None`: no sample of
/// this channel in that bucket; `last` is also `None` when only statistics were known).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Trace {
    /// Smallest value in each bucket.
    pub min: Vec<Option<f64>>,
    /// Largest value in each bucket.
    pub max: Vec<Option<f64>>,
    /// Last value in each bucket.
    pub last: Vec<Option<f64>>,
}

/// The result: bucket start times (ns since the Unix epoch) of the buckets that hold any data,
/// and one [`Trace`] per channel over the same buckets.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Decimated {
    /// Start of each kept bucket.
    pub t_ns: Vec<i64>,
    /// Width of a bucket.
    pub bucket_ns: i64,
    /// One trace per channel, in the order given to [`Decimator::new`].
    pub series: Vec<Trace>,
    /// Samples (or envelopes) that went in.
    pub inputs: u64,
}

impl Decimated {
    /// The smallest min and the largest max of `channel` over all buckets (`None` when it has
    /// no sample in the window): the range a plot's y axis must show.
    pub fn extremes(&self, channel: usize) -> Option<(f64, f64)> {
        let trace = self.series.get(channel)?;
        let lo = trace.min.iter().flatten().copied().reduce(f64::min)?;
        let hi = trace.max.iter().flatten().copied().reduce(f64::max)?;
        Some((lo, hi))
    }
}

/// One channel's accumulators in one bucket.
#[derive(Debug, Clone, Copy)]
struct Cell {
    min: f64,
    max: f64,
    last: Option<f64>,
    /// Time of `last`, so that envelopes added out of order keep the latest.
    last_t: i64,
    seen: bool,
}

const EMPTY: Cell = Cell {
    min: f64::INFINITY,
    max: f64::NEG_INFINITY,
    last: None,
    last_t: i64::MIN,
    seen: false,
};

/// Cuts `[from_ns, to_ns)` into at most `points` equal buckets and keeps min/max/last of each
/// channel per bucket. Samples outside the window and NaNs are ignored.
#[derive(Debug, Clone)]
pub struct Decimator {
    from_ns: i64,
    to_ns: i64,
    bucket_ns: i64,
    buckets: usize,
    /// `channels × buckets`, channel-major.
    cells: Vec<Cell>,
    inputs: u64,
}

impl Decimator {
    /// A window of `points` buckets (at least 1) over `channels` channels.
    pub fn new(from_ns: i64, to_ns: i64, points: usize, channels: usize) -> Self {
        let points = points.max(1);
        let span = (to_ns.saturating_sub(from_ns)).max(1);
        let bucket_ns = (span + points as i64 - 1) / points as i64;
        let buckets = ((span + bucket_ns - 1) / bucket_ns) as usize;
        Self {
            from_ns,
            to_ns: from_ns.saturating_add(span),
            bucket_ns,
            buckets,
            cells: vec![EMPTY; buckets * channels],
            inputs: 0,
        }
    }

    /// A window over `[from_ns, to_ns)` whose buckets are whole multiples of a source's
    /// buckets (`grid_ns` wide, edges at `grid_t0_ns + k × grid_ns`): the smallest multiple
    /// that needs at most `points` buckets. The window starts at the grid edge at or before
    /// `from_ns`, so every source bucket falls into exactly one of these buckets, whole, and
    /// none is cut in two (an envelope split over two buckets would widen both).
    pub fn on_grid(
        from_ns: i64,
        to_ns: i64,
        points: usize,
        channels: usize,
        grid_t0_ns: i64,
        grid_ns: i64,
    ) -> Self {
        let grid = grid_ns.max(1);
        let points = points.max(1) as i64;
        let from = grid_t0_ns + (from_ns - grid_t0_ns).div_euclid(grid) * grid;
        let span = to_ns.saturating_sub(from).max(1);
        let per_bucket = (span + points * grid - 1) / (points * grid);
        let bucket_ns = per_bucket.max(1) * grid;
        let buckets = ((span + bucket_ns - 1) / bucket_ns) as usize;
        Self {
            from_ns: from,
            to_ns: from.saturating_add(span),
            bucket_ns,
            buckets,
            cells: vec![EMPTY; buckets * channels],
            inputs: 0,
        }
    }

    /// Start of the window (for [`on_grid`](Self::on_grid), the grid edge it was moved to).
    pub fn from_ns(&self) -> i64 {
        self.from_ns
    }

    /// Width of one bucket.
    pub fn bucket_ns(&self) -> i64 {
        self.bucket_ns
    }

    fn cell(&mut self, channel: usize, t_ns: i64) -> Option<&mut Cell> {
        if t_ns < self.from_ns || t_ns >= self.to_ns {
            return None;
        }
        let bucket = ((t_ns - self.from_ns) / self.bucket_ns) as usize;
        self.cells.get_mut(channel * self.buckets + bucket)
    }

    /// Adds one sample of `channel` at `t_ns`.
    pub fn add(&mut self, channel: usize, t_ns: i64, value: f64) {
        self.add_envelope(channel, t_ns, value, value, Some(value));
    }

    /// Adds a whole envelope (min, max and, if known, last) that starts at `t_ns`.
    pub fn add_envelope(
        &mut self,
        channel: usize,
        t_ns: i64,
        min: f64,
        max: f64,
        last: Option<f64>,
    ) {
        if min.is_nan() || max.is_nan() {
            return;
        }
        self.inputs += 1;
        let Some(cell) = self.cell(channel, t_ns) else {
            return;
        };
        cell.min = cell.min.min(min);
        cell.max = cell.max.max(max);
        if t_ns >= cell.last_t {
            cell.last_t = t_ns;
            cell.last = last.filter(|v| !v.is_nan());
        }
        cell.seen = true;
    }

    /// Adds samples of several channels that share the timestamps `t_ns`: `(channel, values)`
    /// with `values[i]` at `t_ns[i]`. Samples in time order are folded a bucket at a time: the
    /// buckets are found once for all channels (one binary search per bucket, not a step per
    /// sample), then each channel's run is one min/max pass.
    pub fn add_columns(&mut self, t_ns: &[i64], columns: &[(usize, &[f64])]) {
        let n = columns
            .iter()
            .map(|(_, v)| v.len())
            .fold(t_ns.len(), usize::min);
        let t_ns = &t_ns[..n];
        let (buckets, cells) = (self.buckets, &mut self.cells);
        let mut inputs = 0u64;
        for_each_run(
            t_ns,
            self.from_ns,
            self.to_ns,
            self.bucket_ns,
            |bucket, run| {
                for &(channel, values) in columns {
                    inputs += run.len() as u64;
                    let Some(k) = last_valid(values, run.clone()) else {
                        continue;
                    };
                    let Some(cell) = cells.get_mut(channel * buckets + bucket) else {
                        continue;
                    };
                    let (lo, hi) = min_max(&values[run.clone()]);
                    cell.min = cell.min.min(lo);
                    cell.max = cell.max.max(hi);
                    if t_ns[k] >= cell.last_t {
                        cell.last_t = t_ns[k];
                        cell.last = Some(values[k]);
                    }
                    cell.seen = true;
                }
            },
        );
        self.inputs += inputs;
    }

    /// The buckets that hold any data, with each channel's envelope.
    pub fn finish(self) -> Decimated {
        let channels = self.cells.len().checked_div(self.buckets).unwrap_or(0);
        let kept: Vec<usize> = (0..self.buckets)
            .filter(|&b| (0..channels).any(|c| self.cells[c * self.buckets + b].seen))
            .collect();
        let series = (0..channels)
            .map(|c| {
                let cells = kept.iter().map(|&b| self.cells[c * self.buckets + b]);
                let mut trace = Trace::default();
                for cell in cells {
                    let seen = cell.seen;
                    trace.min.push(seen.then_some(cell.min));
                    trace.max.push(seen.then_some(cell.max));
                    trace.last.push(if seen { cell.last } else { None });
                }
                trace
            })
            .collect();
        Decimated {
            t_ns: kept
                .iter()
                .map(|&b| self.from_ns + b as i64 * self.bucket_ns)
                .collect(),
            bucket_ns: self.bucket_ns,
            series,
            inputs: self.inputs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_a_grid_buckets_are_whole_multiples_starting_at_a_grid_edge() {
        // Source buckets of 4 ns with edges at 1 + 4k; a window from 10 to 1,000 at 100 points.
        let d = Decimator::on_grid(10, 1_000, 100, 1, 1, 4);
        assert_eq!(d.from_ns(), 9, "the grid edge at or before 10");
        assert_eq!(
            d.bucket_ns(),
            12,
            "the smallest multiple of 4 giving <= 100 buckets"
        );
        let mut d = d;
        // Each source envelope starts on the grid and must land whole in one bucket.
        for k in 0..248 {
            d.add_envelope(0, 9 + 4 * k, k as f64, k as f64, None);
        }
        let out = d.finish();
        assert!(out.t_ns.len() <= 100);
        assert_eq!(out.series[0].min[0], Some(0.0));
        assert_eq!(
            out.series[0].max[0],
            Some(2.0),
            "three source buckets per bucket"
        );
        assert_eq!(
            Decimator::on_grid(0, 10, 1_000, 1, 0, 4).bucket_ns(),
            4,
            "never finer than the grid"
        );
    }

    #[test]
    fn a_single_sample_spike_at_a_million_samples_shows_in_its_bucket() {
        let n = 1_000_000i64;
        let mut d = Decimator::new(0, n * 1_000, 2_000, 1);
        let ts: Vec<i64> = (0..n).map(|i| i * 1_000).collect();
        let mut values: Vec<f64> = (0..n).map(|i| (i as f64 * 0.01).sin()).collect();
        values[777_777] = 50.0;
        values[123_456] = -50.0;
        d.add_columns(&ts, &[(0, &values)]);
        let out = d.finish();
        assert!(out.t_ns.len() <= 2_000);
        let maxes: Vec<f64> = out.series[0].max.iter().flatten().copied().collect();
        let mins: Vec<f64> = out.series[0].min.iter().flatten().copied().collect();
        assert_eq!(maxes.iter().copied().fold(f64::MIN, f64::max), 50.0);
        assert_eq!(mins.iter().copied().fold(f64::MAX, f64::min), -50.0);
        let spike_bucket = (777_777 * 1_000 / out.bucket_ns) as usize;
        assert_eq!(out.series[0].max[spike_bucket], Some(50.0));
        assert_eq!(out.inputs, n as u64);
    }

    #[test]
    fn last_is_the_latest_sample_and_empty_buckets_are_left_out() {
        let mut d = Decimator::new(0, 100, 10, 2);
        d.add(0, 5, 1.0);
        d.add(0, 7, 3.0);
        d.add(0, 6, -1.0);
        d.add(1, 55, 2.0);
        let out = d.finish();
        assert_eq!(out.t_ns, vec![0, 50]);
        assert_eq!(out.series[0].min, vec![Some(-1.0), None]);
        assert_eq!(out.series[0].max, vec![Some(3.0), None]);
        assert_eq!(out.series[0].last, vec![Some(3.0), None]);
        assert_eq!(out.series[1].last, vec![None, Some(2.0)]);
    }

    #[test]
    fn envelopes_merge_and_samples_outside_the_window_or_nan_are_ignored() {
        let mut d = Decimator::new(1_000, 2_000, 1, 1);
        d.add_envelope(0, 1_100, -2.0, 4.0, None);
        d.add_envelope(0, 1_200, -1.0, 8.0, Some(3.0));
        d.add(0, 999, 100.0);
        d.add(0, 2_000, 100.0);
        d.add(0, 1_500, f64::NAN);
        let out = d.finish();
        assert_eq!(out.series[0].min, vec![Some(-2.0)]);
        assert_eq!(out.series[0].max, vec![Some(8.0)]);
        assert_eq!(out.series[0].last, vec![Some(3.0)]);
    }

    #[test]
    fn never_more_buckets_than_points() {
        for (span, points) in [(1, 2_000), (1_999, 2_000), (2_001, 2_000), (10_000_000, 7)] {
            let d = Decimator::new(0, span, points, 1);
            assert!(d.buckets <= points, "{span} / {points}: {}", d.buckets);
        }
    }
}
