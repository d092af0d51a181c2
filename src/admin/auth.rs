//! The admin API's optional bearer token (RFC 6750): when `[admin]
//! token_file` names a token, every request, reading ones and `/metrics`
//! included, must carry `Authorization: Bearer TOKEN`, or it gets 401 with
//! `WWW-Authenticate: Bearer` and the API's JSON error body.
//!
//! Sits in front of every route of [`super::router`], before routing, so an
//! unauthenticated client cannot even learn which paths exist. It must never
//! reveal the token: not in a response, not in a log line, not in `Debug`
//! output, and not through timing, so the comparison looks at every byte
//! whatever the first difference (only the length may show).
//!
//! The token is read once, when the server starts: the admin listener is
//! opened once and never rebuilt by a reload, like `admin.listen`. A reload
//! that finds a different `admin.token_file` keeps the old token and says
//! so in its `restart_needed` warnings, so an operator rotating the token
//! knows to restart and is never locked out halfway by a half-applied change.

use std::fmt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tracing::debug;

/// The secret admin requests must present. Cheap to clone (shared), and
/// its `Debug` output never shows the secret.
#[derive(Clone)]
pub struct BearerToken(Arc<str>);

impl BearerToken {
    /// Wraps the token as read from `admin.token_file`.
    pub fn new(token: &str) -> Self {
        Self(Arc::from(token))
    }

    /// Whether `presented` is this token, in time that depends only on the
    /// lengths.
    pub fn matches(&self, presented: &[u8]) -> bool {
        same_secret(presented, self.0.as_bytes())
    }

    /// The token itself, to send it (a peer's health view asks for it).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl PartialEq for BearerToken {
    fn eq(&self, other: &Self) -> bool {
        self.matches(other.0.as_bytes())
    }
}

impl Eq for BearerToken {}

impl fmt::Debug for BearerToken {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("BearerToken(<redacted>)")
    }
}

/// Middleware for `axum::middleware::from_fn_with_state`: passes requests
/// that carry the token on to the routes, answers 401 otherwise.
pub async fn require_bearer(
    State(token): State<BearerToken>,
    request: Request,
    next: Next,
) -> Response {
    let refusal = match presented_token(&request) {
        Some(presented) if token.matches(presented) => None,
        Some(_) => {
            // Debug, not warn: a scanner must not be able to flood the log.
            debug!(path = %request.uri().path(), "admin request with a wrong bearer token");
            Some("the bearer token is not the one in admin.token_file")
        }
        None => Some(
            "a bearer token is needed: send Authorization: Bearer TOKEN, with the token in \
             admin.token_file",
        ),
    };
    match refusal {
        None => next.run(request).await,
        Some(message) => unauthorized(message),
    }
}

/// Middleware of the peers' listener ([`super::peer_router`]): passes
/// requests that carry the `peers.token_file` token of the configuration
/// in force. Without one, a loopback listener passes everything and any
/// other refuses everything.
pub async fn require_peer_token(
    State((control, loopback)): State<(Arc<crate::control::Control>, bool)>,
    request: Request,
    next: Next,
) -> Response {
    let steering = control.steering();
    let token = steering
        .peers
        .as_ref()
        .and_then(|peers| peers.token.as_ref());
    let refusal = match (&token, presented_token(&request)) {
        (None, _) if loopback => None,
        (None, _) => Some("this node has no peers.token_file now; its peers' listener is closed"),
        (Some(token), Some(presented)) if token.matches(presented) => None,
        (Some(_), Some(_)) => {
            debug!(path = %request.uri().path(), "peer request with a wrong bearer token");
            Some("the bearer token is not the one in peers.token_file")
        }
        (Some(_), None) => Some(
            "a bearer token is needed: send Authorization: Bearer TOKEN, with the token in \
             peers.token_file",
        ),
    };
    match refusal {
        None => next.run(request).await,
        Some(message) => unauthorized(message),
    }
}

/// The credentials of an `Authorization: Bearer ...` header, if the request
/// has one. The scheme is case-insensitive (RFC 9110 §11.1).
fn presented_token(request: &Request) -> Option<&[u8]> {
    let value = request.headers().get(AUTHORIZATION)?.as_bytes();
    let scheme_length = "Bearer ".len();
    if value.len() < scheme_length || !value[..scheme_length].eq_ignore_ascii_case(b"bearer ") {
        return None;
    }
    let credentials = value[scheme_length..].trim_ascii();
    (!credentials.is_empty()).then_some(credentials)
}

/// 401 with the challenge and the API's usual JSON error.
fn unauthorized(message: &str) -> Response {
    let mut response = super::error_response(StatusCode::UNAUTHORIZED, message);
    response
        .headers_mut()
        .insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

/// Byte-wise equality that reads every byte even after a difference, so
/// the response time does not tell an attacker how much of a guess was
/// right. Lengths are compared first: a length is not worth hiding for a
/// token of 16 or more characters.
fn same_secret(presented: &[u8], expected: &[u8]) -> bool {
    if presented.len() != expected.len() {
        return false;
    }
    // black_box on every step keeps the optimiser from turning the fold
    // back into a loop that stops at the first difference.
    let difference = presented
        .iter()
        .zip(expected)
        .fold(0u8, |accumulated, (left, right)| {
            std::hint::black_box(accumulated | (left ^ right))
        });
    difference == 0
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Router;
    use axum::routing::get;
    use serde_json::Value;

    use super::*;

    const TOKEN: &str = "correct-horse-battery-staple";

    #[test]
    fn only_the_same_bytes_match() {
        let token = BearerToken::new(TOKEN);
        assert!(token.matches(TOKEN.as_bytes()));
        assert!(!token.matches(b"correct-horse-battery-staplf"));
        assert!(!token.matches(b"xorrect-horse-battery-staple"));
        assert!(!token.matches(b"correct-horse-battery-stapl"));
        assert!(!token.matches(b"correct-horse-battery-staple-"));
        assert!(!token.matches(b""));
    }

    #[test]
    fn debug_output_hides_the_token() {
        let shown = format!("{:?}", BearerToken::new(TOKEN));
        assert!(!shown.contains(TOKEN), "{shown}");
    }

    /// A one-route app behind the middleware, on a loopback port.
    async fn serve_guarded() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
        let app = Router::new()
            .route("/status", get(|| async { "fine" }))
            .layer(axum::middleware::from_fn_with_state(
                BearerToken::new(TOKEN),
                require_bearer,
            ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("local address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (address, task)
    }

    #[tokio::test]
    async fn requests_need_the_token_in_a_bearer_header() {
        let (address, task) = serve_guarded().await;
        crate::probe::check::install_crypto_provider();
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let url = |path: &str| format!("http://{address}{path}");
        let cases: [(&str, Option<String>, u16); 7] = [
            ("/status", None, 401),
            ("/status", Some(format!("Bearer {TOKEN}x")), 401),
            (
                "/status",
                Some("Bearer correct-horse-battery-stapl_".into()),
                401,
            ),
            ("/status", Some(format!("Basic {TOKEN}")), 401),
            ("/nowhere", None, 401),
            ("/status", Some(format!("Bearer {TOKEN}")), 200),
            ("/status", Some(format!("bearer  {TOKEN}")), 200),
        ];
        for (path, header, expected) in cases {
            let mut request = client.get(url(path));
            if let Some(header) = &header {
                request = request.header(AUTHORIZATION, header);
            }
            let response = request.send().await.expect("request");
            assert_eq!(response.status().as_u16(), expected, "{path} {header:?}");
            if expected == 401 {
                assert_eq!(
                    response
                        .headers()
                        .get(WWW_AUTHENTICATE)
                        .map(HeaderValue::as_bytes),
                    Some(&b"Bearer"[..])
                );
                let body = response.text().await.expect("body");
                assert!(!body.contains(TOKEN), "{body}");
                let error: Value = serde_json::from_str(&body).expect("JSON error");
                assert_eq!(error["ok"], false);
                assert!(error["error"].is_string(), "{body}");
            }
        }
        task.abort();
    }
}
