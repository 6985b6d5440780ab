//! End-to-end tests of `ensemble`, one module per topic.

mod util;

// Runs end to end: rows, seq, values, fan-out, stop, best-effort vs lossless.
mod spine;
// The command line: validate, run, exit codes, the fixtures under configs/.
mod cli;
// Reading runs with the tools labs use (pyarrow, DuckDB), when Python has them.
mod readers;
// Damage on purpose: SIGKILL and recover, signals.
mod reliability;
// SCPI instruments against the in-process simulator: TCP, serial via socat, faults, sim serve.
mod scpi;
// Count, scan and grid plans: the `primary` stream, stop after the current point, throughput.
mod plans;
// Pause, resume, stop over the control socket; suspenders; the socket's refusals (issue 14).
mod control;
// Sinks slower than instruments under a memory cap: RSS, pushback, counted drops.
mod overload;
// Supervision under injected faults; a disk that fills up.
mod faults;
// `ensemble loadtest`: throughput and loss under load (issue 6).
mod loadtest;
// Scale-out over NATS JetStream: sink, ingest, worker kill, server restart (issue 7).
mod nats;
// Helper: nats-server nodes and a three-node JetStream cluster on loopback.
mod nats_cluster;
// A JetStream cluster losing nodes mid-run: leader, follower, quorum (issue 15).
mod cluster;
// A secured NATS path: TLS with client certificates, users, nkeys, tokens (issue 15).
mod nats_security;
// docker-compose.yml (and its secured override) run natively on loopback (issue 15).
mod compose;
// Processing stages: fft, fir, decimate and stats end to end, read back by parquet and DuckDB.
mod stages;
// Data tools: run metadata, runs, inspect, export, plot, thumbnails (issue 13).
mod data;

// The live web view and `ensemble serve`: API, tokens, slow clients, a real browser (issue 12).
mod live;
