//! Apps send to the collector's OTLP receiver with the official OpenTelemetry Python SDK
//! (gRPC and HTTP); logs and traces arrive in the store through the spool. The collector's
//! host metrics arrive under node_exporter names, and its own counters are on `/metrics`.

use std::path::Path;
use std::time::{Duration, Instant};

use obs_e2e::{enc, free_port, http_get, Proc, StoreProc};

fn send(
    dir: &Path,
    protocol: &str,
    endpoint: &str,
    service: &str,
    logs: usize,
    traces: usize,
) -> serde_json::Value {
    obs_e2e::otlp_send(dir, protocol, endpoint, service, (logs, traces), &[])
}

/// Polls `url` until `ok` accepts the JSON answer.
fn poll(
    url: &str,
    what: &str,
    collector: &mut Proc,
    ok: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, body)) = http_get(url) {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            if ok(&v) {
                return v;
            }
        }
        assert!(
            collector.wait_timeout(Duration::ZERO).is_none(),
            "collector exited: {}",
            collector.describe()
        );
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            collector.describe()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn result_len(v: &serde_json::Value) -> usize {
    v["data"]["result"].as_array().map_or(0, Vec::len)
}

#[test]
fn python_sdk_to_the_collector_reaches_the_store_with_host_metrics() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let store = StoreProc::start(dir);
    let (grpc, http) = (free_port(), free_port());
    std::fs::write(
        dir.join("collector.toml"),
        format!(
            "version = 1\n[collector]\nstore = \"http://{}\"\notlp_grpc_addr = \"127.0.0.1:{grpc}\"\notlp_http_addr = \"127.0.0.1:{http}\"\nhost_metrics_interval_secs = 1\n",
            store.grpc_addr()
        ),
    )
    .unwrap();
    let mut collector = Proc::obs(
        "collector",
        &["collector", "--config", "collector.toml", "--data-dir", "cdata"],
        dir,
    );
    collector.wait_stderr("OTLP receiver listening", Duration::from_secs(30));

    let sent = send(
        dir,
        "grpc",
        &format!("http://127.0.0.1:{grpc}"),
        "via-collector-grpc",
        12,
        1,
    );
    send(
        dir,
        "http",
        &format!("http://127.0.0.1:{http}"),
        "via-collector-http",
        7,
        0,
    );

    let logs = |svc: &str| {
        store.url(&format!(
            "/loki/api/v1/query_range?query={}&limit=100&since=1h",
            enc(&format!(r#"{{service_name="{svc}"}}"#))
        ))
    };
    let count = |v: &serde_json::Value| -> usize {
        v["data"]["result"].as_array().map_or(0, |r| {
            r.iter().map(|s| s["values"].as_array().map_or(0, Vec::len)).sum()
        })
    };
    // 12 log lines, and one more logged inside the trace's span.
    let v = poll(&logs("via-collector-grpc"), "gRPC logs", &mut collector, |v| {
        count(v) >= 13
    });
    assert_eq!(count(&v), 13, "{v}");
    assert_eq!(
        v["data"]["result"][0]["stream"]["host_name"], "pyhost",
        "the app's resource is kept: {v}"
    );
    let v = poll(&logs("via-collector-http"), "HTTP logs", &mut collector, |v| {
        count(v) >= 7
    });
    assert_eq!(count(&v), 7, "{v}");

    let trace_id = sent["trace_ids"][0].as_str().expect("a trace id").to_string();
    poll(
        &store.url(&format!("/api/v2/traces/{trace_id}")),
        "the trace",
        &mut collector,
        |v| {
            v["trace"]["resourceSpans"]
                .as_array()
                .is_some_and(|a| !a.is_empty())
        },
    );

    let host = |q: &str| store.url(&format!("/api/v1/query?query={}", enc(q)));
    let v = poll(
        &host(r#"node_cpu_seconds_total{job="node", mode="idle"}"#),
        "host CPU",
        &mut collector,
        |v| result_len(v) > 0,
    );
    assert!(
        v["data"]["result"][0]["metric"]["instance"]
            .as_str()
            .is_some_and(|i| !i.is_empty()),
        "{v}"
    );
    poll(
        &host(r#"node_memory_MemAvailable_bytes{job="node"} > 0"#),
        "host memory",
        &mut collector,
        |v| result_len(v) == 1,
    );
    poll(
        &host(r#"node_filesystem_size_bytes{job="node"}"#),
        "filesystems",
        &mut collector,
        |v| result_len(v) > 0,
    );
    // Counters are counters: rate() over two collections works.
    poll(
        &host(r#"sum(rate(node_cpu_seconds_total{job="node"}[1m])) > 0"#),
        "CPU rate",
        &mut collector,
        |v| result_len(v) == 1,
    );
    poll(
        &host(r#"obs_collector_shipped_requests_total{job="obs-collector"} > 0"#),
        "own metrics in the store",
        &mut collector,
        |v| result_len(v) == 1,
    );

    // `obs status` lists this collector, seen just now, nothing dropped.
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let url = store.url("");
    // The disk check is off here (this machine's disk may be nearly full); it is
    // checked on its own just below with a threshold no disk can meet.
    let status = |extra: &[&str]| {
        let mut args = vec!["status", "--store", &url];
        args.extend_from_slice(extra);
        Proc::run(obs_e2e::obs_bin(), &args, dir)
    };
    let (code, out, err) = status(&["--min-disk-free", "0"]);
    assert_eq!(code, 0, "{out}{err}");
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{} ", hostname.trim())))
        .unwrap_or_else(|| panic!("no row for this host: {out}"));
    assert!(row.contains(" ago") && row.trim_end().ends_with('0'), "{out}");
    let (code, out, _) = status(&["--min-disk-free", "0", "--output", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(
        v["collectors"][hostname.trim()]["seen"]
            .as_f64()
            .is_some_and(|t| t > 1.7e9),
        "{v}"
    );

    let (code, out, err) = status(&["--min-disk-free", "100"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("problem: store: disk almost full"), "{out}");

    let (status, text) = http_get(&format!("http://127.0.0.1:{http}/metrics")).unwrap();
    assert_eq!(status, 200);
    let shipped: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("obs_collector_shipped_requests_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(shipped >= 2.0, "{text}");
    assert!(
        text.contains("obs_collector_spool_dropped_records_total 0"),
        "{text}"
    );

    // A malformed OTLP/HTTP body is refused with a reason.
    let (status, body) = obs_e2e::http_post(
        &format!("http://127.0.0.1:{http}/v1/logs"),
        "application/json",
        b"{\"resourceLogs\": 7}",
    )
    .unwrap();
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("invalid OTLP JSON"), "{body}");
}

#[test]
fn a_receiver_off_loopback_needs_a_token() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(
        dir.join("c.toml"),
        format!(
            "version = 1\n[collector]\notlp_http_addr = \"0.0.0.0:{}\"\n",
            free_port()
        ),
    )
    .unwrap();
    let (code, _, err) = Proc::run(
        obs_e2e::obs_bin(),
        &["collector", "--config", "c.toml", "--data-dir", "d"],
        dir,
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("without a token") && err.contains("otlp_token_file"),
        "{err}"
    );
}
