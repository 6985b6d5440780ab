//! Configuration of the NATS JetStream sink (`type = "nats"`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::security::NatsSecurity;

/// Publishes every batch of every input stream to a NATS JetStream stream, one message per
/// batch, for `ensemble ingest` (or any other consumer) to store elsewhere.
///
/// Subjects are `<subject_prefix>.<run_id>.<stream>` for data and
/// `<subject_prefix>.<run_id>._manifest.{start,end,final}` for the run's control messages. Data
/// goes to the JetStream stream `stream` (subjects `<subject_prefix>.*.*`), control messages to
/// `<stream>_CONTROL` (subjects `<subject_prefix>.*._manifest.*`, always `limits` retention, so
/// that every ingest worker sees every run's start and end even on a work-queue data stream).
/// Both are created if missing; an existing stream is used as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSinkConfig {
    /// Server to connect to; several may be given separated by commas (a cluster's seeds).
    #[serde(default = "default_url")]
    pub url: String,
    /// Name of the JetStream stream that stores the data.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// First token of every subject; lets several labs or setups share one NATS account.
    #[serde(default = "default_subject_prefix")]
    pub subject_prefix: String,
    /// Replicas of the JetStream streams when this sink creates them (1, or 3 on a cluster).
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// Size limit of the data stream when this sink creates it (unlimited if absent). With
    /// `limits` retention the oldest messages are discarded past it, so size it for the time
    /// ingest may lag behind.
    #[serde(default)]
    pub max_bytes: Option<u64>,
    /// What the data stream keeps: `limits` (until `max_bytes`; several consumers may read) or
    /// `workqueue` (a message is removed once ingested).
    #[serde(default)]
    pub retention: Retention,
    /// Batches published but not yet acknowledged by JetStream, at most. When reached, the sink
    /// waits for the oldest acknowledgement, which pushes back on its input links.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// How long to wait for JetStream to acknowledge one message before publishing it again.
    #[serde(default = "default_ack_timeout", with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// How long to keep retrying a batch that JetStream does not acknowledge (server down,
    /// connection lost) before counting it as not delivered and failing the sink.
    #[serde(default = "default_retry_for", with = "humantime_serde")]
    pub retry_for: Duration,
    /// Compression inside each message's Arrow IPC payload.
    #[serde(default)]
    pub compression: IpcCompression,
    /// Credentials and TLS (`[sinks.NAME.security]`): files and environment variable names,
    /// never a secret itself. Boxed: rarely set, and it would triple the size of every sink
    /// config.
    #[serde(default)]
    pub security: Box<NatsSecurity>,
}

/// JetStream retention of the data stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Retention {
    /// Keep messages until the stream's limits are reached.
    #[default]
    Limits,
    /// Remove a message once a consumer acknowledged it.
    Workqueue,
}

/// Compression of the Arrow IPC buffers in each message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpcCompression {
    /// Raw buffers: cheapest on CPU, best on a fast local network.
    #[default]
    None,
    /// zstd per buffer: a third to a half of the bytes on smooth signals, at some CPU cost.
    Zstd,
}

impl Default for NatsSinkConfig {
    fn default() -> Self {
        Self {
            url: default_url(),
            stream: default_stream(),
            subject_prefix: default_subject_prefix(),
            replicas: default_replicas(),
            max_bytes: None,
            retention: Retention::default(),
            max_in_flight: default_max_in_flight(),
            ack_timeout: default_ack_timeout(),
            retry_for: default_retry_for(),
            compression: IpcCompression::default(),
            security: Box::default(),
        }
    }
}

impl NatsSinkConfig {
    /// Checks values serde cannot: returns `(key, message)` for each problem.
    pub fn check(&self) -> Vec<(&'static str, String)> {
        let mut problems = Vec::new();
        if self.url.trim().is_empty() {
            problems.push(("url", "must name at least one server".to_string()));
        }
        for url in self.url.split(',') {
            let url = url.trim();
            let scheme_ok = ["nats://", "tls://", "ws://", "wss://"]
                .iter()
                .any(|s| url.starts_with(s))
                || !url.contains("://");
            if url
                .split("://")
                .nth(1)
                .is_some_and(|rest| rest.contains('@'))
            {
                problems.push((
                    "url",
                    "must not carry a user, password or token: use [security] user + \
                     password_env, token_env, nkey_seed_file or creds_file"
                        .to_string(),
                ));
            }
            if !scheme_ok {
                problems.push((
                    "url",
                    format!("`{url}`: expected nats://HOST:PORT (or tls://, ws://, wss://)"),
                ));
            }
        }
        if let Err(why) = check_stream_name(&self.stream) {
            problems.push(("stream", why));
        }
        if let Err(why) = check_subject_prefix(&self.subject_prefix) {
            problems.push(("subject_prefix", why));
        }
        if !(1..=5).contains(&self.replicas) {
            problems.push(("replicas", format!("must be 1 to 5, got {}", self.replicas)));
        }
        if self.max_bytes == Some(0) {
            problems.push(("max_bytes", "must be at least 1".to_string()));
        }
        if self.max_in_flight == 0 {
            problems.push(("max_in_flight", "must be at least 1".to_string()));
        }
        if self.ack_timeout.is_zero() {
            problems.push(("ack_timeout", "must be longer than zero".to_string()));
        }
        if self.retry_for < self.ack_timeout {
            problems.push((
                "retry_for",
                format!(
                    "must be at least ack_timeout ({:?}), got {:?}",
                    self.ack_timeout, self.retry_for
                ),
            ));
        }
        problems.extend(self.security.check());
        problems
    }

    /// Name of the JetStream stream that holds the control messages.
    pub fn control_stream(&self) -> String {
        control_stream_name(&self.stream)
    }
}

/// Name of the control stream that goes with the data stream `stream`.
pub fn control_stream_name(stream: &str) -> String {
    format!("{stream}_CONTROL")
}

/// A JetStream stream name: non-empty, no whitespace, `.`, `*`, `>`, `/` or `\`.
pub fn check_stream_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_string());
    }
    if let Some(c) = name
        .chars()
        .find(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
    {
        return Err(format!("`{name}`: must not contain `{c}`"));
    }
    Ok(())
}

/// A subject prefix: dot-separated non-empty tokens without whitespace or wildcards.
pub fn check_subject_prefix(prefix: &str) -> Result<(), String> {
    if prefix.is_empty() || prefix.split('.').any(|t| !is_subject_token(t)) {
        return Err(format!(
            "`{prefix}`: must be dot-separated words without spaces, `*` or `>`"
        ));
    }
    Ok(())
}

/// Whether `token` can be one token of a NATS subject (no dots, spaces or wildcards).
pub fn is_subject_token(token: &str) -> bool {
    !token.is_empty()
        && !token
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>'))
}

fn default_url() -> String {
    "nats://127.0.0.1:4222".to_string()
}
fn default_stream() -> String {
    "ENSEMBLE".to_string()
}
fn default_subject_prefix() -> String {
    "ensemble".to_string()
}
const fn default_replicas() -> usize {
    1
}
const fn default_max_in_flight() -> usize {
    64
}
const fn default_ack_timeout() -> Duration {
    Duration::from_secs(5)
}
const fn default_retry_for() -> Duration {
    Duration::from_secs(60)
}
