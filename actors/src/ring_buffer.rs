//! [`RealTimeBuffer`]: a fixed-capacity ring of the most recent samples.

/// The newest `capacity` values of a stream; older ones are overwritten and counted.
///
/// Stages and instruments use it where they need history (a trigger's pre-roll, a live view's
/// last seconds). It allocates once, in [`RealTimeBuffer::new`]; `push` and `push_slice` never
/// allocate.
///
/// ```
/// use ensemble_actors::ring_buffer::RealTimeBuffer;
///
/// let mut ring = RealTimeBuffer::new(3);
/// ring.push_slice(&[1.0, 2.0, 3.0, 4.0]);
/// assert_eq!(ring.get_latest(2), vec![4.0, 3.0]);
/// assert_eq!(ring.len(), 3);
/// assert_eq!(ring.overflow_count(), 1, "1.0 was overwritten");
/// ```
///
/// # Limits
///
/// Not thread-safe by itself: one owner pushes and reads. Share it behind a lock, or send
/// copies of [`get_latest`](Self::get_latest), if other actors need to look.
#[derive(Debug, Clone)]
pub struct RealTimeBuffer<T> {
    /// The storage; `len() == capacity` once full, never reallocated.
    data: Vec<T>,
    /// Fixed capacity (at least 1).
    capacity: usize,
    /// Index where the next value goes.
    head: usize,
    /// Values overwritten because the buffer was full.
    overflow: u64,
}

impl<T: Copy> RealTimeBuffer<T> {
    /// An empty buffer holding at most `capacity` values (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            data: Vec::with_capacity(capacity),
            capacity,
            head: 0,
            overflow: 0,
        }
    }

    /// Appends one value, overwriting the oldest when full.
    #[inline]
    pub fn push(&mut self, value: T) {
        if self.data.len() < self.capacity {
            self.data.push(value);
        } else {
            self.data[self.head] = value;
            self.overflow += 1;
        }
        self.head += 1;
        if self.head == self.capacity {
            self.head = 0;
        }
    }

    /// Appends values in order, as if pushed one by one, with at most two block copies.
    pub fn push_slice(&mut self, values: &[T]) {
        // Fill the part not yet allocated to `len`.
        let room = self.capacity - self.data.len();
        let (fill, rest) = values.split_at(room.min(values.len()));
        self.data.extend_from_slice(fill);
        self.head = (self.head + fill.len()) % self.capacity;
        if rest.is_empty() {
            return;
        }
        self.overflow += rest.len() as u64;
        // Only the last `capacity` values can survive.
        let skip = rest.len().saturating_sub(self.capacity);
        let rest = &rest[skip..];
        self.head = (self.head + skip) % self.capacity;
        let first = (self.capacity - self.head).min(rest.len());
        self.data[self.head..self.head + first].copy_from_slice(&rest[..first]);
        let second = rest.len() - first;
        self.data[..second].copy_from_slice(&rest[first..]);
        self.head = (self.head + rest.len()) % self.capacity;
    }

    /// The newest `n` values (fewer if fewer are held), newest first, in a new vector.
    ///
    /// For a hot path, use [`get_latest_into`](Self::get_latest_into) with a reused vector.
    pub fn get_latest(&self, n: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(n.min(self.len()));
        self.get_latest_into(n, &mut out);
        out
    }

    /// Replaces `out`'s contents with the newest `n` values, newest first.
    pub fn get_latest_into(&self, n: usize, out: &mut Vec<T>) {
        out.clear();
        let n = n.min(self.data.len());
        // The newest values sit just before `head`, wrapping around to the end.
        let before = &self.data[..self.head];
        let take_before = n.min(before.len());
        out.extend(before[before.len() - take_before..].iter().rev());
        let after = &self.data[self.head..];
        let take_after = n - take_before;
        out.extend(after[after.len() - take_after..].iter().rev());
    }

    /// Values held now (at most the capacity).
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether nothing was pushed yet (or since [`clear`](Self::clear)).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The most values the buffer holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many values were overwritten because the buffer was full.
    pub fn overflow_count(&self) -> u64 {
        self.overflow
    }

    /// Forgets every value (keeps the storage and the overflow count).
    pub fn clear(&mut self) {
        self.data.clear();
        self.head = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_latest_is_newest_first_and_wraps() {
        let mut r = RealTimeBuffer::new(4);
        assert!(r.is_empty());
        for v in 0..10u32 {
            r.push(v);
        }
        assert_eq!(r.get_latest(10), vec![9, 8, 7, 6]);
        assert_eq!(r.get_latest(2), vec![9, 8]);
        assert_eq!(r.len(), 4);
        assert_eq!(r.overflow_count(), 6);
    }

    #[test]
    fn push_slice_equals_pushing_one_by_one() {
        for cap in [1, 3, 7] {
            for chunk in [1, 2, 5, 9, 20] {
                let mut a = RealTimeBuffer::new(cap);
                let mut b = RealTimeBuffer::new(cap);
                let values: Vec<u32> = (0..53).collect();
                for c in values.chunks(chunk) {
                    a.push_slice(c);
                    for &v in c {
                        b.push(v);
                    }
                    assert_eq!(
                        a.get_latest(cap),
                        b.get_latest(cap),
                        "cap {cap} chunk {chunk}"
                    );
                    assert_eq!(a.overflow_count(), b.overflow_count());
                    assert_eq!(a.len(), b.len());
                }
            }
        }
    }
}
