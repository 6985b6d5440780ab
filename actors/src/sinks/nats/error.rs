//! The error type of the NATS sink, below every file that returns it.

use std::time::Duration;

use super::security::SecurityError;

/// Why the NATS sink could not connect or publish.
#[derive(Debug, thiserror::Error)]
pub enum NatsSinkError {
    /// The credentials or TLS files cannot be used (named by key; no secret in the message).
    #[error("NATS credentials or TLS: {0}")]
    Security(#[from] SecurityError),
    /// The server refused the credentials or the TLS handshake: retrying would not help.
    #[error("NATS at {url} refused the connection: {message}")]
    Refused {
        /// The URL tried.
        url: String,
        /// Why (authorization violation, TLS error), as the client reports it.
        message: String,
    },
    /// The server did not accept a connection within `retry_for`.
    #[error("cannot connect to NATS at {url}: {message}")]
    Connect {
        /// The URL tried.
        url: String,
        /// The last error.
        message: String,
    },
    /// A JetStream stream could not be found or created.
    #[error("cannot create or find JetStream stream `{stream}`: {message}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// What the server said.
        message: String,
    },
    /// A batch could not be encoded.
    #[error("cannot encode a batch of `{stream}`: {source}")]
    Encode {
        /// The stream.
        stream: String,
        /// Why.
        source: super::codec::CodecError,
    },
    /// JetStream did not acknowledge messages within `retry_for`.
    #[error("JetStream did not acknowledge {rows} rows within {retry_for:?}: {message}")]
    Undelivered {
        /// Rows given up on.
        rows: u64,
        /// The configured retry time.
        retry_for: Duration,
        /// The last error.
        message: String,
    },
    /// The sink's publisher task has finished.
    #[error("the NATS publisher has finished")]
    Closed,
}
