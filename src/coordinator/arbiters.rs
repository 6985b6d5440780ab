//! Where instrument actors run: a few actix arbiters (threads) besides the system thread.
//!
//! With thousands of instruments, one thread cannot pace them all and also run the coordinator
//! and the sinks' actors; spreading the instruments over `available_parallelism()` arbiters
//! lets every core pace some of them. The arbiters are stopped when the run ends.

use actix::{Arbiter, ArbiterHandle};

/// A round-robin set of arbiters for instrument actors.
pub struct InstrumentArbiters {
    arbiters: Vec<Arbiter>,
    next: usize,
}

impl InstrumentArbiters {
    /// `count` arbiters (at least one).
    pub fn new(count: usize) -> Self {
        Self {
            arbiters: (0..count.max(1)).map(|_| Arbiter::new()).collect(),
            next: 0,
        }
    }

    /// One arbiter per core, as the OS reports them.
    pub fn per_core() -> Self {
        Self::new(std::thread::available_parallelism().map_or(2, |n| n.get()))
    }

    /// The arbiter for the next instrument.
    pub fn next_handle(&mut self) -> ArbiterHandle {
        let arbiter = &self.arbiters[self.next % self.arbiters.len()];
        self.next = self.next.wrapping_add(1);
        arbiter.handle()
    }

    /// Stops every arbiter's thread once its current work is done.
    pub fn stop(&self) {
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
    }
}

impl Drop for InstrumentArbiters {
    fn drop(&mut self) {
        self.stop();
    }
}
