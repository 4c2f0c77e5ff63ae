//! Fan-out: a collector ships to its store and, through `[[collector.forward]]`, to a second
//! store over OTLP/gRPC, to a Loki push endpoint and to an OTLP/HTTP endpoint, each getting
//! every line exactly once, while a forward whose endpoint is down retries on its own without
//! holding the others back. (The receivers are obs stores, which speak all three protocols.)
//! Forwards over TLS trust a private CA from `ca_file`. Remote_write goes to Prometheus 2.42's
//! own receiver, and every series lands there named and labelled as in the store.

use std::path::Path;
use std::time::{Duration, Instant};

use obs_e2e::{enc, free_port, get_json, http_get, which, Proc, StoreProc};

const LINES: usize = 300;

/// The value of `name{labels}` on the collector's `/metrics` page.
fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The `[collector]` section: ship to `store`, OTLP receiver on free ports (HTTP on `http`,
/// for `/metrics`), own metrics every second.
fn collector_head(store: &StoreProc, http: u16, host_metrics: bool) -> String {
    format!(
        "version = 1\n[collector]\nstore = \"http://{}\"\nhost_metrics = {host_metrics}\nhost_metrics_interval_secs = 1\n\
         otlp_grpc_addr = \"127.0.0.1:{}\"\notlp_http_addr = \"127.0.0.1:{http}\"\n",
        store.grpc_addr(),
        free_port()
    )
}

fn start_collector(dir: &Path) -> Proc {
    Proc::obs(
        "collector",
        &["collector", "--config", "collector.toml", "--data-dir", "cdata"],
        dir,
    )
}

/// Writes LINES lines (`n=<i>`) to `logs/app.log` and starts a collector that ships the file
/// (`job="fwd"`) to `store` and to `forwards` (`[[collector.forward]]` entries).
fn start_forwarding(dir: &Path, store: &StoreProc, http: u16, forwards: &str) -> Proc {
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let lines: String = (0..LINES)
        .map(|i| format!("level=info msg=\"order placed\" n={i}\n"))
        .collect();
    std::fs::write(dir.join("logs/app.log"), lines).unwrap();
    let config = format!(
        "{}\n[[collector.files]]\npaths = [\"{}/logs/*.log\"]\nlabels = {{ job = \"fwd\" }}\n\n{forwards}",
        collector_head(store, http, false),
        dir.display()
    );
    std::fs::write(dir.join("collector.toml"), config).unwrap();
    start_collector(dir)
}

/// The collector's `/metrics` page; it must still be running.
fn metrics_page(collector: &mut Proc, http: u16) -> String {
    assert!(
        collector.wait_timeout(Duration::ZERO).is_none(),
        "{}",
        collector.describe()
    );
    http_get(&format!("http://127.0.0.1:{http}/metrics")).unwrap().1
}

fn has_series(store: &StoreProc, query: &str) -> bool {
    let v = store.get_json(&format!("/api/v1/query?query={}", enc(query)));
    v["data"]["result"].as_array().is_some_and(|r| !r.is_empty())
}

#[test]
fn every_forward_gets_every_line_and_a_dead_one_holds_no_one_back() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let stores: Vec<StoreProc> = ["store", "second", "loki", "otlp-http"]
        .iter()
        .map(|name| StoreProc::start_on_data(dir, &dir.join(name)))
        .collect();
    let (store, second, loki, otlp_http) = (&stores[0], &stores[1], &stores[2], &stores[3]);
    let http = free_port();
    let forwards = format!(
        r#"[[collector.forward]]
name = "second"
protocol = "otlp"
url = "http://{second_grpc}"

[[collector.forward]]
name = "loki"
protocol = "loki"
url = "http://127.0.0.1:{loki}/loki/api/v1/push"

[[collector.forward]]
name = "otlp-http"
protocol = "otlp-http"
url = "http://127.0.0.1:{otlp_http}"

[[collector.forward]]
name = "down"
protocol = "otlp-http"
url = "http://127.0.0.1:{down}"
"#,
        second_grpc = second.grpc_addr(),
        loki = loki.port,
        otlp_http = otlp_http.port,
        down = free_port(),
    );
    let mut collector = start_forwarding(dir, store, http, &forwards);
    for s in &stores {
        let got = s.wait_log_lines(r#"{job="fwd"}"#, LINES, &mut collector);
        let mut ns: Vec<usize> = got
            .iter()
            .map(|(_, l)| l.rsplit("n=").next().unwrap().parse().unwrap())
            .collect();
        ns.sort_unstable();
        assert_eq!(
            ns,
            (0..LINES).collect::<Vec<_>>(),
            "each line once, in {}",
            s.data.display()
        );
        let (stream, _) = &got[0];
        assert!(
            stream["filename"]
                .as_str()
                .is_some_and(|f| f.ends_with("app.log")),
            "file labels travel with the lines: {stream}"
        );
        assert!(stream["host_name"].is_string(), "{stream}");
    }

    // Metrics go where the protocol carries them: the collector's own counters.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !(has_series(store, "obs_collector_lines_read_total")
        && has_series(second, "obs_collector_lines_read_total")
        && has_series(otlp_http, "obs_collector_lines_read_total"))
    {
        assert!(
            Instant::now() < deadline,
            "metrics did not reach every OTLP destination"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        !has_series(loki, "obs_collector_lines_read_total"),
        "Loki push carries logs only"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = metrics_page(&mut collector, http);
        let retries = metric(&p, r#"obs_collector_forward_retries_total{destination="down"}"#);
        let loki_sent = metric(&p, r#"obs_collector_forward_records_total{destination="loki"}"#);
        if retries.is_some_and(|r| r > 0.0) && loki_sent.is_some_and(|n| n > 0.0) {
            assert_eq!(
                metric(&p, r#"obs_collector_forward_records_total{destination="down"}"#),
                Some(0.0),
                "{p}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "forward counters on /metrics:\n{p}");
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(
        dir.join("cdata/spool/ack.loki").exists(),
        "each forward keeps its own cursor in the spool"
    );
    drop(collector);
}

/// An app's OTLP metrics as the OpenTelemetry SDKs send them: a counter, a gauge with a unit
/// and a histogram, on a resource with job/instance attributes and one more.
fn app_metrics(t_ns: u64) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::metrics::v1::{
        metric::Data, number_data_point::Value, AggregationTemporality, Gauge, Histogram, HistogramDataPoint,
        Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use prost::Message;
    let kv = |k: &str, v: &str| KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    };
    let point = |v: f64| NumberDataPoint {
        attributes: vec![kv("http.method", "GET")],
        time_unix_nano: t_ns,
        value: Some(Value::AsDouble(v)),
        ..Default::default()
    };
    let metric = |name: &str, unit: &str, data: Data| Metric {
        name: name.into(),
        unit: unit.into(),
        data: Some(data),
        ..Default::default()
    };
    let cumulative = AggregationTemporality::Cumulative as i32;
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(Resource {
                attributes: vec![
                    kv("service.name", "shop"),
                    kv("service.namespace", "prod"),
                    kv("service.instance.id", "web-1"),
                    kv("host.arch", "amd64"),
                ],
                ..Default::default()
            }),
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![
                    metric(
                        "http.server.requests",
                        "{request}",
                        Data::Sum(Sum {
                            data_points: vec![point(42.0)],
                            aggregation_temporality: cumulative,
                            is_monotonic: true,
                        }),
                    ),
                    metric(
                        "process.memory.usage",
                        "By",
                        Data::Gauge(Gauge {
                            data_points: vec![point(1e6)],
                        }),
                    ),
                    metric(
                        "http.server.duration",
                        "s",
                        Data::Histogram(Histogram {
                            data_points: vec![HistogramDataPoint {
                                attributes: vec![kv("http.route", "/cart")],
                                time_unix_nano: t_ns,
                                count: 4,
                                sum: Some(1.5),
                                bucket_counts: vec![1, 2, 1],
                                explicit_bounds: vec![0.1, 0.5],
                                ..Default::default()
                            }],
                            aggregation_temporality: cumulative,
                        }),
                    ),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// The label sets `/api/v1/series` gives for `selector` over the last hour, sorted.
fn series(base: &str, selector: &str) -> Vec<serde_json::Value> {
    let now = obs_e2e::now_ns() / 1_000_000_000;
    let url = format!(
        "{base}/api/v1/series?match[]={}&start={}&end={}",
        enc(selector),
        now - 3600,
        now + 60
    );
    let mut out = get_json(&url)["data"].as_array().cloned().unwrap_or_default();
    out.sort_by_key(|s| s.to_string());
    out
}

#[test]
fn metrics_reach_prometheus_over_remote_write_named_as_in_the_store() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let store = StoreProc::start(dir);
    let prom_port = free_port();
    std::fs::write(dir.join("prometheus.yml"), "global:\n  scrape_interval: 15s\n").unwrap();
    let mut prom = Proc::spawn(
        "prometheus",
        &which("prometheus"),
        &[
            &format!("--config.file={}", dir.join("prometheus.yml").display()),
            &format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
            &format!("--web.listen-address=127.0.0.1:{prom_port}"),
            "--web.enable-remote-write-receiver",
        ],
        dir,
    );
    let prom_url = format!("http://127.0.0.1:{prom_port}");
    prom.wait_http_ok(&format!("{prom_url}/-/ready"), Duration::from_secs(60));
    let http = free_port();
    std::fs::write(
        dir.join("collector.toml"),
        format!(
            r#"{head}

[[collector.forward]]
name = "prometheus"
protocol = "remote-write"
url = "{prom_url}/api/v1/write"
"#,
            head = collector_head(&store, http, true),
        ),
    )
    .unwrap();
    let mut collector = start_collector(dir);
    collector.wait_http_ok(
        &format!("http://127.0.0.1:{http}/metrics"),
        Duration::from_secs(30),
    );
    let (status, answer) = obs_e2e::http_post(
        &format!("http://127.0.0.1:{http}/v1/metrics"),
        "application/x-protobuf",
        &app_metrics(obs_e2e::now_ns() as u64),
    )
    .unwrap();
    assert_eq!(status, 200, "{answer}");

    // The app's series: the same names and labels in Prometheus as in the store.
    let app = r#"{job="prod/shop"}"#;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (in_prom, in_store) = loop {
        let (p, s) = (series(&prom_url, app), series(&store.url(""), app));
        // counter, gauge, 3 buckets + sum + count, target_info
        if p.len() >= 8 && s.len() >= 8 {
            break (p, s);
        }
        assert!(
            Instant::now() < deadline,
            "app series: prometheus {p:?}, store {s:?}\n{}",
            collector.describe()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(in_prom, in_store, "one name and label set per series in both");
    let names: Vec<&str> = in_prom.iter().filter_map(|s| s["__name__"].as_str()).collect();
    for want in [
        "http_server_requests_total",
        "process_memory_usage_bytes",
        "http_server_duration_seconds_bucket",
        "http_server_duration_seconds_count",
        "target_info",
    ] {
        assert!(names.contains(&want), "{want} in {names:?}");
    }
    let v = get_json(&format!(
        "{prom_url}/api/v1/query?query={}",
        enc(r#"http_server_duration_seconds_bucket{le="0.5"}"#)
    ));
    assert_eq!(v["data"]["result"][0]["value"][1], "3", "cumulative buckets: {v}");

    // Host metrics under node_exporter names, as in the store.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (p, s) = (
            series(&prom_url, "node_load1"),
            series(&store.url(""), "node_load1"),
        );
        if !p.is_empty() && p == s {
            assert_eq!(p[0]["job"], "node", "{p:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node_load1: prometheus {p:?}, store {s:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn forwards_reach_tls_endpoints_trusting_a_private_ca() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let (ca, cert, key) = obs_e2e::tls_files(dir);
    let tls = format!("[store.tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n");
    let store = StoreProc::start(dir);
    let tls_store = |name: &str| {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        StoreProc::start_with_config(&dir.join(name), &tls)
    };
    let (grpc_tls, http_tls) = (tls_store("grpc-tls"), tls_store("loki-tls"));
    let http = free_port();
    let forwards = format!(
        r#"[[collector.forward]]
name = "grpc-tls"
protocol = "otlp"
url = "https://localhost:{grpc}"
ca_file = {ca:?}

[[collector.forward]]
name = "loki-tls"
protocol = "loki"
url = "https://localhost:{port}/loki/api/v1/push"
ca_file = {ca:?}
"#,
        grpc = grpc_tls.grpc_port,
        port = http_tls.port,
    );
    let mut collector = start_forwarding(dir, &store, http, &forwards);
    store.wait_log_lines(r#"{job="fwd"}"#, LINES, &mut collector);
    // Both forwards are as far through the spool as the store, which has shipped it all.
    let ack = |name: &str| std::fs::read(dir.join("cdata/spool").join(name)).ok();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = metrics_page(&mut collector, http);
        let all_shipped = metric(&p, "obs_collector_shipped_records_total")
            == metric(&p, "obs_collector_spool_records_total");
        let store_ack = ack("ack");
        if all_shipped
            && store_ack.is_some()
            && ack("ack.grpc-tls") == store_ack
            && ack("ack.loki-tls") == store_ack
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "forwards over TLS:\n{p}\n{}",
            collector.describe()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(collector);
    // What they acknowledged is stored: read it back from each store's data, served plain.
    std::fs::create_dir_all(dir.join("plain")).unwrap();
    for tls in [grpc_tls, http_tls] {
        let data = tls.data.clone();
        drop(tls);
        let plain = StoreProc::start_on_data(&dir.join("plain"), &data);
        assert_eq!(
            plain.log_lines(r#"{job="fwd"}"#).len(),
            LINES,
            "{}",
            data.display()
        );
    }
}
