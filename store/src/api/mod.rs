//! The store's HTTP surface: one router per compatible API, merged here. Each group of
//! routes sits behind the [`Role`] it needs: `/ready` is open; ingest endpoints need `ingest`;
//! query endpoints and `/metrics` need `query` (`admin` passes everywhere).

pub(crate) mod loki;
pub(crate) mod otlp;
pub(crate) mod params;
pub(crate) mod prom;
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
    let open = Router::new().route("/ready", get(ready));
    let ingest = Router::new()
        .merge(loki::push_router())
        .merge(otlp::router())
        .merge(prom::write_router())
        .route_layer(guard(Role::Ingest));
    let query = Router::new()
        .route("/metrics", get(metrics))
        .merge(loki::query_router())
        .merge(tempo::router())
        .merge(prom::query_router())
        .route_layer(guard(Role::Query));
    open.merge(ingest)
        .merge(query)
        .fallback(not_found)
        .with_state(state)
}

async fn ready() -> &'static str {
    "ready\n"
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(&state.engine),
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
