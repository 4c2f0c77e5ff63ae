//! Fan-out: a collector ships to its store and, through `[[collector.forward]]`, to a second
//! store over OTLP/gRPC, to a Loki push endpoint and to an OTLP/HTTP endpoint, each getting
//! every line exactly once, while a forward whose endpoint is down retries on its own without
//! holding the others back. (The receivers are obs stores, which speak all three protocols.)

use std::time::{Duration, Instant};

use obs_e2e::{enc, free_port, http_get, Proc, StoreProc};

const LINES: usize = 300;

/// The value of `name{labels}` on the collector's `/metrics` page.
fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
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
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let lines: String = (0..LINES)
        .map(|i| format!("level=info msg=\"order placed\" n={i}\n"))
        .collect();
    std::fs::write(dir.join("logs/app.log"), lines).unwrap();
    let http = free_port();
    std::fs::write(
        dir.join("collector.toml"),
        format!(
            r#"version = 1
[collector]
store = "http://{grpc}"
host_metrics = false
host_metrics_interval_secs = 1
otlp_grpc_addr = "127.0.0.1:{otlp}"
otlp_http_addr = "127.0.0.1:{http}"

[[collector.files]]
paths = ["{root}/logs/*.log"]
labels = {{ job = "fwd" }}

[[collector.forward]]
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
            grpc = store.grpc_addr(),
            otlp = free_port(),
            root = dir.display(),
            second_grpc = second.grpc_addr(),
            loki = loki.port,
            otlp_http = otlp_http.port,
            down = free_port(),
        ),
    )
    .unwrap();
    let mut collector = Proc::obs(
        "collector",
        &["collector", "--config", "collector.toml", "--data-dir", "cdata"],
        dir,
    );
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

    let page = |collector: &mut Proc| {
        assert!(
            collector.wait_timeout(Duration::ZERO).is_none(),
            "{}",
            collector.describe()
        );
        http_get(&format!("http://127.0.0.1:{http}/metrics")).unwrap().1
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = page(&mut collector);
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
