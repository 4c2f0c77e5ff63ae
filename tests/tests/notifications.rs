//! Notifications from a running store to a webhook (a local recorder): one message when
//! a rule fires and one when it resolves, in Alertmanager's webhook payload; a message
//! that could not be delivered survives kill -9 and arrives once after the restart;
//! silences mute.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use obs_e2e::{http_post, remote_write, HttpRecorder, Recorded, StoreProc};

const RULES: &str = r#"groups:
  - name: hosts
    rules:
      - alert: HostDown
        expr: test_up == 0
        for: 1s
        labels: {severity: critical}
        annotations: {summary: "{{ $labels.host_name }} is down"}
"#;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Sends `test_up{host_name=host}` = `value` every 250 ms while the returned flag is set.
fn feed(url: String, host: &'static str, value: Arc<std::sync::atomic::AtomicU64>) -> Arc<AtomicBool> {
    let run = Arc::new(AtomicBool::new(true));
    let r = run.clone();
    std::thread::spawn(move || {
        while r.load(Ordering::Relaxed) {
            let v = f64::from_bits(value.load(Ordering::Relaxed));
            let _ = remote_write(
                &url,
                &[(&[("__name__", "test_up"), ("host_name", host)], now_ms(), v)],
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    });
    run
}

fn start(dir: &Path, hook: &HttpRecorder) -> StoreProc {
    std::fs::write(dir.join("rules.yml"), RULES).unwrap();
    StoreProc::start_with_config(
        dir,
        &format!(
            r#"[store.rules]
files = ["{}/rules.yml"]
evaluation_interval = "1s"
defaults = false
[store.alerting]
external_url = "http://store.example:9700"
[[store.alerting.receivers]]
name = "hook"
type = "webhook"
url = "{}"
[store.alerting.route]
receiver = "hook"
group_wait = "1s"
group_interval = "2s"
repeat_interval = "1h"
"#,
            dir.display(),
            hook.url("/hook")
        ),
    )
}

fn status_of(r: &Recorded) -> String {
    r.json()["status"].as_str().unwrap_or("").to_string()
}

#[test]
fn a_firing_rule_is_one_message_and_its_resolution_another() {
    let tmp = tempfile::tempdir().unwrap();
    let hook = HttpRecorder::start();
    let store = start(tmp.path(), &hook);
    let value = Arc::new(std::sync::atomic::AtomicU64::new(0f64.to_bits()));
    let run = feed(store.url("/api/v1/write"), "nas", value.clone());

    let got = hook.wait("the firing message", Duration::from_secs(60), |r| !r.is_empty());
    assert_eq!(got.len(), 1);
    let (req, v) = (&got[0], got[0].json());
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/hook"));
    assert_eq!(req.header("content-type"), Some("application/json"));
    assert_eq!(v["version"], "4");
    assert_eq!(v["status"], "firing");
    assert_eq!(v["receiver"], "hook");
    assert_eq!(v["groupKey"], "{}:{alertname=\"HostDown\", host_name=\"nas\"}");
    assert_eq!(
        v["groupLabels"],
        serde_json::json!({"alertname": "HostDown", "host_name": "nas"})
    );
    assert_eq!(v["commonLabels"]["severity"], "critical");
    assert_eq!(v["externalURL"], "http://store.example:9700");
    assert_eq!(v["truncatedAlerts"], 0);
    let a = &v["alerts"][0];
    assert_eq!(a["status"], "firing");
    assert_eq!(a["annotations"]["summary"], "nas is down");
    assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
    assert!(
        a["generatorURL"]
            .as_str()
            .unwrap()
            .starts_with("http://store.example:9700/graph?g0.expr=test_up"),
        "{a}"
    );
    let labels: obs_notify::LabelSet = serde_json::from_value(a["labels"].clone()).unwrap();
    assert_eq!(a["fingerprint"], obs_notify::fingerprint(&labels).to_string());

    // Back up: one resolved message; the firing one was not repeated meanwhile.
    value.store(1f64.to_bits(), Ordering::Relaxed);
    let got = hook.wait("the resolved message", Duration::from_secs(60), |r| r.len() >= 2);
    assert_eq!(
        got.iter().map(status_of).collect::<Vec<_>>(),
        ["firing", "resolved"]
    );
    let a = &got[1].json()["alerts"][0];
    assert_eq!(a["status"], "resolved");
    assert_ne!(a["endsAt"], "0001-01-01T00:00:00Z");
    run.store(false, Ordering::Relaxed);
    let (_, metrics) = obs_e2e::http_get(&store.url("/metrics")).unwrap();
    assert!(
        metrics.contains("obs_notifications_total{receiver=\"hook\"} 2"),
        "{metrics}"
    );
}

#[test]
fn an_undelivered_message_survives_kill_9_and_arrives_once() {
    let tmp = tempfile::tempdir().unwrap();
    let hook = HttpRecorder::start();
    hook.answer(503);
    let store = start(tmp.path(), &hook);
    let value = Arc::new(std::sync::atomic::AtomicU64::new(0f64.to_bits()));
    let run = feed(store.url("/api/v1/write"), "pi", value);
    // Wait until an attempt has failed: the message is queued on disk.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, m) = obs_e2e::http_get(&store.url("/metrics")).unwrap();
        if m.lines()
            .any(|l| l.starts_with("obs_notifications_failed_total{receiver=\"hook\"}") && !l.ends_with(" 0"))
        {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no failed attempt: {m}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let store = store.kill_and_restart();
    hook.answer(200);
    let got = hook.wait("the queued message", Duration::from_secs(60), |r| !r.is_empty());
    assert_eq!(got[0].json()["groupLabels"]["host_name"], "pi");
    // The alert still fires after the restart: the notification log keeps it from being
    // sent again. The next message this receiver could get is a repeat, an hour away.
    let (_, m) = obs_e2e::http_get(&store.url("/metrics")).unwrap();
    assert!(m.contains("obs_notifications_queued 0"), "{m}");
    assert_eq!(hook.requests().len(), 1);
    run.store(false, Ordering::Relaxed);
}

#[test]
fn silences_are_kept_and_mute() {
    let tmp = tempfile::tempdir().unwrap();
    let hook = HttpRecorder::start();
    let store = start(tmp.path(), &hook);
    let now = chrono::Utc::now();
    let body = serde_json::json!({
        "matchers": [{"name": "host_name", "value": "nas", "isRegex": false, "isEqual": true}],
        "startsAt": now.to_rfc3339(), "endsAt": (now + chrono::Duration::hours(2)).to_rfc3339(),
        "createdBy": "me", "comment": "replacing disk",
    });
    let (code, answer) = http_post(
        &store.url("/api/v2/silences"),
        "application/json",
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(code, 200, "{answer}");
    let id = serde_json::from_str::<serde_json::Value>(&answer).unwrap()["silenceID"]
        .as_str()
        .unwrap()
        .to_string();
    let nas = Arc::new(std::sync::atomic::AtomicU64::new(0f64.to_bits()));
    let pi = Arc::new(std::sync::atomic::AtomicU64::new(0f64.to_bits()));
    let runs = [
        feed(store.url("/api/v1/write"), "nas", nas),
        feed(store.url("/api/v1/write"), "pi", pi),
    ];
    let got = hook.wait("pi's message", Duration::from_secs(60), |r| !r.is_empty());
    assert!(
        got.iter().all(|r| r.json()["groupLabels"]["host_name"] == "pi"),
        "nas is silenced: {got:#?}"
    );
    let store = store.kill_and_restart();
    let list = store.get_json("/api/v2/silences");
    assert_eq!(list[0]["id"], id.as_str(), "{list}");
    assert_eq!(list[0]["status"]["state"], "active");
    assert_eq!(list[0]["comment"], "replacing disk");

    // The same from the command line.
    let url = store.url("");
    let cli = |args: &[&str]| {
        let mut all = vec!["alerts", "--store", url.as_str()];
        all.extend(args);
        obs_e2e::Proc::run(obs_e2e::obs_bin(), &all, tmp.path())
    };
    let (code, out, err) = cli(&[
        "silence",
        "alertname=\"Backup\",host_name=~\"n.*\"",
        "--for",
        "2h",
        "--comment",
        "moving the repo",
    ]);
    assert_eq!(code, 0, "{err}");
    let new_id = out.trim().to_string();
    let (code, out, _) = cli(&["silences"]);
    assert_eq!(code, 0);
    let line = out
        .lines()
        .find(|l| l.starts_with(&new_id))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains("active")
            && line.contains("alertname=\"Backup\",host_name=~\"n.*\"")
            && line.ends_with("moving the repo"),
        "{line}"
    );
    let (code, out, err) = cli(&["unsilence", &new_id]);
    assert_eq!(
        (code, out.trim()),
        (0, format!("silence {new_id} ended").as_str()),
        "{err}"
    );
    let (_, out, _) = cli(&["silences", "--output", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let ended = v
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == new_id.as_str())
        .unwrap();
    assert_eq!(ended["status"]["state"], "expired");
    let (code, _, err) = cli(&["silence", "not a matcher"]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid matchers"), "{err}");
    for r in runs {
        r.store(false, Ordering::Relaxed);
    }
}

#[test]
fn obs_alerts_test_sends_one_message_and_prints_the_answer() {
    let tmp = tempfile::tempdir().unwrap();
    let hook = HttpRecorder::start();
    let cfg = tmp.path().join("obs.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 1\n[store.alerting]\n[[store.alerting.receivers]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\n[store.alerting.route]\nreceiver = \"hook\"\n",
            hook.url("/hook")
        ),
    )
    .unwrap();
    let run = |r: &str| {
        obs_e2e::Proc::run(
            obs_e2e::obs_bin(),
            &["alerts", "test", r, "--config", cfg.to_str().unwrap()],
            tmp.path(),
        )
    };
    let (code, out, err) = run("hook");
    assert_eq!((code, out.trim()), (0, "hook answered 200: ok"), "{err}");
    let got = hook.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(
        got[0].json()["alerts"][0]["labels"]["alertname"],
        "ObsTestNotification"
    );
    let (code, _, err) = run("nope");
    assert_eq!(code, 1);
    assert!(err.contains("no receiver named \"nope\""), "{err}");
    hook.answer(500);
    let (code, _, err) = run("hook");
    assert_eq!(code, 1);
    assert!(err.contains("answered 500"), "{err}");
}

#[test]
fn the_heartbeat_calls_while_rules_run_and_watchdog_routes_like_any_alert() {
    let tmp = tempfile::tempdir().unwrap();
    let hook = HttpRecorder::start();
    let store = StoreProc::start_with_config(
        tmp.path(),
        &format!(
            r#"[store.rules]
evaluation_interval = "1s"
defaults = true
[store.alerting]
[store.alerting.heartbeat]
url = "{ping}"
interval = "1s"
[[store.alerting.receivers]]
name = "quiet"
type = "none"
[[store.alerting.receivers]]
name = "deadman"
type = "webhook"
url = "{watchdog}"
[store.alerting.route]
receiver = "quiet"
group_wait = "1s"
[[store.alerting.route.routes]]
matchers = ['alertname="Watchdog"']
receiver = "deadman"
"#,
            ping = hook.url("/ping"),
            watchdog = hook.url("/watchdog"),
        ),
    );
    let got = hook.wait("two heartbeats and a Watchdog", Duration::from_secs(30), |r| {
        r.iter().filter(|r| r.path == "/ping").count() >= 2 && r.iter().any(|r| r.path == "/watchdog")
    });
    let ping = got.iter().find(|r| r.path == "/ping").unwrap();
    assert_eq!(ping.method, "POST");
    assert_eq!(
        String::from_utf8_lossy(&ping.body),
        "obs store: rule evaluation healthy"
    );
    for w in got.iter().filter(|r| r.path == "/watchdog") {
        let j = w.json();
        assert_eq!(j["receiver"], "deadman");
        assert_eq!(j["status"], "firing");
        for a in j["alerts"].as_array().unwrap() {
            assert_eq!(a["labels"]["alertname"], "Watchdog", "{j}");
        }
    }
    let metrics = obs_e2e::http_get(&store.url("/metrics")).unwrap().1;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("obs_store_heartbeats_total{result=\"sent\"}") && !l.ends_with(" 0")),
        "{metrics}"
    );
}
