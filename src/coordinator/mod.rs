//! The coordinator: builds the run's graph from the compiled experiment, supervises every
//! component, and stops the run in order.
//!
//! - `wiring`: streams, counters and links, planned before any actor starts.
//! - `restarts`: the restart policy (window, backoff) as a plain struct.
//! - `stall`: stall detection (no sign of life while nothing pushes back) as a plain struct.
//! - `arbiters`: the threads instrument actors run on.
//! - `actor`: the coordinator actor itself (with `plan_run` for plans and `stage_run` for
//!   stages).

mod actor;
mod arbiters;
mod restarts;
mod stall;
mod wiring;

pub use actor::{
    Coordinator, RunContext, RunEvent, RunOutcome, RunStatus, SinkOutcome, StopReason, StopRun,
};
pub use arbiters::InstrumentArbiters;
pub use restarts::{RestartDecision, RestartTracker};
pub use wiring::{
    LinkPlan, ReportSlot, StreamPlan, StreamView, WiringError, attach_taps, plan_streams,
};
