//! The coordinator: builds the run's graph from the compiled experiment, supervises every
//! component, and stops the run in order.
//!
//! - `wiring`: streams, counters and links, planned before any actor starts.
//! - `supervisor`: every component's state and every decision about it (restart, end, stop,
//!   finish), as a plain struct; with `restarts` (the restart policy's window and backoff) and
//!   `stall` (no sign of life while nothing pushes back).
//! - `launch`: one launcher per component kind (sink, instrument, stage); `stage_hosts` gives
//!   each stage its thread and its input link's consumer, and `arbiters` the threads simulated
//!   instruments run on.
//! - `outcome`: how a run ended and what happened on the way (`RunOutcome`, `RunEvent`, ...).
//! - `run_context`: the fixed facts of a run every launch needs.
//! - `actor`: the actix shell that drives the supervisor (with `plan_run` for plans).

mod actor;
mod arbiters;
mod launch;
mod outcome;
mod restarts;
mod run_context;
mod stage_hosts;
mod stall;
mod supervisor;
mod wiring;

pub use actor::{Coordinator, StopRun};
pub use arbiters::InstrumentArbiters;
pub use outcome::{RunEvent, RunEventKind, RunOutcome, RunStatus, SinkOutcome, StopReason};
pub use restarts::{RestartDecision, RestartTracker};
pub use run_context::RunContext;
pub use wiring::{
    LinkPlan, ReportSlot, StreamPlan, StreamView, WiringError, attach_taps, plan_streams,
};
