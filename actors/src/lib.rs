//! The actors of `ensemble` and the plain parts they are made of.
//!
//! - [`batch`]: the data type of the data plane (a shared Arrow batch) and the stream schema.
//! - [`budget`]: the run's memory budget for batches in flight.
//! - [`control`]: control-plane messages (stop, flush, exit reports).
//! - [`link`]: bounded queues between a stream and a consumer, lossless or best-effort.
//! - [`outputs`]: a producer's fan-out of one stream to all its links.
//! - [`stages`]: processing stages (FFT, FIR, decimation, statistics) and their actor shell.
//! - [`pool`]: pooled column buffers handed to Arrow without a copy.
//! - [`ring_buffer`]: a fixed-capacity ring of recent samples.
//! - [`latency`]: latency histograms (sample timestamp to durable write).
//! - [`tap`]: a best-effort ring of a stream's newest batches for viewers, fed without waiting.
//! - [`stats`]: counters shared between actors and the coordinator.
//! - [`instruments`]: instruments that produce streams (the simulator first).
//! - [`sinks`]: consumers that store streams (Parquet first).
//! - [`simulator`]: an SCPI device simulator with fault injection (tests, `ensemble sim serve`).
//!
//! Each component is a small folder: `config.rs` (serde), a plain struct with the logic, and a
//! thin `actor.rs` shell around it.

#![warn(missing_docs)]

pub mod batch;
pub mod budget;
pub mod control;
pub mod instruments;
pub mod latency;
pub mod link;
pub mod outputs;
pub mod pool;
pub mod ring_buffer;
pub mod simulator;
pub mod sinks;
pub mod stages;
pub mod stats;
pub mod tap;
