//! The HTTP admin API (control plane): `/status`, `/metrics`, `/explain`,
//! `POST /reload`, and the operator's levers: draining pools and forcing
//! endpoints up or down.
//!
//! Runs on the shared tokio runtime, next to the TCP service, and listens on
//! loopback unless the configuration explicitly allows otherwise (see
//! [`crate::config::AdminConfig`]). Reading is `GET`; anything that changes
//! state is `POST`, so a stray browser prefetch or link cannot reload the
//! server or drain a pool. Handlers only read snapshots ([`Control::status`],
//! [`Control::serving`], [`Metrics::totals`]) or ask [`Control`] to change
//! something; they never touch the data plane directly. Errors are JSON
//! `{"ok": false, "error": "..."}`: 404 for a pool or address no pool has,
//! 400 for an explain question that does not parse.

pub mod auth;
pub mod prometheus;
pub mod tls;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use std::collections::HashMap;
use std::net::IpAddr;

use axum::extract::{Path, Query, State};
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

use crate::control::{AdminError, Control, LatencySave};
use crate::explain;
use crate::health::Forced;
use crate::latency::engine::{MAX_BATCH, PostedBatch};
use crate::metrics::Metrics;

/// Largest `POST /latency` body: room for [`MAX_BATCH`] samples.
const LATENCY_BODY_LIMIT: usize = 16 << 20;

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
/// method 405; when the configuration the server started with has an
/// `admin.token_file`, every request needs its token first (see [`auth`]).
pub fn router(state: AdminState) -> Router {
    // The started-with configuration, not a reloaded one: see `auth` for why.
    let token = state
        .control
        .config()
        .admin
        .token
        .as_deref()
        .map(auth::BearerToken::new);
    let routes = Router::new()
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/reload", post(reload))
        .route(
            "/latency",
            // Batches of tens of thousands of samples are the efficient way
            // to send them; the default 2 MB body limit is too small.
            post(post_latency).layer(axum::extract::DefaultBodyLimit::max(LATENCY_BODY_LIMIT)),
        )
        .route("/latency/save", post(save_latency))
        .route(crate::latency::journal::JOURNAL_PATH, get(latency_journal))
        .route("/explain", get(explain_question))
        .route(crate::health::peers::VIEW_PATH, get(health_view))
        .route("/secondary/{zone}/refresh", post(refresh_secondary))
        .route("/pools/{id}/drain", post(drain))
        .route("/pools/{id}/undrain", post(undrain))
        .route("/endpoints/{address}/down", post(force_down))
        .route("/endpoints/{address}/up", post(force_up))
        .route("/endpoints/{address}/auto", post(force_auto))
        .with_state(state);
    match token {
        // `layer`, not `route_layer`: unknown paths are refused too, so that
        // a client without the token cannot map the API.
        Some(token) => routes.layer(axum::middleware::from_fn_with_state(
            token,
            auth::require_bearer,
        )),
        None => routes,
    }
}

/// The peers' read-only listener (`peers.listen`): this node's health view
/// and latency journal, nothing else, so that the fleet can share them
/// without opening the admin API (which reloads and drains) to the
/// network. Every request must carry the `peers.token_file` token of the
/// configuration in force; a listener beyond loopback refuses everything
/// while there is none (a reload that dropped it).
pub fn peer_router(state: AdminState, loopback: bool) -> Router {
    let guard = (Arc::clone(&state.control), loopback);
    Router::new()
        .route(crate::health::peers::VIEW_PATH, get(health_view))
        .route(crate::latency::journal::JOURNAL_PATH, get(latency_journal))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            guard,
            auth::require_peer_token,
        ))
}

/// An admin change that was refused: 404 for what does not exist, 500
/// when the change could not be saved (and so was not made).
fn admin_error_response(admin_error: &AdminError) -> Response {
    let code = match admin_error {
        AdminError::UnknownPool(_) | AdminError::UnknownEndpoint(_) => StatusCode::NOT_FOUND,
        AdminError::NotSaved(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error_response(code, &admin_error.to_string())
}

/// `{"ok": false, "error": message}` with `code`.
fn error_response(code: StatusCode, message: &str) -> Response {
    (code, Json(json!({"ok": false, "error": message}))).into_response()
}

/// Checks a secondary zone's serial at its primaries now, transferring it
/// when newer: what a NOTIFY does, for an operator who cannot wait.
async fn refresh_secondary(State(state): State<AdminState>, Path(zone): Path<String>) -> Response {
    let name = match hickory_proto::rr::Name::from_ascii(zone.trim()) {
        Ok(mut name) if !zone.trim().is_empty() => {
            name.set_fqdn(true);
            name.to_lowercase()
        }
        _ => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!("{zone:?} is not a zone name"),
            );
        }
    };
    if state.control.refresh_secondary(&name) {
        Json(json!({ "ok": true, "zone": name.to_ascii() })).into_response()
    } else {
        error_response(
            StatusCode::NOT_FOUND,
            &format!("{name} is not a secondary zone"),
        )
    }
}

async fn drain(State(state): State<AdminState>, Path(pool): Path<String>) -> Response {
    set_drained(&state, &pool, true).await
}

async fn undrain(State(state): State<AdminState>, Path(pool): Path<String>) -> Response {
    set_drained(&state, &pool, false).await
}

async fn set_drained(state: &AdminState, pool: &str, drained: bool) -> Response {
    match state.control.set_drained(pool, drained).await {
        Ok(()) => {
            let endpoints: Vec<_> = state
                .control
                .status()
                .endpoints
                .into_iter()
                .filter(|report| report.endpoint.pool == pool)
                .collect();
            Json(json!({
                "ok": true,
                "pool": pool,
                "drained": drained,
                "endpoints": endpoints,
            }))
            .into_response()
        }
        Err(admin_error) => admin_error_response(&admin_error),
    }
}

async fn force_down(State(state): State<AdminState>, Path(address): Path<String>) -> Response {
    force(&state, &address, Some(Forced::Down)).await
}

async fn force_up(State(state): State<AdminState>, Path(address): Path<String>) -> Response {
    force(&state, &address, Some(Forced::Up)).await
}

async fn force_auto(State(state): State<AdminState>, Path(address): Path<String>) -> Response {
    force(&state, &address, None).await
}

async fn force(state: &AdminState, text: &str, forced: Option<Forced>) -> Response {
    // Endpoints are named by address, so text that is not an address names
    // no endpoint: 404 like an address no pool has.
    let Ok(address) = text.parse::<IpAddr>() else {
        return error_response(
            StatusCode::NOT_FOUND,
            &format!("no endpoint {text:?}: endpoints are named by IP address"),
        );
    };
    match state.control.force_endpoint(address, forced).await {
        Ok(()) => {
            let endpoints: Vec<_> = state
                .control
                .status()
                .endpoints
                .into_iter()
                .filter(|report| report.endpoint.address == address)
                .collect();
            Json(json!({
                "ok": true,
                "address": address,
                "forced": forced,
                "endpoints": endpoints,
            }))
            .into_response()
        }
        Err(admin_error) => admin_error_response(&admin_error),
    }
}

/// `GET /explain?name=&type=&client=`: the live table, health and admin
/// state. Parameters are read from a plain map so that a missing one gets
/// a message naming it rather than a generic rejection.
async fn explain_question(
    State(state): State<AdminState>,
    Query(parameters): Query<HashMap<String, String>>,
) -> Response {
    let mut missing = Vec::new();
    let mut parameter = |key: &'static str| match parameters.get(key) {
        Some(value) => value.as_str(),
        None => {
            missing.push(key);
            ""
        }
    };
    let (name, record_type, client) = (parameter("name"), parameter("type"), parameter("client"));
    if !missing.is_empty() {
        return error_response(
            StatusCode::BAD_REQUEST,
            &format!(
                "missing query parameter(s) {}: GET /explain?name=NAME&type=TYPE&client=ADDR[/LEN]",
                missing.join(", ")
            ),
        );
    }
    let serving = state.control.serving();
    match explain::explain(&serving, name, record_type, client) {
        Ok(explanation) => Json(explanation).into_response(),
        Err(explain_error) if explain_error.is_input_error() => {
            error_response(StatusCode::BAD_REQUEST, &explain_error.to_string())
        }
        Err(explain_error) => {
            error!("explain failed: {explain_error}");
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &explain_error.to_string(),
            )
        }
    }
}

async fn status(State(state): State<AdminState>) -> Response {
    Json(state.control.status()).into_response()
}

/// `GET /latency/journal?from=N&epoch=E`: where a peer's cursor is.
#[derive(Debug, serde::Deserialize)]
struct JournalQuery {
    from: Option<u64>,
    epoch: Option<String>,
    /// Fewer samples than a full page (0: only where the journal stands).
    limit: Option<usize>,
}

/// The samples posted here since the peer's cursor, for the nodes that list
/// this one in their `[peers]`.
async fn latency_journal(
    State(state): State<AdminState>,
    query: Result<axum::extract::Query<JournalQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let query = match query {
        Ok(axum::extract::Query(query)) => query,
        Err(rejection) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!(
                    "expected ?from=N&epoch=E&limit=N: {}",
                    rejection.body_text()
                ),
            );
        }
    };
    let page = state.control.latency().journal().page(
        query.epoch.as_deref(),
        query.from.unwrap_or(0),
        query
            .limit
            .map_or(crate::latency::journal::PAGE_SAMPLES, |limit| {
                limit.min(crate::latency::journal::PAGE_SAMPLES)
            }),
    );
    Json(page).into_response()
}

/// What this node's own probes say, for the peers that list it in their
/// `[peers]`.
async fn health_view(State(state): State<AdminState>) -> Response {
    Json(state.control.health_view()).into_response()
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let mut body = prometheus::render(&state.metrics.totals(), &state.control.status());
    // Keys before counts: every slot listed is then summed.
    let series = state.control.decisions().series();
    let decisions = state.metrics.decision_totals(series.len());
    prometheus::render_decisions(&mut body, &series, &decisions);
    let zones = state.control.decisions().zone_series();
    let zone_totals = state.metrics.zone_totals(zones.len());
    prometheus::render_zones(&mut body, &zones, &zone_totals);
    ([(CONTENT_TYPE, prometheus::CONTENT_TYPE)], body).into_response()
}

/// `POST /latency`: a batch of real-user measurements. A body that is not
/// a valid batch is refused whole (400, nothing recorded); otherwise each
/// sample is accepted or rejected on its own and the answer says which.
async fn post_latency(State(state): State<AdminState>, body: axum::body::Bytes) -> Response {
    let batch: PostedBatch = match serde_json::from_slice(&body) {
        Ok(batch) => batch,
        Err(error) => {
            return error_response(
                StatusCode::BAD_REQUEST,
                &format!(
                    "not a latency batch ({error}); expected {{\"samples\": [{{\"client\": \
                     \"198.51.100.7\", \"site\": \"fra\", \"rtt_ms\": 23.5}}]}}; nothing was \
                     recorded"
                ),
            );
        }
    };
    if batch.samples.len() > MAX_BATCH {
        return error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "{} samples in one batch; at most {MAX_BATCH}; nothing was recorded",
                batch.samples.len()
            ),
        );
    }
    let engine = Arc::clone(state.control.latency());
    let now = crate::unix_now();
    // A large batch holds the model for a while: keep it off the async threads.
    match tokio::task::spawn_blocking(move || engine.ingest(&batch, now)).await {
        Ok(report) => Json(json!({
            "ok": report.rejected.is_empty(),
            "accepted": report.accepted,
            "rejected": report.rejected,
        }))
        .into_response(),
        Err(join_error) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the batch was not recorded: {join_error}"),
        ),
    }
}

/// `POST /latency/save`: writes the latency model to its state file now
/// (before planned maintenance, say) instead of at the next interval.
async fn save_latency(State(state): State<AdminState>) -> Response {
    let file = state
        .control
        .config()
        .steering
        .latency
        .state_file
        .display()
        .to_string();
    match state.control.save_latency_state().await {
        Ok(LatencySave::Written(bytes)) => {
            Json(json!({"ok": true, "written": true, "bytes": bytes, "file": file})).into_response()
        }
        Ok(LatencySave::Unchanged) => {
            Json(json!({"ok": true, "written": false, "file": file})).into_response()
        }
        Err(error) => error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the latency model was not saved: {error}"),
        ),
    }
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
    /// the current tokio runtime, over TLS when `tls` (with
    /// `admin.tls_certificate` of the configuration in force at each
    /// handshake, see [`tls`]).
    pub async fn start(address: SocketAddr, state: AdminState, tls: bool) -> io::Result<Self> {
        let control = Arc::clone(&state.control);
        let tls = tls.then_some((tls::Listener::Admin, control));
        Self::serve(address, router(state), tls).await
    }

    /// Binds `address` and serves [`peer_router`]: the peers' listener,
    /// over TLS when `tls` (with `peers.tls_certificate`).
    pub async fn start_for_peers(
        address: SocketAddr,
        state: AdminState,
        tls: bool,
    ) -> io::Result<Self> {
        let loopback = address.ip().to_canonical().is_loopback();
        let control = Arc::clone(&state.control);
        let tls = tls.then_some((tls::Listener::Peers, control));
        Self::serve(address, peer_router(state, loopback), tls).await
    }

    async fn serve(
        address: SocketAddr,
        app: Router,
        tls: Option<(tls::Listener, Arc<crate::control::Control>)>,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind(address).await?;
        let local_addr = listener.local_addr()?;
        let (shutdown, stopped) = oneshot::channel::<()>();
        let task = match tls {
            Some((which, control)) => {
                tokio::spawn(tls::serve(listener, which, app, control, stopped))
            }
            None => tokio::spawn(async move {
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
            }),
        };
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
