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

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;

    use crate::api::tests::TestStore;

    /// Hostile silences get a 400 naming what is wrong, and the API keeps answering.
    #[tokio::test]
    async fn hostile_silences_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg: obs_notify::NotifyConfig = toml::from_str(
            "[[receivers]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:1/\"\n[route]\nreceiver = \"hook\"\n",
        )
        .unwrap();
        let mut store = TestStore::new(&[]);
        store.state.notifier = obs_notify::Notifier::open(&cfg, dir.path())
            .unwrap()
            .map(std::sync::Arc::new);
        let post = |body: String| {
            let store = &store;
            async move { store.post("/api/v2/silences", "application/json", body).await }
        };
        let silence = |matchers: &str, ends: &str| {
            format!(r#"{{"matchers": {matchers}, "startsAt": "2030-01-01T00:00:00Z", "endsAt": "{ends}"}}"#)
        };
        let cases = [
            ("{".to_string(), "invalid silence"),
            (
                format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
                "invalid silence",
            ),
            (
                silence(
                    &format!(
                        r#"[{{"name": "a", "value": "{}", "isRegex": true}}]"#,
                        "(".repeat(5000)
                    ),
                    "2030-01-02T00:00:00Z",
                ),
                "invalid regex",
            ),
            (
                silence(
                    &format!(
                        r#"[{{"name": "a", "value": "{}", "isRegex": true}}]"#,
                        "a{1000}".repeat(2000)
                    ),
                    "2030-01-02T00:00:00Z",
                ),
                "invalid regex",
            ),
            (silence("[]", "2030-01-02T00:00:00Z"), "at least one matcher"),
            (
                silence(r#"[{"name": "a", "value": "b"}]"#, "2029-01-01T00:00:00Z"),
                "must end after it starts",
            ),
        ];
        for (body, want) in cases {
            let (status, answer) = post(body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            assert!(answer.contains(want), "{want}: {answer}");
        }
        let (status, _) = store
            .send(
                axum::http::Request::delete("/api/v2/silence/nope")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = post(silence(
            r#"[{"name": "a", "value": "b"}]"#,
            "2030-01-02T00:00:00Z",
        ))
        .await;
        assert_eq!(status, StatusCode::OK, "the API still answers");
    }
}
