//! The NATS JetStream sink (`type = "nats"`): every batch becomes one message, an Arrow IPC
//! stream, on `PREFIX.RUN.STREAM`; `ensemble ingest` turns the messages back into a run
//! directory of Parquet files elsewhere.
//!
//! - `config`: the serde struct.
//! - [`codec`]: subjects, headers, Arrow IPC encode/decode, control messages (shared with ingest).
//! - `publisher`: the plain async publishing logic (bounded window, re-send, counting).
//! - `actor`: the thin actix shell.

mod actor;
pub mod codec;
mod config;
mod publisher;

pub use actor::NatsSinkActor;
pub use config::{
    IpcCompression, NatsSinkConfig, Retention, check_stream_name, check_subject_prefix,
    control_stream_name, is_subject_token,
};
pub use publisher::{
    NatsSinkError, Publisher, PublisherFailures, PublisherHandle, connect, ensure_streams,
    jetstream_context, publish_control, spawn_publisher, subject_token,
};
