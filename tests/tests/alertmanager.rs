//! The store and Prometheus's Alertmanager 0.25 (Debian's `prometheus-alertmanager`): a store
//! whose receiver is `alertmanager` hands its alerts to a real Alertmanager, which holds
//! them and sends its own webhook; a second store with a `webhook` receiver sends ours for
//! the same alert. The two payloads must agree field by field (times aside: the stores
//! evaluate at their own instants).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use obs_e2e::{free_port, get_json, remote_write, which, HttpRecorder, Proc, StoreProc};
use serde_json::Value;

const RULES: &str = r#"groups:
  - name: hosts
    rules:
      - alert: HostDown
        expr: test_up == 0
        labels: {severity: critical}
        annotations: {summary: "{{ $labels.host_name }} is down", description: "value {{ $value }}"}
"#;

const EXTERNAL: &str = "http://store.example:9700";

fn store(dir: &Path, receiver: &str) -> StoreProc {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("rules.yml"), RULES).unwrap();
    StoreProc::start_with_config(
        dir,
        &format!(
            "[store.rules]\nfiles = [\"{}/rules.yml\"]\nevaluation_interval = \"1s\"\ndefaults = false\n\
             [store.alerting]\nexternal_url = \"{EXTERNAL}\"\n{receiver}\n\
             [store.alerting.route]\nreceiver = \"hook\"\ngroup_wait = \"1s\"\ngroup_interval = \"2s\"\nrepeat_interval = \"1h\"\n",
            dir.display()
        ),
    )
}

/// The payload without what depends on when each side evaluated.
fn timeless(v: &Value) -> Value {
    let mut v = v.clone();
    for a in v["alerts"].as_array_mut().unwrap() {
        let a = a.as_object_mut().unwrap();
        for k in ["startsAt", "endsAt"] {
            assert!(a.remove(k).is_some(), "{k} is in every alert");
        }
    }
    v
}

#[test]
fn alertmanager_holds_our_alerts_and_its_webhook_matches_ours() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (ours, theirs) = (HttpRecorder::start(), HttpRecorder::start());
    let am_port = free_port();
    let am_cfg = dir.join("alertmanager.yml");
    std::fs::write(
        &am_cfg,
        format!(
            "route:\n  receiver: hook\n  group_by: [alertname, host_name]\n  group_wait: 1s\n  group_interval: 2s\n  repeat_interval: 1h\n\
             receivers:\n  - name: hook\n    webhook_configs:\n      - url: {}\n        send_resolved: true\n",
            theirs.url("/hook")
        ),
    )
    .unwrap();
    let mut am = Proc::spawn(
        "alertmanager",
        &which("prometheus-alertmanager"),
        &[
            &format!("--config.file={}", am_cfg.display()),
            &format!("--storage.path={}", dir.join("am-data").display()),
            &format!("--web.listen-address=127.0.0.1:{am_port}"),
            &format!("--web.external-url={EXTERNAL}"),
            "--cluster.listen-address=",
        ],
        dir,
    );
    let am_url = format!("http://127.0.0.1:{am_port}");
    am.wait_http_ok(&format!("{am_url}/-/ready"), Duration::from_secs(60));

    let to_am = store(
        &dir.join("a"),
        &format!(
            "[[store.alerting.receivers]]\nname = \"hook\"\ntype = \"alertmanager\"\nurl = \"{am_url}\""
        ),
    );
    let to_hook = store(
        &dir.join("b"),
        &format!(
            "[[store.alerting.receivers]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"",
            ours.url("/hook")
        ),
    );
    let run = Arc::new(AtomicBool::new(true));
    let feeder = {
        let run = run.clone();
        let urls = [to_am.url("/api/v1/write"), to_hook.url("/api/v1/write")];
        std::thread::spawn(move || {
            while run.load(Ordering::Relaxed) {
                let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
                for u in &urls {
                    let _ = remote_write(u, &[(&[("__name__", "test_up"), ("host_name", "nas")], t, 0.0)]);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };

    // Alertmanager holds the alert the store handed it.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let held = loop {
        let v = get_json(&format!("{am_url}/api/v2/alerts"));
        if v.as_array().is_some_and(|a| !a.is_empty()) {
            break v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "Alertmanager holds nothing\n{}",
            am.describe()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let a = &held[0];
    assert_eq!(a["labels"]["alertname"], "HostDown");
    assert_eq!(a["labels"]["host_name"], "nas");
    assert_eq!(a["annotations"]["summary"], "nas is down");
    assert_eq!(a["status"]["state"], "active");
    assert!(a["generatorURL"].as_str().unwrap().starts_with(EXTERNAL), "{a}");

    let mine = ours.wait("our webhook", Duration::from_secs(60), |r| !r.is_empty());
    let am_sent = theirs.wait("Alertmanager's webhook", Duration::from_secs(60), |r| {
        !r.is_empty()
    });
    assert_eq!(timeless(&mine[0].json()), timeless(&am_sent[0].json()));
    assert_eq!(mine[0].header("content-type"), am_sent[0].header("content-type"));
    assert_eq!(
        mine[0].json()["alerts"][0]["endsAt"],
        am_sent[0].json()["alerts"][0]["endsAt"]
    );
    run.store(false, Ordering::Relaxed);
    feeder.join().unwrap();
}
