//! The official OpenTelemetry Python SDK sends logs, traces and metrics to the store over
//! OTLP/gRPC and OTLP/HTTP; they come back through the Loki, Tempo and Prometheus APIs with
//! their attributes intact (metrics under Prometheus's OTLP names).

use std::path::Path;
use std::time::{Duration, Instant};

use obs_e2e::{enc, Proc, StoreProc};

fn send(
    dir: &Path,
    protocol: &str,
    endpoint: &str,
    service: &str,
    logs: usize,
    traces: usize,
) -> serde_json::Value {
    send_with(dir, protocol, endpoint, service, logs, traces, &[])
}

/// Runs `otlp_send.py`; `extra` are more arguments (e.g. `--ca FILE`).
fn send_with(
    dir: &Path,
    protocol: &str,
    endpoint: &str,
    service: &str,
    logs: usize,
    traces: usize,
    extra: &[&str],
) -> serde_json::Value {
    obs_e2e::otlp_send(dir, protocol, endpoint, service, (logs, traces), extra)
}

/// Polls a Loki query until it returns `want` lines (commits make data visible within ~1 s).
fn lines(store: &StoreProc, query: &str, want: usize) -> Vec<(serde_json::Value, String)> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = store.get_json(&format!(
            "/loki/api/v1/query_range?query={}&limit=1000&direction=forward&since=1h",
            enc(query)
        ));
        let out: Vec<(serde_json::Value, String)> = v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| {
                s["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| (s["stream"].clone(), e[1].as_str().unwrap().to_string()))
            })
            .collect();
        if out.len() >= want || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn python_sdk_logs_over_grpc_and_http_arrive_with_attributes() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProc::start(dir.path());
    send(
        dir.path(),
        "grpc",
        &format!("http://{}", store.grpc_addr()),
        "shop-grpc",
        25,
        0,
    );
    send(dir.path(), "http", &store.url(""), "shop-http", 15, 0);

    let grpc = lines(&store, r#"{service_name="shop-grpc"}"#, 25);
    assert_eq!(grpc.len(), 25, "{grpc:?}");
    let (labels, line) = &grpc[0];
    assert_eq!(labels["host_name"], "pyhost");
    assert_eq!(labels["deployment_environment"], "test");
    assert_eq!(labels["level"], "info");
    assert_eq!(
        labels["order_id"], "1000",
        "log attributes are structured metadata"
    );
    assert_eq!(line, "order placed 0");

    let http = lines(
        &store,
        r#"{service_name="shop-http", level="info"} | order_id="1014""#,
        1,
    );
    assert_eq!(http.len(), 1, "{http:?}");
    assert_eq!(http[0].1, "order placed 14");
    let all = lines(&store, r#"{service_name=~"shop-.*"}"#, 40);
    assert_eq!(all.len(), 40);
}

/// Polls until the Tempo API has the trace with `want` spans.
fn trace(store: &StoreProc, id: &str, want: usize) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = obs_e2e::http_get(&store.url(&format!("/api/v2/traces/{id}"))).unwrap();
        if status == 200 {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let spans: usize = v["trace"]["resourceSpans"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|rs| rs["scopeSpans"].as_array().unwrap().iter())
                .map(|ss| ss["spans"].as_array().unwrap().len())
                .sum();
            if spans >= want {
                return v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "trace {id} incomplete: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn python_sdk_traces_come_back_through_the_tempo_api_and_link_to_logs() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProc::start(dir.path());
    let grpc = send(
        dir.path(),
        "grpc",
        &format!("http://{}", store.grpc_addr()),
        "cart-grpc",
        0,
        2,
    );
    let http = send(dir.path(), "http", &store.url(""), "cart-http", 0, 1);
    let ids: Vec<String> = grpc["trace_ids"]
        .as_array()
        .unwrap()
        .iter()
        .chain(http["trace_ids"].as_array().unwrap())
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    for id in &ids {
        let v = trace(&store, id, 2);
        let rs = &v["trace"]["resourceSpans"][0];
        let attrs = rs["resource"]["attributes"].as_array().unwrap();
        assert!(attrs.iter().any(|a| a["key"] == "service.name"), "{rs}");
        let names: Vec<&str> = rs["scopeSpans"][0]["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&"checkout") && names.contains(&"db.query"),
            "{names:?}"
        );
    }
    // TraceQL finds the traces by resource and span attributes.
    let q = enc(r#"{ resource.service.name = "cart-grpc" && span.db.system = "sqlite" }"#);
    let v = store.get_json(&format!("/api/search?q={q}"));
    let found: Vec<&str> = v["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["traceID"].as_str().unwrap())
        .collect();
    assert_eq!(found.len(), 2, "{v}");
    assert!(found.iter().all(|f| ids.contains(&f.to_string())));
    assert_eq!(v["traces"][0]["rootTraceName"], "checkout");
    // The log written inside the span carries its trace id (logs-to-trace links).
    let linked = lines(
        &store,
        &format!(r#"{{service_name="cart-grpc"}} | trace_id="{}""#, ids[0]),
        1,
    );
    assert_eq!(linked.len(), 1, "{linked:?}");
    assert!(linked[0].1.starts_with("querying stock for order"));
}

#[test]
fn python_sdk_sends_over_tls_to_both_ports() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = obs_e2e::tls_files(dir.path());
    let store = StoreProc::start_with_config(
        dir.path(),
        &format!("[store.tls]\ncert_file = {:?}\nkey_file = {:?}\n", cert, key),
    );
    let ca = ["--ca", ca.to_str().unwrap()];
    send_with(
        dir.path(),
        "grpc",
        &format!("https://localhost:{}", store.grpc_port),
        "tls-grpc",
        3,
        0,
        &ca,
    );
    send_with(
        dir.path(),
        "http",
        &format!("https://localhost:{}", store.port),
        "tls-http",
        2,
        0,
        &ca,
    );
    // Plain clients are refused on both ports.
    assert!(obs_e2e::http_get(&store.url("/ready")).is_err());
    let (code, _, _) = Proc::run(
        Path::new("python3"),
        &[
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("python/otlp_send.py")
                .to_str()
                .unwrap(),
            "--protocol",
            "grpc",
            "--endpoint",
            &format!("http://{}", store.grpc_addr()),
            "--service",
            "plain",
            "--logs",
            "1",
        ],
        dir.path(),
    );
    assert_ne!(code, 0, "a plaintext gRPC export must fail against a TLS port");
    // Both TLS exports were acknowledged, so they survive a restart on the same data dir:
    // read them back over plain HTTP from a store without TLS.
    let data = store.data.clone();
    drop(store);
    let plain = StoreProc::start_on_data(dir.path(), &data);
    assert_eq!(lines(&plain, r#"{service_name="tls-grpc"}"#, 3).len(), 3);
    assert_eq!(lines(&plain, r#"{service_name="tls-http"}"#, 2).len(), 2);
}

fn instant(store: &StoreProc, query: &str) -> Vec<(serde_json::Value, f64)> {
    let v = store.get_json(&format!("/api/v1/query?query={}", enc(query)));
    v["data"]["result"]
        .as_array()
        .unwrap_or_else(|| panic!("{query}: {v}"))
        .iter()
        .map(|s| {
            (
                s["metric"].clone(),
                s["value"][1].as_str().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

#[test]
fn python_sdk_metrics_over_grpc_and_http_land_with_prometheus_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProc::start(dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/otlp_metrics.py");
    for (protocol, endpoint, service) in [
        ("grpc", format!("http://{}", store.grpc_addr()), "shop-grpc"),
        ("http", store.url(""), "shop-http"),
    ] {
        let args = [
            script.to_str().unwrap(),
            "--protocol",
            protocol,
            "--endpoint",
            &endpoint,
            "--service",
            service,
        ];
        let (code, out, err) = Proc::run(Path::new("python3"), &args, dir.path());
        assert_eq!(code, 0, "{protocol}: {out}\n{err}\n{}", store.proc.describe());
    }
    for service in ["shop-grpc", "shop-http"] {
        let sel = |name: &str| format!("{name}{{job=\"{service}\"}}");
        let requests = instant(&store, &sel("shop_requests_total"));
        assert_eq!(requests.len(), 1, "{service}: {requests:?}");
        assert_eq!(requests[0].0["http_route"], "/buy");
        assert_eq!(requests[0].0["instance"], "i-1");
        assert_eq!(requests[0].1, 5.0);
        assert_eq!(instant(&store, &sel("shop_queue"))[0].1, 3.0);
        assert_eq!(instant(&store, &sel("shop_memory_usage_bytes"))[0].1, 1024.0);
        let buckets = instant(
            &store,
            &format!("sum by (le) ({})", sel("shop_latency_seconds_bucket")),
        );
        let mut got: Vec<(String, f64)> = buckets
            .iter()
            .map(|(m, v)| (m["le"].as_str().unwrap().to_string(), *v))
            .collect();
        got.sort_by(|a, b| a.1.total_cmp(&b.1));
        assert_eq!(
            got,
            vec![
                ("0.1".into(), 1.0),
                ("0.5".into(), 2.0),
                ("1".into(), 3.0),
                ("+Inf".into(), 4.0)
            ]
        );
        assert_eq!(instant(&store, &sel("shop_latency_seconds_count"))[0].1, 4.0);
        let sum = instant(&store, &sel("shop_latency_seconds_sum"))[0].1;
        assert!((sum - 3.05).abs() < 1e-9, "{sum}");
        let p50 = instant(
            &store,
            &format!("histogram_quantile(0.5, {})", sel("shop_latency_seconds_bucket")),
        );
        assert!((p50[0].1 - 0.5).abs() < 1e-9, "{p50:?}");
        let info = instant(&store, &sel("target_info"));
        assert_eq!(info[0].0["host_name"], "box-1", "{info:?}");
    }
    let meta = store.get_json("/api/v1/metadata?metric=shop_requests_total");
    assert_eq!(
        meta["data"]["shop_requests_total"][0]["type"], "counter",
        "{meta}"
    );
}
