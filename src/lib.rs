//! `ensemble`: run many scientific instruments at once and record everything they measure.
//!
//! - [`cli`]: the command line.
//! - [`config`]: experiment files: parse, check all errors with positions, compile.
//! - [`coordinator`]: builds the actor graph, supervises it, stops it in order.
//! - [`run`]: one run end to end: run directory, manifest, coordinator, outcome.
//! - [`manifest`]: the run manifest `run.json`.
//! - [`progress`]: the live progress display.
//! - [`summary`]: the table printed when a run ends.
//! - [`ingest`]: `ensemble ingest`, NATS JetStream → run directories of Parquet files.
//!
//! The actors themselves (instruments, sinks, links, batch schema) live in the
//! `ensemble-actors` crate.

#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod coordinator;
pub mod ingest;
pub mod manifest;
pub mod progress;
pub mod run;
pub mod summary;
