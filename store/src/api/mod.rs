//! The store's HTTP surface: one router per compatible API, merged here. Each group of
//! routes sits behind the [`Role`] it needs.

use axum::http::StatusCode;
use axum::middleware::from_fn_with_state;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::auth::{require, Guard, Tokens};
use crate::metrics::Metrics;
use crate::Role;

#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) metrics: Metrics,
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
    let query = Router::new()
        .route("/metrics", get(metrics))
        .route_layer(guard(Role::Query));
    open.merge(query).fallback(not_found).with_state(state)
}

async fn ready() -> &'static str {
    "ready\n"
}

async fn metrics(axum::extract::State(state): axum::extract::State<AppState>) -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

async fn not_found(uri: axum::http::Uri) -> impl IntoResponse {
    (
        StatusCode::NOT_FOUND,
        format!("no such endpoint: {}\n", uri.path()),
    )
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;
    use crate::config::TokenConfig;

    fn app(tokens: &[TokenConfig]) -> Router {
        let state = AppState {
            metrics: Metrics::new(),
        };
        router(state, &Tokens::load(tokens).unwrap())
    }

    async fn get(app: Router, path: &str, token: Option<&str>) -> (StatusCode, String) {
        let mut req = Request::get(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    #[tokio::test]
    async fn ready_answers_without_a_token() {
        let token = TokenConfig {
            name: "grafana".into(),
            role: Role::Query,
            token_file: None,
            token: Some("grafana-token-123".into()),
        };
        let (status, body) = get(app(&[token]), "/ready", None).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "ready\n"));
    }

    #[tokio::test]
    async fn metrics_need_a_query_token_when_tokens_are_configured() {
        let tokens = [
            TokenConfig {
                name: "grafana".into(),
                role: Role::Query,
                token_file: None,
                token: Some("grafana-token-123".into()),
            },
            TokenConfig {
                name: "node1".into(),
                role: Role::Ingest,
                token_file: None,
                token: Some("ingest-token-123".into()),
            },
        ];
        assert_eq!(
            get(app(&tokens), "/metrics", None).await.0,
            StatusCode::UNAUTHORIZED
        );
        let (status, body) = get(app(&tokens), "/metrics", Some("ingest-token-123")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        let (status, body) = get(app(&tokens), "/metrics", Some("grafana-token-123")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("obs_store_build_info{version=\""), "{body}");
    }

    #[tokio::test]
    async fn unknown_paths_say_so() {
        let (status, body) = get(app(&[]), "/nope", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(body.contains("/nope"));
    }
}
