//! Plans other than `stream`: `count`, `scan` and `grid`.
//!
//! - `steps`: the points a plan visits, as plain data (grid order, snake, linspace).
//! - `executor`: drives the instruments point by point through a [`PlanTarget`] and writes one
//!   row per point to the `primary` stream.
//! - `driver`: the [`PlanTarget`] of a run, sending `Set`/`ReadNow` messages to the running
//!   instrument actors.

mod driver;
mod executor;
mod steps;

pub use driver::{Driver, Drivers};
pub use executor::{
    PRIMARY_STREAM, PlanError, PlanExecutor, PlanReport, PlanTarget, PrimaryLayout,
};
pub use steps::{Axis, PointKind, PointPlan, linspace};
