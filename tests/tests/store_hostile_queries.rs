//! Regression (issue 21): queries built to overflow a stack used to abort the whole store
//! (`thread 'tokio-rt-worker' has overflowed its stack`): PromQL `sum(` nested 3,000 deep
//! and `1+1+…` with 5,000 terms, LogQL `sum(` nested 3,000 deep. Against a running store, in
//! PromQL, LogQL and TraceQL, on every endpoint that parses one: each over-deep query gets a
//! 400 naming the limit, the deepest accepted ones are answered correctly, and the store is
//! still up afterwards.

use obs_e2e::{enc, http_get, http_post, now_ns, StoreProc};

fn nested(depth: usize, f: &str, inner: &str) -> String {
    format!("{}{inner}{}", format!("{f}(").repeat(depth), ")".repeat(depth))
}

fn chain(terms: usize, term: &str, op: &str) -> String {
    vec![term; terms].join(op)
}

fn post_form(store: &StoreProc, path: &str, params: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let body: String = params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let (status, body) = http_post(
        &store.url(path),
        "application/x-www-form-urlencoded",
        body.as_bytes(),
    )
    .unwrap_or_else(|e| panic!("POST {path}: {e}\n{}", store.proc.describe()));
    let json = serde_json::from_str(&body).unwrap_or(serde_json::Value::String(body));
    (status, json)
}

/// The request is refused with a 400 whose message names `limit`.
fn refused(store: &StoreProc, path: &str, params: &[(&str, &str)], limit: &str) {
    let (status, body) = post_form(store, path, params);
    assert_eq!(status, 400, "{path}: {body}");
    assert!(body.to_string().contains(limit), "{path}: {body}");
}

fn still_answers(store: &StoreProc) {
    let (status, body) = post_form(store, "/api/v1/query", &[("query", "1+1"), ("time", "4")]);
    assert_eq!(status, 200, "{body}\n{}", store.proc.describe());
    assert_eq!(body["data"]["result"][1], "2");
}

#[test]
fn promql_nested_and_chained_queries_are_refused_or_answered_never_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProc::start(dir.path());
    let deep_sum = nested(3_000, "sum", "up");
    let long_sum = chain(5_000, "1", "+");
    let deep = "query nests 3000 levels deep; the limit is 1000";
    let long = "query has 4999 operators; the limit is 1000";
    let range = [("start", "0"), ("end", "60"), ("step", "15")];
    for (q, limit) in [(&deep_sum, deep), (&long_sum, long)] {
        refused(&store, "/api/v1/query", &[("query", q)], limit);
        let mut params = vec![("query", q.as_str())];
        params.extend(range);
        refused(&store, "/api/v1/query_range", &params, limit);
        refused(&store, "/api/v1/series", &[("match[]", q)], limit);
        refused(&store, "/api/v1/labels", &[("match[]", q)], limit);
    }
    let (status, _) = post_form(&store, "/api/v1/query", &[("query", &"(".repeat(100_000))]);
    assert_eq!(status, 400);
    let huge = format!("up{{a=\"{}\"}}", "x".repeat(200_000));
    refused(
        &store,
        "/api/v1/query",
        &[("query", &huge)],
        "the limit is 131072",
    );
    // Brackets inside a regex are the regex parser's to bound (nesting limit 250).
    let regex = format!("up{{a=~\"{}\"}}", nested(20_000, "", "x"));
    let (status, _) = post_form(&store, "/api/v1/query", &[("query", &regex)]);
    assert_eq!(status, 400);
    still_answers(&store);

    // Prometheus accepts 1,000 levels; so does the store, and answers them right.
    let at_limit = [
        (nested(999, "sum", "vector(1)"), "1"),
        (chain(1_001, "1", "+"), "1001"),
        (format!("{}1{}", "(1+".repeat(1_000), ")".repeat(1_000)), "1001"),
        (format!("{}1", "-".repeat(1_000)), "1"),
    ];
    for (q, want) in &at_limit {
        let (status, body) = post_form(&store, "/api/v1/query", &[("query", q), ("time", "4")]);
        assert_eq!(status, 200, "{}: {body}", &q[..40]);
        let result = &body["data"]["result"];
        let got = result[1].as_str().or(result[0]["value"][1].as_str());
        assert_eq!(got, Some(*want), "{}: {body}", &q[..40]);
    }
    still_answers(&store);
}

#[test]
fn logql_nested_and_chained_queries_are_refused_or_answered_never_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProc::start(dir.path());
    let now = now_ns();
    let push = serde_json::json!({"streams": [{"stream": {"a": "b"}, "values": [
        [now.to_string(), "one x=1"], [(now + 1).to_string(), "two x=2"]
    ]}]});
    let (status, body) = http_post(
        &store.url("/loki/api/v1/push"),
        "application/json",
        push.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(status, 204, "{body}");

    let (start, end) = (
        (now - 3_600_000_000_000).to_string(),
        (now + 1_000_000_000).to_string(),
    );
    let deep_sum = nested(3_000, "sum", r#"count_over_time({a="b"}[1h])"#);
    let long_sum = chain(5_000, "1", "+");
    let deep_filter = format!(r#"{{a="b"}} | {}"#, nested(3_000, "", r#"x="1""#));
    let deep = "query nests 3000 levels deep; the limit is 1000";
    let long = "query has 4999 operators; the limit is 1000";
    for (q, limit) in [
        (&deep_sum, "query nests 3002 levels deep"),
        (&long_sum, long),
        (&deep_filter, deep),
    ] {
        refused(
            &store,
            "/loki/api/v1/query",
            &[("query", q), ("time", &end)],
            limit,
        );
        let p = [("query", q.as_str()), ("start", &start), ("end", &end)];
        refused(&store, "/loki/api/v1/query_range", &p, limit);
        refused(
            &store,
            "/loki/api/v1/series",
            &[("match[]", q), ("start", &start), ("end", &end)],
            limit,
        );
        refused(&store, "/loki/api/v1/index/volume", &p, limit);
        refused(&store, "/loki/api/v1/index/volume_range", &p, limit);
    }
    for regex in [
        format!("{{a=~\"{}\"}}", nested(20_000, "", "b")),
        format!("{{a=\"b\"}} |~ \"{}\"", nested(20_000, "", "x")),
    ] {
        let p = [("query", regex.as_str()), ("start", &start), ("end", &end)];
        let (status, body) = post_form(&store, "/loki/api/v1/query_range", &p);
        assert_eq!(status, 400, "{body}");
    }
    still_answers(&store);

    // The lines are searchable after the next commit (every second).
    let count = r#"count_over_time({a="b"}[1h])"#;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (_, body) = post_form(&store, "/loki/api/v1/query", &[("query", count), ("time", &end)]);
        if body["data"]["result"][0]["value"][1] == "2" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "pushed lines not searchable: {body}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // At the limits: 998 sums, the function and the selector are 1,000 levels.
    let at_limit = [
        (nested(998, "sum", r#"count_over_time({a="b"}[1h])"#), "2"),
        (chain(1_001, "1", "+"), "1001"),
        (format!("{}1{}", "(1+".repeat(1_000), ")".repeat(1_000)), "1001"),
    ];
    for (q, want) in &at_limit {
        let (status, body) = post_form(&store, "/loki/api/v1/query", &[("query", q), ("time", &end)]);
        assert_eq!(status, 200, "{}: {body}", &q[..40]);
        let result = &body["data"]["result"];
        let got = result[1].as_str().or(result[0]["value"][1].as_str());
        assert_eq!(got, Some(*want), "{}: {body}", &q[..40]);
    }
    // A label filter nested 998 deep inside a selector and a pipe: lines still filtered.
    let filter = format!(r#"{{a="b"}} | logfmt | {}"#, nested(998, "", r#"x="2""#));
    let lines: Vec<String> = store
        .log_lines(&filter)
        .into_iter()
        .map(|(_, line)| line)
        .collect();
    assert_eq!(lines, ["two x=2"]);
    still_answers(&store);
}

#[test]
fn traceql_nested_and_chained_queries_are_refused_or_answered_never_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProc::start(dir.path());
    let search = |q: &str| {
        let url = store.url(&format!("/api/search?q={}", enc(q)));
        let (status, body) = http_get(&url).unwrap_or_else(|e| panic!("{e}\n{}", store.proc.describe()));
        (status, body)
    };
    for (q, limit) in [
        (
            format!("{{ {} }}", nested(3_000, "", r#"name = "x""#)),
            "query nests 3001 levels deep",
        ),
        // (a URL holds no 5,000 of these)
        (
            format!("{{ {} }}", chain(1_500, r#"name = "x""#, " && ")),
            "query has 1499 operators",
        ),
    ] {
        let (status, body) = search(&q);
        assert_eq!(status, 400, "{body}");
        assert!(body.contains(limit), "{body}");
    }
    for q in [
        format!("{{ {} }}", nested(999, "", r#"name = "x""#)),
        format!("{{ {} }}", chain(1_001, r#"name = "x""#, " || ")),
    ] {
        let (status, body) = search(&q);
        assert_eq!(status, 200, "{body}");
    }
    still_answers(&store);
}
