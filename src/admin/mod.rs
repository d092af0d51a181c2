//! The HTTP admin API (control plane): `/status`, `/metrics`, `POST /reload`.
//!
//! Runs on the shared tokio runtime, next to the TCP service, and listens on
//! loopback unless the configuration explicitly allows otherwise (see
//! [`crate::config::AdminConfig`]). Reading is `GET`; anything that changes
//! state is `POST`, so a stray browser prefetch or link cannot reload the
//! server. Handlers only read snapshots ([`Control::status`],
//! [`Metrics::totals`]) or ask [`Control`] to reload; they never touch the
//! data plane directly.

pub mod prometheus;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{error, warn};

use crate::control::Control;
use crate::metrics::Metrics;

/// How long [`AdminServer::stop`] waits for in-flight requests.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What the handlers read from.
#[derive(Clone)]
pub struct AdminState {
    /// The table owner: status and reloads.
    pub control: Arc<Control>,
    /// Query counters of every worker.
    pub metrics: Arc<Metrics>,
}

/// The admin routes, ready to serve. Unknown paths answer 404 and a wrong
/// method 405.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/reload", post(reload))
        .with_state(state)
}

async fn status(State(state): State<AdminState>) -> Response {
    Json(state.control.status()).into_response()
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let body = prometheus::render(&state.metrics.totals(), &state.control.status());
    ([(CONTENT_TYPE, prometheus::CONTENT_TYPE)], body).into_response()
}

async fn reload(State(state): State<AdminState>) -> Response {
    // Control logs the outcome; here it only becomes a response.
    match state.control.reload().await {
        Ok(report) => (
            StatusCode::OK,
            Json(json!({
                "ok": true,
                "generation": report.generation,
                "zones": report.zones,
                "records": report.records,
                "seconds": report.seconds,
                "warnings": report.warnings,
            })),
        )
            .into_response(),
        Err(failure) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({
                "ok": false,
                "generation": failure.generation,
                "errors": failure.errors,
            })),
        )
            .into_response(),
    }
}

/// A running admin API.
pub struct AdminServer {
    local_addr: SocketAddr,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
}

impl AdminServer {
    /// Binds `address` (port 0 picks a free port) and serves [`router`] on
    /// the current tokio runtime.
    pub async fn start(address: SocketAddr, state: AdminState) -> io::Result<Self> {
        let listener = TcpListener::bind(address).await?;
        let local_addr = listener.local_addr()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let app = router(state);
        let task = tokio::spawn(async move {
            let result = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    // A dropped sender also means "stop".
                    let _ = stopped.await;
                })
                .await;
            if let Err(serve_error) = &result {
                error!(error = %serve_error, "admin API stopped");
            }
            result
        });
        Ok(Self {
            local_addr,
            shutdown,
            task,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets in-flight requests finish (bounded), and returns.
    pub async fn stop(self) {
        let _ = self.shutdown.send(());
        let mut task = self.task;
        if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
            warn!("admin API requests still open after {STOP_GRACE:?}; closing them");
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests;
