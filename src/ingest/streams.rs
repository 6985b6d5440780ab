//! `ensemble ingest --replicas N`: create the JetStream streams (data and control) the way a
//! `nats` sink with `replicas = N` would, so that ingest can be deployed before any
//! acquisition, and refuse to start when they exist with another number of replicas.

use async_nats::jetstream;
use ensemble_actors::sinks::nats::{NatsSinkConfig, control_stream_name, ensure_streams};

/// Why the streams could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum StreamsError {
    /// Creating (or looking up) a stream failed, after retrying for a minute.
    #[error("cannot create the JetStream streams: {0}")]
    Create(String),
    /// A stream exists with another number of replicas than asked for.
    #[error(
        "JetStream stream `{stream}` exists with {found} replica(s), --replicas asks for \
         {wanted}: drop --replicas, or change the stream's replicas first"
    )]
    Replicas {
        /// The stream.
        stream: String,
        /// Its replicas.
        found: usize,
        /// `--replicas`.
        wanted: usize,
    },
}

/// Creates the data stream `stream` and its control stream with `replicas` replicas where they
/// do not exist (same subjects, retention and duplicate window as the sink's defaults); an
/// existing stream with another number of replicas is an error. Retries for up to a minute
/// while the cluster elects its leaders.
pub async fn create_streams(
    js: &jetstream::Context,
    stream: &str,
    subject_prefix: &str,
    replicas: usize,
) -> Result<(), StreamsError> {
    let config = NatsSinkConfig {
        stream: stream.to_string(),
        subject_prefix: subject_prefix.to_string(),
        replicas,
        ..NatsSinkConfig::default()
    };
    ensure_streams(js, &config)
        .await
        .map_err(|e| StreamsError::Create(e.to_string()))?;
    for name in [stream.to_string(), control_stream_name(stream)] {
        let found = js
            .get_stream(&name)
            .await
            .map_err(|e| StreamsError::Create(format!("{name}: {e}")))?
            .cached_info()
            .config
            .num_replicas;
        // JetStream reports 0 for a stream created without a replica count: that is one.
        if found.max(1) != replicas {
            return Err(StreamsError::Replicas {
                stream: name,
                found: found.max(1),
                wanted: replicas,
            });
        }
    }
    tracing::info!(stream, replicas, "JetStream streams ready.");
    Ok(())
}
