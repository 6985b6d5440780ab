//! Point plans: `count`, `scan`, `grid`, `list_scan`, `rel_scan`, `adaptive_scan`, each
//! optionally repeated and guarded by suspenders.
//!
//! - `steps`: the points a plan visits, as plain data (grid order, snake, linspace).
//! - `cursor`: where a running plan is, and how it moves on (by index or adaptively).
//! - `condition`: suspender conditions over stream channels, and their evaluation.
//! - `suspenders`: the watcher that trips and clears suspensions as rows arrive.
//! - `rows`: the `primary` stream's columns and the rows buffered for its next batch.
//! - `executor`: drives the instruments point by point through a [`PlanTarget`], passing the
//!   run's [`RunControl`](crate::control::RunControl) gate before every point.
//! - `stream_clock`: a `duration` plan's clock, held while the plan is paused.
//! - `target`: [`PlanTarget`], what the executor asks of instruments, and how that fails.
//! - `driver`: the [`PlanTarget`] of a run: simulated and SCPI instruments through their
//!   probes, on the plan's own task (no message round trips).

mod condition;
mod cursor;
mod driver;
mod executor;
mod rows;
mod steps;
mod stream_clock;
mod suspenders;
mod target;

pub use condition::{ChannelRef, CmpOp, Condition, Node, Operand, Suspender};
pub use cursor::Cursor;
pub use driver::{Driver, Drivers};
pub use executor::{PlanError, PlanExecutor, PlanReport};
pub use rows::{PRIMARY_STREAM, PrimaryLayout, REPEAT_COLUMN, RESUMED_COLUMN, RowBuffer};
pub use steps::{Adaptive, Axis, PointKind, PointPlan, Repeat, linspace};
pub use stream_clock::{ClockEnd, run_stream_clock};
pub use suspenders::{SUSPEND_CONSUMER, Watcher};
pub use target::{PlanTarget, TargetError};
