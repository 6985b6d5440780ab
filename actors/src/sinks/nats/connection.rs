//! Connecting to NATS (with credentials and TLS) and making sure the JetStream streams exist.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};

use super::codec::{control_filter, data_filter};
use super::config::{NatsSinkConfig, Retention};
use super::error::NatsSinkError;
use super::security::NatsSecurity;

/// First and longest wait between re-sends.
pub(super) const BACKOFF: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(2));

/// Connects to `url` with `security`'s credentials and TLS, retrying for up to `retry_for`
/// while the server is unreachable. A refused login or TLS handshake fails at once: trying
/// again with the same credentials would not help.
pub async fn connect(
    url: &str,
    name: &str,
    retry_for: Duration,
    security: &NatsSecurity,
) -> Result<async_nats::Client, NatsSinkError> {
    use async_nats::ConnectErrorKind;
    // A cluster's seeds, comma-separated (the client takes a list, not one such string).
    let servers = url
        .split(',')
        .map(|u| u.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| NatsSinkError::Connect {
            url: url.to_string(),
            message: e.to_string(),
        })?;
    let deadline = Instant::now() + retry_for;
    let mut wait = BACKOFF.0;
    loop {
        let options = security
            .connect_options()
            .await?
            .name(name)
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None);
        match options.connect(servers.as_slice()).await {
            Ok(client) => return Ok(client),
            // A TLS alert from the server (e.g. `BadCertificate`) arrives as an I/O error.
            Err(e)
                if matches!(
                    e.kind(),
                    ConnectErrorKind::AuthorizationViolation
                        | ConnectErrorKind::Authentication
                        | ConnectErrorKind::Tls
                ) || e.to_string().contains("fatal alert") =>
            {
                return Err(NatsSinkError::Refused {
                    url: url.to_string(),
                    message: e.to_string(),
                });
            }
            Err(e) if Instant::now() + wait > deadline => {
                return Err(NatsSinkError::Connect {
                    url: url.to_string(),
                    message: e.to_string(),
                });
            }
            Err(e) => {
                tracing::warn!(url, "Cannot connect to NATS yet ({e}); retrying.");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(BACKOFF.1);
            }
        }
    }
}

/// The JetStream context the sink publishes through: acknowledgements time out after
/// `ack_timeout`.
pub fn jetstream_context(
    client: async_nats::Client,
    config: &NatsSinkConfig,
) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(config.ack_timeout)
        .max_ack_inflight(config.max_in_flight * 4 + 16)
        .backpressure_on_inflight(true)
        .build(client)
}

/// Makes sure the data stream and the control stream exist, creating them as configured.
/// Retries for up to `retry_for` (a cluster may still be electing its leaders).
pub async fn ensure_streams(
    js: &jetstream::Context,
    config: &NatsSinkConfig,
) -> Result<(), NatsSinkError> {
    let duplicate_window =
        (config.retry_for + Duration::from_secs(60)).max(Duration::from_secs(120));
    let data = stream::Config {
        name: config.stream.clone(),
        subjects: vec![data_filter(&config.subject_prefix)],
        retention: match config.retention {
            Retention::Limits => stream::RetentionPolicy::Limits,
            Retention::Workqueue => stream::RetentionPolicy::WorkQueue,
        },
        num_replicas: config.replicas,
        max_bytes: config
            .max_bytes
            .map_or(-1, |b| i64::try_from(b).unwrap_or(i64::MAX)),
        duplicate_window,
        ..Default::default()
    };
    let control = stream::Config {
        name: config.control_stream(),
        subjects: vec![control_filter(&config.subject_prefix)],
        num_replicas: config.replicas,
        duplicate_window,
        ..Default::default()
    };
    for cfg in [data, control] {
        let deadline = Instant::now() + config.retry_for;
        let mut wait = BACKOFF.0;
        loop {
            match js.get_or_create_stream(cfg.clone()).await {
                Ok(_) => break,
                Err(e) if Instant::now() + wait > deadline => {
                    return Err(NatsSinkError::Stream {
                        stream: cfg.name.clone(),
                        message: e.to_string(),
                    });
                }
                Err(e) => {
                    tracing::warn!(stream = %cfg.name, "JetStream stream not ready ({e}); retrying.");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(BACKOFF.1);
                }
            }
        }
    }
    Ok(())
}
