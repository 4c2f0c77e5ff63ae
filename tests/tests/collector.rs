//! `obs collector` against a real store: every line written to tailed files arrives, through
//! log rotation (rename-and-create and copytruncate), the store killed -9 and down for a
//! while, and the collector itself killed -9 and restarted. Lines are counted exactly;
//! duplicates are counted and must stay within what each crash can re-send: one request and
//! the lines read since the last checkpoint.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use obs_e2e::{enc, free_port, http_get, Proc, StoreProc};

const LINES: u64 = 12_000;
const BUCKET: u64 = 100;
const RENAMED_AT: [u64; 2] = [2_000, 9_000];
const COPYTRUNCATE_AT: u64 = 5_000;
/// The collector's request (and batch) size and requests in flight: what one crash can make
/// it send twice.
const REQUEST_KIB: usize = 16;
const IN_FLIGHT: usize = 4;

fn start_collector(name: &str, dir: &Path, grpc: &str) -> Proc {
    Proc::obs(
        name,
        &[
            "collector",
            "--config",
            "collector.toml",
            "--store",
            grpc,
            "--data-dir",
            "collector-data",
        ],
        dir,
    )
}

/// Config lines that put the OTLP receiver on free ports (tests run side by side).
fn receiver_on_free_ports() -> String {
    format!(
        "otlp_grpc_addr = \"127.0.0.1:{}\"\notlp_http_addr = \"127.0.0.1:{}\"\n",
        free_port(),
        free_port()
    )
}

/// Per bucket of 100 sequence numbers, how many lines the store holds.
fn buckets(store: &StoreProc) -> BTreeMap<u64, u64> {
    let q = r#"sum by (b) (count_over_time({job="e2e"} | logfmt b [1h]))"#;
    let url = store.url(&format!("/loki/api/v1/query?query={}", enc(q)));
    let body = match http_get(&url) {
        Ok((200, body)) => body,
        other => {
            eprintln!("query failed: {other:?}");
            return BTreeMap::new();
        }
    };
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    v["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let b = r["metric"]["b"].as_str()?.parse().ok()?;
            let n = r["value"][1].as_str()?.parse().ok()?;
            Some((b, n))
        })
        .collect()
}

/// Writes LINES lines, alternating between app.log (rotated by rename + create) and web.log
/// (rotated by copy + truncate), at about 2000 lines/s; `written` counts them.
fn write_logs(logs: &Path, written: Arc<AtomicU64>) {
    let open = |name: &str| {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join(name))
            .unwrap()
    };
    let (mut app, mut web) = (open("app.log"), open("web.log"));
    for i in 0..LINES {
        let line = format!(
            "ts={i} level=info b={} seq={i} msg=\"request served\" path=/api/items/{}\n",
            i / BUCKET,
            i % 97
        );
        if i % 2 == 0 {
            app.write_all(line.as_bytes()).unwrap();
        } else {
            web.write_all(line.as_bytes()).unwrap();
        }
        if RENAMED_AT.contains(&i) {
            // logrotate "create": rename, the app writes a little more to the old file
            // before it reopens.
            let n = 1 + RENAMED_AT.iter().position(|r| *r == i).unwrap();
            std::fs::rename(logs.join("app.log"), logs.join(format!("app.log.{n}"))).unwrap();
            let late = format!("ts={i} level=info b={} seq=late{i}\n", i / BUCKET);
            app.write_all(late.as_bytes()).unwrap();
            app = open("app.log");
        }
        if i == COPYTRUNCATE_AT {
            // logrotate "copytruncate": the copy holds what the tailer may not have read
            // yet; the collector resumes the copy where it was in the original.
            std::fs::copy(logs.join("web.log"), logs.join("web.log.1")).unwrap();
            web.set_len(0).unwrap();
        }
        if i % 20 == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
        written.store(i + 1, Ordering::Relaxed);
    }
}

/// A work dir with `logs/` and a collector config tailing `logs/<glob>` as `{job="e2e"}`.
fn work_dir(glob: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let logs = work.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    std::fs::write(
        work.path().join("collector.toml"),
        format!(
            "version = 1\n[collector]\nhost_metrics = false\nmax_request_kib = {REQUEST_KIB}\nmax_in_flight = {IN_FLIGHT}\n{}[[collector.files]]\npaths = [\"{}/{glob}\"]\nlabels = {{ job = \"e2e\" }}\n",
            receiver_on_free_ports(),
            logs.display()
        ),
    )
    .unwrap();
    (work, logs)
}

fn wait_written(written: &AtomicU64, n: u64) {
    while written.load(Ordering::Relaxed) < n {
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn every_line_arrives_through_rotation_store_outage_and_kill_9() {
    // Rotated names match too (as they should in a real setup): a file renamed while the
    // collector is down is still read to its end.
    let (work, logs) = work_dir("*.log*");
    let dir = work.path();
    let (port, grpc_port) = (free_port(), free_port());
    let mut store = StoreProc::start_on_ports(dir, &dir.join("store-data"), port, grpc_port);
    let grpc = format!("http://127.0.0.1:{grpc_port}");
    let mut collector = start_collector("collector-1", dir, &grpc);

    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (logs, written) = (logs.clone(), written.clone());
        std::thread::spawn(move || write_logs(&logs, written))
    };
    // The store dies while lines are written and stays down through a rotation of each kind.
    wait_written(&written, 1_500);
    store = store.kill_and_restart_after(Duration::from_secs(3));
    // The collector dies while lines are written and stays down through a rename.
    wait_written(&written, 8_500);
    collector.signal(Signal::SIGKILL);
    collector
        .wait_timeout(Duration::from_secs(10))
        .expect("collector dies on SIGKILL");
    wait_written(&written, 9_500);
    let mut collector = start_collector("collector-2", dir, &grpc);
    writer.join().unwrap();

    let want = LINES / BUCKET;
    // The "late" lines written to renamed files land in their rename's bucket.
    let expected = |b: u64| BUCKET + u64::from(RENAMED_AT.iter().any(|r| r / BUCKET == b));
    wait_buckets(&store, &mut collector, want, expected);
    settle(
        &store,
        &mut collector,
        &[&logs.join("app.log"), &logs.join("web.log")],
    );
    let got = buckets(&store);
    let duplicates: u64 = (0..want).map(|b| got[&b] - expected(b)).sum();
    println!(
        "collector e2e: {LINES} lines + {} late lines delivered, {duplicates} duplicates",
        RENAMED_AT.len()
    );
    // Each crash can re-send the requests in flight (IN_FLIGHT of at most REQUEST_KIB of
    // spooled lines: the store stored them, or the collector sent them, but the answers were
    // lost); the
    // collector's kill -9 also re-reads what it read since its last checkpoint (1 s, at the
    // writer's ~2,000 lines/s; 2 s allowed for a slow machine).
    let per_request = (REQUEST_KIB * 1024 / 80) as u64; // lines are ≥ 80 bytes
    let bound = 2 * IN_FLIGHT as u64 * per_request + 2 * 2_000;
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates (bound {bound}): {got:?}"
    );
    // Two crashes: no line arrives more than three times.
    assert!((0..want).all(|b| got[&b] <= 3 * expected(b)), "{got:?}");

    collector.signal(Signal::SIGTERM);
    let status = collector
        .wait_timeout(Duration::from_secs(30))
        .expect("collector stops on SIGTERM");
    assert!(status.success(), "{}", collector.describe());
}

/// How a file is rotated while the store is down.
#[derive(Clone, Copy, Debug)]
enum Rotation {
    RenameAndCreate,
    CopyTruncate,
}

/// Appends lines `from..to` (`b=` their bucket) to `path`, ~4,000 lines/s.
fn append_lines(path: &Path, from: u64, to: u64) {
    let mut f = OpenOptions::new().create(true).append(true).open(path).unwrap();
    for i in from..to {
        writeln!(
            f,
            "ts={i} level=info b={} seq={i} msg=\"request served\" path=/api/items/{}",
            i / BUCKET,
            i % 97
        )
        .unwrap();
        if i % 40 == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// Waits until each of the first `want` buckets holds at least `expected(bucket)` lines.
fn wait_buckets(store: &StoreProc, collector: &mut Proc, want: u64, expected: impl Fn(u64) -> u64) {
    let complete = || {
        let got = buckets(store);
        (0..want).all(|b| got.get(&b).copied().unwrap_or(0) >= expected(b))
    };
    wait_within(
        Duration::from_secs(90),
        "every line in the store",
        collector,
        complete,
    );
}

/// Waits until a last line appended to each of `files` is in the store: whatever a restart
/// re-reads or re-sends of the lines before it has arrived by then too (a file is read in
/// order, and the spool ships in order). Its `b` is no bucket.
fn settle(store: &StoreProc, collector: &mut Proc, files: &[&Path]) {
    static LAST: AtomicU64 = AtomicU64::new(0);
    for file in files {
        let n = LAST.fetch_add(1, Ordering::Relaxed);
        let mut f = OpenOptions::new().append(true).open(file).unwrap();
        writeln!(f, "level=info b=last msg=settled-{n}-end").unwrap();
        let query = format!(r#"{{job="e2e"}} |= "settled-{n}-end""#);
        wait_within(Duration::from_secs(90), "the last line", collector, || {
            !store.log_lines(&query).is_empty()
        });
    }
}

/// Waits until the first `lines` lines are all in the store.
fn wait_delivered(store: &StoreProc, collector: &mut Proc, lines: u64) {
    wait_buckets(store, collector, lines / BUCKET, |_| BUCKET);
}

/// Regression (issue 21): the store goes down; meanwhile `app.log` is rotated `rotations`
/// times (with new lines after each); the store comes back; then the collector is killed -9
/// and restarted (`restart_while_down`: before the store returns). The file created or
/// rewritten during the outage used to be read again from its start (5,000 of 30,000 lines
/// twice). Now a restart re-sends at most the requests in flight and the last second.
fn restart_after_rotation_during_outage(rotation: Rotation, rotations: u64, restart_while_down: bool) {
    const PER_STEP: u64 = 5_000;
    let (work, logs) = work_dir("*.log");
    let dir = work.path();
    let app = logs.join("app.log");
    let (port, grpc_port) = (free_port(), free_port());
    let store = StoreProc::start_on_ports(dir, &dir.join("store-data"), port, grpc_port);
    let grpc = format!("http://127.0.0.1:{grpc_port}");
    let mut collector = start_collector("collector-1", dir, &grpc);
    append_lines(&app, 0, PER_STEP);
    wait_delivered(&store, &mut collector, PER_STEP);

    let StoreProc { mut proc, data, .. } = store;
    proc.signal(Signal::SIGKILL);
    proc.wait_timeout(Duration::from_secs(10))
        .expect("store dies on SIGKILL");
    let mut written = PER_STEP;
    for n in 1..=rotations {
        // As logrotate would: a while after the last write (copytruncate loses what was
        // not read yet where the copies are not matched, as here), leaving an empty file
        // that the collector sees before the app writes again.
        std::thread::sleep(Duration::from_millis(1_500));
        let rotated = logs.join(format!("app.log.{n}"));
        match rotation {
            Rotation::RenameAndCreate => {
                std::fs::rename(&app, &rotated).unwrap();
                std::fs::File::create(&app).unwrap();
            }
            Rotation::CopyTruncate => {
                std::fs::copy(&app, &rotated).unwrap();
                OpenOptions::new()
                    .write(true)
                    .open(&app)
                    .unwrap()
                    .set_len(0)
                    .unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(1_500));
        append_lines(&app, written, written + PER_STEP);
        written += PER_STEP;
    }
    std::thread::sleep(Duration::from_secs(3)); // the collector spools what it read
    let restart = |collector: &mut Proc, name| {
        collector.signal(Signal::SIGKILL);
        collector
            .wait_timeout(Duration::from_secs(10))
            .expect("collector dies on SIGKILL");
        start_collector(name, dir, &grpc)
    };
    if restart_while_down {
        collector = restart(&mut collector, "collector-2");
    }
    let store = StoreProc::start_on_ports(dir, &data, port, grpc_port);
    wait_delivered(&store, &mut collector, written);
    if !restart_while_down {
        std::thread::sleep(Duration::from_secs(3));
        collector = restart(&mut collector, "collector-2");
    }
    append_lines(&app, written, written + PER_STEP);
    written += PER_STEP;
    wait_delivered(&store, &mut collector, written);
    settle(&store, &mut collector, &[&app]);
    let got = buckets(&store);
    let duplicates: u64 = got.values().map(|n| n - BUCKET).sum();
    println!("{rotation:?} x{rotations}, restart while down: {restart_while_down}: {written} lines, {duplicates} duplicates");
    // One crash: the requests in flight, and what was read in the last second (the writer
    // has stopped by then; a slow machine may read 2 s worth).
    let per_request = (REQUEST_KIB * 1024 / 80) as u64;
    let bound = IN_FLIGHT as u64 * per_request + 2 * 4_000;
    assert!(
        duplicates <= bound,
        "{duplicates} duplicates (bound {bound}): {got:?}"
    );
}

#[test]
fn restart_after_rename_during_store_outage_does_not_resend_the_new_file() {
    restart_after_rotation_during_outage(Rotation::RenameAndCreate, 1, false);
}

#[test]
fn restart_after_copytruncate_during_store_outage_does_not_resend_the_file() {
    restart_after_rotation_during_outage(Rotation::CopyTruncate, 1, false);
}

#[test]
fn restart_after_several_rotations_before_the_store_returns() {
    restart_after_rotation_during_outage(Rotation::RenameAndCreate, 3, true);
    restart_after_rotation_during_outage(Rotation::CopyTruncate, 2, true);
}

#[test]
fn docker_and_kubernetes_logs_arrive_with_container_labels() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let id = "4f1c2d3e5a6b7c8d9e0f4f1c2d3e5a6b7c8d9e0f4f1c2d3e5a6b7c8d9e0f1234";
    let container = dir.join("docker").join(id);
    std::fs::create_dir_all(&container).unwrap();
    std::fs::write(
        container.join("config.v2.json"),
        format!(r#"{{"ID":"{id}","Name":"/shop-web-1","Config":{{"Image":"nginx:1.27","Labels":{{"com.docker.compose.project":"shop","com.docker.compose.service":"web"}}}}}}"#),
    )
    .unwrap();
    let long = "x".repeat(20_000);
    // Runtime timestamps a minute ago, to the second (RFC 3339), and that second in ns.
    let date = |args: &[&str]| Proc::run(Path::new("date"), args, dir).1.trim().to_string();
    let t0 = date(&["-u", "-d", "1 minute ago", "+%Y-%m-%dT%H:%M:%S"]);
    let t0_ns: i64 = date(&["-u", "-d", &format!("{t0}Z"), "+%s%N"]).parse().unwrap();
    std::fs::write(
        container.join(format!("{id}-json.log")),
        format!(
            concat!(
                r#"{{"log":"GET / 200\n","stream":"stdout","time":"{t0}.000000001Z"}}"#,
                "\n",
                r#"{{"log":"upstream timed out\n","stream":"stderr","time":"{t0}Z"}}"#,
                "\n",
                r#"{{"log":"{half}","stream":"stdout","time":"{t0}Z"}}"#,
                "\n",
                r#"{{"log":"{half}\n","stream":"stdout","time":"{t0}Z"}}"#,
                "\n",
            ),
            half = &long[..10_000],
            t0 = t0,
        ),
    )
    .unwrap();
    let pod = dir.join("pods/shop_api-7d9f_0b6e-11aa/server");
    std::fs::create_dir_all(&pod).unwrap();
    std::fs::write(
        pod.join("0.log"),
        format!("{t0}.5Z stdout F listening on :8080\n{t0}Z stderr P level=error msg=\"db \n{t0}Z stderr F down\"\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("collector.toml"),
        format!(
            "version = 1\n[collector]\nhost_metrics = false\n{}docker_containers_dir = \"{}\"\nkubernetes_pods_dir = \"{}\"\n",
            receiver_on_free_ports(),
            dir.join("docker").display(),
            dir.join("pods").display()
        ),
    )
    .unwrap();
    let store = StoreProc::start(dir);
    let grpc = format!("http://{}", store.grpc_addr());
    let mut collector = start_collector("collector", dir, &grpc);

    let docker = store.wait_log_lines(
        r#"{container_name="shop-web-1", compose_service="web"}"#,
        3,
        &mut collector,
    );
    assert_eq!(docker.len(), 3, "{docker:?}");
    let find = |lines: &[(serde_json::Value, String)], text: &str| {
        lines
            .iter()
            .find(|(_, l)| l == text)
            .unwrap_or_else(|| panic!("no line {text:?} in {lines:?}"))
            .0
            .clone()
    };
    let labels = find(&docker, "GET / 200");
    assert_eq!(labels["container_image"], "nginx:1.27");
    assert_eq!(labels["compose_project"], "shop");
    find(&docker, "upstream timed out");
    find(&docker, &long); // the runtime's two parts are one line again
    let stderr = store.wait_log_lines(
        r#"{container_name="shop-web-1"} | stream="stderr""#,
        1,
        &mut collector,
    );
    assert_eq!(stderr.len(), 1, "{stderr:?}");
    // The runtime's timestamps are the lines' times.
    let url = store.url(&format!(
        "/loki/api/v1/query_range?query={}&start={t0_ns}&end={}",
        enc(r#"{container_name="shop-web-1"}"#),
        t0_ns + 2
    ));
    let (_, body) = http_get(&url).unwrap();
    assert!(body.contains(&format!("\"{}\"", t0_ns + 1)), "{body}");

    let pods = store.wait_log_lines(
        r#"{k8s_namespace_name="shop", k8s_pod_name="api-7d9f", k8s_container_name="server"}"#,
        2,
        &mut collector,
    );
    assert_eq!(pods.len(), 2, "{pods:?}");
    find(&pods, "listening on :8080");
    assert_eq!(find(&pods, "level=error msg=\"db down\"")["level"], "error");
}

/// The value of an instant PromQL query with one result, if it has one.
fn instant(store: &StoreProc, promql: &str) -> Option<f64> {
    let (_, body) = http_get(&store.url(&format!("/api/v1/query?query={}", enc(promql)))).ok()?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

fn wait_until(what: &str, collector: &mut Proc, f: impl Fn() -> bool) {
    wait_within(Duration::from_secs(30), what, collector, f);
}

fn wait_within(timeout: Duration, what: &str, collector: &mut Proc, f: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}\n{}",
            collector.describe()
        );
        assert!(
            collector.wait_timeout(Duration::ZERO).is_none(),
            "collector exited: {}",
            collector.describe()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn prometheus_targets_are_scraped_with_up_and_go_stale_when_lost() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let store = StoreProc::start(dir);
    let site = dir.join("site");
    std::fs::create_dir(&site).unwrap();
    std::fs::write(
        site.join("metrics"),
        "# TYPE demo_requests_total counter\ndemo_requests_total{code=\"200\"} 5\ndemo_requests_total{code=\"500\"} 1\n# TYPE demo_temp gauge\ndemo_temp 21.5\n",
    )
    .unwrap();
    let app_port = free_port();
    let mut app = Proc::spawn(
        "target",
        Path::new("python3"),
        &[
            "-m",
            "http.server",
            &app_port.to_string(),
            "--bind",
            "127.0.0.1",
            "--directory",
            site.to_str().unwrap(),
        ],
        dir,
    );
    app.wait_http_ok(
        &format!("http://127.0.0.1:{app_port}/metrics"),
        Duration::from_secs(30),
    );
    std::fs::write(
        dir.join("sd.json"),
        format!(
            r#"[{{"targets": ["127.0.0.1:{}"], "labels": {{"env": "test"}}}}]"#,
            store.port
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("collector.toml"),
        format!(
            "version = 1\n[collector]\nhost_metrics = false\n{}\n[[collector.scrape]]\njob = \"app\"\ntargets = [\"127.0.0.1:{app_port}\"]\ninterval_secs = 1\n\n[[collector.scrape]]\njob = \"obs-store\"\nfile_sd = \"{}\"\ninterval_secs = 1\n",
            receiver_on_free_ports(),
            dir.join("sd.json").display()
        ),
    )
    .unwrap();
    let mut collector = start_collector("collector", dir, &format!("http://{}", store.grpc_addr()));

    let instance = format!("127.0.0.1:{app_port}");
    wait_until("the app scraped", &mut collector, || {
        instant(
            &store,
            &format!(r#"demo_requests_total{{job="app", instance="{instance}", code="200"}}"#),
        ) == Some(5.0)
    });
    assert_eq!(instant(&store, r#"demo_temp{job="app"}"#), Some(21.5));
    assert_eq!(instant(&store, r#"up{job="app"}"#), Some(1.0));
    assert_eq!(instant(&store, r#"scrape_samples_scraped{job="app"}"#), Some(3.0));
    assert!(instant(&store, r#"scrape_duration_seconds{job="app"}"#).is_some_and(|d| d >= 0.0));
    wait_until("the store scraped through file_sd", &mut collector, || {
        instant(&store, r#"up{job="obs-store", env="test"}"#) == Some(1.0)
            && instant(&store, r#"count({job="obs-store", env="test"})"#).is_some_and(|n| n > 5.0)
    });

    // The target goes away: up drops to 0 and its series go stale at once.
    app.signal(Signal::SIGKILL);
    wait_until("up = 0 and stale series", &mut collector, || {
        instant(&store, r#"up{job="app"}"#) == Some(0.0)
            && instant(&store, r#"demo_requests_total{job="app"}"#).is_none()
    });
}
