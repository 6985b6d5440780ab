//! [`Pauses`]: a run's pauses as its streaming instruments see them.
//!
//! The plan's control publishes a [`Pauses`] value on a `watch` channel; an instrument that
//! follows it either holds its rows while the plan is paused (the plan's `pause_streams`) or
//! keeps recording and lengthens its row limit by the time paused (a `duration` plan whose
//! clock was paused).

use std::time::{Duration, Instant};

/// The pauses of a run's plan so far: whether one is in effect now, and how long the ended
/// ones lasted in all. Suspensions are not pauses: a suspender's streams keep recording.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pauses {
    /// A pause is in effect now.
    pub paused: bool,
    /// How long the pauses that have ended lasted, in all.
    pub paused_for: Duration,
    /// When the pause in effect took hold (`None` when not paused). A loop that notices the
    /// pause late (its thread waited for a core) stops its rows at this instant, not at the
    /// moment it noticed, so no row is stamped inside the pause.
    pub since: Option<Instant>,
}
