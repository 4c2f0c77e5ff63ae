//! The whole alerting loop with real processes: a node's collector stops, a HostDown rule
//! fires after its `for` and one message reaches the webhook; the collector comes back and
//! the resolution arrives. Then the store dies: the collector itself says so through its
//! own receiver (`[collector.alerting]`), and says again when the store is back, with what
//! its spool held meanwhile.

use std::time::Duration;

use obs_e2e::{free_port, HttpRecorder, Proc, Recorded, StoreProc};

/// HostDown as the built-in pack writes it, with windows short enough for a test.
const RULES: &str = r#"groups:
  - name: hosts
    rules:
      - alert: HostDown
        expr: |
          max by (instance) (max_over_time(obs_collector_report_timestamp_seconds{job="obs-collector"}[1h]))
            unless max by (instance) (max_over_time(obs_collector_report_timestamp_seconds{job="obs-collector"}[4s]))
        for: 2s
        labels:
          severity: critical
          host_name: "{{ $labels.instance }}"
        annotations:
          summary: "Host {{ $labels.instance }} is not reporting"
"#;

fn on(path: &str, status: &str, r: &[Recorded]) -> usize {
    r.iter()
        .filter(|r| r.path == path && r.json()["status"] == status)
        .count()
}

fn start_collector(dir: &std::path::Path) -> Proc {
    Proc::obs(
        "collector",
        &["collector", "--config", "collector.toml", "--data-dir", "cdata"],
        dir,
    )
}

#[test]
fn a_stopped_collector_pages_once_and_a_dead_store_is_reported_by_the_collector() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let hook = HttpRecorder::start();
    std::fs::write(dir.join("rules.yml"), RULES).unwrap();
    let store = StoreProc::start_with_config(
        dir,
        &format!(
            r#"[store.rules]
files = ["{}/rules.yml"]
evaluation_interval = "1s"
defaults = false
[store.alerting]
[[store.alerting.receivers]]
name = "hook"
type = "webhook"
url = "{}"
[store.alerting.route]
receiver = "hook"
group_wait = "1s"
group_interval = "1s"
"#,
            dir.display(),
            hook.url("/store")
        ),
    );
    std::fs::write(
        dir.join("collector.toml"),
        format!(
            r#"version = 1
[collector]
store = "http://{grpc}"
host_name = "node-a"
host_metrics = false
host_metrics_interval_secs = 1
otlp_grpc_addr = "127.0.0.1:{otlp}"
otlp_http_addr = "127.0.0.1:{http}"
[collector.alerting]
store_down_notify_after = "2s"
[[collector.alerting.receivers]]
name = "phone"
type = "webhook"
url = "{hook}"
"#,
            grpc = store.grpc_addr(),
            otlp = free_port(),
            http = free_port(),
            hook = hook.url("/collector"),
        ),
    )
    .unwrap();
    let collector = start_collector(dir);
    // The store has heard from the collector.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let r = store.get_json("/api/v1/query?query=obs_collector_report_timestamp_seconds");
        if r["data"]["result"].as_array().is_some_and(|a| !a.is_empty()) {
            assert_eq!(r["data"]["result"][0]["metric"]["instance"], "node-a", "{r}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no report from the collector: {}",
            collector.describe()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The node goes away: one firing message, then (after it is back) one resolved.
    drop(collector);
    let got = hook.wait("HostDown firing", Duration::from_secs(60), |r| {
        on("/store", "firing", r) >= 1
    });
    let firing = got.iter().find(|r| r.path == "/store").unwrap().json();
    assert_eq!(firing["alerts"][0]["labels"]["alertname"], "HostDown");
    assert_eq!(firing["alerts"][0]["labels"]["host_name"], "node-a");
    let collector = start_collector(dir);
    let got = hook.wait("HostDown resolved", Duration::from_secs(60), |r| {
        on("/store", "resolved", r) >= 1
    });
    assert_eq!(
        on("/store", "firing", &got),
        1,
        "one message per incident: {got:#?}"
    );
    assert_eq!(on("/collector", "firing", &got), 0, "the store was up all along");

    // The store dies: the collector says so once, and again when the store is back.
    let store = store.kill_and_restart_when(|| {
        hook.wait(
            "the collector's store-down message",
            Duration::from_secs(60),
            |r| on("/collector", "firing", r) >= 1,
        );
    });
    let got = hook.wait(
        "the collector's store-back message",
        Duration::from_secs(60),
        |r| on("/collector", "resolved", r) >= 1,
    );
    let down: Vec<serde_json::Value> = got
        .iter()
        .filter(|r| r.path == "/collector")
        .map(Recorded::json)
        .collect();
    assert_eq!(down.len(), 2, "{down:#?}");
    let (fire, back) = (&down[0]["alerts"][0], &down[1]["alerts"][0]);
    assert_eq!(fire["labels"]["alertname"], "ObsStoreUnreachable");
    assert_eq!(fire["labels"]["host_name"], "node-a");
    let store_url = format!("http://{}", store.grpc_addr());
    let text = fire["annotations"]["description"].as_str().unwrap();
    assert!(text.contains(&store_url) && text.contains("spool"), "{text}");
    let text = back["annotations"]["description"].as_str().unwrap();
    assert!(text.contains("the spool held up to"), "{text}");
    assert_eq!(back["status"], "resolved");
    drop(collector);
}
