//! Reusable column buffers for the hot path, handed to Arrow without a copy and returned to
//! their pool when the last reader of the batch drops it.
//!
//! A stage takes a [`PooledVec`] from its [`BufferPool`], fills it, and turns it into an Arrow
//! [`ScalarBuffer`] with [`PooledVec::into_scalar_buffer`]. The bytes are not copied: the Arrow
//! buffer keeps the pooled vector alive, and when every batch that shares the column has been
//! dropped (by every sink and stage downstream), the vector goes back to the pool with its
//! capacity. In steady state a stage therefore allocates no column memory at all.
//!
//! ```
//! use ensemble_actors::pool::BufferPool;
//!
//! let pool = BufferPool::<f64>::new(2);
//! let mut v = pool.take();
//! v.extend_from_slice(&[1.0, 2.0, 3.0]);
//! let column = v.into_scalar_buffer();
//! assert_eq!(&column[..], &[1.0, 2.0, 3.0]);
//! drop(column);
//! assert_eq!(pool.available(), 2, "the vector came back");
//! ```
//!
//! # When not to use it
//!
//! For buffers that never leave a stage (FFT scratch, filter history), a plain `Vec` owned by the
//! stage and cleared per batch is simpler and just as cheap; the pool pays off for buffers that
//! travel downstream inside a batch and come back later.

use std::ops::{Deref, DerefMut};
use std::panic::AssertUnwindSafe;
use std::ptr::NonNull;
use std::sync::Arc;

use arrow_buffer::{ArrowNativeType, Buffer, ScalarBuffer};
use object_pool::{Pool, ReusableOwned};

/// A pool of `Vec<T>` that keep their capacity between uses. Cheap to clone (shared).
pub struct BufferPool<T> {
    pool: Arc<Pool<Vec<T>>>,
}

impl<T> Clone for BufferPool<T> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
        }
    }
}

impl<T: ArrowNativeType> BufferPool<T> {
    /// A pool holding `prefill` empty vectors to start with; it grows when more are in use.
    pub fn new(prefill: usize) -> Self {
        Self {
            pool: Arc::new(Pool::new(prefill, Vec::new)),
        }
    }

    /// An empty vector from the pool (a new one when the pool is empty).
    pub fn take(&self) -> PooledVec<T> {
        let mut v = self.pool.pull_owned(Vec::new);
        v.clear();
        PooledVec { inner: v }
    }

    /// Vectors waiting in the pool now.
    pub fn available(&self) -> usize {
        self.pool.len()
    }
}

/// A vector on loan from a [`BufferPool`]; it returns there when dropped.
pub struct PooledVec<T> {
    inner: ReusableOwned<Vec<T>>,
}

impl<T> Deref for PooledVec<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.inner
    }
}

impl<T> DerefMut for PooledVec<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.inner
    }
}

/// Keeps a pooled vector alive for as long as an Arrow buffer points into it.
///
/// `AssertUnwindSafe`: the owner is only ever dropped (returning the vector to the pool), never
/// observed, so a panic cannot expose a broken state through it.
struct PooledOwner<T>(#[allow(dead_code)] AssertUnwindSafe<ReusableOwned<Vec<T>>>);

impl<T: ArrowNativeType> PooledVec<T> {
    /// Hands the vector to Arrow without copying; it returns to the pool when the last array
    /// sharing it is dropped.
    pub fn into_scalar_buffer(self) -> ScalarBuffer<T> {
        let len = self.inner.len();
        let bytes = len * std::mem::size_of::<T>();
        // `as_mut_ptr` of a Vec is never null (dangling but aligned when empty).
        let ptr = NonNull::new(self.inner.as_ptr() as *mut u8).unwrap_or(NonNull::dangling());
        let owner: Arc<dyn arrow_buffer::alloc::Allocation> =
            Arc::new(PooledOwner(AssertUnwindSafe(self.inner)));
        // SAFETY: `ptr` points to `len` initialised, properly aligned `T`s inside the vector that
        // `owner` keeps alive and never touches again until it is dropped; moving a `Vec` (into
        // the owner) does not move its heap allocation.
        let buffer = unsafe { Buffer::from_custom_allocation(ptr, bytes, owner) };
        ScalarBuffer::new(buffer, 0, len)
    }
}
