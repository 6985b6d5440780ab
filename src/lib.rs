//! ensemble: run many scientific instruments at once and record everything they measure.
//!
//! Modules, in the order an experiment passes through them:
//!
//! - [`config`]: parse and check an experiment file and compile it into an [`config::Experiment`].
#![warn(missing_docs)]

pub mod config;
