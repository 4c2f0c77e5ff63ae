//! Silences, in Alertmanager's API v2 shapes (admin role): `GET /api/v2/silences`,
//! `POST /api/v2/silences` (a `postableSilence`; answers `{"silenceID": ...}`) and
//! `DELETE /api/v2/silence/{id}`. They need notifications configured (`[store.alerting]`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::AppState;

pub(crate) fn admin_router() -> Router<AppState> {
    Router::new()
        .route("/api/v2/silences", get(list).post(create))
        .route("/api/v2/silence/{id}", delete(expire))
}

type Answer = (StatusCode, Json<Value>);

fn error(status: StatusCode, msg: impl Into<String>) -> Answer {
    (status, Json(json!({"error": msg.into()})))
}

fn notifier(st: &AppState) -> Result<&obs_notify::Notifier, Answer> {
    st.notifier.as_deref().ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "notifications are off: configure [store.alerting] with a receiver and a route",
        )
    })
}

async fn list(State(st): State<AppState>) -> Answer {
    match notifier(&st) {
        Ok(n) => (StatusCode::OK, Json(Value::Array(n.silences(chrono::Utc::now())))),
        Err(e) => e,
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostMatcher {
    name: String,
    value: String,
    #[serde(default)]
    is_regex: bool,
    #[serde(default = "yes")]
    is_equal: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PostSilence {
    #[serde(default)]
    id: String,
    matchers: Vec<PostMatcher>,
    starts_at: chrono::DateTime<chrono::Utc>,
    ends_at: chrono::DateTime<chrono::Utc>,
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    comment: String,
}

async fn create(State(st): State<AppState>, body: axum::body::Bytes) -> Answer {
    let n = match notifier(&st) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let post: PostSilence = match serde_json::from_slice(&body) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid silence: {e}")),
    };
    let mut matchers = Vec::new();
    for m in post.matchers {
        let op = match (m.is_regex, m.is_equal) {
            (false, true) => obs_notify::Op::Equal,
            (false, false) => obs_notify::Op::NotEqual,
            (true, true) => obs_notify::Op::Regex,
            (true, false) => obs_notify::Op::NotRegex,
        };
        match obs_notify::Matcher::new(&m.name, op, &m.value) {
            Ok(m) => matchers.push(m),
            Err(e) => return error(StatusCode::BAD_REQUEST, e),
        }
    }
    let silence = obs_notify::Silence {
        id: post.id,
        matchers,
        starts_at: post.starts_at,
        ends_at: post.ends_at,
        created_by: post.created_by,
        comment: post.comment,
        updated_at: chrono::Utc::now(),
    };
    match n.add_silence(silence) {
        Ok(id) => (StatusCode::OK, Json(json!({"silenceID": id}))),
        Err(e) => error(StatusCode::BAD_REQUEST, e),
    }
}

async fn expire(State(st): State<AppState>, Path(id): Path<String>) -> Answer {
    let n = match notifier(&st) {
        Ok(n) => n,
        Err(e) => return e,
    };
    match n.expire_silence(&id, chrono::Utc::now()) {
        Ok(true) => (StatusCode::OK, Json(json!({}))),
        Ok(false) => error(StatusCode::NOT_FOUND, format!("no silence with id {id}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}
