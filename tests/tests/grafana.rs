//! `obs grafana provision`: every query of every provisioned dashboard panel, and every
//! template variable query, returns data from a real store fed by a real collector (host
//! metrics, its own metrics, a tailed log file) and a real backup job with a restore drill —
//! asked the way Grafana asks (range queries with `$__interval` and friends filled in).

use std::time::{Duration, Instant};

use obs_e2e::{enc, free_port, now_ns, obs_bin, Proc, StoreProc};
use serde_json::Value;

/// Grafana's built-in variables and the dashboards' own, as Grafana fills them in with "All".
fn interpolate(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$__interval", "15s")
        .replace("$__range", "10m")
        .replace("$instance", ".+")
        .replace("$host", ".+")
        .replace("$service", ".+")
        .replace("$job", ".+")
        .replace("$search", "")
}

/// Series (or streams) a panel query returns over the last 10 minutes, or the store's error.
fn panel_result(store: &StoreProc, ds: &str, expr: &str, instant: bool) -> Result<usize, String> {
    let now = now_ns() / 1_000_000_000;
    let path = match (ds, instant) {
        ("obs-prometheus", _) => format!(
            "/api/v1/query_range?query={}&start={}&end={now}&step=15",
            enc(expr),
            now - 600
        ),
        ("obs-loki", true) => format!("/loki/api/v1/query?query={}&time={now}000000000", enc(expr)),
        ("obs-loki", false) => format!(
            "/loki/api/v1/query_range?query={}&start={}000000000&end={now}000000000&step=15000ms&limit=100",
            enc(expr),
            now - 600
        ),
        _ => return Err(format!("unknown data source {ds}")),
    };
    let v = store.get_json(&path);
    if v["status"] != "success" {
        return Err(v.to_string());
    }
    Ok(v["data"]["result"].as_array().map_or(0, Vec::len))
}

/// What a template variable offers: Prometheus `label_values(metric, label)` or a Loki label.
fn variable_values(store: &StoreProc, var: &Value) -> Vec<String> {
    let path = match var["datasource"]["uid"].as_str().unwrap() {
        "obs-prometheus" => {
            let q = var["query"]["query"].as_str().unwrap();
            let inner = q
                .strip_prefix("label_values(")
                .unwrap()
                .strip_suffix(')')
                .unwrap();
            let (metric, label) = inner.split_once(", ").unwrap();
            format!("/api/v1/label/{label}/values?match[]={}", enc(metric))
        }
        _ => format!(
            "/loki/api/v1/label/{}/values",
            var["query"]["label"].as_str().unwrap()
        ),
    };
    let v = store.get_json(&path);
    assert_eq!(v["status"], "success", "{path}: {v}");
    serde_json::from_value(v["data"].clone()).unwrap()
}

#[test]
fn every_provisioned_panel_query_returns_data() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let store = StoreProc::start(dir);
    let base = store.url("").trim_end_matches('/').to_string();

    let logs = dir.join("app.log");
    let lines: String = (0..40)
        .map(|i| format!("level={} msg=\"request {i}\"\n", ["info", "warn", "error"][i % 3]))
        .collect();
    std::fs::write(&logs, lines).unwrap();
    std::fs::write(
        dir.join("collector.toml"),
        format!(
            "version = 1\n[collector]\nstore = \"http://{}\"\notlp_grpc_addr = \"127.0.0.1:{}\"\n\
             otlp_http_addr = \"127.0.0.1:{}\"\nhost_metrics_interval_secs = 1\n\
             [[collector.files]]\npaths = [\"{}\"]\nlabels = {{ service_name = \"shop\" }}\n",
            store.grpc_addr(),
            free_port(),
            free_port(),
            logs.display()
        ),
    )
    .unwrap();
    let mut collector = Proc::obs(
        "collector",
        &["collector", "--config", "collector.toml", "--data-dir", "cdata"],
        dir,
    );

    // A backup job with a drill, reporting into the store.
    std::fs::create_dir(dir.join("app")).unwrap();
    std::fs::write(dir.join("app/data.txt"), "precious\n").unwrap();
    std::fs::write(dir.join("pw"), "grafana-test").unwrap();
    std::fs::write(
        dir.join("obs.toml"),
        format!(
            "version = 1\n[[backup.repositories]]\nname = \"local\"\nurl = \"{repo}\"\npassword_file = \"{pw}\"\n\n\
             [[backup.jobs]]\nname = \"app\"\nrepository = \"local\"\npaths = [\"{app}\"]\n\
             schedule = \"0 0 3 * * *\"\nreport_to = \"{base}\"\n[backup.jobs.drill]\nschedule = \"0 0 4 * * *\"\n",
            repo = dir.join("repo").display(),
            pw = dir.join("pw").display(),
            app = dir.join("app").display(),
        ),
    )
    .unwrap();
    let repo = dir.join("repo");
    for args in [
        vec![
            "backup",
            "init",
            "--repo",
            repo.to_str().unwrap(),
            "--password-file",
            "pw",
        ],
        vec![
            "backup",
            "run",
            "app",
            "--config",
            "obs.toml",
            "--data-dir",
            "bdata",
        ],
        vec![
            "backup",
            "drill",
            "app",
            "--config",
            "obs.toml",
            "--data-dir",
            "bdata",
        ],
    ] {
        let (code, out, err) = Proc::run(obs_bin(), &args, dir);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    }

    let (code, out, err) = Proc::run(
        obs_bin(),
        &["grafana", "provision", "--out", "grafana", "--store", &base],
        dir,
    );
    assert_eq!(code, 0, "{out}{err}");
    let provisioning = dir.join("grafana");
    let sources = std::fs::read_to_string(provisioning.join("datasources/obs.yaml")).unwrap();
    for uid in ["obs-prometheus", "obs-loki", "obs-tempo"] {
        assert!(sources.contains(&format!("uid: {uid}")), "{sources}");
    }
    assert_eq!(sources.matches(&format!("url: {base}\n")).count(), 3, "{sources}");
    let provider = std::fs::read_to_string(provisioning.join("dashboards/obs.yaml")).unwrap();
    let dashboards_dir = std::path::absolute(provisioning.join("dashboards")).unwrap();
    assert!(
        provider.contains(&format!("path: {}", dashboards_dir.display())),
        "{provider}"
    );

    let mut checked = 0;
    for name in ["obs-node.json", "obs-logs.json", "obs-backup.json"] {
        let text = std::fs::read_to_string(dashboards_dir.join(name)).unwrap();
        let dashboard: Value = serde_json::from_str(&text).unwrap();
        for var in dashboard["templating"]["list"].as_array().unwrap() {
            if var["type"] == "query" {
                let deadline = Instant::now() + Duration::from_secs(60);
                while variable_values(&store, var).is_empty() {
                    assert!(
                        Instant::now() < deadline,
                        "{name}: variable {} offers nothing",
                        var["name"]
                    );
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().unwrap() {
                let ds = target["datasource"]["uid"].as_str().unwrap();
                let expr = interpolate(target["expr"].as_str().unwrap());
                let instant = target["instant"] == true;
                // Rates need two host-metric samples; the collector ships every second.
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    match panel_result(&store, ds, &expr, instant) {
                        Ok(n) if n > 0 => break,
                        Ok(_) => {}
                        Err(e) => panic!("{name} / {}: {expr}: the store refused it: {e}", panel["title"]),
                    }
                    assert!(
                        Instant::now() < deadline,
                        "{name} / {}: {expr} returns no data\n{}",
                        panel["title"],
                        collector.describe()
                    );
                    std::thread::sleep(Duration::from_millis(500));
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 25, "only {checked} panel queries found");
    collector.signal(nix::sys::signal::Signal::SIGTERM);
    collector.wait_timeout(Duration::from_secs(30));
}
