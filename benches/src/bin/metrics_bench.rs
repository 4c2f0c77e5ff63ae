//! Metrics ingest, bytes per sample and dashboard query latency: the obs store, Prometheus
//! 2.42 and VictoriaMetrics 1.79 (Debian packages) fed the same remote_write stream in the
//! same run, printed side by side with ratios.
//!
//! ```text
//! cargo build --release -p obs -p obs-benches
//! OBS_BIN=$PWD/target/release/obs target/release/metrics-bench [--hosts 100] [--hours 24]
//!     [--interval 15] [--clients 2] [--only obs]
//! ```
//!
//! Data: `--hosts` hosts × 100 node_exporter-like series (CPU modes × cores, memory, network,
//! filesystem, disk, load), one sample every `--interval` seconds for the last `--hours`,
//! timestamps with a few ms of scrape jitter. It is synthetic: counters grow at a per-series
//! rate ±30% per scrape, gauges move on one scrape in three, values are the doubles a text
//! parser gives for short decimals, as node_exporter's are. Every server gets it in time order over
//! `--clients` connections (Prometheus refuses samples far behind its head).
//! Reported per server: samples/s ingested (wall) and per CPU-second of the server process;
//! bytes per sample in its compacted blocks; then a table of query latency (median of 5
//! runs, ms) of metrics-bench's queries and the node-overview dashboard's panels as range
//! queries over the last 1 h, 24 h and 7 d (those the data covers; 7 d needs `--hours 168`)
//! at the step Grafana picks, each server side by side, and obs's speed against the
//! fastest peer.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use obs_benches::node::{encode, HostState, SERIES_PER_HOST};
use obs_benches::{arg, cpu_seconds, dir_size, Rng};
use obs_e2e::{enc, free_port, http_get, http_get_within, http_post};
use obs_store::prompb::{Sample, TimeSeries};

/// A server under test.
struct Peer {
    name: &'static str,
    child: Child,
    url: String,
    write_path: &'static str,
    data: PathBuf,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(program: &str, args: &[String], log: &Path) -> Child {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log.with_extension("out")).expect("log"))
        .stderr(std::fs::File::create(log.with_extension("err")).expect("log"))
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e} (Debian: apt-get install {program})"))
}

fn wait_ready(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !matches!(http_get(url), Ok((200, _))) {
        assert!(Instant::now() < deadline, "{url} did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn start(name: &'static str, dir: &Path) -> Peer {
    let port = free_port();
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let log = dir.join(format!("{name}.log"));
    let (child, write_path, ready) = match name {
        "obs" => {
            let bin =
                std::env::var("OBS_BIN").expect("set OBS_BIN to the release obs binary (absolute path)");
            let args = [
                "store".to_string(),
                "--data-dir".into(),
                data.display().to_string(),
                "--http-addr".into(),
                format!("127.0.0.1:{port}"),
                "--grpc-addr".into(),
                format!("127.0.0.1:{}", free_port()),
            ];
            (spawn(&bin, &args, &log), "/api/v1/write", "/ready")
        }
        "prometheus" => {
            let cfg = dir.join("prometheus.yml");
            std::fs::write(&cfg, "global: {}\n").unwrap();
            let args = [
                format!("--config.file={}", cfg.display()),
                format!("--storage.tsdb.path={}", data.display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
                "--web.enable-remote-write-receiver".into(),
                "--storage.tsdb.retention.time=30d".into(),
            ];
            (spawn("prometheus", &args, &log), "/api/v1/write", "/-/ready")
        }
        _ => {
            let args = [
                format!("-storageDataPath={}", data.display()),
                format!("-httpListenAddr=127.0.0.1:{port}"),
                "-retentionPeriod=2".into(),
                // Measure query work, not its result cache (the bench repeats each query).
                "-search.disableCache".into(),
            ];
            (spawn("victoria-metrics", &args, &log), "/api/v1/write", "/health")
        }
    };
    wait_ready(&format!("{url}{ready}"));
    Peer {
        name,
        child,
        url,
        write_path,
        data,
    }
}

struct Ingest {
    samples: u64,
    secs: f64,
    cpu: f64,
}

/// Sends every host's series in time order: each round covers `steps` scrapes, all clients
/// finish a round before any starts the next.
fn ingest(
    peer: &Peer,
    hosts: usize,
    hours: usize,
    interval_s: usize,
    clients: usize,
    start_ms: i64,
) -> Ingest {
    let scrapes = hours * 3600 / interval_s;
    let steps = 8;
    let barrier = Arc::new(Barrier::new(clients));
    let url = format!("{}{}", peer.url, peer.write_path);
    let pid = peer.child.id();
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|c| {
            let (barrier, url) = (barrier.clone(), url.clone());
            std::thread::spawn(move || {
                let mut states: Vec<HostState> = (c..hosts).step_by(clients).map(HostState::new).collect();
                let mut sent = 0u64;
                let mut rng = Rng(0x1234_5678 + c as u64);
                for round in (0..scrapes).step_by(steps) {
                    // Group a round's samples per series, as a scraper's queue would.
                    let mut series = Vec::with_capacity(states.len() * SERIES_PER_HOST);
                    let mut per: Vec<Vec<Sample>> =
                        vec![Vec::with_capacity(steps); states.len() * SERIES_PER_HOST];
                    for k in round..(round + steps).min(scrapes) {
                        for (h, st) in states.iter_mut().enumerate() {
                            st.step();
                            let jitter = (rng.next_u64() % 4) as i64;
                            let t = start_ms + st.offset_ms + (k * interval_s * 1000) as i64 + jitter;
                            for (i, v) in st.values.iter().enumerate() {
                                per[h * SERIES_PER_HOST + i].push(Sample {
                                    value: *v,
                                    timestamp: t,
                                });
                            }
                        }
                    }
                    for (h, st) in states.iter().enumerate() {
                        for (i, d) in st.defs.iter().enumerate() {
                            let samples = std::mem::take(&mut per[h * SERIES_PER_HOST + i]);
                            sent += samples.len() as u64;
                            series.push(TimeSeries {
                                labels: d.labels.clone(),
                                samples,
                            });
                        }
                    }
                    let body = encode(series);
                    let mut tries = 0;
                    loop {
                        match http_post(&url, "application/x-protobuf", &body) {
                            Ok((200..=299, _)) => break,
                            Ok((s, msg)) if s < 500 => panic!("{url}: {s} {msg}"),
                            other => {
                                tries += 1;
                                assert!(tries < 50, "{url}: {other:?}");
                                std::thread::sleep(Duration::from_millis(100));
                            }
                        }
                    }
                    barrier.wait();
                }
                sent
            })
        })
        .collect();
    let samples = workers.into_iter().map(|w| w.join().unwrap()).sum();
    Ingest {
        samples,
        secs: t0.elapsed().as_secs_f64(),
        cpu: cpu_seconds(pid) - cpu0,
    }
}

/// Bytes per sample in the server's compacted, immutable storage.
fn bytes_per_sample(peer: &mut Peer, samples: u64) -> f64 {
    match peer.name {
        "obs" => {
            // SIGTERM writes the head out as a block; blocks record their sample counts.
            let _ = Command::new("kill")
                .args(["-TERM", &peer.child.id().to_string()])
                .status();
            let _ = peer.child.wait();
            blocks(&peer.data.join("metrics"), "samples")
        }
        "prometheus" => blocks(&peer.data, "numSamples"),
        _ => {
            let _ = http_get(&format!("{}/internal/force_flush", peer.url));
            let _ = http_get(&format!("{}/internal/force_merge", peer.url));
            std::thread::sleep(Duration::from_secs(5));
            dir_size(&peer.data.join("data")) as f64 / samples as f64
        }
    }
}

/// Sum of block sizes over the sum of the samples their meta.json counts (`key` anywhere in
/// it, as obs writes it at top level and Prometheus under `stats`).
fn blocks(dir: &Path, key: &str) -> f64 {
    let (mut bytes, mut samples) = (0u64, 0u64);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let meta = e.path().join("meta.json");
        let Ok(text) = std::fs::read_to_string(&meta) else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let n = v
            .get(key)
            .or_else(|| v.get("stats").and_then(|s| s.get(key)))
            .and_then(|n| n.as_u64())
            .unwrap_or(0);
        samples += n;
        bytes += dir_size(&e.path());
    }
    if samples == 0 {
        f64::NAN
    } else {
        bytes as f64 / samples as f64
    }
}

/// Waits (up to two minutes) until the server's background work after ingest (flushes,
/// compaction, merges) is done, so query latency is measured on an idle server.
fn wait_idle(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let before = cpu_seconds(pid);
        std::thread::sleep(Duration::from_secs(1));
        if cpu_seconds(pid) - before < 0.05 || Instant::now() > deadline {
            return;
        }
    }
}

/// A dashboard query: what it is called in the table and its PromQL; `$I` is the instance
/// matcher (all instances, as Grafana sends "All"), `$R` the rate interval Grafana picks.
struct Query {
    name: &'static str,
    expr: &'static str,
    instant: bool,
}

const fn q(name: &'static str, expr: &'static str) -> Query {
    Query {
        name,
        expr,
        instant: false,
    }
}

/// metrics-bench's own queries, then the panels of the node-overview dashboard
/// (query-cli/src/grafana.rs, `node_overview`).
const QUERIES: &[Query] = &[
    q("cpu by mode", "sum by (mode) (rate(node_cpu_seconds_total[5m]))"),
    q(
        "memory used %",
        "100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)",
    ),
    q(
        "disk busy",
        "max by (instance) (rate(node_disk_io_time_seconds_total[5m]))",
    ),
    Query {
        name: "network top5 (instant)",
        expr: "topk(5, rate(node_network_receive_bytes_total[5m]))",
        instant: true,
    },
    Query {
        name: "load avg 1h (instant)",
        expr: "avg_over_time(node_load1[1h])",
        instant: true,
    },
    q("node: uptime", "time() - node_boot_time_seconds{$I}"),
    q(
        "node: cpus",
        r#"count by (instance) (node_cpu_seconds_total{$I, mode="idle"})"#,
    ),
    q("node: memory total", "node_memory_MemTotal_bytes{$I}"),
    q(
        "node: root fs used %",
        r#"100 * (1 - node_filesystem_avail_bytes{$I, mountpoint="/"} / node_filesystem_size_bytes{$I, mountpoint="/"})"#,
    ),
    q(
        "node: cpu busy %",
        r#"100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{$I, mode="idle"}[$R])))"#,
    ),
    q("node: load", "node_load1{$I}"),
    q(
        "node: memory used",
        "node_memory_MemTotal_bytes{$I} - node_memory_MemAvailable_bytes{$I}",
    ),
    q(
        "node: fs used %",
        r#"100 * (1 - node_filesystem_avail_bytes{$I, fstype!~"tmpfs|overlay"} / node_filesystem_size_bytes{$I, fstype!~"tmpfs|overlay"})"#,
    ),
    q(
        "node: disk read",
        "sum by (instance) (rate(node_disk_read_bytes_total{$I}[$R]))",
    ),
    q(
        "node: disk written",
        "sum by (instance) (rate(node_disk_written_bytes_total{$I}[$R]))",
    ),
    q(
        "node: network rx",
        r#"sum by (instance) (rate(node_network_receive_bytes_total{$I, device!="lo"}[$R]))"#,
    ),
    q(
        "node: network tx",
        r#"sum by (instance) (rate(node_network_transmit_bytes_total{$I, device!="lo"}[$R]))"#,
    ),
];

/// Time ranges a dashboard is looked at over, with the step Grafana picks for a panel about
/// 1,000 px wide (no finer than the 15 s scrape interval).
const WINDOWS: &[(&str, i64, i64)] = &[("1h", 3600, 15), ("24h", 86_400, 120), ("7d", 604_800, 600)];

/// The windows that the ingested `hours` cover.
fn windows(hours: usize) -> Vec<(&'static str, i64, i64)> {
    WINDOWS
        .iter()
        .copied()
        .filter(|w| w.1 <= hours as i64 * 3600)
        .collect()
}

/// Median wall time of five runs of each query over each window (instant queries once, at
/// the end), in ms: (query, window, ms).
fn queries(peer: &Peer, end_ms: i64, hours: usize) -> Vec<(String, &'static str, f64)> {
    let end = end_ms / 1000;
    let mut out = Vec::new();
    for query in QUERIES {
        let list: Vec<(&str, String)> = if query.instant {
            vec![("-", format!("/api/v1/query?query={}&time={end}", enc(query.expr)))]
        } else {
            windows(hours)
                .into_iter()
                .map(|(window, secs, step)| {
                    // Grafana's $__rate_interval: the step plus a scrape, at least 4 scrapes.
                    let rate = format!("{}s", (step + 15).max(60));
                    let expr = query.expr.replace("$I", r#"instance=~".+""#).replace("$R", &rate);
                    (
                        window,
                        format!(
                            "/api/v1/query_range?query={}&start={}&end={end}&step={step}",
                            enc(&expr),
                            end - secs
                        ),
                    )
                })
                .collect()
        };
        for (window, path) in list {
            let mut times: Vec<f64> = (0..5)
                .map(|_| {
                    let t = Instant::now();
                    let (status, body) =
                        http_get_within(&format!("{}{path}", peer.url), Duration::from_secs(600))
                            .expect("query");
                    assert_eq!(status, 200, "{} {}: {body}", peer.name, query.name);
                    assert!(
                        body.contains("\"result\":[{"),
                        "{} {}: no series: {body}",
                        peer.name,
                        query.name
                    );
                    t.elapsed().as_secs_f64() * 1000.0
                })
                .collect();
            times.sort_by(f64::total_cmp);
            out.push((query.name.to_string(), window, times[2]));
        }
    }
    out
}

fn main() {
    let hosts = arg("--hosts", 100);
    let hours = arg("--hours", 24);
    let interval = arg("--interval", 15);
    let clients = arg("--clients", 2);
    let only: Option<String> = std::env::args().skip_while(|a| a != "--only").nth(1);
    let dir = tempfile::tempdir().unwrap();
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let start_ms = (now_ms - (hours * 3600 * 1000) as i64 - 60_000) / 1000 * 1000;
    let end_ms = start_ms + (hours * 3600 * 1000) as i64;
    println!(
        "{hosts} hosts x {SERIES_PER_HOST} series = {} series, {hours} h at {interval} s ({} samples each)",
        hosts * SERIES_PER_HOST,
        hours * 3600 / interval
    );
    let mut rows = Vec::new();
    for name in ["obs", "prometheus", "victoria-metrics"] {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let mut peer = start(name, dir.path());
        let ing = ingest(&peer, hosts, hours, interval, clients, start_ms);
        // Let asynchronous ingest settle (VictoriaMetrics buffers for a second); with
        // `--pause N`, wait longer so a profiler can attach to the printed pid.
        println!("{name}: pid {}, querying", peer.child.id());
        std::thread::sleep(Duration::from_secs(2 + arg("--pause", 0) as u64));
        wait_idle(peer.child.id());
        let lat = queries(&peer, end_ms, hours);
        let bps = bytes_per_sample(&mut peer, ing.samples);
        println!(
            "{name:<17} ingest {:>10.0} samples/s ({:>10.0} per CPU-s)  {:.3} bytes/sample",
            ing.samples as f64 / ing.secs,
            ing.samples as f64 / ing.cpu.max(0.001),
            bps,
        );
        rows.push((name, ing, bps, lat));
    }
    if let Some((_, ours, our_bps, _)) = rows.iter().find(|r| r.0 == "obs") {
        for (name, ing, bps, _) in rows.iter().filter(|r| r.0 != "obs") {
            println!(
                "obs vs {name}: ingest {:.2}x (per CPU {:.2}x), bytes/sample {:.2}x smaller",
                (ours.samples as f64 / ours.secs) / (ing.samples as f64 / ing.secs),
                (ours.samples as f64 / ours.cpu.max(0.001)) / (ing.samples as f64 / ing.cpu.max(0.001)),
                bps / our_bps,
            );
        }
    }
    // Query latency side by side: one row per query and window, medians of 5 in ms, and
    // how many times faster obs is than the fastest peer (above 1: obs is faster).
    let names: Vec<&str> = rows.iter().map(|r| r.0).collect();
    print!("\n{:<24} {:>6}", "query (range)", "window");
    for n in &names {
        print!(" {n:>16}");
    }
    println!(" {:>14}", "obs speed vs best peer");
    let (mut worst, mut product, mut count) = (f64::INFINITY, 1.0, 0);
    for (i, (query, window, _)) in rows[0].3.iter().enumerate() {
        print!("{query:<24} {window:>6}");
        for r in &rows {
            print!(" {:>16.1}", r.3[i].2);
        }
        let ours = rows.iter().find(|r| r.0 == "obs").map(|r| r.3[i].2);
        let best_peer = rows
            .iter()
            .filter(|r| r.0 != "obs")
            .map(|r| r.3[i].2)
            .min_by(f64::total_cmp);
        if let (Some(o), Some(p)) = (ours, best_peer) {
            let x = p / o;
            worst = worst.min(x);
            product *= x;
            count += 1;
            print!(" {x:>13.2}x");
        }
        println!();
    }
    if count > 0 {
        println!(
            "obs query speed vs the best peer: geometric mean {:.2}x, worst {worst:.2}x",
            product.powf(1.0 / count as f64)
        );
    }
}
