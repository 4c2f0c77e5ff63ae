//! The store's HTTP surface: one router per compatible API, merged here. Each group of
//! routes sits behind the [`Role`] it needs: `/ready` is open; ingest endpoints need `ingest`;
//! query endpoints and `/metrics` need `query` (`admin` passes everywhere); Sentry SDK ingest
//! checks the DSN key as an `ingest` token (`errors/api.rs`). The status page
//! (`uptime/`) is a query route, or open when `[store.status_page] public = true`.

pub(crate) mod alerting;
pub(crate) mod loki;
pub(crate) mod otlp;
pub(crate) mod params;
pub(crate) mod prom;
pub(crate) mod rules;
pub(crate) mod tempo;

use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::auth::{require, Guard, Tokens};
use crate::ingest::Engine;
use crate::logql::Limits;
use crate::metrics::Metrics;
use crate::Role;

#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) metrics: Metrics,
    pub(crate) engine: Engine,
    pub(crate) limits: Limits,
    pub(crate) rules: crate::rules::Rules,
    pub(crate) notifier: Option<std::sync::Arc<obs_notify::Notifier>>,
    pub(crate) heartbeats: crate::uptime::Heartbeats,
    pub(crate) status_page: crate::uptime::StatusPage,
}

pub(crate) fn router(state: AppState, tokens: &Tokens) -> Router {
    let guard = |needed| {
        from_fn_with_state(
            Guard {
                tokens: tokens.clone(),
                needed,
            },
            require,
        )
    };
    // `/ready` stays open, as Loki's and Prometheus's do: load balancers and `obs up` probe it.
    let mut open = Router::new().route("/ready", get(ready));
    let status = crate::uptime::status_router();
    let status_public = state.status_page.config.public;
    if status_public {
        open = open.merge(status.clone());
    }
    let ingest = Router::new()
        .merge(crate::uptime::push_router())
        .merge(loki::push_router())
        .merge(otlp::router())
        .merge(prom::write_router())
        .route_layer(guard(Role::Ingest));
    let mut query = Router::new()
        .route("/metrics", get(metrics))
        .merge(loki::query_router())
        .merge(tempo::router())
        .merge(prom::query_router())
        .merge(rules::query_router())
        .merge(crate::errors::query_router());
    if !status_public {
        query = query.merge(status);
    }
    let query = query.route_layer(guard(Role::Query));
    let admin = Router::new()
        .route("/api/v1/admin/snapshot", axum::routing::post(snapshot))
        .merge(rules::admin_router())
        .merge(alerting::admin_router())
        .merge(crate::errors::admin_router())
        .route_layer(guard(Role::Admin));
    let metrics = state.metrics.clone();
    open.merge(ingest)
        .merge(crate::errors::sentry_router(tokens))
        .merge(query)
        .merge(admin)
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(metrics, in_flight))
        .with_state(state)
}

/// Counts the request in `obs_store_http_requests_in_flight` until its answer is built.
async fn in_flight(
    State(metrics): State<Metrics>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let _guard = metrics.request();
    next.run(req).await
}

async fn ready() -> &'static str {
    "ready\n"
}

/// `POST /api/v1/admin/snapshot`: a consistent copy of the data dir for backups, answered
/// like Prometheus's TSDB snapshot API plus the copy's path on this machine.
async fn snapshot(State(state): State<AppState>) -> axum::response::Response {
    let engine = state.engine.clone();
    match tokio::task::spawn_blocking(move || engine.snapshot()).await {
        Ok(Ok(path)) => axum::Json(serde_json::json!({
            "status": "success",
            "data": {"name": "latest", "path": path.display().to_string()},
        }))
        .into_response(),
        Ok(Err(e)) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({"status": "error", "errorType": "internal", "error": format!("snapshot failed: {e}")})),
        )
            .into_response(),
        Err(e) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(serde_json::json!({"status": "error", "errorType": "internal", "error": format!("snapshot task failed: {e}")})),
        )
            .into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state
            .metrics
            .render(&state.engine, &state.rules, state.notifier.as_deref()),
    )
}

async fn not_found(uri: axum::http::Uri) -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {}\n", uri.path()),
    )
}

#[cfg(test)]
pub(crate) mod tests;
