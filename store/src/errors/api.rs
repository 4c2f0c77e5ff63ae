//! HTTP: `GET /api/v1/errors?service=&status=&since=&limit=` and `GET /api/v1/errors/<id>`
//! (query role); `POST /api/v1/errors/<id>/resolve|ignore|unresolve` (admin role); Sentry SDK
//! ingest at `POST /api/<project>/envelope/` and `/api/<project>/store/` (the DSN key as an
//! ingest token).

use std::sync::atomic::Ordering;

use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{extract, now_ms, sentry, Filter, Issue, Status};
use crate::api::params::{now_ns, parse_duration_ns, read_body, Params};
use crate::api::AppState;
use crate::auth::Tokens;
use crate::ingest::IngestError;
use crate::model::{LogBatch, LogStream};
use crate::Role;

pub(crate) fn query_router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/errors", get(list))
        .route("/api/v1/errors/{id}", get(show))
}

pub(crate) fn admin_router() -> Router<AppState> {
    Router::new().route("/api/v1/errors/{id}/{action}", post(set_status))
}

/// The Sentry ingest routes, behind the DSN key check. Browser SDKs send cross-origin (the
/// key in the query string, so a preflight carries it too): answers allow any origin.
pub(crate) fn sentry_router(tokens: &Tokens) -> Router<AppState> {
    Router::new()
        .route("/api/{project}/envelope/", post(envelope).options(preflight))
        .route("/api/{project}/envelope", post(envelope).options(preflight))
        .route("/api/{project}/store/", post(store).options(preflight))
        .route("/api/{project}/store", post(store).options(preflight))
        .route_layer(from_fn_with_state(tokens.clone(), require_dsn_key))
        .layer(axum::middleware::map_response(allow_any_origin))
}

async fn allow_any_origin(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type, x-sentry-auth, authorization"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST, OPTIONS"),
    );
    r
}

async fn preflight() -> StatusCode {
    StatusCode::OK
}

fn error(status: StatusCode, msg: String) -> Response {
    (
        status,
        Json(json!({"status": "error", "errorType": "bad_data", "error": msg, "detail": msg})),
    )
        .into_response()
}

fn rfc3339(ns: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(ns).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn summary(i: &Issue, now: i64) -> Value {
    json!({
        "id": i.id,
        "service": i.service,
        "type": i.type_name,
        "title": i.title,
        "culprit": i.culprit,
        "level": i.level,
        "status": i.status.as_str(),
        "count": i.count,
        "users": i.users.len(),
        "first_seen": rfc3339(i.first_seen_ns),
        "last_seen": rfc3339(i.last_seen_ns),
        "last_24h": i.last_24h(now),
        "regression": i.regression,
    })
}

fn detail(i: &Issue, now: i64) -> Value {
    let mut v = summary(i, now);
    let error_issue = extract::ISSUE_KEY;
    v["version"] = json!(i.version);
    v["frames"] = json!(i
        .frames
        .iter()
        .map(|f| json!({
            "module": f.module, "function": f.function, "line": f.line, "in_app": f.in_app,
        }))
        .collect::<Vec<_>>());
    v["occurrences"] = json!(i
        .occurrences
        .iter()
        .rev()
        .map(|o| {
            let logs = (!o.stream.is_empty()).then(|| format!("{} | {error_issue}=\"{}\"", o.stream, i.id));
            json!({
                "time": rfc3339(o.ts_ns),
                "ts_ns": o.ts_ns.to_string(),
                "source": o.source,
                "message": o.message,
                "trace_id": o.trace_id,
                "span_id": o.span_id,
                "host": o.host,
                "release": o.release,
                "environment": o.environment,
                "logs": logs,
            })
        })
        .collect::<Vec<_>>());
    v
}

async fn list(State(st): State<AppState>, p: Params) -> Response {
    let status = match p.get("status") {
        None | Some("all") => None,
        Some(s) => match Status::parse(s) {
            Some(s) => Some(s),
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("status={s:?}: use unresolved, resolved, ignored or all"),
                )
            }
        },
    };
    let since_ns = match p.get("since").map(parse_duration_ns).transpose() {
        Ok(d) => d.map_or(i64::MIN, |d| now_ns().saturating_sub(d)),
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("since: {e}")),
    };
    let limit = match p.get("limit").map(str::parse::<usize>).transpose() {
        Ok(l) => l.unwrap_or(100).min(1000),
        Err(_) => return error(StatusCode::BAD_REQUEST, "limit must be a whole number".into()),
    };
    let filter = Filter {
        service: p.get("service").map(str::to_string),
        status,
        since_ns,
        limit,
    };
    let now = now_ms();
    let issues: Vec<Value> = st
        .engine
        .errors()
        .list(&filter)
        .iter()
        .map(|i| summary(i, now))
        .collect();
    Json(json!({"status": "success", "data": issues})).into_response()
}

async fn show(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    match st.engine.errors().get(&id) {
        Ok(i) => Json(json!({"status": "success", "data": detail(&i, now_ms())})).into_response(),
        Err(e) => error(StatusCode::NOT_FOUND, e),
    }
}

async fn set_status(State(st): State<AppState>, Path((id, action)): Path<(String, String)>) -> Response {
    let status = match action.as_str() {
        "resolve" => Status::Resolved,
        "ignore" => Status::Ignored,
        "unresolve" => Status::Unresolved,
        other => {
            return error(
                StatusCode::NOT_FOUND,
                format!("no action {other:?}: use resolve, ignore or unresolve"),
            )
        }
    };
    let engine = st.engine.clone();
    let result = tokio::task::spawn_blocking(move || engine.errors().set_status(&id, status)).await;
    match result {
        Ok(Ok(i)) => Json(json!({"status": "success", "data": summary(&i, now_ms())})).into_response(),
        Ok(Err(e)) if e.starts_with("cannot write") => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Ok(Err(e)) => error(StatusCode::NOT_FOUND, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Checks the DSN key of a Sentry request as an ingest token.
async fn require_dsn_key(State(tokens): State<Tokens>, req: Request, next: Next) -> Response {
    let key = sentry::dsn_key(req.headers(), req.uri().query().unwrap_or(""));
    let bearer = key.map(|k| format!("Bearer {k}"));
    match tokens.check(bearer.as_deref(), Role::Ingest) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

/// Stores Sentry events of `project` as log lines.
async fn ingest_events(st: &AppState, project: &str, events: Vec<Value>) -> Result<(), Response> {
    if !project
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        || project.len() > 64
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            format!("project {project:?}: the DSN's path is a project id of letters and digits"),
        ));
    }
    let service = st.engine.errors().config().sentry_projects.get(project).cloned();
    let now = now_ns();
    let mut batch = LogBatch::default();
    for event in events {
        let (labels, entry) = sentry::to_log(project, service.as_deref(), event, now)
            .map_err(|e| error(StatusCode::BAD_REQUEST, e))?;
        match batch.streams.iter_mut().find(|s| s.labels == labels) {
            Some(s) => s.entries.push(entry),
            None => batch.streams.push(LogStream {
                labels,
                entries: vec![entry],
            }),
        }
    }
    if batch.streams.is_empty() {
        return Ok(());
    }
    match st.engine.ingest_logs(batch).await {
        Ok(_) => Ok(()),
        Err(e @ (IngestError::BadRequest(_) | IngestError::Limit(_))) => {
            Err(error(StatusCode::BAD_REQUEST, e.to_string()))
        }
        Err(e @ IngestError::Unavailable(_)) => Err(error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

async fn body(req: Request) -> Result<Vec<u8>, Response> {
    let (parts, body) = req.into_parts();
    read_body(&parts.headers, body)
        .await
        .map_err(|(s, m)| error(s, m))
}

/// `POST /api/<project>/envelope/`: events are stored; other items are counted and dropped.
async fn envelope(State(st): State<AppState>, Path(project): Path<String>, req: Request) -> Response {
    let bytes = match body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let items = match sentry::envelope_items(&bytes) {
        Ok(items) => items,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid envelope: {e}")),
    };
    let header_id = bytes
        .split(|b| *b == b'\n')
        .next()
        .and_then(|h| serde_json::from_slice::<Value>(h).ok())
        .and_then(|h| h["event_id"].as_str().map(str::to_string));
    let mut events = Vec::new();
    for (kind, payload) in items {
        if kind == "event" {
            match serde_json::from_slice::<Value>(payload) {
                Ok(v) => events.push(v),
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("an event item is not JSON: {e}")),
            }
        } else {
            let at = sentry::DROPPED_TYPES
                .iter()
                .position(|t| *t == kind)
                .unwrap_or(sentry::DROPPED_TYPES.len() - 1);
            st.engine.errors().sentry_dropped[at].fetch_add(1, Ordering::Relaxed);
        }
    }
    let id = events
        .first()
        .and_then(|e| e["event_id"].as_str().map(str::to_string))
        .or(header_id);
    match ingest_events(&st, &project, events).await {
        Ok(()) => Json(json!({"id": id})).into_response(),
        Err(r) => r,
    }
}

/// `POST /api/<project>/store/`: one event, the body.
async fn store(State(st): State<AppState>, Path(project): Path<String>, req: Request) -> Response {
    let bytes = match body(req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let event: Value = match serde_json::from_slice(&bytes) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("the event is not JSON: {e}")),
    };
    let id = event["event_id"].as_str().map(str::to_string);
    match ingest_events(&st, &project, vec![event]).await {
        Ok(()) => Json(json!({"id": id})).into_response(),
        Err(r) => r,
    }
}
