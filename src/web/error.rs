//! Errors of the web view: starting the server, and answers to bad requests.

use std::net::SocketAddr;
use std::path::PathBuf;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// The web view could not start (or `ensemble serve` could not read its directory).
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    /// A non-loopback address without a token: anyone on the network could stop the run.
    #[error(
        "refusing to serve on {addr} without a token: binding anything but a loopback address \
         requires --serve-token TOKEN (or ENSEMBLE_SERVE_TOKEN)"
    )]
    TokenRequired {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The token given is empty.
    #[error("the serve token is empty")]
    EmptyToken,
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The server's thread or runtime could not start.
    #[error("cannot start the web server's thread: {0}")]
    Thread(std::io::Error),
    /// `ensemble serve`: the directory holds no run (no `run.json` in it or below it).
    #[error("{path} holds no run (no run.json in it or in its subdirectories)")]
    NoRuns {
        /// The directory.
        path: PathBuf,
    },
    /// `ensemble serve`: the directory cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The directory or file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
}

/// A request the API answers with an error status and `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// No such stream (or run).
    #[error("{0}")]
    NotFound(String),
    /// A query value out of range.
    #[error("{0}")]
    BadRequest(String),
    /// The action is not possible now (pause unsupported, run ended).
    #[error("{0}")]
    Conflict(String),
    /// A file could not be read.
    #[error("{0}")]
    Internal(String),
    /// The view is already sending or computing as much as its budget allows (503, retry).
    #[error("the view is busy: it sends and computes at most a fixed amount a second; try again")]
    Busy,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Busy => StatusCode::SERVICE_UNAVAILABLE,
        };
        (
            status,
            [(axum::http::header::RETRY_AFTER, "1")],
            Json(serde_json::json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

impl From<super::control::ControlError> for ApiError {
    fn from(e: super::control::ControlError) -> Self {
        ApiError::Conflict(e.to_string())
    }
}
