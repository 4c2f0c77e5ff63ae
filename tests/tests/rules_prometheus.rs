//! The store's rule engine against Prometheus 2.42 (Debian's `prometheus`): the same rule
//! file and the same remote_written series in both, through a scenario where an alert goes
//! pending, fires, resolves and fires again. At each step both must list the same alerts
//! (labels, annotations, state), the same rules (query, labels, health, `for`), the same
//! `ALERTS` series and the same recorded values.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use obs_e2e::{enc, free_port, get_json, remote_write, which, Proc, StoreProc};
use serde_json::Value;

const RULES: &str = r#"groups:
  - name: compare
    interval: 1s
    rules:
      - record: job:test_up:sum
        expr: sum by (job) (test_up)
      - alert: TestDown
        expr: test_up == 0
        for: 3s
        labels:
          severity: critical
          host_name: "{{ $labels.instance }}"
        annotations:
          summary: "{{ $labels.instance }} of {{ $labels.job }} is down"
          description: 'value {{ $value }} / {{ $value | humanize }} / {{ printf "%.2f" $value }} / {{ with query "job:test_up:sum" }}{{ . | first | value }}{{ end }} up / {{ if gt $value 0.5 }}high{{ else }}low{{ end }} / {{ $labels.nope }}|{{ "a b" | title }}'
      - alert: FewUp
        expr: job:test_up:sum < 2
        labels:
          severity: warning
        annotations:
          summary: "only {{ $value }} up, {{ 1234567 | humanize1024 }}, {{ 3725 | humanizeDuration }}, {{ 0.25 | humanizePercentage }}"
      - alert: KeepFiring
        expr: test_up{instance="a"} == 0
        keep_firing_for: 4s
        annotations:
          summary: '{{ $labels.instance | toUpper }} {{ reReplaceAll "(.*)" "<$1>" $labels.job }} {{ stripPort "host:9100" }}'
"#;

/// One remote_write request with `test_up{instance=a}` = `a` and `{instance=b}` = 1 at `t`.
fn write(url: &str, t: i64, a: f64) {
    let series = |instance| [("__name__", "test_up"), ("instance", instance), ("job", "t")];
    let (sa, sb) = (series("a"), series("b"));
    let _ = remote_write(url, &[(&sa, t, a), (&sb, t, 1.0)]);
}

/// `/api/v1/alerts` without what depends on when each evaluated (activeAt, value):
/// (labels, annotations, state), sorted.
fn alerts(base: &str) -> Vec<String> {
    let v = get_json(&format!("{base}/api/v1/alerts"));
    let mut out: Vec<String> = v["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{} {} {}", a["state"], a["labels"], a["annotations"]))
        .collect();
    out.sort();
    out
}

/// `/api/v1/rules` without evaluation times and alert lists.
fn rules(base: &str) -> Vec<String> {
    let v = get_json(&format!("{base}/api/v1/rules"));
    let mut out = Vec::new();
    for g in v["data"]["groups"].as_array().unwrap() {
        out.push(format!(
            "group {} interval {} limit {}",
            g["name"], g["interval"], g["limit"]
        ));
        for r in g["rules"].as_array().unwrap() {
            let mut r = r.clone();
            let obj = r.as_object_mut().unwrap();
            for k in ["evaluationTime", "lastEvaluation", "alerts", "state"] {
                obj.remove(k);
            }
            out.push(r.to_string());
        }
    }
    out
}

/// The label sets and values of an instant query.
fn series(base: &str, q: &str) -> Vec<String> {
    let v = get_json(&format!("{base}/api/v1/query?query={}", enc(q)));
    let mut out: Vec<String> = v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{} {}", s["metric"], s["value"][1]))
        .collect();
    out.sort();
    out
}

/// Waits until both answer the same and `want` holds for that answer.
fn converge(
    what: &str,
    store: &str,
    prom: &str,
    get: impl Fn(&str) -> Vec<String>,
    want: impl Fn(&[String]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (ours, theirs) = (get(store), get(prom));
        if ours == theirs && want(&theirs) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the store and Prometheus differ\nstore:      {ours:#?}\nprometheus: {theirs:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn alerts_and_recorded_series_match_prometheus_2_42() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let rules_file = dir.join("rules.yml");
    std::fs::write(&rules_file, RULES).unwrap();
    let store = StoreProc::start_with_config(
        dir,
        &format!(
            "[store.rules]\nfiles = [\"{}\"]\nevaluation_interval = \"1s\"\ndefaults = false\n",
            rules_file.display()
        ),
    );
    let prom_port = free_port();
    let cfg = dir.join("prometheus.yml");
    std::fs::write(
        &cfg,
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files: [\"{}\"]\n",
            rules_file.display()
        ),
    )
    .unwrap();
    let mut prom = Proc::spawn(
        "prometheus",
        &which("prometheus"),
        &[
            &format!("--config.file={}", cfg.display()),
            &format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
            &format!("--web.listen-address=127.0.0.1:{prom_port}"),
            "--web.enable-remote-write-receiver",
        ],
        dir,
    );
    let prom_url = format!("http://127.0.0.1:{prom_port}");
    prom.wait_http_ok(&format!("{prom_url}/-/ready"), Duration::from_secs(60));
    let store_url = store.url("");

    // Both get the same samples: instance a's value is the scenario's, b is always up.
    let a_value = Arc::new(AtomicU64::new(1f64.to_bits()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (a_value, stop) = (a_value.clone(), stop.clone());
        let urls = [store.url("/api/v1/write"), format!("{prom_url}/api/v1/write")];
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let t = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
                let a = f64::from_bits(a_value.load(Ordering::Relaxed));
                for u in &urls {
                    write(u, t, a);
                }
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };
    let set_a = |v: f64| a_value.store(v.to_bits(), Ordering::Relaxed);
    let has = |list: &[String], needle: &str| list.iter().any(|a| a.contains(needle));

    converge("rules", &store_url, &prom_url, rules, |r| {
        r.iter().any(|l| l.contains("\"health\":\"ok\""))
    });
    converge(
        "recorded series",
        &store_url,
        &prom_url,
        |b| series(b, "job:test_up:sum"),
        |s| s.iter().any(|l| l.ends_with("\"2\"")),
    );
    converge("no alerts while all is up", &store_url, &prom_url, alerts, |a| {
        a.is_empty()
    });

    // a goes down: pending, then firing after `for`.
    set_a(0.0);
    converge("pending", &store_url, &prom_url, alerts, |a| {
        has(a, "\"pending\" {\"alertname\":\"TestDown\"")
    });
    converge("firing", &store_url, &prom_url, alerts, |a| {
        has(a, "\"firing\" {\"alertname\":\"TestDown\"") && has(a, "\"FewUp\"") && has(a, "\"KeepFiring\"")
    });
    converge(
        "ALERTS",
        &store_url,
        &prom_url,
        |b| series(b, "ALERTS"),
        |s| s.len() == 3,
    );
    converge("rules while firing", &store_url, &prom_url, rules, |_| true);

    // a is back: TestDown and FewUp resolve; KeepFiring is held for 4 s, then resolves.
    set_a(1.0);
    converge("keep firing", &store_url, &prom_url, alerts, |a| {
        a.len() == 1 && has(a, "KeepFiring")
    });
    converge("resolved", &store_url, &prom_url, alerts, |a| a.is_empty());
    converge(
        "ALERTS gone",
        &store_url,
        &prom_url,
        |b| series(b, "ALERTS"),
        |s| s.is_empty(),
    );

    // And down again: a new alert, pending first.
    set_a(0.0);
    converge("pending again", &store_url, &prom_url, alerts, |a| {
        has(a, "\"pending\" {\"alertname\":\"TestDown\"")
    });
    converge("firing again", &store_url, &prom_url, alerts, |a| {
        has(a, "\"firing\" {\"alertname\":\"TestDown\"")
    });

    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    // The annotation that exercises the template functions, as both expanded it.
    let v: Value = get_json(&format!("{store_url}/api/v1/alerts"));
    let down = v["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["labels"]["alertname"] == "TestDown")
        .unwrap()
        .clone();
    assert_eq!(
        down["annotations"]["description"],
        "value 0 / 0 / 0.00 / 1 up / low / |A B"
    );
    assert_eq!(down["value"], "0e+00");
}
