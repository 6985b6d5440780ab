//! Where the view listens and who may use it: loopback by default, a token for anything else.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::error::WebError;

/// The default address of `--serve`.
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 8750);

/// The environment variable that may hold the token (instead of `--serve-token`).
pub const TOKEN_ENV: &str = "ENSEMBLE_SERVE_TOKEN";

/// Where to listen, and the token every request must carry (if any).
#[derive(Clone)]
pub struct ServeConfig {
    /// The address to bind (port 0: any free port).
    pub addr: SocketAddr,
    /// The token; `None` only on loopback.
    token: Option<Arc<str>>,
}

impl std::fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a secret: never printed.
        f.debug_struct("ServeConfig")
            .field("addr", &self.addr)
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl ServeConfig {
    /// Checks the pair: a non-loopback address needs a token; a token may not be empty.
    pub fn new(addr: SocketAddr, token: Option<String>) -> Result<Self, WebError> {
        if token.as_deref() == Some("") {
            return Err(WebError::EmptyToken);
        }
        if token.is_none() && !addr.ip().is_loopback() {
            return Err(WebError::TokenRequired { addr });
        }
        Ok(Self {
            addr,
            token: token.map(Into::into),
        })
    }

    /// Whether requests must carry a token.
    pub fn has_token(&self) -> bool {
        self.token.is_some()
    }

    pub(crate) fn token(&self) -> Option<Arc<str>> {
        self.token.clone()
    }
}

/// Whether `request` carries `token`, as `Authorization: Bearer TOKEN` or `?token=TOKEN`,
/// compared in constant time.
fn carries(request: &Request, token: &str) -> bool {
    let expected = token.as_bytes();
    let from_header = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if from_header.is_some_and(|t| bool::from(t.as_bytes().ct_eq(expected))) {
        return true;
    }
    request.uri().query().is_some_and(|q| {
        q.split('&')
            .filter_map(|kv| kv.strip_prefix("token="))
            .any(|t| bool::from(t.as_bytes().ct_eq(expected)))
    })
}

/// Middleware: 401 unless the request carries the token (when one is set).
pub(crate) async fn require_token(
    State(token): State<Option<Arc<str>>>,
    request: Request,
    next: Next,
) -> Response {
    match &token {
        Some(t) if !carries(&request, t) => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            axum::Json(serde_json::json!({
                "error": "this view needs its token: Authorization: Bearer TOKEN or ?token=TOKEN"
            })),
        )
            .into_response(),
        _ => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_non_loopback_address_needs_a_token() {
        let any: SocketAddr = "0.0.0.0:8750".parse().expect("address");
        let err = ServeConfig::new(any, None).expect_err("refused");
        assert!(err.to_string().contains("--serve-token"), "{err}");
        assert!(ServeConfig::new(any, Some("s3cret".into())).is_ok());
        assert!(ServeConfig::new(DEFAULT_ADDR, None).is_ok());
        let v6: SocketAddr = "[::1]:0".parse().expect("address");
        assert!(ServeConfig::new(v6, None).is_ok());
        assert!(matches!(
            ServeConfig::new(DEFAULT_ADDR, Some(String::new())),
            Err(WebError::EmptyToken)
        ));
    }

    #[test]
    fn the_token_is_read_from_the_header_or_the_query() {
        let with = |uri: &str, auth: Option<&str>| {
            let mut b = axum::http::Request::builder().uri(uri);
            if let Some(a) = auth {
                b = b.header(header::AUTHORIZATION, a);
            }
            carries(&b.body(axum::body::Body::empty()).expect("request"), "abc")
        };
        assert!(with("/api/status", Some("Bearer abc")));
        assert!(with("/api/status?x=1&token=abc", None));
        assert!(!with("/api/status", Some("Bearer abd")));
        assert!(!with("/api/status?token=ab", None));
        assert!(!with("/api/status", None));
        let config = ServeConfig::new(DEFAULT_ADDR, Some("abc".into())).expect("valid");
        assert!(!format!("{config:?}").contains("abc"), "never printed");
    }
}
