//! End-to-end tests of `ensemble`, one module per topic.

mod util;

// Runs end to end: rows, seq, values, fan-out, stop, best-effort vs lossless.
mod spine;
// The command line: validate, run, exit codes, the fixtures under configs/.
mod cli;
// Reading runs with the tools labs use (pyarrow, DuckDB), when Python has them.
mod readers;
// Scale-out over NATS JetStream: sink, ingest, worker kill, server restart (issue 7).
mod nats;
