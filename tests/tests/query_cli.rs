//! `obs query` against a real store: logs, metrics (instant and range), labels, series and
//! traces, in human and JSON output; the store's error message comes through unchanged.

use obs_e2e::{http_get, http_post, now_ns, obs_bin, Proc, StoreProc};
use obs_store::prompb;

/// Pushes logs, samples and a trace, and waits until the store has committed them.
fn seed(store: &StoreProc) {
    let base = &store.url("");
    let t = now_ns();
    let values: Vec<_> = (0..5)
        .map(|i| {
            serde_json::json!([
                (t - (5 - i) * 1_000_000_000).to_string(),
                format!("GET /api/{i} status=500")
            ])
        })
        .collect();
    let body =
        serde_json::json!({"streams": [{"stream": {"app": "web", "level": "error"}, "values": values}]});
    let (status, text) = http_post(
        &format!("{base}/loki/api/v1/push"),
        "application/json",
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 204, "{text}");

    use prost::Message;
    let label = |n: &str, v: &str| prompb::Label {
        name: n.into(),
        value: v.into(),
    };
    let ms = t / 1_000_000;
    let series = |host: &str, scale: f64| prompb::TimeSeries {
        labels: vec![label("__name__", "cpu_busy"), label("host", host)],
        samples: (0..60)
            .map(|i| prompb::Sample {
                value: scale * i as f64,
                timestamp: ms - (60 - i) * 10_000,
            })
            .collect(),
    };
    let req = prompb::WriteRequest {
        timeseries: vec![series("a", 1.0), series("b", 2.0)],
        metadata: Vec::new(),
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    let (status, text) = http_post(&format!("{base}/api/v1/write"), "application/x-protobuf", &body).unwrap();
    assert_eq!(status, 204, "{text}");

    let span = |id: &str, parent: &str, name: &str, start: i64, end: i64| {
        serde_json::json!({"traceId": "0af7651916cd43dd8448eb211c80319c", "spanId": id, "parentSpanId": parent,
            "name": name, "kind": 2, "startTimeUnixNano": start.to_string(), "endTimeUnixNano": end.to_string(),
            "status": {"code": if name == "db query" { 2 } else { 0 }}})
    };
    let body = serde_json::json!({"resourceSpans": [{
    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "checkout"}}]},
    "scopeSpans": [{"spans": [
        span("b7ad6b7169203331", "", "POST /pay", t - 50_000_000, t),
        span("c7ad6b7169203331", "b7ad6b7169203331", "db query", t - 40_000_000, t - 10_000_000),
    ]}]}]});
    let (status, text) = http_post(
        &format!("{base}/v1/traces"),
        "application/json",
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 200, "{text}");
    // Searchable once committed (every second).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let trace = store.url("/api/traces/0af7651916cd43dd8448eb211c80319c");
    while store.log_lines(r#"{app="web"}"#).len() < 5 || !matches!(http_get(&trace), Ok((200, _))) {
        assert!(
            std::time::Instant::now() < deadline,
            "seeded data not searchable after 30 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn query_commands_print_what_the_store_holds() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProc::start(dir.path());
    let base = store.url("");
    seed(&store);
    let obs = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--store", &base]);
        Proc::run(obs_bin(), &all, dir.path())
    };

    let (code, out, err) = obs(&[
        "query",
        "logs",
        r#"{app="web"} |= "status=500""#,
        "--since",
        "10m",
    ]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert!(
        lines[0].ends_with("GET /api/0 status=500") && lines[4].ends_with("GET /api/4 status=500"),
        "{out}"
    );
    assert!(
        lines[0].contains(r#"app="web""#) && lines[0].contains('Z'),
        "{out}"
    );

    let (code, out, _) = obs(&[
        "query",
        "logs",
        r#"sum(count_over_time({app="web"}[10m]))"#,
        "--output",
        "json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["resultType"], "matrix", "{out}");

    let (code, out, err) = obs(&["query", "metrics", "cpu_busy"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(r#"cpu_busy{host="a"}"#) && out.contains("59"),
        "{out}"
    );
    assert!(
        out.contains(r#"cpu_busy{host="b"}"#) && out.contains("118"),
        "{out}"
    );

    let (code, out, err) = obs(&[
        "query",
        "metrics",
        "sum(cpu_busy)",
        "--since",
        "10m",
        "--step",
        "30s",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains('▁') && out.contains('█') && out.contains("last 177"),
        "{out}"
    );

    let (code, out, _) = obs(&["query", "labels"]);
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l == "host"), "{out}");
    let (code, out, _) = obs(&["query", "labels", "host", "--output", "json"]);
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::json!(["a", "b"])
    );
    let (code, out, _) = obs(&["query", "labels", "--logs"]);
    assert_eq!(code, 0);
    assert!(out.lines().any(|l| l == "app"), "{out}");
    let (code, out, _) = obs(&["query", "series", r#"cpu_busy{host="b"}"#]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), r#"cpu_busy{host="b"}"#);

    let (code, out, err) = obs(&["query", "traces", "0af7651916cd43dd8448eb211c80319c"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("POST /pay [checkout] 50.00ms"), "{out}");
    assert!(
        lines[1].starts_with("  db query [checkout] 30.00ms (+10.00ms) ERROR"),
        "{out}"
    );
    let (code, out, err) = obs(&[
        "query",
        "traces",
        "--search",
        r#"{ resource.service.name = "checkout" }"#,
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("0af7651916cd43dd8448eb211c80319c") && out.contains("POST /pay"),
        "{out}"
    );

    // The store's own message, not a stack of wrappers.
    let (code, _, err) = obs(&["query", "metrics", "sum(("]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("error: invalid parameter \"query\": unclosed left parenthesis"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn follow_prints_lines_as_they_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProc::start(dir.path());
    let base = store.url("");
    let mut follow = Proc::obs(
        "follow",
        &["query", "logs", r#"{app="tailed"}"#, "--follow", "--store", &base],
        dir.path(),
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut pushed = 0;
    loop {
        // Push until the follower (which connects after its first query) prints one.
        let body = serde_json::json!({"streams": [{"stream": {"app": "tailed"},
            "values": [[now_ns().to_string(), format!("late line {pushed}")]]}]});
        let (status, _) = http_post(
            &format!("{base}/loki/api/v1/push"),
            "application/json",
            body.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(status, 204);
        pushed += 1;
        std::thread::sleep(std::time::Duration::from_millis(300));
        let (out, _) = follow.output();
        if out.contains("late line") {
            let line = out.lines().find(|l| l.contains("late line")).unwrap();
            assert!(line.contains(r#"app="tailed""#) && line.contains('Z'), "{out}");
            break;
        }
        assert!(
            follow.wait_timeout(std::time::Duration::ZERO).is_none(),
            "exited: {}",
            follow.describe()
        );
        assert!(
            std::time::Instant::now() < deadline,
            "nothing followed: {}",
            follow.describe()
        );
    }
}

/// The human output users read, pinned with insta snapshots (times, ports and paths
/// normalised); a change to any of it shows up as a snapshot diff in review.
#[test]
fn human_output_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProc::start(dir.path());
    let base = store.url("");
    seed(&store);
    let obs = |args: &[&str]| {
        let mut all = args.to_vec();
        if args[0] != "grafana" {
            all.extend(["--store", &base]);
        }
        let (code, out, err) = Proc::run(obs_bin(), &all, dir.path());
        format!("$ obs {}\nexit {code}\n{out}{err}", args.join(" "))
    };
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?",
        "[TIME]",
    );
    settings.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[PORT]");
    settings.add_filter(r"\d+(\.\d+)? (B|KiB|MiB|GiB)\b", "[SIZE]");
    settings.add_filter(r"\(\d+%\)", "([PCT])");
    settings.add_filter(&regex_escape(&dir.path().display().to_string()), "[DIR]");
    settings.bind(|| {
        insta::assert_snapshot!(
            "logs",
            obs(&["query", "logs", r#"{app="web"}"#, "--since", "10m"])
        );
        insta::assert_snapshot!("metrics_instant", obs(&["query", "metrics", "cpu_busy"]));
        insta::assert_snapshot!("labels", obs(&["query", "labels"]));
        insta::assert_snapshot!("series", obs(&["query", "series", "cpu_busy"]));
        insta::assert_snapshot!(
            "trace",
            obs(&["query", "traces", "0af7651916cd43dd8448eb211c80319c"])
        );
        insta::assert_snapshot!(
            "trace_search",
            obs(&["query", "traces", "--search", "{ status = error }"])
        );
        insta::assert_snapshot!("bad_query", obs(&["query", "metrics", "sum(("]));
        insta::assert_snapshot!("status", obs(&["status"]));
        insta::assert_snapshot!(
            "grafana_provision",
            obs(&["grafana", "provision", "--out", "grafana"])
        );
    });
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\\' | '.' | '+' | '*' | '?' | '(' | ')' | '|' | '[' | ']' | '{' | '}' | '^' | '$' => {
                format!("\\{c}")
            }
            c => c.to_string(),
        })
        .collect()
}
