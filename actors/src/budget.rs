//! The run's memory budget for batches in flight.
//!
//! Every batch an instrument emits reserves its Arrow memory here before it enters a link, and
//! gives it back when the last holder (link queue, mailbox, writer queue, writer) drops it. When
//! the budget is used up, a producer with a lossless consumer waits, which pushes back to the
//! instrument exactly like a full link does; a producer whose consumers are all best-effort
//! never waits (see [`Outputs::emit`](crate::outputs::Outputs::emit)).
//!
//! Derived streams (stages) reserve without waiting: their input already holds budget, and a
//! stage that waited for memory held by its own input queue would never get it.

use std::fmt;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::Notify;

/// Bytes of batches in flight, against a limit. Shared by every producer of a run.
pub struct MemoryBudget {
    limit: AtomicU64,
    used: AtomicU64,
    peak: AtomicU64,
    waits: AtomicU64,
    released: Notify,
}

impl fmt::Debug for MemoryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryBudget")
            .field("limit", &self.limit())
            .field("used", &self.used())
            .field("peak", &self.peak())
            .finish()
    }
}

impl MemoryBudget {
    /// A budget of `limit_bytes` (at least 1).
    pub fn new(limit_bytes: u64) -> Arc<Self> {
        Arc::new(Self {
            limit: AtomicU64::new(limit_bytes.max(1)),
            used: AtomicU64::new(0),
            peak: AtomicU64::new(0),
            waits: AtomicU64::new(0),
            released: Notify::new(),
        })
    }

    /// The limit in bytes now.
    pub fn limit(&self) -> u64 {
        self.limit.load(Ordering::Relaxed)
    }

    /// Moves the limit (at least 1 byte); waiting reservations are woken to look again.
    pub fn set_limit(&self, limit_bytes: u64) {
        let old = self.limit.swap(limit_bytes.max(1), Ordering::AcqRel);
        if limit_bytes > old {
            self.released.notify_waiters();
        }
    }

    /// Bytes reserved now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// Most bytes reserved at once so far.
    pub fn peak(&self) -> u64 {
        self.peak.load(Ordering::Relaxed)
    }

    /// How many reservations had to wait for memory.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// Reserves `bytes` if they fit. A budget with nothing reserved always admits one batch,
    /// however large, so that a batch bigger than the limit cannot block a stream forever.
    pub fn try_reserve(self: &Arc<Self>, bytes: u64) -> Option<Reservation> {
        let mut used = self.used.load(Ordering::Relaxed);
        loop {
            let next = used.saturating_add(bytes);
            if used > 0 && next > self.limit() {
                return None;
            }
            match self
                .used
                .compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => return Some(self.admitted(next, bytes)),
                Err(now) => used = now,
            }
        }
    }

    /// Reserves `bytes`, waiting until they fit.
    pub async fn reserve(self: &Arc<Self>, bytes: u64) -> Reservation {
        let mut waited = false;
        loop {
            // Registered before the check, so a release between the check and the wait is seen.
            let mut released = pin!(self.released.notified());
            released.as_mut().enable();
            if let Some(r) = self.try_reserve(bytes) {
                return r;
            }
            if !waited {
                waited = true;
                self.waits.fetch_add(1, Ordering::Relaxed);
            }
            released.await;
        }
    }

    /// Reserves `bytes` even beyond the limit (derived data; see the module docs).
    pub fn force_reserve(self: &Arc<Self>, bytes: u64) -> Reservation {
        let next = self
            .used
            .fetch_add(bytes, Ordering::AcqRel)
            .saturating_add(bytes);
        self.admitted(next, bytes)
    }

    fn admitted(self: &Arc<Self>, used_now: u64, bytes: u64) -> Reservation {
        self.peak.fetch_max(used_now, Ordering::Relaxed);
        Reservation {
            budget: self.clone(),
            bytes,
        }
    }
}

/// Bytes held against a [`MemoryBudget`]; given back on drop.
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl Reservation {
    /// The bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.used.fetch_sub(self.bytes, Ordering::AcqRel);
        self.budget.released.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn reservations_fit_under_the_limit_and_come_back_on_drop() {
        let budget = MemoryBudget::new(100);
        let a = budget.try_reserve(60).expect("fits");
        assert!(budget.try_reserve(50).is_none(), "60 + 50 > 100");
        let b = budget.try_reserve(40).expect("60 + 40 fits exactly");
        assert_eq!(budget.used(), 100);
        drop(a);
        assert_eq!(budget.used(), 40);
        drop(b);
        assert_eq!(budget.used(), 0);
        assert_eq!(budget.peak(), 100);
    }

    #[test]
    fn an_empty_budget_admits_one_oversized_batch() {
        let budget = MemoryBudget::new(10);
        let big = budget.try_reserve(1_000).expect("nothing else is held");
        assert!(budget.try_reserve(1).is_none());
        drop(big);
        assert!(budget.try_reserve(1).is_some());
    }

    #[test]
    fn a_raised_limit_admits_more() {
        let budget = MemoryBudget::new(10);
        let _a = budget.try_reserve(10).expect("fits");
        assert!(budget.try_reserve(5).is_none());
        budget.set_limit(15);
        assert!(budget.try_reserve(5).is_some());
        budget.set_limit(0);
        assert_eq!(budget.limit(), 1, "never below one byte");
    }

    #[test]
    fn forced_reservations_go_beyond_the_limit() {
        let budget = MemoryBudget::new(10);
        let _a = budget.try_reserve(10).expect("fits");
        let b = budget.force_reserve(25);
        assert_eq!(budget.used(), 35);
        drop(b);
        assert_eq!(budget.used(), 10);
    }

    #[tokio::test]
    async fn a_waiting_reservation_proceeds_when_memory_is_released() {
        let budget = MemoryBudget::new(100);
        let held = budget.try_reserve(90).expect("fits");
        let waiter = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(50).await.bytes() })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "90 + 50 does not fit");
        drop(held);
        let got = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by the release")
            .expect("joined");
        assert_eq!(got, 50);
        assert_eq!(budget.waits(), 1);
        assert_eq!(
            budget.used(),
            0,
            "the waiter's reservation was dropped with its task"
        );
    }
}
