//! `ensemble ingest`: consume the batches that `nats` sinks publish to JetStream and write them
//! as run directories of Parquet files, the same layout the local Parquet sink writes.
//!
//! - `store`: the plain synchronous part: decode, write parts, drop redeliveries, commit.
//! - `worker`: the async part: JetStream consumers, the commit cadence, acknowledgements,
//!   Ctrl-C.
//!
//! See `docs/nats.md` for the layout and the guarantees.

mod store;
mod worker;

pub use store::{
    Outcome, RunCheck, SeqRanges, Store, StoreError, StreamCheck, WorkerReport, WorkerStream,
    check_run, read_seq_ranges,
};
pub use worker::{IngestError, IngestOptions, IngestSummary, default_worker_name, run};
