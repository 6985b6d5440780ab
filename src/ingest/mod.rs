//! `ensemble ingest`: consume the batches that `nats` sinks publish to JetStream and write them
//! as run directories of Parquet files, the same layout the local Parquet sink writes.
//!
//! - `store`: the plain synchronous part: decode, write parts, drop redeliveries, commit.
//! - `seq_ranges`: the `seq` values written of a stream, as merged ranges.
//! - `check`: reading parts back: their `seq` ranges, and whether a run directory is complete.
//! - `error`: the file side's error type.
//! - `streams`: `--replicas`: creating the JetStream streams.
//! - `worker`: the async part: JetStream consumers, the commit cadence, acknowledgements,
//!   Ctrl-C.
//!
//! See `docs/nats.md` for the layout and the guarantees.

mod check;
mod error;
mod seq_ranges;
mod store;
mod streams;
mod worker;

pub use check::{RunCheck, StreamCheck, check_run, read_seq_ranges};
pub use error::StoreError;
pub use seq_ranges::SeqRanges;
pub use store::{Outcome, Store, WorkerReport, WorkerStream};
pub use streams::{StreamsError, create_streams};
pub use worker::{IngestError, IngestOptions, IngestSummary, default_worker_name, run};
