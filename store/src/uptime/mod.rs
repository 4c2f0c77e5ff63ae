//! Uptime in the store: push heartbeats (heartbeats.rs) and the status page (status.rs
//! computes it from the probes' and heartbeats' series with PromQL, page.rs renders HTML,
//! JSON and badges).
//!
//! Routes: `GET|POST /api/v1/push/<name>` (ingest role); `GET /status`, `/status.json` and
//! `/status/<name>/badge.svg` (query role, or open with `[store.status_page] public = true`).
//! The page's data is computed at most every 30 s and shared by every request in between,
//! so a busy (or hostile) reader costs the store one computation per 30 s.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use crate::api::params::Params;
use crate::api::AppState;

pub(crate) mod heartbeats;
mod page;
mod status;

pub(crate) use heartbeats::Heartbeats;
pub(crate) use status::Status;

/// How long a computed status is served before it is computed again.
const CACHE_FOR: Duration = Duration::from_secs(30);

/// One `[[store.heartbeats]]`: a job that pushes every `period`, late after `grace` more.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatConfig {
    pub name: String,
    #[serde(deserialize_with = "crate::config::deserialize_duration")]
    pub period: Duration,
    #[serde(
        default = "default_grace",
        deserialize_with = "crate::config::deserialize_duration"
    )]
    pub grace: Duration,
}

fn default_grace() -> Duration {
    Duration::from_secs(300)
}

/// `[store.status_page]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatusPageConfig {
    pub title: String,
    /// Serve the page without a token (for friends and family); the API stays guarded.
    pub public: bool,
    /// Which probes and heartbeats to show, by name [default: all].
    pub probes: Vec<String>,
}

impl Default for StatusPageConfig {
    fn default() -> Self {
        StatusPageConfig {
            title: "Status".into(),
            public: false,
            probes: Vec::new(),
        }
    }
}

/// Checks `[[store.heartbeats]]`: safe, distinct names and a period.
pub(crate) fn check_heartbeats(beats: &[HeartbeatConfig]) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    for b in beats {
        if !heartbeats::valid_name(&b.name) {
            return Err(format!(
                "[[store.heartbeats]] name {:?}: 1 to 64 letters, digits, '.', '-' or '_'",
                b.name
            ));
        }
        if !names.insert(&b.name) {
            return Err(format!("two [[store.heartbeats]] are named {:?}", b.name));
        }
        if b.period.is_zero() {
            return Err(format!(
                "[[store.heartbeats]] {:?}: period must be longer than 0s",
                b.name
            ));
        }
    }
    Ok(())
}

pub(crate) fn now_ms() -> i64 {
    crate::api::params::now_ns() / 1_000_000
}

/// The last status computed, and when.
type Cached = Option<(Instant, Arc<Status>)>;

/// The status page's settings and its cache.
#[derive(Debug, Clone)]
pub(crate) struct StatusPage {
    pub(crate) config: Arc<StatusPageConfig>,
    cache: Arc<Mutex<Cached>>,
    /// Held while a status is computed, so concurrent readers wait for one computation.
    computing: Arc<tokio::sync::Mutex<()>>,
}

impl StatusPage {
    pub(crate) fn new(config: StatusPageConfig) -> StatusPage {
        StatusPage {
            config: Arc::new(config),
            cache: Arc::default(),
            computing: Arc::default(),
        }
    }

    fn cached(&self) -> Option<Arc<Status>> {
        let cache = self.cache.lock().expect("status cache lock");
        cache
            .as_ref()
            .filter(|(at, _)| at.elapsed() < CACHE_FOR)
            .map(|(_, s)| s.clone())
    }

    /// The status, from the cache or computed now.
    async fn get(&self, st: &AppState) -> Result<Arc<Status>, String> {
        if let Some(s) = self.cached() {
            return Ok(s);
        }
        let _one = self.computing.lock().await;
        if let Some(s) = self.cached() {
            return Ok(s);
        }
        let (engine, beats, config) = (st.engine.clone(), st.heartbeats.clone(), self.config.clone());
        let status = tokio::task::spawn_blocking(move || status::compute(&engine, &beats, &config, now_ms()))
            .await
            .map_err(|e| format!("computing the status failed: {e}"))??;
        let status = Arc::new(status);
        *self.cache.lock().expect("status cache lock") = Some((Instant::now(), status.clone()));
        Ok(status)
    }
}

pub(crate) fn push_router() -> Router<AppState> {
    Router::new().route("/api/v1/push/{name}", get(push).post(push))
}

pub(crate) fn status_router() -> Router<AppState> {
    Router::new()
        .route("/status", get(html))
        .route("/status.json", get(json))
        .route("/status/{name}/badge.svg", get(badge))
}

fn error(status: StatusCode, msg: String) -> Response {
    (status, Json(serde_json::json!({"status": "error", "error": msg}))).into_response()
}

/// `GET|POST /api/v1/push/<name>?status=up|down&msg=...`; a POST body is the message when
/// `msg` is not given.
async fn push(State(st): State<AppState>, Path(name): Path<String>, req: axum::extract::Request) -> Response {
    let query: Vec<(String, String)> = req
        .uri()
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let p = Params(query);
    let up = match p.get("status").unwrap_or("up") {
        "up" | "ok" => true,
        "down" | "fail" => false,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("status={other:?}: say status=up or status=down"),
            )
        }
    };
    let msg = match p.get("msg") {
        Some(m) => m.to_string(),
        None => match axum::body::to_bytes(req.into_body(), 64 << 10).await {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "a push body is at most 64 KiB".into(),
                )
            }
        },
    };
    match st.heartbeats.push(&name, up, &msg, now_ms()).await {
        Ok(()) => Json(serde_json::json!({"status": "success", "name": name, "up": up})).into_response(),
        Err(e @ (heartbeats::PushError::BadName | heartbeats::PushError::TooMany)) => {
            error(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

async fn html(State(st): State<AppState>) -> Response {
    match st.status_page.get(&st).await {
        Ok(s) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "max-age=30"),
            ],
            page::html(&s, &st.status_page.config.title),
        )
            .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn json(State(st): State<AppState>) -> Response {
    match st.status_page.get(&st).await {
        Ok(s) => Json(&*s).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

async fn badge(State(st): State<AppState>, Path(name): Path<String>) -> Response {
    let s = match st.status_page.get(&st).await {
        Ok(s) => s,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    match s.services.iter().find(|svc| svc.name == name) {
        Some(svc) => (
            [
                (header::CONTENT_TYPE, "image/svg+xml"),
                (header::CACHE_CONTROL, "max-age=30"),
            ],
            page::badge(svc),
        )
            .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no probe or heartbeat named {name:?} on the status page"),
        ),
    }
}

#[cfg(test)]
mod tests;
