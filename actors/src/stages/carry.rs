//! [`Carry`]: the samples of a stream a stage has received but not consumed yet, held as the
//! input batches' own Arrow buffers (shared, not copied).
//!
//! A stage whose windows span batch boundaries (the FFT) pushes each batch's column here, reads
//! windows by logical index across the held buffers, and consumes what no later window needs.
//! Holding a buffer is an `Arc` clone; the upstream column is released once consumed.

use std::collections::VecDeque;

use arrow_buffer::{ArrowNativeType, ScalarBuffer};

/// The unconsumed tail of a stream, as a queue of shared buffers.
///
/// Index 0 is the oldest held sample. In steady state the queue's storage is reused, so pushing
/// and consuming allocate nothing.
#[derive(Debug)]
pub(crate) struct Carry<T: ArrowNativeType> {
    /// The held buffers, oldest first; none is empty.
    segments: VecDeque<ScalarBuffer<T>>,
    /// Samples of the first segment already consumed.
    offset: usize,
    /// Samples held (not counting `offset`).
    len: usize,
}

impl<T: ArrowNativeType> Carry<T> {
    /// An empty carry.
    pub(crate) fn new() -> Self {
        Self {
            segments: VecDeque::new(),
            offset: 0,
            len: 0,
        }
    }

    /// Samples held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Appends a batch's values (an `Arc` clone of the buffer, not a copy).
    pub(crate) fn push(&mut self, values: ScalarBuffer<T>) {
        if !values.is_empty() {
            self.len += values.len();
            self.segments.push_back(values);
        }
    }

    /// Calls `f(at, slice)` for consecutive slices that together hold samples
    /// `start..start + len`; `at` is the position of `slice` within that range. A range inside
    /// one held buffer comes as a single slice of it.
    ///
    /// # Panics
    ///
    /// If `start + len` is more than the samples held.
    pub(crate) fn for_each_slice<'a>(
        &'a self,
        start: usize,
        len: usize,
        mut f: impl FnMut(usize, &'a [T]),
    ) {
        assert!(
            start + len <= self.len,
            "range {start}..{} beyond the {} samples held",
            start + len,
            self.len
        );
        let mut skip = start + self.offset;
        let mut at = 0;
        for segment in &self.segments {
            if at == len {
                break;
            }
            if skip >= segment.len() {
                skip -= segment.len();
                continue;
            }
            let take = (segment.len() - skip).min(len - at);
            f(at, &segment[skip..skip + take]);
            at += take;
            skip = 0;
        }
    }

    /// Samples `start..start + len` as one slice, when they lie in one held buffer.
    pub(crate) fn contiguous(&self, start: usize, len: usize) -> Option<&[T]> {
        let mut found = None;
        let mut pieces = 0;
        if start + len <= self.len {
            self.for_each_slice(start, len, |_, s| {
                pieces += 1;
                found = Some(s);
            });
        }
        found.filter(|s| pieces == 1 && s.len() == len)
    }

    /// Sample `index`.
    ///
    /// # Panics
    ///
    /// If `index` is not below [`len`](Self::len).
    pub(crate) fn get(&self, index: usize) -> T {
        let mut value = None;
        self.for_each_slice(index, 1, |_, s| value = Some(s[0]));
        // for_each_slice checked the index and calls back exactly once for one sample.
        value.unwrap_or_else(|| unreachable!("one sample in range"))
    }

    /// Drops the oldest `n` samples (all when `n` exceeds them); emptied buffers are released.
    pub(crate) fn consume(&mut self, n: usize) {
        let mut n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let Some(first) = self.segments.front() else {
                break;
            };
            let left = first.len() - self.offset;
            if n < left {
                self.offset += n;
                return;
            }
            n -= left;
            self.offset = 0;
            self.segments.pop_front();
        }
        if self.len == 0 {
            self.segments.clear();
            self.offset = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The samples `start..start + len` as one vector, and the slice lengths they came in.
    fn read(c: &Carry<i64>, start: usize, len: usize) -> (Vec<i64>, Vec<usize>) {
        let (mut all, mut lens) = (Vec::new(), Vec::new());
        c.for_each_slice(start, len, |at, s| {
            assert_eq!(at, all.len(), "slices come in order, without gaps");
            all.extend_from_slice(s);
            lens.push(s.len());
        });
        (all, lens)
    }

    #[test]
    fn windows_read_across_buffers_and_consume_releases_them() {
        let mut c = Carry::new();
        c.push(ScalarBuffer::from((0..5).collect::<Vec<i64>>()));
        c.push(ScalarBuffer::from(Vec::<i64>::new()));
        c.push(ScalarBuffer::from((5..8).collect::<Vec<i64>>()));
        c.push(ScalarBuffer::from((8..20).collect::<Vec<i64>>()));
        assert_eq!(c.len(), 20);
        assert_eq!(read(&c, 0, 20), ((0..20).collect(), vec![5, 3, 12]));
        assert_eq!(
            read(&c, 6, 1),
            (vec![6], vec![1]),
            "inside one buffer: one slice"
        );
        assert_eq!(read(&c, 3, 7), ((3..10).collect(), vec![2, 3, 2]));
        assert_eq!(read(&c, 20, 0), (vec![], vec![]));
        assert_eq!(c.contiguous(9, 4), Some(&[9i64, 10, 11, 12][..]));
        assert_eq!(c.contiguous(4, 2), None, "spans two buffers");
        assert_eq!(c.contiguous(18, 3), None, "beyond the end");
        c.consume(6);
        assert_eq!((c.len(), c.segments.len(), c.get(0)), (14, 2, 6));
        assert_eq!(read(&c, 1, 4), ((7..11).collect(), vec![1, 3]));
        c.consume(2);
        assert_eq!((c.segments.len(), c.get(0), c.get(11)), (1, 8, 19));
        c.push(ScalarBuffer::from(vec![20i64]));
        c.consume(100);
        assert_eq!((c.len(), c.segments.len()), (0, 0));
        c.push(ScalarBuffer::from(vec![21i64, 22]));
        assert_eq!(read(&c, 0, 2), (vec![21, 22], vec![2]));
    }

    #[test]
    fn pushing_shares_the_buffer() {
        let buffer = ScalarBuffer::from(vec![1.0f64, 2.0, 3.0]);
        let mut c = Carry::new();
        c.push(buffer.clone());
        c.for_each_slice(0, 3, |_, s| assert_eq!(s.as_ptr(), buffer.as_ptr()));
    }

    #[test]
    #[should_panic(expected = "beyond the 3 samples held")]
    fn reading_past_the_end_panics() {
        let mut c = Carry::new();
        c.push(ScalarBuffer::from(vec![1i64, 2, 3]));
        c.get(3);
    }
}
