//! Store ingest and search benchmark against a real `obs store` process on loopback.
//!
//! ```text
//! cargo build --release -p obs -p obs-benches
//! OBS_BIN=target/release/obs target/release/store-bench [--mb 1024] [--clients 4] [--spans 200000] [--needle-runs 7]
//!     [--error-permille N] [--errors-off] [--logs-only]
//! ```
//!
//! `--error-permille N`: N lines in 1000 are errors (level=error; one in five of them with a
//! Python traceback), the others info/debug/warn, instead of the default mix. `--errors-off`
//! runs the store with `[store.errors] enabled = false`; `--logs-only` stops after log ingest
//! (`benches/scripts/store-errors` compares the two).
//!
//! Reports: log ingest MB/s (wall) and MB/s per core (the store process's own user+system CPU
//! time, from /proc), bytes on disk per raw byte, needle-search latency over everything
//! ingested (a rare word, a request id, a trace id and a user id), and spans ingested per second. Targets (design.md): ≥ 25 MB/s/core, < 100 ms needle
//! search over 1 GB, ≥ 100k spans/s on 2 cores.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use obs_benches::{arg, cpu_seconds, dir_size, flag, user_cpu_seconds, Rng};
use obs_e2e::{enc, http_get, http_post, StoreProc};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

const LINES_PER_PUSH: usize = 2000;
const NEEDLE: &str = "needle-7f3a9c1e";

/// The level of an app line: the default mix, or errors `error_permille` in 1000 times.
fn level(r: &mut Rng, error_permille: Option<u64>) -> &'static str {
    match error_permille {
        None => r.pick(&["info", "info", "info", "debug", "warn", "error"]),
        Some(p) if r.next_u64() % 1000 < p => "error",
        Some(_) => r.pick(&["info", "info", "info", "debug", "warn"]),
    }
}

/// A realistic mix: nginx access lines, logfmt app logs and JSON app logs. With
/// `error_permille`, nginx lines are left out (they carry no level) and that many app lines in
/// 1000 are errors, one in five of them with a traceback.
fn line(r: &mut Rng, i: usize, error_permille: Option<u64>) -> String {
    let paths = [
        "/api/v1/users",
        "/api/v1/orders",
        "/static/app.js",
        "/healthz",
        "/api/v1/cart/items",
        "/login",
    ];
    let agents = [
        "Mozilla/5.0 (X11; Linux x86_64)",
        "curl/8.5.0",
        "Prometheus/2.42.0",
        "Go-http-client/1.1",
    ];
    let kind = match error_permille {
        None => r.next_u64() % 3,
        Some(_) => 1 + r.next_u64() % 2,
    };
    let level = if kind == 0 { "" } else { level(r, error_permille) };
    let failing = error_permille.is_some() && level == "error";
    let msg = if failing {
        [
            "upstream timed out",
            "payment declined",
            "cache unavailable",
            "invalid order",
        ][(r.next_u64() % 4) as usize]
    } else if kind == 1 {
        "request handled"
    } else {
        "cache lookup"
    };
    let mut line = match kind {
        0 => format!(
            "10.{}.{}.{} - - [23/Nov/2026:14:{:02}:{:02} +0000] \"GET {} HTTP/1.1\" {} {} \"-\" \"{}\"",
            r.next_u64() % 256,
            r.next_u64() % 256,
            r.next_u64() % 256,
            i % 60,
            (i / 60) % 60,
            r.pick(&paths),
            [200, 200, 200, 304, 404, 500][(r.next_u64() % 6) as usize],
            r.next_u64() % 50_000,
            r.pick(&agents)
        ),
        1 => format!(
            "ts=2026-11-23T14:{:02}:{:02}Z level={} msg=\"{msg}\" path={} duration_ms={} user_id={} request_id={:016x}",
            i % 60,
            (i / 60) % 60,
            level,
            r.pick(&paths),
            r.next_u64() % 2000,
            r.next_u64() % 100_000,
            r.next_u64()
        ),
        _ => format!(
            r#"{{"time":"2026-11-23T14:{:02}:{:02}Z","level":"{}","msg":"{msg}","key":"user:{}","hit":{},"latency_us":{},"trace_id":"{:032x}"}}"#,
            i % 60,
            (i / 60) % 60,
            level,
            r.next_u64() % 100_000,
            r.next_u64().is_multiple_of(2),
            r.next_u64() % 10_000,
            u128::from(r.next_u64()) << 64 | u128::from(r.next_u64())
        ),
    };
    if failing && r.next_u64().is_multiple_of(5) {
        line.push_str(&format!(
            "\nTraceback (most recent call last):\n  File \"/srv/app/handlers.py\", line {}, in handle\n    return charge(order)\n  File \"/srv/app/billing.py\", line {}, in charge\n    raise ValueError(order.id)\nValueError: order {} is invalid",
            40 + r.next_u64() % 5,
            10 + r.next_u64() % 5,
            r.next_u64() % 100_000
        ));
    }
    line
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn main() {
    let target_mb = arg("--mb", 256);
    let clients = arg("--clients", 4);
    let total_spans = arg("--spans", 200_000);
    let needle_runs = arg("--needle-runs", 7).max(1);
    let error_permille = flag("--error-permille").then(|| arg("--error-permille", 10) as u64);
    let dir = tempfile::tempdir().expect("tempdir");
    let store = if error_permille.is_some() {
        let enabled = !flag("--errors-off");
        StoreProc::start_with_config(dir.path(), &format!("[store.errors]\nenabled = {enabled}\n"))
    } else {
        StoreProc::start(dir.path())
    };
    let pid = store.proc.pid();
    let url = store.url("/loki/api/v1/push");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64;
    // Lines a microsecond apart over the last hour, or spread evenly over `--span-hours`
    // (at about 140 bytes a line).
    let span_hours = arg("--span-hours", 0) as i64;
    let (base, gap) = if span_hours > 0 {
        let span = span_hours * 3_600_000_000_000;
        let lines = ((target_mb as i64) << 20) / 140;
        (now - span, (span / lines.max(1)).max(1))
    } else {
        (now - 3_600_000_000_000, 1000)
    };

    // Pre-generate pushes so the clients measure the store, not formatting.
    let target = target_mb << 20;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut pushes: Vec<(Vec<u8>, usize)> = Vec::new();
    let (mut raw, mut n) = (0usize, 0usize);
    // A request id (16 hex digits), a trace id (32) and a user id (a number) from lines a
    // third of the way in.
    let (mut request_id, mut trace_id, mut user_id) = (None, None, None);
    let id_after =
        |l: &str, key: &str, len: usize| l.find(key).map(|at| l[at + key.len()..][..len].to_string());
    while raw < target {
        let mut values = Vec::with_capacity(LINES_PER_PUSH);
        let mut bytes = 0;
        for _ in 0..LINES_PER_PUSH {
            let mut l = line(&mut rng, n, error_permille);
            if n == target / 240 {
                l.push_str(&format!(" {NEEDLE}"));
            }
            if n >= target / 400 {
                request_id = request_id.or_else(|| id_after(&l, "request_id=", 16));
                trace_id = trace_id.or_else(|| id_after(&l, r#""trace_id":""#, 32));
                user_id = user_id.or_else(|| {
                    let digits = l.split_once("user_id=")?.1.split(' ').next()?;
                    Some(format!("user_id={digits}"))
                });
            }
            bytes += l.len();
            values.push(serde_json::json!([(base + n as i64 * gap).to_string(), l]));
            n += 1;
        }
        raw += bytes;
        let job = ["nginx", "api", "cache", "worker"][pushes.len() % 4];
        let body = serde_json::json!({"streams": [{"stream": {"job": job, "host": format!("node{}", pushes.len() % 8)}, "values": values}]});
        pushes.push((body.to_string().into_bytes(), bytes));
    }
    println!(
        "generated {} lines, {:.1} MiB raw, in {} pushes of {LINES_PER_PUSH}",
        n,
        raw as f64 / 1048576.0,
        pushes.len()
    );

    let pushes = Arc::new(pushes);
    let next = Arc::new(AtomicUsize::new(0));
    let cpu0 = cpu_seconds(pid);
    let user0 = user_cpu_seconds(pid);
    let t0 = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (pushes, next, url) = (pushes.clone(), next.clone(), url.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((body, _)) = pushes.get(i) else { break };
                let (status, msg) = http_post(&url, "application/json", body).expect("push");
                assert_eq!(status, 204, "{msg}");
            })
        })
        .collect();
    for w in workers {
        w.join().expect("client");
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let mb = raw as f64 / 1e6;
    println!(
        "log ingest: {:.1} MB in {wall:.2} s = {:.1} MB/s wall; store CPU {cpu:.2} s = {:.1} MB/s per core",
        mb,
        mb / wall,
        mb / cpu.max(1e-9)
    );

    // Wait for the last commit and the merges it starts (until the store is idle for a
    // second), then measure disk use and search. The CPU figure above stops when the last push
    // is acknowledged; this one also counts the last segment flushes and the merges.
    std::thread::sleep(Duration::from_secs(2));
    let idle_from = Instant::now();
    let mut last = cpu_seconds(pid);
    while idle_from.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_secs(1));
        let now = cpu_seconds(pid);
        if now - last < 0.05 {
            break;
        }
        last = now;
    }
    let cpu_all = cpu_seconds(pid) - cpu0;
    println!(
        "log ingest with the last commit and merges: store CPU {cpu_all:.2} s = {:.1} MB/s per core",
        mb / cpu_all.max(1e-9)
    );
    let user = user_cpu_seconds(pid) - user0;
    println!(
        "log ingest, user-mode CPU only: {user:.2} s = {:.1} MB/s per core",
        mb / user.max(1e-9)
    );
    if flag("--explore") {
        explore(&store, base, now, mb, needle_runs);
        return;
    }
    if flag("--logs-only") {
        if error_permille.is_some() && !flag("--errors-off") {
            let (_, body) = http_get(&store.url("/api/v1/errors?limit=1000")).expect("errors");
            let v: serde_json::Value = serde_json::from_str(&body).expect("errors JSON");
            let issues = v["data"].as_array().map_or(0, Vec::len);
            let events: u64 = v["data"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|i| i["count"].as_u64().unwrap_or(0))
                .sum();
            println!("error issues: {issues}, holding {events} events");
        }
        return;
    }
    let disk = dir_size(&store.data.join("logs"));
    println!(
        "log index on disk: {:.1} MiB = {:.3} bytes per raw byte",
        disk as f64 / 1048576.0,
        disk as f64 / raw as f64
    );
    let needles = [
        ("needle search", NEEDLE.to_string()),
        ("request id (16 hex) search", request_id.expect("a logfmt line")),
        ("trace id (32 hex) search", trace_id.expect("a JSON line")),
        ("user id (number) search", user_id.expect("a logfmt line")),
    ];
    for (what, needle) in needles {
        let q = format!(
            "/loki/api/v1/query_range?query={}&start={}&end={}&limit=100",
            enc(&format!(r#"{{job=~".+"}} |= "{needle}""#)),
            base,
            now
        );
        let mut times = Vec::new();
        let mut lines_read = 0;
        for _ in 0..needle_runs {
            let t = Instant::now();
            let (status, body) = http_get(&store.url(&q)).expect("query");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(status, 200, "{body}");
            assert!(body.contains(&needle), "{needle} not found");
            let v: serde_json::Value = serde_json::from_str(&body).expect("query JSON");
            lines_read = v["data"]["stats"]["summary"]["totalLinesProcessed"]
                .as_u64()
                .unwrap_or(0);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{what} `{needle}` over {:.1} MB: median {:.1} ms (min {:.1}, max {:.1}); {lines_read} candidate lines read",
            mb,
            times[times.len() / 2],
            times[0],
            times[times.len() - 1]
        );
    }

    // Spans: OTLP/HTTP protobuf batches of 1000.
    let batches: Vec<Vec<u8>> = (0..total_spans / 1000)
        .map(|b| {
            let spans = (0..1000)
                .map(|i| {
                    let id = (b * 1000 + i) as u64;
                    let trace = (id / 10 + 1) as u128;
                    Span {
                        trace_id: trace.to_be_bytes().to_vec(),
                        span_id: (id + 1).to_be_bytes().to_vec(),
                        parent_span_id: if id.is_multiple_of(10) {
                            vec![]
                        } else {
                            (id / 10 * 10 + 1).to_be_bytes().to_vec()
                        },
                        name: ["GET /api/v1/users", "SELECT users", "cache.get", "render"][(id % 4) as usize]
                            .into(),
                        kind: 2,
                        start_time_unix_nano: (base + id as i64 * 1000) as u64,
                        end_time_unix_nano: (base + id as i64 * 1000 + 5_000_000) as u64,
                        attributes: vec![kv("http.method", "GET"), kv("http.route", "/api/v1/users")],
                        ..Default::default()
                    }
                })
                .collect();
            ExportTraceServiceRequest {
                resource_spans: vec![ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![kv("service.name", "api"), kv("host.name", "node1")],
                        ..Default::default()
                    }),
                    scope_spans: vec![ScopeSpans {
                        spans,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
            }
            .encode_to_vec()
        })
        .collect();
    let batches = Arc::new(batches);
    let next = Arc::new(AtomicUsize::new(0));
    let url = store.url("/v1/traces");
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    let workers: Vec<_> = (0..clients)
        .map(|_| {
            let (batches, next, url) = (batches.clone(), next.clone(), url.clone());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = batches.get(i) else { break };
                let (status, msg) = http_post(&url, "application/x-protobuf", body).expect("push spans");
                assert_eq!(status, 200, "{msg}");
            })
        })
        .collect();
    for w in workers {
        w.join().expect("client");
    }
    let wall = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    let spans = batches.len() * 1000;
    println!(
        "span ingest: {spans} spans in {wall:.2} s = {:.0} spans/s wall; store CPU {cpu:.2} s",
        spans as f64 / wall
    );
}

/// What Grafana's Explore runs on every logs search, over everything ingested: the logs
/// volume (`sum by (level) (count_over_time(...[1m]))` at a 1 m step) and the newest 1,000
/// lines. Prints the median of `runs` of each.
fn explore(store: &StoreProc, from: i64, to: i64, mb: f64, runs: usize) {
    let volume = format!(
        "/loki/api/v1/query_range?query={}&start={from}&end={to}&step=60",
        enc(r#"sum by (level) (count_over_time({job=~".+"} | drop __error__ [1m]))"#)
    );
    let newest = format!(
        "/loki/api/v1/query_range?query={}&start={from}&end={to}&limit=1000&direction=backward",
        enc(r#"{job=~".+"}"#)
    );
    for (what, q) in [
        ("logs volume by level, 1 m step", volume),
        ("newest 1,000 lines", newest),
    ] {
        let mut times = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            let (status, body) = http_get(&store.url(&q)).expect("query");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            assert_eq!(status, 200, "{body}");
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{what} over {:.1} MB ({:.1} h): median {:.0} ms (min {:.0}, max {:.0})",
            mb,
            (to - from) as f64 / 3.6e12,
            times[times.len() / 2],
            times[0],
            times[times.len() - 1]
        );
    }
}
