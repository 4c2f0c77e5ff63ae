//! Prometheus 2.42 (Debian's `prometheus`) scrapes a real node_exporter and itself every
//! second and remote_writes everything into the store. Dashboard queries must then give the
//! same answer from the store's Prometheus API as from Prometheus's own.

use std::path::Path;
use std::time::{Duration, Instant};

use obs_e2e::{enc, free_port, get_json as get, which, Proc, StoreProc};
use serde_json::Value;

/// `(labels as text, value)` pairs of an instant vector or `(labels, [(t, v)])` of a
/// matrix, sorted, values parsed.
fn normalize(v: &Value) -> Vec<(String, Vec<(f64, f64)>)> {
    let data = &v["data"];
    let mut out: Vec<(String, Vec<(f64, f64)>)> = match data["resultType"].as_str().unwrap() {
        "scalar" => vec![(String::new(), vec![point(&data["result"])])],
        "vector" => data["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["metric"].to_string(), vec![point(&s["value"])]))
            .collect(),
        _ => data["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s["metric"].to_string(),
                    s["values"].as_array().unwrap().iter().map(point).collect(),
                )
            })
            .collect(),
    };
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn point(p: &Value) -> (f64, f64) {
    let v = p[1].as_str().unwrap();
    let v = match v {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        _ => v.parse().unwrap(),
    };
    (p[0].as_f64().unwrap(), v)
}

fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
}

fn write_config(dir: &Path, node: u16, prom: u16, store: u16) -> std::path::PathBuf {
    let cfg = format!(
        r#"global:
  scrape_interval: 1s
scrape_configs:
  - job_name: node
    static_configs: [{{targets: ["127.0.0.1:{node}"]}}]
  - job_name: prometheus
    static_configs: [{{targets: ["127.0.0.1:{prom}"]}}]
remote_write:
  - url: http://127.0.0.1:{store}/api/v1/write
    queue_config: {{batch_send_deadline: 500ms, max_samples_per_send: 5000}}
    metadata_config: {{send_interval: 2s}}
"#
    );
    let path = dir.join("prometheus.yml");
    std::fs::write(&path, cfg).unwrap();
    path
}

#[test]
fn dashboard_queries_match_prometheus_2_42() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let store = StoreProc::start(dir);
    let (node_port, prom_port) = (free_port(), free_port());
    let mut node = Proc::spawn(
        "node_exporter",
        &which("prometheus-node-exporter"),
        &[&format!("--web.listen-address=127.0.0.1:{node_port}")],
        dir,
    );
    node.wait_http_ok(
        &format!("http://127.0.0.1:{node_port}/metrics"),
        Duration::from_secs(30),
    );
    let cfg = write_config(dir, node_port, prom_port, store.port);
    let mut prom = Proc::spawn(
        "prometheus",
        &which("prometheus"),
        &[
            &format!("--config.file={}", cfg.display()),
            &format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
            &format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        dir,
    );
    let prom_url = format!("http://127.0.0.1:{prom_port}");
    prom.wait_http_ok(&format!("{prom_url}/-/ready"), Duration::from_secs(60));

    // Let twenty scrapes arrive in the store.
    let deadline = Instant::now() + Duration::from_secs(90);
    let phases = loop {
        let v = store.get_json(&format!(
            "/api/v1/query?query={}",
            enc("timestamp(up) and count_over_time(up[30s]) >= 20")
        ));
        let ts: Vec<f64> = v["data"]["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["value"][1].as_str().unwrap().parse().unwrap())
            .collect();
        if ts.len() == 2 {
            break ts;
        }
        assert!(
            Instant::now() < deadline,
            "store did not receive 20 scrapes of both jobs: {v}\n{}",
            prom.describe()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    // Evaluate a little in the past, at a millisecond phase away from both targets' scrape
    // times, so no sample sits exactly on a window edge (Prometheus 2 and 3 differ there).
    let newest = phases.iter().cloned().fold(f64::MIN, f64::max);
    let ms: Vec<i64> = phases
        .iter()
        .map(|t| ((t * 1000.0).round() as i64).rem_euclid(1000))
        .collect();
    let phase = (0..1000)
        .max_by_key(|c| {
            ms.iter()
                .map(|m| (c - m).rem_euclid(1000).min((m - c).rem_euclid(1000)))
                .min()
                .unwrap()
        })
        .unwrap();
    let t_ms = ((newest * 1000.0) as i64 / 1000 - 3) * 1000 + phase;
    let t = format!("{}.{:03}", t_ms / 1000, t_ms % 1000);

    let queries = [
        "up",
        "sum by (mode) (rate(node_cpu_seconds_total[5s]))",
        "100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode=\"idle\"}[5s])))",
        "node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes * 100",
        "node_load1",
        "count(count by (cpu) (node_cpu_seconds_total))",
        "rate(node_network_receive_bytes_total[5s])",
        "irate(node_network_transmit_bytes_total[5s])",
        "max by (mountpoint) (node_filesystem_size_bytes{fstype!=\"tmpfs\"})",
        "topk(3, node_network_receive_packets_total)",
        "avg_over_time(node_procs_running[10s])",
        "increase(prometheus_http_requests_total[10s])",
        "histogram_quantile(0.9, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket[10s])))",
        "go_gc_duration_seconds{quantile=\"0.5\"}",
        "scrape_duration_seconds > 0",
        "sum without (cpu) (rate(node_cpu_seconds_total[10s])) / on(instance, job, mode) group_left count without (cpu) (node_cpu_seconds_total)",
        "absent(nonexistent_metric)",
        "time() - node_boot_time_seconds",
    ];
    let mut compared = 0;
    for q in queries {
        let path = format!("/api/v1/query?query={}&time={t}", enc(q));
        let want = normalize(&get(&format!("{prom_url}{path}")));
        let got = normalize(&store.get_json(&path));
        assert_eq!(
            got.iter().map(|s| &s.0).collect::<Vec<_>>(),
            want.iter().map(|s| &s.0).collect::<Vec<_>>(),
            "series differ for {q}"
        );
        for ((labels, g), (_, w)) in got.iter().zip(&want) {
            assert_eq!(g.len(), w.len(), "{q} {labels}");
            for (a, b) in g.iter().zip(w) {
                assert!(
                    a.0 == b.0 && same(a.1, b.1),
                    "{q} {labels}: store {a:?}, prometheus {b:?}"
                );
            }
        }
        compared += want.len();
    }
    // A dashboard panel's range query.
    let range = format!(
        "/api/v1/query_range?query={}&start={}&end={t}&step=1",
        enc("sum by (mode) (rate(node_cpu_seconds_total[3s]))"),
        t_ms / 1000 - 10
    );
    let want = normalize(&get(&format!("{prom_url}{range}")));
    let got = normalize(&store.get_json(&range));
    assert_eq!(got.len(), want.len());
    for ((l, g), (_, w)) in got.iter().zip(&want) {
        assert_eq!(g.len(), w.len(), "{l}");
        assert!(
            g.iter().zip(w).all(|(a, b)| a.0 == b.0 && same(a.1, b.1)),
            "{l}: {g:?} vs {w:?}"
        );
    }
    assert!(compared > 40, "compared only {compared} series");
    // Metadata came along with the samples.
    let meta = store.get_json("/api/v1/metadata?metric=node_load1");
    assert_eq!(meta["data"]["node_load1"][0]["type"], "gauge", "{meta}");
    drop(prom);
    drop(node);
}
