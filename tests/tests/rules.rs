//! Rules in a running store: PromQL and LogQL rules from `[store.rules]` globs, the alerts
//! and rules APIs, `obs alerts` and `obs status`, reload by `POST /-/reload` and SIGHUP (a
//! broken file keeps its previous rules), a restart that keeps a pending alert's `for`
//! progress, and kill -9 that loses no acknowledged recorded sample.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use obs_e2e::{enc, get_json, http_post, now_ns, obs_bin, remote_write, Proc, StoreProc};
use serde_json::Value;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// `test_up{instance="a"} 0` now, by remote_write.
fn write_down(url: &str) {
    let _ = remote_write(
        url,
        &[(&[("__name__", "test_up"), ("instance", "a")], now_ms(), 0.0)],
    );
}

/// Pushes `test_up{instance="a"} 0` and an error log line every 250 ms until dropped.
struct Feeder {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Feeder {
    fn start(base: String) -> Feeder {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                write_down(&format!("{base}/api/v1/write"));
                let line = serde_json::json!({"streams": [{"stream": {"app": "web"}, "values": [[now_ns().to_string(), "GET / error 500"]]}]});
                let _ = http_post(
                    &format!("{base}/loki/api/v1/push"),
                    "application/json",
                    line.to_string().as_bytes(),
                );
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Feeder {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

const PROM_RULES: &str = r#"groups:
  - name: node
    rules:
      - alert: LongDown
        expr: test_up == 0
        for: 20m
        labels: {severity: warning}
        annotations: {summary: "{{ $labels.instance }} down for long"}
      - alert: Down
        expr: test_up == 0
        labels: {severity: critical}
        annotations: {summary: "{{ $labels.instance }} is down"}
      - record: test_up:count
        expr: count(test_up)
"#;

const LOKI_RULES: &str = r#"groups:
  - name: logs
    rules:
      - record: app:errors:count1m
        expr: sum by (app) (count_over_time({app="web"} |= "error" [1m]))
      - alert: ErrorLines
        expr: sum by (app) (count_over_time({app="web"} |= "error" [1m])) > 0
        labels: {severity: warning}
        annotations: {summary: "{{ $labels.app }} logs errors"}
"#;

/// Polls `get` until `ok` holds, panicking with the last answer after 60 s.
fn wait_for(what: &str, get: impl Fn() -> Value, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let v = get();
        if ok(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not seen; last answer {v:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn alert<'a>(v: &'a Value, name: &str) -> Option<&'a Value> {
    v["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|a| a["labels"]["alertname"] == name)
}

fn metric(store: &StoreProc, name: &str) -> f64 {
    let (_, body) = obs_e2e::http_get(&store.url("/metrics")).unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} in /metrics"))
        .parse()
        .unwrap()
}

fn start(dir: &Path) -> StoreProc {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::create_dir_all(dir.join("loki")).unwrap();
    std::fs::write(dir.join("rules/node.yml"), PROM_RULES).unwrap();
    std::fs::write(dir.join("loki/logs.yml"), LOKI_RULES).unwrap();
    StoreProc::start_with_config(
        dir,
        &format!(
            "[store.rules]\nfiles = [\"{0}/rules/*.yml\"]\nloki_files = [\"{0}/loki/*.yml\"]\nevaluation_interval = \"1s\"\ndefaults = false\n",
            dir.display()
        ),
    )
}

#[test]
fn rules_run_reload_and_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let store = start(dir);
    let feeder = Feeder::start(store.url(""));
    let alerts = |s: &StoreProc| get_json(&s.url("/api/v1/alerts"));

    let v = wait_for(
        "Down firing, LongDown pending",
        || alerts(&store),
        |v| alert(v, "Down").is_some_and(|a| a["state"] == "firing") && alert(v, "LongDown").is_some(),
    );
    let long = alert(&v, "LongDown").unwrap();
    assert_eq!(long["state"], "pending");
    assert_eq!(alert(&v, "Down").unwrap()["annotations"]["summary"], "a is down");
    let active_at = chrono::DateTime::parse_from_rfc3339(long["activeAt"].as_str().unwrap()).unwrap();

    // LogQL rules: their alerts and rules where Grafana's Loki data source looks, and their
    // recorded series in the TSDB.
    let loki = wait_for(
        "ErrorLines firing",
        || get_json(&store.url("/prometheus/api/v1/alerts")),
        |v| alert(v, "ErrorLines").is_some_and(|a| a["state"] == "firing"),
    );
    assert_eq!(
        alert(&loki, "ErrorLines").unwrap()["annotations"]["summary"],
        "web logs errors"
    );
    let rules = get_json(&store.url("/prometheus/api/v1/rules?type=record"));
    assert_eq!(
        rules["data"]["groups"][0]["rules"][0]["name"], "app:errors:count1m",
        "{rules}"
    );
    wait_for(
        "recorded LogQL series",
        || {
            get_json(&store.url(&format!(
                "/api/v1/query?query={}",
                enc("app:errors:count1m{app=\"web\"} > 0")
            )))
        },
        |v| v["data"]["result"].as_array().is_some_and(|r| r.len() == 1),
    );

    // The CLI: the table, JSON, and a status that fails while a critical alert fires.
    let cli = |args: &[&str]| Proc::run(obs_bin(), args, dir);
    let url = store.url("");
    let (code, out, err) = cli(&["alerts", "--store", &url]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("firing") && l.contains("Down") && l.contains("a is down")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("pending") && l.contains("LongDown")),
        "{out}"
    );
    let (_, json, _) = cli(&["alerts", "--store", &url, "--output", "json"]);
    let list: Vec<Value> = serde_json::from_str(&json).unwrap();
    assert_eq!(list[0]["state"], "firing", "firing first: {json}");
    let (code, out, _) = cli(&["status", "--store", &url]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("problem: critical alert Down is firing: a is down"),
        "{out}"
    );

    // A broken edit: the reload says what is wrong and the file's rules keep running.
    std::fs::write(
        dir.join("rules/node.yml"),
        PROM_RULES.replace("count(test_up)", "count(test_up"),
    )
    .unwrap();
    let (code, body) = http_post(&store.url("/-/reload"), "text/plain", b"").unwrap();
    assert_eq!(code, 422, "{body}");
    assert!(
        body.contains("node.yml:") && body.contains("could not parse expression"),
        "{body}"
    );
    assert_eq!(metric(&store, "obs_store_rule_file_errors"), 1.0);
    assert!(
        alert(&alerts(&store), "Down").is_some(),
        "the old rules still run"
    );

    // Fixed, and a SIGHUP: the new text is in force, the alert's state kept.
    std::fs::write(
        dir.join("rules/node.yml"),
        PROM_RULES.replace("is down", "is DOWN"),
    )
    .unwrap();
    store.proc.signal(nix::sys::signal::Signal::SIGHUP);
    let v = wait_for(
        "the reloaded annotation",
        || alerts(&store),
        |v| alert(v, "Down").is_some_and(|a| a["annotations"]["summary"] == "a is DOWN"),
    );
    assert_eq!(
        alert(&v, "LongDown").unwrap()["activeAt"],
        long["activeAt"],
        "reload keeps alert state"
    );
    assert_eq!(metric(&store, "obs_store_rule_file_errors"), 0.0);

    // kill -9 and back: the pending alert keeps the time it had been pending (Prometheus
    // moves activeAt on by the time the store was down).
    let killed = Instant::now();
    let store = store.kill_and_restart();
    let v = wait_for(
        "LongDown restored",
        || alerts(&store),
        |v| alert(v, "LongDown").is_some(),
    );
    let down_for = killed.elapsed();
    let restored =
        chrono::DateTime::parse_from_rfc3339(alert(&v, "LongDown").unwrap()["activeAt"].as_str().unwrap())
            .unwrap();
    let shift = (restored - active_at)
        .to_std()
        .expect("activeAt moved forward, not back");
    assert!(
        shift <= down_for + Duration::from_secs(3),
        "activeAt {active_at} became {restored}: moved {shift:?} for {down_for:?} down (reset, not restored)"
    );
    drop(feeder);
}

#[test]
fn kill_9_loses_no_acknowledged_recorded_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut rules = String::from("groups:\n  - name: many\n    rules:\n");
    for i in 0..100 {
        rules.push_str(&format!("      - record: rec_{i}\n        expr: vector({i})\n"));
    }
    std::fs::write(dir.join("many.yml"), rules).unwrap();
    let store = StoreProc::start_with_config(
        dir,
        &format!(
            "[store.rules]\nfiles = [\"{}/many.yml\"]\nevaluation_interval = \"1s\"\ndefaults = false\n",
            dir.display()
        ),
    );
    let count_at = |s: &StoreProc, t: f64| -> f64 {
        let v = get_json(&s.url(&format!(
            "/api/v1/query?query={}&time={t}",
            enc("sum(count_over_time({__name__=~\"rec_[0-9]+\"}[1h]))")
        )));
        v["data"]["result"][0]["value"][1]
            .as_str()
            .map_or(0.0, |x| x.parse().unwrap())
    };
    let now = || now_ms() as f64 / 1000.0;
    wait_for(
        "five evaluations recorded",
        || serde_json::json!(count_at(&store, now())),
        |v| v.as_f64().unwrap() >= 500.0,
    );
    let t = now();
    let before = count_at(&store, t);
    let store = store.kill_and_restart();
    let after = count_at(&store, t);
    assert!(
        after >= before,
        "{before} recorded samples before kill -9, {after} after"
    );
}

#[test]
fn the_built_in_pack_runs_by_default_and_can_be_written_out() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let store = StoreProc::start_with_config(dir, "[store.rules]\nevaluation_interval = \"1s\"\n");
    let failed: &[(&str, &str)] = &[
        ("__name__", "obs_backup_last_run_success"),
        ("job", "nightly"),
        ("repo", "offsite"),
    ];
    assert_eq!(
        remote_write(&store.url("/api/v1/write"), &[(failed, now_ms(), 0.0)]),
        Ok(204)
    );
    let v = wait_for(
        "BackupFailed",
        || get_json(&store.url("/api/v1/alerts")),
        |v| alert(v, "BackupFailed").is_some(),
    );
    let a = alert(&v, "BackupFailed").unwrap();
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["annotations"]["summary"], "Backup job nightly failed");
    assert!(
        a["annotations"]["description"]
            .as_str()
            .unwrap()
            .contains("obs backup run nightly"),
        "{a}"
    );
    // The store records its own metrics, so the pack's store rules have data.
    wait_for(
        "the store's own metrics",
        || {
            get_json(&store.url(&format!(
                "/api/v1/query?query={}",
                enc("obs_store_disk_avail_bytes{job=\"obs-store\"}")
            )))
        },
        |v| v["data"]["result"].as_array().is_some_and(|r| r.len() == 1),
    );

    let out = dir.join("pack.yml");
    let (code, _, err) = Proc::run(
        obs_bin(),
        &["rules", "defaults", "--out", out.to_str().unwrap()],
        dir,
    );
    assert_eq!(code, 0, "{err}");
    let (code, stdout, err) = Proc::run(obs_bin(), &["rules", "check", out.to_str().unwrap()], dir);
    assert_eq!(
        (code, stdout.trim()),
        (0, format!("{}: ok", out.display()).as_str()),
        "{err}"
    );
    std::fs::write(
        &out,
        "groups:\n  - name: g\n    rules:\n      - alert: X\n        expr: up ==\n",
    )
    .unwrap();
    let (code, _, err) = Proc::run(obs_bin(), &["rules", "check", out.to_str().unwrap()], dir);
    assert_eq!(code, 2);
    assert!(
        err.starts_with(&format!(
            "{}:5:15: group \"g\", rule 1, \"X\": could not parse expression",
            out.display()
        )),
        "{err}"
    );
}
