//! Point plans as plain data: which setpoints each point visits, in order. No actors, no clock.

use std::time::Duration;

use super::condition::Suspender;

/// A plan that visits points, one row of the `primary` stream per point: `count`, `scan`,
/// `grid`, `list_scan`, `rel_scan` or `adaptive_scan`, optionally repeated.
///
/// ```
/// use std::time::Duration;
/// use ensemble::plan::{Axis, PointKind, PointPlan};
///
/// let plan = PointPlan {
///     kind: PointKind::Grid,
///     axes: vec![
///         Axis::new("psu", "voltage", vec![0.0, 1.0]),
///         Axis::new("sig", "offset", vec![10.0, 20.0, 30.0]),
///     ],
///     snake: true,
///     num: 1,
///     detectors: vec!["dmm".into()],
///     readings_per_point: 1,
///     settle: Duration::ZERO,
///     delay: Duration::ZERO,
///     adaptive: None,
///     repeat: None,
///     suspenders: Vec::new(),
/// };
/// assert_eq!(plan.total_points(), Some(6));
/// // The inner axis turns around instead of jumping back.
/// assert_eq!(plan.point(2), vec![0.0, 30.0]);
/// assert_eq!(plan.point(3), vec![1.0, 30.0]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PointPlan {
    /// Which plan type it was written as.
    pub kind: PointKind,
    /// The setpoints, outermost (slowest) first; empty for `count`.
    pub axes: Vec<Axis>,
    /// `grid`: inner axes reverse direction on every other pass of the axis around them.
    pub snake: bool,
    /// `count`: the number of points (1 for `scan` and `grid`).
    pub num: u64,
    /// Instruments read at every point, in the order their columns appear.
    pub detectors: Vec<String>,
    /// Readings taken at each point and averaged into its row.
    pub readings_per_point: u32,
    /// Wait after the setpoints of a point are reached, before reading.
    pub settle: Duration,
    /// Wait before every point but the first.
    pub delay: Duration,
    /// `adaptive_scan`: how the step is chosen (its one axis holds `[start, stop]`).
    pub adaptive: Option<Adaptive>,
    /// `repeat`: the whole plan again, each repetition numbered in `primary`'s `repeat` column.
    pub repeat: Option<Repeat>,
    /// `[[plan.suspend]]`: conditions that hold the plan while they are true.
    pub suspenders: Vec<Suspender>,
}

/// How often a plan is repeated (`repeat = N` or `repeat = "forever"`, until stopped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeat {
    /// This many times in all.
    Times(u64),
    /// Until the run is stopped.
    UntilStopped,
}

/// The step rule of an `adaptive_scan`, as Bluesky's `adaptive_scan`: after each point the
/// next step is `target_delta / |Δreading / step|`, kept within `min_step..=max_step`; with
/// `backstep`, a step that was too large (the new step is below `threshold` times it) is
/// taken back and tried again smaller. Every reading is written.
#[derive(Debug, Clone, PartialEq)]
pub struct Adaptive {
    /// The detector column steering the step, `INSTRUMENT.CHANNEL`.
    pub target: String,
    /// Smallest step.
    pub min_step: f64,
    /// Largest step (also the first).
    pub max_step: f64,
    /// The change of the target wanted between points.
    pub target_delta: f64,
    /// Take a too-large step back and retry smaller.
    pub backstep: bool,
    /// Below this fraction of the last step, a new step counts as "too large" (default 0.8).
    pub threshold: f64,
}

/// The plan type a [`PointPlan`] was written as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointKind {
    /// `type = "count"`: read `num` times, no setpoints.
    Count,
    /// `type = "scan"`: one setpoint.
    Scan,
    /// `type = "grid"`: several setpoints, every combination.
    Grid,
    /// `type = "list_scan"`: explicit points; several axes move together.
    ListScan,
    /// `type = "rel_scan"`: a scan relative to the setpoint's value when the plan starts.
    RelScan,
    /// `type = "adaptive_scan"`: the step follows the detector's change.
    AdaptiveScan,
}

impl PointKind {
    /// The `type` it is written as.
    pub fn name(self) -> &'static str {
        match self {
            PointKind::Count => "count",
            PointKind::Scan => "scan",
            PointKind::Grid => "grid",
            PointKind::ListScan => "list_scan",
            PointKind::RelScan => "rel_scan",
            PointKind::AdaptiveScan => "adaptive_scan",
        }
    }
}

/// One setpoint of a scan or grid: an instrument's settable parameter and the values it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    /// The instrument.
    pub instrument: String,
    /// Its settable parameter (`[set.NAME]` of an SCPI instrument, or a sim's `offset`,
    /// `amplitude`, `frequency_hz`).
    pub param: String,
    /// The values, in order.
    pub points: Vec<f64>,
}

impl Axis {
    /// An axis over `points`.
    pub fn new(instrument: &str, param: &str, points: Vec<f64>) -> Self {
        Self {
            instrument: instrument.to_string(),
            param: param.to_string(),
            points,
        }
    }

    /// The column name of the value reached: `INSTRUMENT.PARAM`.
    pub fn column(&self) -> String {
        format!("{}.{}", self.instrument, self.param)
    }
}

/// `steps` evenly spaced values from `start` to `stop`, both included (one step: `start`).
pub fn linspace(start: f64, stop: f64, steps: u64) -> Vec<f64> {
    match steps {
        0 => Vec::new(),
        1 => vec![start],
        n => (0..n)
            .map(|i| {
                if i == n - 1 {
                    stop
                } else {
                    start + (stop - start) * i as f64 / (n - 1) as f64
                }
            })
            .collect(),
    }
}

impl PointPlan {
    /// Points of one pass: the product of the axis lengths times `num` (a list scan: the
    /// length of its lists); `None` for an adaptive scan, whose points are chosen as it goes.
    pub fn points_per_pass(&self) -> Option<u64> {
        match self.kind {
            PointKind::AdaptiveScan => None,
            PointKind::ListScan => Some(self.axes.first().map_or(0, |a| a.points.len() as u64)),
            _ => Some(
                self.axes
                    .iter()
                    .map(|a| a.points.len() as u64)
                    .product::<u64>()
                    * self.num,
            ),
        }
    }

    /// Rows the plan writes, if known up front: [`points_per_pass`](Self::points_per_pass)
    /// times the repetitions.
    pub fn total_points(&self) -> Option<u64> {
        let pass = self.points_per_pass()?;
        match self.repeat {
            None => Some(pass),
            Some(Repeat::Times(n)) => pass.checked_mul(n),
            Some(Repeat::UntilStopped) => None,
        }
    }

    /// Setpoint values of point `k` of a pass (`k < points_per_pass()`) into `out`, one per
    /// axis, without allocating. A list scan moves every axis to its `k`th value; an adaptive
    /// scan has no indexed points (see [`Cursor`](super::Cursor)).
    pub fn fill_point(&self, k: u64, out: &mut [f64]) {
        if self.kind == PointKind::ListScan {
            for (slot, axis) in out.iter_mut().zip(&self.axes) {
                *slot = axis.points[k as usize];
            }
            return;
        }
        for ((slot, axis), d) in out.iter_mut().zip(&self.axes).zip(self.axis_indices(k)) {
            *slot = axis.points[d];
        }
    }

    /// The axis indices of point `k`, outermost first, without allocating (see
    /// [`indices`](Self::indices)).
    fn axis_indices(&self, k: u64) -> impl Iterator<Item = usize> + '_ {
        let mut inner: u64 = self.axes.iter().map(|a| a.points.len() as u64).product();
        self.axes.iter().map(move |axis| {
            let n = axis.points.len() as u64;
            inner /= n.max(1);
            let passes = k / inner.max(1);
            let raw = passes % n.max(1);
            let d = if self.snake && (passes / n.max(1)) % 2 == 1 {
                n - 1 - raw
            } else {
                raw
            };
            d as usize
        })
    }

    /// Axis indices of point `k` (0-based, `k < total_points()`), outermost axis first.
    ///
    /// Without `snake` this counts like an odometer. With `snake`, each axis runs backwards on
    /// every other pass of the axes outside it (a reflected mixed-radix count), so consecutive
    /// points differ in exactly one axis by one step.
    pub fn indices(&self, k: u64) -> Vec<usize> {
        self.axis_indices(k).collect()
    }

    /// Setpoint values of point `k`, one per axis.
    pub fn point(&self, k: u64) -> Vec<f64> {
        self.indices(k)
            .iter()
            .zip(&self.axes)
            .map(|(&i, a)| a.points[i])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(sizes: &[usize], snake: bool) -> PointPlan {
        PointPlan {
            kind: PointKind::Grid,
            axes: sizes
                .iter()
                .enumerate()
                .map(|(i, &n)| Axis::new("i", &format!("p{i}"), (0..n).map(|v| v as f64).collect()))
                .collect(),
            snake,
            num: 1,
            detectors: Vec::new(),
            readings_per_point: 1,
            settle: Duration::ZERO,
            delay: Duration::ZERO,
            adaptive: None,
            repeat: None,
            suspenders: Vec::new(),
        }
    }

    #[test]
    fn linspace_includes_both_ends() {
        assert_eq!(linspace(0.0, 1.0, 5), vec![0.0, 0.25, 0.5, 0.75, 1.0]);
        assert_eq!(linspace(3.0, -3.0, 3), vec![3.0, 0.0, -3.0]);
        assert_eq!(linspace(2.0, 9.0, 1), vec![2.0]);
        assert_eq!(linspace(0.1, 0.7, 7).last(), Some(&0.7), "the end is exact");
    }

    #[test]
    fn a_grid_counts_like_an_odometer_outer_axis_slowest() {
        let p = grid(&[2, 3], false);
        let all: Vec<Vec<usize>> = (0..p.total_points().unwrap_or(0))
            .map(|k| p.indices(k))
            .collect();
        assert_eq!(
            all,
            vec![
                vec![0, 0],
                vec![0, 1],
                vec![0, 2],
                vec![1, 0],
                vec![1, 1],
                vec![1, 2]
            ]
        );
    }

    #[test]
    fn a_snake_grid_moves_one_step_in_one_axis_at_a_time() {
        let p = grid(&[2, 3], true);
        let all: Vec<Vec<usize>> = (0..p.total_points().unwrap_or(0))
            .map(|k| p.indices(k))
            .collect();
        assert_eq!(
            all,
            vec![
                vec![0, 0],
                vec![0, 1],
                vec![0, 2],
                vec![1, 2],
                vec![1, 1],
                vec![1, 0]
            ]
        );
        for sizes in [[3usize, 2, 4], [2, 2, 2], [4, 3, 3]] {
            let p = grid(&sizes, true);
            let pts: Vec<Vec<usize>> = (0..p.total_points().unwrap_or(0))
                .map(|k| p.indices(k))
                .collect();
            let mut unique = pts.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(
                Some(unique.len() as u64),
                p.total_points(),
                "every point once"
            );
            for w in pts.windows(2) {
                let steps: usize = w[0].iter().zip(&w[1]).map(|(a, b)| a.abs_diff(*b)).sum();
                assert_eq!(steps, 1, "{:?} → {:?}", w[0], w[1]);
            }
        }
    }

    #[test]
    fn count_has_num_points_and_no_setpoints() {
        let mut p = grid(&[], false);
        p.kind = PointKind::Count;
        p.num = 4;
        assert_eq!(p.total_points(), Some(4));
        assert!(p.point(3).is_empty());
        p.repeat = Some(Repeat::Times(3));
        assert_eq!(p.total_points(), Some(12));
        p.repeat = Some(Repeat::UntilStopped);
        assert_eq!(p.total_points(), None);
    }

    #[test]
    fn fill_point_matches_point_and_a_list_scan_moves_its_axes_together() {
        let p = grid(&[3, 2, 4], true);
        let mut out = [0.0; 3];
        for k in 0..p.total_points().unwrap_or(0) {
            p.fill_point(k, &mut out);
            assert_eq!(out.to_vec(), p.point(k));
        }
        let mut l = grid(&[3, 3], false);
        l.kind = PointKind::ListScan;
        assert_eq!(l.total_points(), Some(3));
        let mut out = [0.0; 2];
        l.fill_point(2, &mut out);
        assert_eq!(out, [2.0, 2.0]);
    }
}
