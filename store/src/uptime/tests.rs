//! The push API, the status page's data and who may read it.

use axum::body::Body;
use axum::http::{Request, StatusCode};

use super::*;
use crate::api::tests::{token, TestStore};
use crate::tsdb::{SampleBatch, SeriesSamples};
use crate::Role;

fn with_token(uri: &str, t: &str) -> Request<Body> {
    Request::get(uri)
        .header("authorization", format!("Bearer {t}"))
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn pushes_are_recorded_and_bad_ones_say_why() {
    let s = TestStore::new(&[]);
    let (status, body) = s
        .get("/api/v1/push/nightly-backup?status=down&msg=disk%20full")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = s
        .post("/api/v1/push/cron.hourly", "text/plain", "synced 12 files")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let beats = s.state.heartbeats.snapshot();
    assert_eq!(
        (beats["nightly-backup"].up, beats["nightly-backup"].msg.as_str()),
        (false, "disk full")
    );
    assert_eq!(
        (beats["cron.hourly"].up, beats["cron.hourly"].msg.as_str()),
        (true, "synced 12 files")
    );
    s.commit();
    let r = s.get_json("/api/v1/query?query=obs_push_status").await;
    assert_eq!(r["data"]["result"].as_array().unwrap().len(), 2, "{r}");
    let lines = s
        .get_json(&format!(
            "/loki/api/v1/query_range?query={}",
            form_urlencoded::byte_serialize(br#"{service_name="obs-push"}"#).collect::<String>()
        ))
        .await;
    assert!(lines.to_string().contains("down: disk full"), "{lines}");

    let (status, body) = s.get("/api/v1/push/a%20b").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("1 to 64 letters"), "{body}");
    let (status, body) = s.get("/api/v1/push/x?status=maybe").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("status=up or status=down"), "{body}");
    // Huge: a body over 64 KiB is refused, a long message is cut, the store goes on.
    let (status, body) = s
        .post("/api/v1/push/big", "text/plain", "x".repeat(100 << 10))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    let (status, _) = s.post("/api/v1/push/long", "text/plain", "é".repeat(5000)).await;
    assert_eq!(status, StatusCode::OK);
    let kept = s.state.heartbeats.snapshot()["long"].msg.len();
    assert!(
        kept <= heartbeats::MAX_MSG && kept > heartbeats::MAX_MSG - 2,
        "{kept}"
    );
    assert!(!s.state.heartbeats.snapshot().contains_key("big"));
}

#[tokio::test]
async fn pushes_need_an_ingest_token_and_the_page_a_query_token_unless_public() {
    let tokens = [
        token("grafana", Role::Query, "query-token-123"),
        token("cron", Role::Ingest, "ingest-token-123"),
    ];
    let mut s = TestStore::new(&tokens);
    assert_eq!(s.get("/api/v1/push/x").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        s.send(with_token("/api/v1/push/x", "ingest-token-123")).await.0,
        StatusCode::OK
    );
    for path in ["/status", "/status.json", "/status/x/badge.svg"] {
        assert_eq!(s.get(path).await.0, StatusCode::UNAUTHORIZED, "{path}");
    }
    let (status, body) = s.send(with_token("/status.json", "query-token-123")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    s.state.status_page = StatusPage::new(StatusPageConfig {
        public: true,
        ..Default::default()
    });
    let (status, body) = s.get("/status").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.starts_with("<!doctype html>") && body.contains("id=\"svc-x\""),
        "{body}"
    );
    let (status, body) = s.get("/status/x/badge.svg").await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("<svg") && body.contains("x: up"), "{body}");
    assert_eq!(s.get("/status/nope/badge.svg").await.0, StatusCode::NOT_FOUND);
    // The API stays guarded.
    assert_eq!(s.get("/api/v1/query?query=up").await.0, StatusCode::UNAUTHORIZED);
}

fn probe_samples(host: &str, from_ms: i64, values: &[f64]) -> SeriesSamples {
    SeriesSamples {
        labels: [
            ("__name__", "probe_success"),
            ("host_name", host),
            ("instance", "https://app.mesh/"),
            ("job", "obs-probe"),
            ("probe", "app"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        samples: values
            .iter()
            .enumerate()
            .map(|(i, v)| (from_ms + i as i64 * 60_000, *v))
            .collect(),
    }
}

#[tokio::test]
async fn one_vantage_point_failing_is_degraded_and_both_is_an_incident() {
    let s = TestStore::new(&[]);
    let now = 10 * 86_400_000;
    let start = now - 60 * 60_000;
    // node-a sees it up for the hour; node-b sees it down for the last 5 minutes; both
    // saw it down for 10 minutes half an hour ago.
    let mut a = vec![1.0; 61];
    let mut b = vec![1.0; 61];
    for i in 25..35 {
        a[i] = 0.0;
        b[i] = 0.0;
    }
    for v in &mut b[56..] {
        *v = 0.0;
    }
    let batch = SampleBatch {
        series: vec![
            probe_samples("node-a", start, &a),
            probe_samples("node-b", start, &b),
        ],
    };
    s.state.engine.ingest_samples(batch).await.unwrap();
    s.commit();
    let cfg = StatusPageConfig::default();
    let engine = s.state.engine.clone();
    let beats = s.state.heartbeats.clone();
    let st = tokio::task::spawn_blocking(move || status::compute(&engine, &beats, &cfg, now))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(st.state, "degraded");
    let app = &st.services[0];
    assert_eq!(
        (app.name.as_str(), app.target.as_str(), app.state),
        ("app", "https://app.mesh/", "degraded")
    );
    let down: Vec<_> = app
        .vantage_points
        .iter()
        .filter(|v| !v.up)
        .map(|v| v.host_name.as_str())
        .collect();
    assert_eq!(down, ["node-b"]);
    // Up whenever either vantage point saw it up: 10 minutes of 61 sampled ones were down
    // (the 24 h window holds only this hour of data).
    let day = app.uptime.day.unwrap();
    assert!((day - 100.0 * 51.0 / 61.0).abs() < 2.0, "{day}");
    assert_eq!(app.incidents.len(), 1, "{:?}", app.incidents);
    let i = &app.incidents[0];
    assert_eq!((i.start, i.duration_secs), ((start + 25 * 60_000) / 1000, 600));
    assert_eq!(app.days.len(), 90);
    assert!(app.days[89].is_some() && app.days[0].is_none());
    let html = page::html(&st, "Fleet");
    assert!(html.contains("down from node-b; up from node-a"), "{html}");
}
