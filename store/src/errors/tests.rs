use std::time::Duration;

use super::extract::{ErrorEvent, ISSUE_KEY};
use super::fingerprint::parameterize;
use super::*;
use crate::config::Retention;
use crate::ingest::Engine;
use crate::model::{Labels, LogEntry, LogStream};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/errors/fixtures");

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn from_log(labels: &Labels, entry: &LogEntry) -> Option<ErrorEvent> {
    super::extract::from_log(labels, entry, None)
}

fn entry(ts_ns: i64, line: &str) -> LogEntry {
    LogEntry {
        ts_ns,
        line: line.to_string(),
        metadata: Vec::new(),
    }
}

fn fixture(name: &str) -> ErrorEvent {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{name}.txt")).unwrap();
    from_log(&labels(&[("service_name", "shop")]), &entry(1, text.trim_end()))
        .unwrap_or_else(|| panic!("{name}: no error found"))
}

/// Golden: the fingerprint of every fixture is pinned, so a change to grouping shows up here
/// (and must not regroup stored issues: see fingerprint.rs).
#[test]
fn fixture_fingerprints_are_pinned() {
    let mut names: Vec<String> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".txt").map(str::to_string))
        .filter(|n| n != "fingerprints")
        .collect();
    names.sort();
    let actual: String = names
        .iter()
        .map(|n| {
            let ev = fixture(n);
            format!(
                "{n}\t{}\t{}\t{}\t{}\n",
                ev.issue, ev.type_name, ev.title, ev.culprit
            )
        })
        .collect();
    let expected = std::fs::read_to_string(format!("{FIXTURES}/fingerprints.txt")).unwrap_or_default();
    assert!(
        actual == expected,
        "fingerprints changed; if on purpose (a new grouping version), write this to fixtures/fingerprints.txt:\n{actual}"
    );
}

#[test]
fn the_same_stack_groups_and_a_different_top_frame_does_not() {
    for lang in ["python", "java", "go", "node", "rust", "plain"] {
        let (a1, a2, b) = (
            fixture(&format!("{lang}-a1")),
            fixture(&format!("{lang}-a2")),
            fixture(&format!("{lang}-b")),
        );
        assert_eq!(
            a1.issue, a2.issue,
            "{lang}: other line numbers and ids, same issue"
        );
        assert_ne!(
            a1.issue, b.issue,
            "{lang}: another top frame (or message), another issue"
        );
        assert_eq!(a1.title, a2.title, "{lang}");
    }
}

#[test]
fn traces_are_read_for_type_frames_and_library_code() {
    let py = fixture("python-a1");
    assert_eq!(py.type_name, "ValueError");
    assert_eq!(py.culprit, "/srv/billing/app/pricing.py in compute_total");
    assert!(!py.frames[0].in_app, "dist-packages is library code");
    assert_eq!(py.frames[1].line, Some(17));
    let chained = fixture("python-b");
    assert_eq!(
        chained.type_name, "app.errors.ChargeError",
        "the last traceback is what was raised"
    );
    let java = fixture("java-a1");
    assert_eq!(java.type_name, "java.lang.IllegalStateException");
    assert_eq!(java.culprit, "com.acme.billing.OrderService in charge");
    assert_eq!(
        java.title,
        "java.lang.IllegalStateException: order <num> is in state PAID"
    );
    let go = fixture("go-a1");
    assert_eq!(
        (go.type_name.as_str(), go.culprit.as_str()),
        ("panic", "main in lookup")
    );
    assert!(go.frames.iter().any(|f| f.module == "net/http" && !f.in_app));
    let node = fixture("node-a1");
    assert_eq!(node.culprit, "/srv/api/src/users.js in getUser");
    assert_eq!(node.frames[1].function, "<anonymous>");
    let rust = fixture("rust-a2");
    assert_eq!(
        rust.culprit, "shop::handlers::charge in run",
        "the symbol hash goes"
    );
    assert_eq!(
        fixture("rust-b").culprit,
        "src/config.rs",
        "no backtrace: the panic's location"
    );
}

#[test]
fn messages_are_parameterised_like_sentry() {
    assert_eq!(
        parameterize("user 42 (ann@example.org) from 10.1.2.3:80 got 0xdeadbeef at 2026-12-05T10:00:01Z"),
        "user <num> (<email>) from <ip> got <hex> at <date>"
    );
    assert_eq!(
        parameterize("GET https://api.example.org/v1/x?id=7 failed: 'abc' \"d e\" /var/lib/x.db"),
        "GET <url> failed: <quoted_str> <quoted_str> <path>"
    );
    assert_eq!(
        parameterize("request 3f2a9c1b-7d04-4e5f-8a6b-0c1d2e3f4a5b id 9f8e7d6c5b4a3921 user42 sha256 1.5s"),
        "request <uuid> id <hex> user42 sha256 <num>s"
    );
}

/// A single error line of megabytes: grouping reads its first 4 KiB (bounded work), so lines
/// that differ past that group together.
#[test]
fn huge_error_lines_are_grouped_by_their_head() {
    let l = labels(&[("service_name", "api"), ("level", "error")]);
    let a = format!("boom {}", "x ".repeat(3 << 20));
    let b = format!("{a} tail");
    let (ea, eb) = (
        from_log(&l, &entry(1, &a)).unwrap(),
        from_log(&l, &entry(1, &b)).unwrap(),
    );
    assert_eq!(ea.issue, eb.issue);
    assert!(ea.title.len() <= 200 && ea.message.len() <= 1024);
}

#[test]
fn only_errors_are_errors() {
    let l = labels(&[("service_name", "api")]);
    assert!(from_log(&l, &entry(1, "level=info msg=\"all good\"")).is_none());
    assert!(from_log(&l, &entry(1, "GET /healthz 200")).is_none());
    let warned = "level=warn msg=\"retrying\"\nTraceback (most recent call last):\n  File \"/a.py\", line 1, in f\nOSError: x";
    assert!(
        from_log(&l, &entry(1, warned)).is_none(),
        "a handled exception logged at warn"
    );
    let errored = from_log(
        &labels(&[("service_name", "api"), ("level", "error")]),
        &entry(1, "boom 42"),
    )
    .unwrap();
    assert_eq!(
        (errored.title.as_str(), errored.type_name.as_str()),
        ("boom <num>", "")
    );
    // OpenTelemetry's exception attributes.
    let mut otel = entry(5, "charge failed");
    otel.metadata = vec![
        ("exception_type".into(), "ZeroDivisionError".into()),
        ("exception_message".into(), "division by zero".into()),
        (
            "exception_stacktrace".into(),
            "Traceback (most recent call last):\n  File \"/app/x.py\", line 3, in ratio\n    a / b\nZeroDivisionError: division by zero".into(),
        ),
        ("trace_id".into(), "0af7651916cd43dd8448eb211c80319c".into()),
    ];
    let ev = from_log(&l, &otel).unwrap();
    assert_eq!(ev.title, "ZeroDivisionError: division by zero");
    assert_eq!(ev.culprit, "/app/x.py in ratio");
    assert_eq!(ev.cx.trace_id, "0af7651916cd43dd8448eb211c80319c");
}

fn batch(service: &str, lines: &[(i64, &str)]) -> LogBatch {
    LogBatch {
        streams: vec![LogStream {
            labels: labels(&[("service_name", service), ("level", "error")]),
            entries: lines.iter().map(|(t, l)| entry(*t, l)).collect(),
        }],
    }
}

fn engine(dir: &Path, config: ErrorsConfig) -> Engine {
    let retention = Retention::all(Duration::from_secs(100 * 365 * 86400));
    Engine::open_with(dir, retention, config).unwrap().0
}

fn now() -> i64 {
    crate::api::params::now_ns()
}

fn all() -> Filter {
    Filter {
        service: None,
        status: None,
        since_ns: i64::MIN,
        limit: 1000,
    }
}

#[tokio::test]
async fn issues_count_tag_lines_and_survive_a_crash_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let t = now();
    {
        let e = engine(dir.path(), ErrorsConfig::default());
        e.ingest_logs(batch(
            "api",
            &[(t, "timeout after 30s"), (t + 1, "timeout after 12s")],
        ))
        .await
        .unwrap();
        e.ingest_logs(batch("api", &[(t + 2, "disk full")]))
            .await
            .unwrap();
        e.commit().unwrap();
        // The lines carry their issue, searchable with `| error_issue="..."`.
        let issues = e.errors().list(&all());
        assert_eq!(issues.len(), 2);
        assert_eq!(issues.iter().map(|i| i.count).sum::<u64>(), 3);
        e.ingest_logs(batch("api", &[(t + 3, "timeout after 1s")]))
            .await
            .unwrap();
        // Dropped without a close: the crash. The last push is only in the WAL (and the state
        // file was written less than 10 s ago, so it lacks it too).
    }
    let e = engine(dir.path(), ErrorsConfig::default());
    let issues = e.errors().list(&all());
    let timeout = issues.iter().find(|i| i.title == "timeout after <num>s").unwrap();
    assert_eq!(timeout.count, 3, "replayed once, not lost and not twice");
    assert_eq!(timeout.last_seen_ns, t + 3);
    assert_eq!(timeout.occurrences.len(), 3);
    e.close().unwrap();
    let e = engine(dir.path(), ErrorsConfig::default());
    assert_eq!(
        e.errors().get(&timeout.id).unwrap().count,
        3,
        "after a clean close"
    );
    let mut text = String::new();
    e.errors().render_metrics(&mut text);
    assert!(
        text.contains(&format!(
            "obs_error_events_total{{service_name=\"api\",issue=\"{}\"}} 3",
            timeout.id
        )),
        "{text}"
    );
    assert!(text.contains("reason=\"new\""), "{text}");
}

#[tokio::test]
async fn resolved_issues_seen_again_regress_and_ids_resolve_by_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), ErrorsConfig::default());
    let t = now();
    e.ingest_logs(batch("api", &[(t - 60_000_000_000, "payment gateway 502")]))
        .await
        .unwrap();
    let id = e.errors().list(&all())[0].id.clone();
    assert!(e.errors().get(&id[..3]).is_err(), "too short a prefix");
    let resolved = e.errors().set_status(&id[..6], Status::Resolved).unwrap();
    assert_eq!(resolved.status, Status::Resolved);
    // An event from before the resolve (a collector catching up) does not reopen it.
    e.ingest_logs(batch("api", &[(t - 30_000_000_000, "payment gateway 503")]))
        .await
        .unwrap();
    assert_eq!(e.errors().get(&id).unwrap().status, Status::Resolved);
    e.ingest_logs(batch("api", &[(t + 1_000_000_000, "payment gateway 504")]))
        .await
        .unwrap();
    let back = e.errors().get(&id).unwrap();
    assert_eq!(
        (back.status, back.regression, back.count),
        (Status::Unresolved, true, 3)
    );
    let mut text = String::new();
    e.errors().render_metrics(&mut text);
    assert!(text.contains("reason=\"regression\""), "{text}");
    // Ignored issues count on, quietly.
    e.errors().set_status(&id, Status::Ignored).unwrap();
    e.ingest_logs(batch("api", &[(t + 2_000_000_000, "payment gateway 500")]))
        .await
        .unwrap();
    assert_eq!(e.errors().get(&id).unwrap().status, Status::Ignored);
}

#[tokio::test]
async fn issue_and_label_counts_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let config = ErrorsConfig {
        max_issues: 3,
        metric_issues_per_service: 2,
        ..ErrorsConfig::default()
    };
    let e = engine(dir.path(), config);
    let t = now();
    let kinds = ["alpha", "beta", "gamma", "delta", "epsilon"];
    let lines: Vec<(i64, String)> = kinds
        .iter()
        .map(|k| (t, format!("failure of kind {k}")))
        .collect();
    let lines: Vec<(i64, &str)> = lines.iter().map(|(t, l)| (*t, l.as_str())).collect();
    e.ingest_logs(batch("api", &lines)).await.unwrap();
    assert_eq!(e.errors().list(&all()).len(), 3);
    let mut text = String::new();
    e.errors().render_metrics(&mut text);
    let labelled = text
        .lines()
        .filter(|l| l.starts_with("obs_error_events_total{"))
        .count();
    assert_eq!(labelled, 3, "two issues and other: {text}");
    assert!(
        text.contains("issue=\"other\"} 3"),
        "one tracked issue past the cap, two dropped: {text}"
    );
    assert!(text.contains("obs_error_events_dropped_total 2"), "{text}");
}

#[tokio::test]
async fn client_sent_issue_tags_are_replaced_and_disabled_tracking_costs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), ErrorsConfig::default());
    let mut b = batch("api", &[(now(), "fine really")]);
    b.streams[0].labels.insert("level".into(), "info".into());
    b.streams[0].entries[0]
        .metadata
        .push((ISSUE_KEY.into(), "forged".into()));
    let found = e.errors().annotate_logs(&mut b, &[]);
    assert!(found.is_empty());
    assert!(
        b.streams[0].entries[0].metadata.is_empty(),
        "a forged tag is removed"
    );
    let dir2 = tempfile::tempdir().unwrap();
    let off = engine(
        dir2.path(),
        ErrorsConfig {
            enabled: false,
            ..ErrorsConfig::default()
        },
    );
    off.ingest_logs(batch("api", &[(now(), "boom")])).await.unwrap();
    assert!(off.errors().list(&all()).is_empty());
}

#[test]
fn a_corrupt_issues_file_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("errors")).unwrap();
    std::fs::write(dir.path().join("errors/issues.json"), b"{not json").unwrap();
    let tracker = Tracker::open(dir.path(), ErrorsConfig::default()).unwrap();
    assert!(tracker.list(&all()).is_empty());
    assert!(dir.path().join("errors/issues.json.corrupt").exists());
}

#[test]
fn sentry_envelopes_are_split_into_items() {
    let event = br#"{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","exception":{"values":[{"type":"KeyError","value":"'x'"}]}}"#;
    let mut body = b"{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\",\"dsn\":\"http://k@h/1\"}\n".to_vec();
    body.extend_from_slice(format!("{{\"type\":\"event\",\"length\":{}}}\n", event.len()).as_bytes());
    body.extend_from_slice(event);
    body.extend_from_slice(b"\n{\"type\":\"session\"}\n{\"started\":\"2026-12-05T10:00:00Z\"}\n");
    let items = sentry::envelope_items(&body).unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!((items[0].0.as_str(), items[0].1), ("event", &event[..]));
    assert_eq!(items[1].0, "session");
    assert!(sentry::envelope_items(b"{}\n{\"type\":\"event\",\"length\":999}\n{}").is_err());
    assert!(sentry::envelope_items(b"not json").is_err());
}

#[test]
fn sentry_events_become_lines_that_group_like_everything_else() {
    let event = serde_json::json!({
        "event_id": "9ec79c33ec9942ab8353589fcb2e04dc",
        "timestamp": 1764928800.5,
        "level": "error",
        "platform": "python",
        "server_name": "web-1",
        "release": "shop@1.2.3",
        "environment": "production",
        "user": {"id": "u-17"},
        "tags": {"service.name": "shop"},
        "contexts": {"trace": {"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331"}},
        "breadcrumbs": {"values": [{"message": "clicked pay"}]},
        "modules": {"django": "5.0"},
        "exception": {"values": [
            {"type": "KeyError", "value": "'country'"},
            {"type": "ChargeError", "value": "order 17 failed", "stacktrace": {"frames": [
                {"filename": "django/core/handlers.py", "function": "inner", "module": "django.core.handlers", "in_app": false, "lineno": 55},
                {"filename": "shop/views.py", "function": "charge", "module": "shop.views", "in_app": true, "lineno": 42},
            ]}},
        ]},
    });
    let (labels, entry) = sentry::to_log("1", None, event, 0).unwrap();
    assert_eq!(labels["service_name"], "shop");
    assert_eq!(labels["source"], "sentry");
    assert_eq!(entry.ts_ns, 1_764_928_800_500_000_000);
    assert!(entry.line.contains("clicked pay"), "breadcrumbs are kept");
    assert!(!entry.line.contains("django\":\"5.0"), "the module list is not");
    let ev = from_log(&labels, &entry).unwrap();
    assert_eq!(ev.type_name, "ChargeError");
    assert_eq!(ev.title, "ChargeError: order <num> failed");
    assert_eq!(ev.culprit, "shop.views in charge");
    assert_eq!(
        (
            ev.cx.release.as_str(),
            ev.cx.environment.as_str(),
            ev.cx.host.as_str()
        ),
        ("shop@1.2.3", "production", "web-1")
    );
    assert_eq!(ev.cx.trace_id, "0af7651916cd43dd8448eb211c80319c");
    assert_eq!(ev.cx.user.as_deref(), Some("u-17"));
    // An SDK fingerprint wins over the default grouping.
    let custom = |fp: serde_json::Value, value: &str| {
        let e =
            serde_json::json!({"fingerprint": fp, "exception": {"values": [{"type": "E", "value": value}]}});
        let (l, en) = sentry::to_log("1", Some("svc"), e, 0).unwrap();
        from_log(&l, &en).unwrap().issue
    };
    assert_eq!(
        custom(serde_json::json!(["db"]), "a"),
        custom(serde_json::json!(["db"]), "b")
    );
    assert_ne!(
        custom(serde_json::json!(["{{ default }}", "x"]), "a"),
        custom(serde_json::json!(["{{ default }}", "x"]), "b")
    );
}

mod http {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use std::io::Write as _;

    use crate::api::tests::{token, TestStore};
    use crate::Role;

    fn store() -> TestStore {
        TestStore::new(&[
            token("app", Role::Ingest, "ingest-secret-1"),
            token("grafana", Role::Query, "query-secret-1"),
            token("ops", Role::Admin, "admin-secret-1"),
        ])
    }

    fn envelope(event: &str, extra: &str) -> Vec<u8> {
        format!(
            "{{\"event_id\":\"9ec79c33ec9942ab8353589fcb2e04dc\"}}\n{{\"type\":\"event\",\"length\":{}}}\n{event}\n{extra}",
            event.len()
        )
        .into_bytes()
    }

    async fn post_envelope(
        s: &TestStore,
        auth: Option<&str>,
        body: Vec<u8>,
        gzip: bool,
    ) -> (StatusCode, String) {
        let mut req =
            Request::post("/api/1/envelope/").header("content-type", "application/x-sentry-envelope");
        if let Some(key) = auth {
            req = req.header(
                "x-sentry-auth",
                format!("Sentry sentry_version=7, sentry_key={key}, sentry_client=test/1"),
            );
        }
        let body = if gzip {
            req = req.header("content-encoding", "gzip");
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(&body).unwrap();
            e.finish().unwrap()
        } else {
            body
        };
        s.send(req.body(Body::from(body)).unwrap()).await
    }

    async fn send(s: &TestStore, method: &str, uri: &str, bearer: &str) -> (StatusCode, String) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {bearer}"))
            .body(Body::empty())
            .unwrap();
        s.send(req).await
    }

    const EVENT: &str = r#"{"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","level":"error","exception":{"values":[{"type":"KeyError","value":"'x'","stacktrace":{"frames":[{"module":"shop.views","function":"charge","in_app":true,"lineno":3}]}}]}}"#;

    #[tokio::test]
    async fn the_dsn_key_is_an_ingest_token() {
        let s = store();
        let body = || envelope(EVENT, "");
        assert_eq!(
            post_envelope(&s, None, body(), false).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            post_envelope(&s, Some("wrong-secret-1"), body(), false).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            post_envelope(&s, Some("query-secret-1"), body(), false).await.0,
            StatusCode::FORBIDDEN
        );
        let (status, answer) = post_envelope(&s, Some("ingest-secret-1"), body(), true).await;
        assert_eq!(
            (status, answer.as_str()),
            (StatusCode::OK, r#"{"id":"9ec79c33ec9942ab8353589fcb2e04dc"}"#)
        );
        // A browser SDK: the key in the query string, cross-origin.
        let req = Request::post("/api/1/envelope/?sentry_key=ingest-secret-1&sentry_version=7")
            .header("origin", "https://shop.example.org")
            .body(Body::from(body()))
            .unwrap();
        let resp = tower::ServiceExt::oneshot(s.app(), req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["access-control-allow-origin"], "*");
        let (status, _) = s
            .post(
                "/api/1/store/?sentry_key=ingest-secret-1",
                "application/json",
                EVENT,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        // Reading needs a query token; resolving an admin one.
        assert_eq!(s.get("/api/v1/errors").await.0, StatusCode::UNAUTHORIZED);
        let (status, list) = send(&s, "GET", "/api/v1/errors", "query-secret-1").await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let list: serde_json::Value = serde_json::from_str(&list).unwrap();
        assert_eq!(list["data"][0]["count"], 3, "{list}");
        assert_eq!(list["data"][0]["service"], "sentry-1");
        assert_eq!(list["data"][0]["culprit"], "shop.views in charge");
        let id = list["data"][0]["id"].as_str().unwrap();
        let resolve = format!("/api/v1/errors/{id}/resolve");
        assert_eq!(
            send(&s, "POST", &resolve, "query-secret-1").await.0,
            StatusCode::FORBIDDEN
        );
        let (status, done) = send(&s, "POST", &resolve, "admin-secret-1").await;
        assert_eq!(status, StatusCode::OK, "{done}");
        assert!(done.contains("\"status\":\"resolved\""), "{done}");
        let (status, shown) = send(
            &s,
            "GET",
            &format!("/api/v1/errors/{}", &id[..6]),
            "query-secret-1",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            shown.contains("\"occurrences\"") && shown.contains("error_issue"),
            "{shown}"
        );
        assert_eq!(
            send(&s, "GET", "/api/v1/errors/ffffffffffff", "query-secret-1")
                .await
                .0,
            StatusCode::NOT_FOUND
        );
    }

    #[tokio::test]
    async fn other_items_are_dropped_and_bad_envelopes_refused_alone() {
        let s = store();
        let key = Some("ingest-secret-1");
        let extra = "{\"type\":\"transaction\"}\n{\"spans\":[]}\n{\"type\":\"client_report\"}\n{}\n{\"type\":\"weird\"}\n{}\n";
        assert_eq!(
            post_envelope(&s, key, envelope(EVENT, extra), false).await.0,
            StatusCode::OK
        );
        let only_session = b"{}\n{\"type\":\"session\"}\n{\"sid\":\"x\"}\n".to_vec();
        assert_eq!(
            post_envelope(&s, key, only_session, false).await.0,
            StatusCode::OK
        );
        let mut text = String::new();
        s.state.engine.errors().render_metrics(&mut text);
        for kind in ["transaction", "client_report", "session", "other"] {
            assert!(
                text.contains(&format!("obs_sentry_items_dropped_total{{type=\"{kind}\"}} 1")),
                "{kind}: {text}"
            );
        }
        for (body, says) in [
            (b"not an envelope".to_vec(), "envelope header is not JSON"),
            (
                b"{}\n{\"type\":\"event\",\"length\":99999}\n{}".to_vec(),
                "says length 99999",
            ),
            (b"{}\n{\"type\":\"event\"}\n[1,2]\n".to_vec(), "not a JSON object"),
            (b"{}\n{\"type\":\"event\"}\n{\"a\":\n".to_vec(), "not JSON"),
        ] {
            let (status, answer) = post_envelope(&s, key, body, false).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            assert!(answer.contains(says), "{says}: {answer}");
        }
        // An event of 400 KiB of breadcrumbs is kept without them; 400 KiB of message is refused.
        let crumbs: Vec<_> = (0..4000)
            .map(|i| serde_json::json!({"message": format!("{i:0>100}")}))
            .collect();
        let big = serde_json::json!({"message": "slow", "breadcrumbs": crumbs}).to_string();
        assert_eq!(
            post_envelope(&s, key, envelope(&big, ""), false).await.0,
            StatusCode::OK
        );
        let huge = serde_json::json!({"message": "x".repeat(400 << 10)}).to_string();
        let (status, answer) = post_envelope(&s, key, envelope(&huge, ""), false).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(answer.contains("at most 262144 are kept"), "{answer}");
        // 100,000 nested arrays in an event: serde_json's depth limit answers, no stack
        // overflow; and the store stays up.
        let deep = format!("{{\"message\": {}{}}}", "[".repeat(100_000), "]".repeat(100_000));
        let (status, answer) = post_envelope(&s, key, envelope(&deep, ""), false).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer.contains("recursion limit"), "{answer}");
        assert_eq!(
            post_envelope(&s, key, envelope(EVENT, ""), false).await.0,
            StatusCode::OK
        );
        let (status, _) = s
            .post(
                "/api/bad%20project/store/?sentry_key=ingest-secret-1",
                "application/json",
                EVENT,
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
    }
}
