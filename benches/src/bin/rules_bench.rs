//! Rule evaluation cost: the store fed `--hosts` × 100 node_exporter-like series every
//! `--interval` seconds, once without rules and once with ~`--rules` alerting rules (the
//! built-in pack, the community node_exporter and blackbox packs from
//! `../shared/conformance/rules/`, and copies of them with other thresholds), each for
//! `--minutes`. Prints the store's CPU share of one core in both runs, the difference, and
//! the evaluation time the rules API reports per interval.
//!
//! ```text
//! cargo build --release -p obs -p obs-benches
//! OBS_BIN=$PWD/target/release/obs target/release/rules-bench [--hosts 100] [--rules 300]
//!     [--interval 15] [--minutes 3]
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use obs_benches::node::{encode, HostState};
use obs_benches::{arg, cpu_seconds};
use obs_e2e::{free_port, http_get, http_post};
use obs_store::prompb::{Sample, TimeSeries};

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Rule files with about `want` alerting rules: the community packs and copies of them
/// whose thresholds are moved by 1% per copy. Returns how many alerting rules they hold.
fn write_rules(dir: &Path, want: usize) -> usize {
    let packs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/conformance/rules");
    let texts: Vec<String> = ["community-node-exporter.yml", "community-blackbox-exporter.yml"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(packs.join(f))
                .unwrap_or_else(|e| panic!("{}: {e}", packs.join(f).display()))
        })
        .collect();
    let threshold = regex::Regex::new(r"([<>]=?\s*)(\d+(?:\.\d+)?)").unwrap();
    let alerts_in = |t: &str| {
        t.lines()
            .filter(|l| l.trim_start().starts_with("- alert:"))
            .count()
    };
    let builtin = alerts_in(obs_store::rules::DEFAULT_RULES);
    let mut total = builtin;
    let mut copy = 0;
    while total < want {
        for (i, t) in texts.iter().enumerate() {
            let moved = threshold.replace_all(t, |c: &regex::Captures| {
                let v: f64 = c[2].parse().unwrap();
                format!("{}{}", &c[1], v * (1.0 + copy as f64 / 100.0))
            });
            let renamed = moved.replace("- name: ", &format!("- name: copy{copy}-"));
            std::fs::write(dir.join(format!("pack{i}-{copy}.yml")), renamed).unwrap();
            total += alerts_in(t);
        }
        copy += 1;
    }
    total
}

struct Store {
    child: Child,
    url: String,
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(dir: &Path, rules: Option<&Path>, interval: usize) -> Store {
    let bin = std::env::var("OBS_BIN").expect("set OBS_BIN to the release obs binary (absolute path)");
    let port = free_port();
    let rules = match rules {
        Some(r) => format!("files = [\"{}/*.yml\"]\ndefaults = true", r.display()),
        None => "defaults = false".into(),
    };
    let cfg = dir.join("obs.toml");
    std::fs::write(
        &cfg,
        format!(
            "version = 1\n[store]\nhttp_addr = \"127.0.0.1:{port}\"\ngrpc_addr = \"127.0.0.1:{}\"\n[store.rules]\nevaluation_interval = \"{interval}s\"\n{rules}\n",
            free_port()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.join("store.log")).unwrap();
    let child = Command::new(bin)
        .args([
            "store",
            "--config",
            cfg.to_str().unwrap(),
            "--data-dir",
            dir.join("data").to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start the store");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(http_get(&format!("{url}/ready")), Ok((200, _))) {
        assert!(Instant::now() < deadline, "the store did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Store { child, url }
}

/// Sends one scrape of every host at `t`.
fn send(url: &str, hosts: &mut [HostState], t: i64) {
    let mut series = Vec::new();
    for h in hosts.iter_mut() {
        h.step();
        for (d, v) in h.defs.iter().zip(&h.values) {
            series.push(TimeSeries {
                labels: d.labels.clone(),
                samples: vec![Sample {
                    value: *v,
                    timestamp: t,
                }],
            });
        }
    }
    match http_post(
        &format!("{url}/api/v1/write"),
        "application/x-protobuf",
        &encode(series),
    ) {
        Ok((200..=299, _)) => {}
        other => panic!("remote_write: {other:?}"),
    }
}

/// Runs one store for `minutes` of live scrapes after an hour of history; returns its CPU
/// share of one core and the evaluation seconds per interval its rules API reports.
fn run(rules: Option<&Path>, hosts: usize, interval: usize, minutes: usize) -> (f64, f64, usize) {
    let tmp = tempfile::tempdir().unwrap();
    let store = start(tmp.path(), rules, interval);
    let mut states: Vec<HostState> = (0..hosts).map(HostState::new).collect();
    let step = interval as i64 * 1000;
    let start = now_ms() - 3_600_000;
    let mut t = start;
    while t < now_ms() - step {
        send(&store.url, &mut states, t);
        t += step;
    }
    // Two intervals to settle (the first evaluations restore state), then measure.
    let mut next = Instant::now();
    let mut measure_from = None;
    let live_until = Instant::now() + Duration::from_secs((2 * interval + minutes * 60) as u64);
    let mut measured_at = Instant::now();
    while Instant::now() < live_until {
        send(&store.url, &mut states, now_ms());
        if measure_from.is_none() && Instant::now() >= next + Duration::from_secs((2 * interval) as u64) {
            measure_from = Some(cpu_seconds(store.child.id()));
            measured_at = Instant::now();
        }
        next += Duration::from_secs(interval as u64);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let cpu = cpu_seconds(store.child.id()) - measure_from.unwrap_or(0.0);
    let share = cpu / measured_at.elapsed().as_secs_f64();
    let (_, body) = http_get(&format!("{}/api/v1/rules", store.url)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let groups = v["data"]["groups"].as_array().cloned().unwrap_or_default();
    let eval: f64 = groups.iter().filter_map(|g| g["evaluationTime"].as_f64()).sum();
    let alerting = groups
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["type"] == "alerting")
        .count();
    let failing: Vec<String> = groups
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .filter(|r| r["health"] == "err")
        .map(|r| format!("{}: {}", r["name"], r["lastError"]))
        .collect();
    if !failing.is_empty() {
        eprintln!("rules with errors:\n  {}", failing.join("\n  "));
    }
    (share, eval, alerting)
}

fn main() {
    let hosts = arg("--hosts", 100);
    let want = arg("--rules", 300);
    let interval = arg("--interval", 15);
    let minutes = arg("--minutes", 3);
    let tmp = tempfile::tempdir().unwrap();
    let rules_dir: PathBuf = tmp.path().join("rules");
    std::fs::create_dir_all(&rules_dir).unwrap();
    let written = write_rules(&rules_dir, want);
    println!(
        "{hosts} hosts x 100 series = {} series every {interval} s; {written} alerting rules every {interval} s; {minutes} min measured",
        hosts * 100
    );
    let (base, _, _) = run(None, hosts, interval, minutes);
    let (with, eval, alerting) = run(Some(&rules_dir), hosts, interval, minutes);
    println!(
        "{:<34} {:>10}",
        "store CPU, ingest only",
        format!("{:.2}%", base * 100.0)
    );
    println!(
        "{:<34} {:>10}",
        format!("store CPU, ingest + {alerting} rules"),
        format!("{:.2}%", with * 100.0)
    );
    println!(
        "{:<34} {:>10}",
        "rules' share of one core",
        format!("{:.2}%", (with - base) * 100.0)
    );
    println!(
        "{:<34} {:>10}",
        "evaluation time per interval",
        format!("{:.1} ms ({:.2}%)", eval * 1000.0, eval / interval as f64 * 100.0)
    );
}
