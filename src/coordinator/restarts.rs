//! The restart policy as a plain struct: how many restarts in the window, and how long to wait.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::config::Supervision;

/// What to do about a failure, per the component's policy and its history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartDecision {
    /// Restart after this delay.
    RestartAfter(Duration),
    /// Too many restarts in the window: escalate (abort the run).
    GiveUp,
}

/// Counts a component's restarts in a sliding window and computes exponential backoff.
#[derive(Debug, Clone)]
pub struct RestartTracker {
    policy: Supervision,
    recent: VecDeque<Instant>,
}

/// Longest wait between restarts, however many there were.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

impl RestartTracker {
    /// A tracker for a component with `policy`.
    pub fn new(policy: Supervision) -> Self {
        Self {
            policy,
            recent: VecDeque::new(),
        }
    }

    /// The policy the tracker applies.
    pub fn policy(&self) -> &Supervision {
        &self.policy
    }

    /// Records a failure at `now` and decides: restart after a backoff, or give up.
    pub fn on_failure(&mut self, now: Instant) -> RestartDecision {
        while self
            .recent
            .front()
            .is_some_and(|&t| now.duration_since(t) > self.policy.restart_window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.policy.max_restarts as usize {
            return RestartDecision::GiveUp;
        }
        let doublings = self.recent.len().min(16) as u32;
        self.recent.push_back(now);
        let delay = self
            .policy
            .restart_backoff
            .saturating_mul(2u32.saturating_pow(doublings))
            .min(MAX_BACKOFF);
        RestartDecision::RestartAfter(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OnFailure;

    fn policy(max: u32) -> Supervision {
        Supervision {
            on_failure: OnFailure::Restart,
            max_restarts: max,
            restart_window: Duration::from_secs(10),
            restart_backoff: Duration::from_millis(100),
        }
    }

    #[test]
    fn backoff_doubles_until_the_limit_then_gives_up() {
        let mut t = RestartTracker::new(policy(3));
        let now = Instant::now();
        assert_eq!(
            t.on_failure(now),
            RestartDecision::RestartAfter(Duration::from_millis(100))
        );
        assert_eq!(
            t.on_failure(now),
            RestartDecision::RestartAfter(Duration::from_millis(200))
        );
        assert_eq!(
            t.on_failure(now),
            RestartDecision::RestartAfter(Duration::from_millis(400))
        );
        assert_eq!(t.on_failure(now), RestartDecision::GiveUp);
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let mut t = RestartTracker::new(policy(1));
        let now = Instant::now();
        assert!(matches!(
            t.on_failure(now),
            RestartDecision::RestartAfter(_)
        ));
        assert_eq!(t.on_failure(now), RestartDecision::GiveUp);
        let later = now + Duration::from_secs(11);
        assert_eq!(
            t.on_failure(later),
            RestartDecision::RestartAfter(Duration::from_millis(100))
        );
    }
}
