//! Uptime end to end with real processes: two collectors probe the same service, one of
//! them cannot reach it; results taken while the store is down arrive later with their own
//! timestamps; the failure is a log line; a cron job pushes a heartbeat; the status page,
//! loaded in headless Chromium on a desktop and a phone viewport, says "degraded", not
//! "down"; `obs probe run` shows a check's phases.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

use obs_e2e::{enc, free_port, obs_bin, Proc, StoreProc};

/// A service that is up, except from the vantage point whose probe sends `x-vantage: far`
/// (its "uplink" is broken).
fn service() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&conn);
                let mut far = false;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                        break;
                    }
                    far |= h.to_ascii_lowercase().starts_with("x-vantage: far");
                }
                let (status, body) = match far {
                    true => ("503 Service Unavailable", "unreachable"),
                    false => ("200 OK", "healthy"),
                };
                let _ = write!(
                    &conn,
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

fn collector_config(dir: &Path, node: &str, store_grpc: u16, service: u16, far: bool) -> String {
    let file = dir.join(format!("{node}.toml"));
    let headers = if far {
        "headers = { x-vantage = \"far\" }\n"
    } else {
        ""
    };
    std::fs::write(
        &file,
        format!(
            r#"version = 1
[collector]
store = "http://127.0.0.1:{store_grpc}"
host_name = "{node}"
host_metrics = false
otlp_grpc_addr = "127.0.0.1:{}"
otlp_http_addr = "127.0.0.1:{}"
[[collector.probes]]
name = "web"
url = "http://127.0.0.1:{service}/health"
interval_secs = 1
timeout_secs = 1
conditions = ["[BODY] == pat(*healthy*)"]
{headers}"#,
            free_port(),
            free_port()
        ),
    )
    .unwrap();
    file.to_str().unwrap().to_string()
}

fn collector(dir: &Path, node: &str, config: &str) -> Proc {
    let data = dir.join(format!("{node}-data"));
    Proc::obs(
        node,
        &[
            "collector",
            "--config",
            config,
            "--data-dir",
            data.to_str().unwrap(),
        ],
        dir,
    )
}

/// The instant query's result, once it has `want` series.
fn wait_series(store: &StoreProc, query: &str, want: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = store.get_json(&format!("/api/v1/query?query={}", enc(query)));
        let result = r["data"]["result"].as_array().cloned().unwrap_or_default();
        if result.len() >= want {
            return result;
        }
        assert!(Instant::now() < deadline, "{query}: {r}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn two_vantage_points_one_cut_off_with_the_store_down_at_first() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let port = service();
    let (http, grpc) = (free_port(), free_port());
    let near = collector_config(dir, "node-a", grpc, port, false);
    let far = collector_config(dir, "node-b", grpc, port, true);
    let mut a = collector(dir, "node-a", &near);
    let mut b = collector(dir, "node-b", &far);
    // The store is down for the first probes: they wait in the spools.
    std::thread::sleep(Duration::from_secs(3));
    let store_up = obs_e2e::now_ns() as f64 / 1e9;
    let store = StoreProc::start_with_config_on(
        dir,
        "[[store.heartbeats]]\nname = \"nightly-backup\"\nperiod = \"1d\"\n[store.status_page]\ntitle = \"Home fleet\"\npublic = true\n",
        http,
        grpc,
    );

    let series = wait_series(&store, "probe_success{probe=\"web\"}", 2);
    let url = format!("http://127.0.0.1:{port}/health");
    for s in &series {
        let m = &s["metric"];
        assert_eq!(
            (m["job"].as_str(), m["instance"].as_str()),
            (Some("obs-probe"), Some(url.as_str())),
            "{s}"
        );
        let want = if m["host_name"] == "node-a" { "1" } else { "0" };
        assert_eq!(s["value"][1], want, "{s}");
    }
    // Results from before the store was up, with their own timestamps (the spools may
    // still be shipping them).
    let before = format!(
        "/api/v1/query?query={}&time={}",
        enc("count_over_time(probe_success{probe=\"web\"}[10s])"),
        store_up - 0.5
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = store.get_json(&before);
        if r["data"]["result"].as_array().is_some_and(|a| a.len() == 2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no results from before the store was up: {r}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // blackbox_exporter's series.
    for q in [
        "probe_http_status_code{host_name=\"node-b\"} == 503",
        "probe_http_duration_seconds{phase=\"connect\",host_name=\"node-a\"}",
        "probe_failed_due_to_regex{host_name=\"node-b\"} == 1",
        "probe_condition_success{condition=\"[BODY] == pat(*healthy*)\",host_name=\"node-a\"} == 1",
        "probe_duration_seconds{probe=\"web\"}",
    ] {
        wait_series(&store, q, 1);
    }
    // Each failure is a log line, from the vantage point that saw it.
    let lines = store.wait_log_lines("{service_name=\"obs-probe\"}", 1, &mut b);
    assert!(
        lines.iter().all(|(labels, _)| labels["host_name"] == "node-b"),
        "{lines:?}"
    );
    assert_eq!(lines[0].1, format!("probe web failed: HTTP 503 from {url}"));
    assert!(a.wait_timeout(Duration::ZERO).is_none(), "{}", a.describe());

    // A cron job reports in without a token: the store has none, so it is loopback-only.
    let (code, body) =
        obs_e2e::http_get(&store.url("/api/v1/push/nightly-backup?status=up&msg=3%20GiB%20in%2012%20min"))
            .unwrap();
    assert_eq!(code, 200, "{body}");
    status_page(&store, dir, &url);
    uptime_dashboard(&store, dir);
}

/// Every panel of the provisioned uptime dashboard answers with data.
fn uptime_dashboard(store: &StoreProc, dir: &Path) {
    let (code, out, err) = Proc::run(
        obs_bin(),
        &[
            "grafana",
            "provision",
            "--out",
            "grafana",
            "--store",
            &store.url(""),
        ],
        dir,
    );
    assert_eq!(code, 0, "{out}{err}");
    let text = std::fs::read_to_string(dir.join("grafana/dashboards/obs-uptime.json")).unwrap();
    let d: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut checked = 0;
    for panel in d["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap().replace("$probe", ".+");
            if t["datasource"]["uid"] == "obs-loki" {
                assert!(!store.log_lines(&expr).is_empty(), "{}: {expr}", panel["title"]);
            } else if !expr.contains("probe_ssl") {
                // (no HTTPS target here: the certificate panel is empty by design)
                let r = store.get_json(&format!("/api/v1/query?query={}", enc(&expr)));
                assert!(
                    !r["data"]["result"].as_array().unwrap().is_empty(),
                    "{}: {expr}: {r}",
                    panel["title"]
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "{checked} queries");
}

/// The page, its JSON and badge, and the page in a real browser.
fn status_page(store: &StoreProc, dir: &Path, url: &str) {
    let status = obs_e2e::get_json(&store.url("/status.json"));
    assert_eq!(status["state"], "degraded", "{status:#}");
    let web = &status["services"][0];
    assert_eq!(
        (
            web["name"].as_str(),
            web["state"].as_str(),
            web["target"].as_str()
        ),
        (Some("web"), Some("degraded"), Some(url)),
        "{status:#}"
    );
    assert_eq!(
        web["uptime"]["24h"], 100.0,
        "up whenever any vantage point saw it up: {status:#}"
    );
    assert!(web["response_time_ms"].as_f64().unwrap() > 0.0);
    let backup = &status["services"][1];
    assert_eq!(
        (backup["kind"].as_str(), backup["state"].as_str()),
        (Some("heartbeat"), Some("up")),
        "{status:#}"
    );
    assert_eq!(backup["message"], "3 GiB in 12 min");
    let (code, svg) = obs_e2e::http_get(&store.url("/status/web/badge.svg")).unwrap();
    assert_eq!(code, 200);
    assert!(svg.contains("web: degraded 100%"), "{svg}");

    let mut browser = obs_e2e::browser::Browser::start();
    let read = r#"JSON.stringify({
        title: document.title,
        banner: document.getElementById('overall').innerText,
        services: [...document.querySelectorAll('section.svc')].map(s => ({
            name: s.querySelector('h2').innerText,
            state: s.querySelector('.pill').innerText,
            day: s.querySelector('.uptime-24h').innerText,
            vantage: (s.querySelector('.vantage') || {}).innerText || '',
            bars: s.querySelectorAll('.bars span').length,
        })),
        incidents: document.getElementById('incidents').innerText,
        overflow: document.documentElement.scrollWidth > window.innerWidth,
    })"#;
    for (width, height, mobile, shot) in [
        (1280, 900, false, "status-desktop.png"),
        (390, 844, true, "status-phone.png"),
    ] {
        browser.open(&store.url("/status"), width, height, mobile);
        let page: serde_json::Value = serde_json::from_str(browser.eval(read).as_str().unwrap()).unwrap();
        assert_eq!(page["title"], "Home fleet", "{page:#}");
        assert_eq!(page["banner"], "Some services are degraded", "{page:#}");
        let web = &page["services"][0];
        assert_eq!(
            (web["name"].as_str(), web["state"].as_str(), web["day"].as_str()),
            (Some("web"), Some("Degraded"), Some("100%")),
            "{page:#}"
        );
        assert_eq!(web["vantage"], "down from node-b; up from node-a", "{page:#}");
        assert_eq!(web["bars"], 90);
        let backup = &page["services"][1];
        assert_eq!(
            (backup["name"].as_str(), backup["state"].as_str()),
            (Some("nightly-backup"), Some("Up")),
            "{page:#}"
        );
        assert_eq!(
            page["overflow"], false,
            "{width}px wide: the page scrolls sideways"
        );
        let path = dir.join(shot);
        browser.screenshot(&path);
        let png = std::fs::read(&path).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
        assert_eq!(w, if mobile { width * 2 } else { width }, "{shot}");
    }
    assert_eq!(browser.console_errors(), Vec::<String>::new());
}

#[test]
fn probe_run_prints_phases_and_conditions() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let port = service();
    let config = collector_config(dir, "node-a", free_port(), port, false);
    let (code, out, err) = Proc::run(obs_bin(), &["probe", "run", "web", "--config", &config], dir);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.starts_with(&format!("probe web -> http://127.0.0.1:{port}/health: UP in ")),
        "{out}"
    );
    for want in [
        "  connect ",
        "  processing ",
        "  transfer ",
        "  status      200",
        "[ok] [BODY] == pat(*healthy*)   (was healthy)",
    ] {
        assert!(out.contains(want), "{want:?} in\n{out}");
    }
    let far = collector_config(dir, "node-b", free_port(), port, true);
    let (code, out, _) = Proc::run(
        obs_bin(),
        &["probe", "run", "web", "-c", &far, "--output", "json"],
        dir,
    );
    assert_eq!(code, 1, "a failed probe exits 1: {out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], 503);
    assert_eq!(v["conditions"][0]["success"], false);
    let (code, _, err) = Proc::run(obs_bin(), &["probe", "run", "nope", "-c", &far], dir);
    assert_eq!(code, 2);
    assert!(
        err.contains("no probe named \"nope\"") && err.contains("there are: web"),
        "{err}"
    );
}
