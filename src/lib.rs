//! `ensemble`: run many scientific instruments at once and record everything they measure.
//!
//! - [`cli`]: the command line.
//! - [`config`]: experiment files: parse, check all errors with positions, compile.
//! - [`coordinator`]: builds the actor graph, supervises it, stops it in order.
//! - [`control`]: pause, resume and stop a running plan: the handle and the control socket.
//! - [`data`]: `runs`, `inspect`, `export`, `plot` and thumbnails: reading what was recorded.
//! - [`run`]: one run end to end: run directory, manifest, coordinator, outcome.
//! - [`plan`]: point plans (count, scan, grid, list/rel/adaptive scans, repeat, suspenders):
//!   their points, and the executor that drives them.
//! - [`sim_serve`]: `ensemble sim serve`, the SCPI simulator on TCP or a pseudo-terminal.
//! - [`loadtest`]: `ensemble loadtest`: many simulated instruments, measured.
//! - [`manifest`]: the run manifest `run.json`.
//! - [`memory`]: holds a run under its memory cap (`max_memory_mb`).
//! - [`process`]: what this process uses (resident memory, CPU time), read from `/proc`.
//! - [`progress`]: the live progress display.
//! - [`recover`]: finishing what a killed run left behind.
//! - [`summary`]: the table printed when a run ends.
//! - [`web`]: the live web view (`run --serve`) and `ensemble serve` for finished runs.
//! - [`ingest`]: `ensemble ingest`, NATS JetStream → run directories of Parquet files.
//!
//! The actors themselves (instruments, sinks, links, batch schema) live in the
//! `ensemble-actors` crate.

#![warn(missing_docs)]

pub mod cli;
pub mod config;
pub mod control;
pub mod coordinator;
pub mod data;
pub mod ingest;
pub mod loadtest;
pub mod manifest;
pub mod memory;
pub mod plan;
pub mod process;
pub mod progress;
pub mod recover;
pub mod run;
pub mod sim_serve;
pub mod summary;
pub mod web;
