//! One bucket's envelope: the smallest, largest and last value of the samples that fell into
//! it. The live view's folded stores ([`History`](super::history::History) for the whole run,
//! [`Recent`](super::recent::Recent) for the last minutes) are arrays of these.

use std::ops::Range;

use super::bucket_runs::{last_valid, min_max};

/// Min, max and last of one channel in one bucket (empty: no sample that was not NaN).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Envelope {
    /// Smallest value (`+∞` while empty).
    pub min: f64,
    /// Largest value (`-∞` while empty).
    pub max: f64,
    /// The latest value folded in (NaN while empty).
    pub last: f64,
}

impl Envelope {
    /// No sample yet.
    pub const EMPTY: Envelope = Envelope {
        min: f64::INFINITY,
        max: f64::NEG_INFINITY,
        last: f64::NAN,
    };

    /// Whether no sample was folded in.
    pub fn is_empty(&self) -> bool {
        // Empty keeps min > max; NaN never gets in.
        self.min > self.max
    }

    /// This bucket followed by `later`: both extremes, and `later`'s last value when it has
    /// one.
    pub fn merge(self, later: Envelope) -> Envelope {
        if later.is_empty() {
            return self;
        }
        if self.is_empty() {
            return later;
        }
        Envelope {
            min: self.min.min(later.min),
            max: self.max.max(later.max),
            last: later.last,
        }
    }

    /// Folds in `values[run]` (NaN ignored), taken to be later than what it holds.
    pub fn fold(&mut self, values: &[f64], run: Range<usize>) {
        let Some(k) = last_valid(values, run.clone()) else {
            return;
        };
        let (lo, hi) = min_max(&values[run]);
        self.min = self.min.min(lo);
        self.max = self.max.max(hi);
        self.last = values[k];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_keeps_both_extremes_and_the_last_valid_value() {
        let mut e = Envelope::EMPTY;
        assert!(e.is_empty());
        e.fold(&[f64::NAN, f64::NAN], 0..2);
        assert!(e.is_empty(), "NaN alone leaves it empty");
        e.fold(&[3.0, -1.0, 2.0, f64::NAN], 0..4);
        assert_eq!((e.min, e.max, e.last), (-1.0, 3.0, 2.0));
        e.fold(&[9.0, 0.5], 1..2);
        assert_eq!((e.min, e.max, e.last), (-1.0, 3.0, 0.5));
    }

    #[test]
    fn merging_with_an_empty_bucket_on_either_side_changes_nothing() {
        let mut a = Envelope::EMPTY;
        a.fold(&[1.0, 4.0], 0..2);
        assert_eq!(a.merge(Envelope::EMPTY), a);
        assert_eq!(Envelope::EMPTY.merge(a), a);
        let mut b = Envelope::EMPTY;
        b.fold(&[-2.0, 0.0], 0..2);
        let m = a.merge(b);
        assert_eq!((m.min, m.max, m.last), (-2.0, 4.0, 0.0));
    }
}
