//! [`Cursor`]: where a running plan is — the current point's setpoints, its repetition — and
//! how it moves on (by index, or by the adaptive step rule). Plain data, no clock.

use super::steps::{Adaptive, PointKind, PointPlan, Repeat};

/// The position of a running plan. The current point stays current until
/// [`advance`](Self::advance), so a point that was abandoned (a pause with `now`, a
/// suspension) is taken again simply by filling it again.
#[derive(Debug, Clone)]
pub struct Cursor {
    /// Index of the current point within its pass.
    k: u64,
    /// The current repetition (0-based).
    pass: u64,
    per_pass: Option<u64>,
    passes: Option<u64>,
    /// Added to every axis value (a `rel_scan`'s origin; zeros otherwise).
    origin: Vec<f64>,
    adaptive: Option<AdaptiveState>,
}

#[derive(Debug, Clone)]
struct AdaptiveState {
    rule: Adaptive,
    start: f64,
    stop: f64,
    next: f64,
    step: f64,
    past: Option<f64>,
}

impl AdaptiveState {
    fn new(rule: &Adaptive, start: f64, stop: f64) -> Self {
        Self {
            rule: rule.clone(),
            start,
            stop,
            next: start,
            step: rule.max_step,
            past: None,
        }
    }

    fn direction(&self) -> f64 {
        if self.stop >= self.start { 1.0 } else { -1.0 }
    }

    fn within(&self) -> bool {
        // A hair of tolerance so that a stop reached by summing steps is still taken.
        let eps = self.rule.min_step * 1e-9;
        self.next * self.direction() <= self.stop * self.direction() + eps
    }

    /// Bluesky's `adaptive_scan` step rule, after a reading of `current` at `next`.
    fn advance(&mut self, current: Option<f64>) {
        let dir = self.direction();
        let (Some(current), Some(past)) = (current, self.past) else {
            self.past = current.or(self.past);
            self.next += self.step * dir;
            return;
        };
        let slope = (current - past).abs() / self.step;
        let new_step = if slope > 0.0 && slope.is_finite() {
            (self.rule.target_delta / slope).clamp(self.rule.min_step, self.rule.max_step)
        } else {
            (self.step * 1.1).min(self.rule.max_step)
        };
        if self.rule.backstep && new_step < self.step * self.rule.threshold {
            self.next -= self.step * dir;
        } else {
            self.past = Some(current);
        }
        self.step = new_step;
        self.next += self.step * dir;
    }
}

impl Cursor {
    /// A cursor at the first point of `plan`; `origin` is added to every axis value (one per
    /// axis; a `rel_scan` passes the values the setpoints had when it started).
    pub fn new(plan: &PointPlan, origin: Vec<f64>) -> Self {
        let adaptive = match (&plan.adaptive, plan.axes.first()) {
            (Some(rule), Some(axis)) if plan.kind == PointKind::AdaptiveScan => {
                let start = axis.points.first().copied().unwrap_or(0.0);
                let stop = axis.points.last().copied().unwrap_or(start);
                Some(AdaptiveState::new(rule, start, stop))
            }
            _ => None,
        };
        Self {
            k: 0,
            pass: 0,
            per_pass: plan.points_per_pass(),
            passes: match plan.repeat {
                None => Some(1),
                Some(Repeat::Times(n)) => Some(n),
                Some(Repeat::UntilStopped) => None,
            },
            origin,
            adaptive,
        }
    }

    /// The current repetition, from 0.
    pub fn repetition(&self) -> u64 {
        self.pass
    }

    /// Fills `out` (one slot per axis) with the current point's setpoints; `false` once the
    /// plan has no more points.
    pub fn fill(&mut self, plan: &PointPlan, out: &mut [f64]) -> bool {
        loop {
            if self.passes.is_some_and(|n| self.pass >= n) {
                return false;
            }
            let in_pass = match &self.adaptive {
                Some(a) => a.within(),
                None => self.per_pass.is_some_and(|n| self.k < n),
            };
            if in_pass {
                break;
            }
            // The pass is over: start the next repetition, if there is one.
            self.pass += 1;
            self.k = 0;
            if let Some(a) = &mut self.adaptive {
                *a = AdaptiveState::new(&a.rule, a.start, a.stop);
            }
            if self.per_pass == Some(0) {
                return false;
            }
        }
        match &self.adaptive {
            Some(a) => {
                if let Some(slot) = out.first_mut() {
                    *slot = a.next;
                }
            }
            None => plan.fill_point(self.k, out),
        }
        for (slot, origin) in out.iter_mut().zip(&self.origin) {
            *slot += origin;
        }
        true
    }

    /// Moves past the current point, which was taken; `target` is the adaptive scan's target
    /// reading there (ignored by other plans).
    pub fn advance(&mut self, target: Option<f64>) {
        self.k += 1;
        if let Some(a) = &mut self.adaptive {
            a.advance(target);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::plan::Axis;

    fn plan(kind: PointKind, points: Vec<f64>) -> PointPlan {
        PointPlan {
            kind,
            axes: vec![Axis::new("m", "x", points)],
            snake: false,
            num: 1,
            detectors: vec!["d".into()],
            readings_per_point: 1,
            settle: Duration::ZERO,
            delay: Duration::ZERO,
            adaptive: None,
            repeat: None,
            suspenders: Vec::new(),
        }
    }

    fn walk(p: &PointPlan, origin: Vec<f64>, f: impl Fn(f64) -> f64) -> Vec<(u64, f64)> {
        let mut c = Cursor::new(p, origin);
        let mut out = [0.0];
        let mut seen = Vec::new();
        while c.fill(p, &mut out) && seen.len() < 10_000 {
            seen.push((c.repetition(), out[0]));
            c.advance(Some(f(out[0])));
        }
        seen
    }

    #[test]
    fn a_repeated_rel_scan_visits_its_points_from_the_origin_each_time() {
        let mut p = plan(PointKind::RelScan, vec![-1.0, 0.0, 1.0]);
        p.repeat = Some(Repeat::Times(2));
        let seen = walk(&p, vec![10.0], |x| x);
        assert_eq!(
            seen,
            vec![
                (0, 9.0),
                (0, 10.0),
                (0, 11.0),
                (1, 9.0),
                (1, 10.0),
                (1, 11.0)
            ]
        );
    }

    #[test]
    fn an_adaptive_scan_takes_small_steps_where_the_signal_changes_fast() {
        let mut p = plan(PointKind::AdaptiveScan, vec![-10.0, 10.0]);
        p.adaptive = Some(Adaptive {
            target: "d.v".into(),
            min_step: 0.05,
            max_step: 1.0,
            target_delta: 0.05,
            backstep: true,
            threshold: 0.8,
        });
        let peak = |x: f64| (-x * x / 2.0).exp();
        let seen = walk(&p, vec![0.0], peak);
        let near = seen.iter().filter(|(_, x)| x.abs() < 2.0).count();
        let tails = seen.iter().filter(|(_, x)| x.abs() > 6.0).count();
        assert!(near > 3 * tails, "near {near}, tails {tails}: {seen:?}");
        assert!(seen.iter().all(|(_, x)| (-10.0..=10.0 + 1e-9).contains(x)));
        assert!(
            seen.last().is_some_and(|(_, x)| *x > 9.0),
            "reaches the end"
        );
    }

    #[test]
    fn repeat_until_stopped_never_runs_out() {
        let mut p = plan(PointKind::Scan, vec![1.0, 2.0]);
        p.repeat = Some(Repeat::UntilStopped);
        assert_eq!(walk(&p, vec![0.0], |x| x).len(), 10_000);
    }
}
