//! The NATS JetStream sink (`type = "nats"`): every batch becomes one message, an Arrow IPC
//! stream, on `PREFIX.RUN.STREAM`; `ensemble ingest` turns the messages back into a run
//! directory of Parquet files elsewhere.
//!
//! - `config`: the serde struct.
//! - [`codec`]: subjects, headers, Arrow IPC encode/decode, control messages (shared with ingest).
//! - `security`: credentials and TLS (from files and environment variables; shared with ingest).
//! - `error`: the sink's error type.
//! - `connection`: connect, make sure the JetStream streams exist.
//! - `publisher`: the plain async publishing logic: batches to messages, in order per stream,
//!   staging, counting.
//! - `pending`: a message waiting for its acknowledgement.
//! - `window`: the window of unacknowledged messages: acknowledgements, re-sending, giving up.
//! - `task`: the publisher as a tokio task behind a handle.
//! - `actor`: the thin actix shell.

mod actor;
pub mod codec;
mod config;
mod connection;
mod error;
mod pending;
mod publisher;
mod security;
mod task;
mod window;

pub use actor::NatsSinkActor;
pub use config::{
    IpcCompression, NatsSinkConfig, Retention, check_stream_name, check_subject_prefix,
    control_stream_name, is_subject_token,
};
pub use connection::{connect, ensure_streams, jetstream_context};
pub use error::NatsSinkError;
pub use publisher::{Publisher, subject_token};
pub use security::{NatsSecurity, SecurityError};
pub use task::{PublisherFailures, PublisherHandle, publish_control, spawn_publisher};
