//! A published message waiting for its acknowledgement: what the publisher puts in the window
//! and the window re-sends. Its own file so that `publisher.rs` and `window.rs` both use it
//! without using each other both ways.

use std::future::Future;
use std::pin::Pin;

use async_nats::HeaderMap;
use async_nats::jetstream::context::PublishError;
use async_nats::jetstream::publish::PublishAck;
use bytes::Bytes;

/// The acknowledgement of one publish, to be awaited (or polled) later.
pub(super) type AckFuture = Pin<Box<dyn Future<Output = Result<PublishAck, PublishError>> + Send>>;

/// A message waiting for its acknowledgement (or for a re-send).
pub(super) struct Pending {
    /// Index of the stream in `streams`, or `None` for a control message.
    pub(super) stream: Option<usize>,
    pub(super) subject: String,
    pub(super) headers: HeaderMap,
    pub(super) payload: Bytes,
    pub(super) first_seq: u64,
    pub(super) rows: u64,
    /// Behind a mutex only so that `Pending` is `Sync` (the future itself is `Send` only).
    pub(super) ack: Option<std::sync::Mutex<AckFuture>>,
}
