//! The set of `seq` values a worker wrote of one stream, as merged ranges.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `seq` ranges `[start, end)`, merged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqRanges(BTreeMap<u64, u64>);

impl SeqRanges {
    /// Whether every `seq` of `[start, end)` is in the set.
    pub fn covers(&self, start: u64, end: u64) -> bool {
        self.0
            .range(..=start)
            .next_back()
            .is_some_and(|(_, &e)| e >= end)
    }

    /// Whether any `seq` of `[start, end)` is in the set.
    pub fn overlaps(&self, start: u64, end: u64) -> bool {
        self.0
            .range(..end)
            .next_back()
            .is_some_and(|(_, &e)| e > start)
    }

    /// Adds `[start, end)`.
    pub fn insert(&mut self, mut start: u64, mut end: u64) {
        if start >= end {
            return;
        }
        // The ranges are disjoint, so their ends grow with their starts: the ones that touch
        // `[start, end)` are the last few that start at or before `end`.
        let touching: Vec<(u64, u64)> = self
            .0
            .range(..=end)
            .rev()
            .take_while(|(_, e)| **e >= start)
            .map(|(s, e)| (*s, *e))
            .collect();
        for (s, e) in touching {
            self.0.remove(&s);
            start = start.min(s);
            end = end.max(e);
        }
        self.0.insert(start, end);
    }

    /// The ranges, in order.
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        self.0.iter().map(|(s, e)| (*s, *e)).collect()
    }

    /// Rows covered.
    pub fn len(&self) -> u64 {
        self.0.iter().map(|(s, e)| e - s).sum()
    }

    /// Whether no row is covered.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_ranges_merge_and_answer() {
        let mut r = SeqRanges::default();
        r.insert(10, 20);
        r.insert(0, 10);
        r.insert(30, 40);
        assert_eq!(r.ranges(), [(0, 20), (30, 40)]);
        assert!(r.covers(5, 20));
        assert!(!r.covers(15, 25));
        assert!(r.overlaps(15, 25));
        assert!(!r.overlaps(20, 30));
        r.insert(20, 30);
        assert_eq!(r.ranges(), [(0, 40)]);
        assert_eq!(r.len(), 40);
    }
}
