//! Gzip'd rotated files (`read_gzip = true`) against a real store and Debian's `gzip`: a file
//! half read when the collector stopped, then rotated and compressed, goes on where it
//! stopped; an archive never seen is read whole; a file compressed after it was read while
//! the collector ran is not sent again. Every line arrives exactly once.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use obs_e2e::{enc, free_port, http_get, Proc, StoreProc};

/// Appends lines `seq` in `range` (logfmt, bucket `b` = seq / 100) to `path`.
fn append(path: &Path, range: std::ops::Range<u64>) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    for i in range {
        writeln!(f, "level=info b={} seq={i} msg=\"order placed\"", i / 100).unwrap();
    }
}

fn gzip(path: &Path) {
    let status = std::process::Command::new("gzip").arg(path).status().unwrap();
    assert!(status.success(), "gzip {}", path.display());
}

/// Lines in the store per bucket of 100 sequence numbers.
fn buckets(store: &StoreProc) -> BTreeMap<u64, u64> {
    let q = r#"sum by (b) (count_over_time({job="gz"} | logfmt b [1h]))"#;
    let Ok((200, body)) = http_get(&store.url(&format!("/loki/api/v1/query?query={}", enc(q)))) else {
        return BTreeMap::new();
    };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| {
            Some((
                r["metric"]["b"].as_str()?.parse().ok()?,
                r["value"][1].as_str()?.parse().ok()?,
            ))
        })
        .collect()
}

/// Waits until the store holds exactly 100 lines in each of `want` buckets (and no other).
fn wait_exactly(store: &StoreProc, want: &[u64], collector: &mut Proc) {
    let expected: BTreeMap<u64, u64> = want.iter().map(|b| (*b, 100)).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = buckets(store);
        if got == expected {
            return;
        }
        assert!(got.values().all(|n| *n <= 100), "duplicates: {got:?}");
        assert!(
            Instant::now() < deadline,
            "want {expected:?}\ngot  {got:?}\n{}",
            collector.describe()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn start(dir: &Path, grpc: &str) -> Proc {
    Proc::obs(
        "collector",
        &[
            "collector",
            "--config",
            "collector.toml",
            "--store",
            grpc,
            "--data-dir",
            "cdata",
        ],
        dir,
    )
}

#[test]
fn compressed_rotations_resume_where_reading_stopped_and_nothing_comes_twice() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let store = StoreProc::start(dir);
    std::fs::write(
        dir.join("collector.toml"),
        format!(
            "version = 1\n[collector]\nhost_metrics = false\notlp_grpc_addr = \"127.0.0.1:{}\"\notlp_http_addr = \"127.0.0.1:{}\"\n\
             [[collector.files]]\npaths = [\"{}/app.log*\"]\nread_gzip = true\nlabels = {{ job = \"gz\" }}\n",
            free_port(),
            free_port(),
            logs.display()
        ),
    )
    .unwrap();
    let app = logs.join("app.log");
    append(&app, 0..1000);
    let mut collector = start(dir, &format!("http://{}", store.grpc_addr()));
    wait_exactly(&store, &(0..10).collect::<Vec<_>>(), &mut collector);
    collector.signal(Signal::SIGTERM);
    assert!(
        collector.wait_timeout(Duration::from_secs(30)).is_some(),
        "collector stops on SIGTERM"
    );

    // While it is down: more lines, then logrotate with `compress`, a new file, and an old
    // archive it never saw.
    append(&app, 1000..1500);
    std::fs::rename(&app, logs.join("app.log.1")).unwrap();
    gzip(&logs.join("app.log.1"));
    append(&app, 1500..1700);
    append(&logs.join("app.log.9"), 5000..5100);
    gzip(&logs.join("app.log.9"));
    let mut collector = start(dir, &format!("http://{}", store.grpc_addr()));
    let mut want: Vec<u64> = (0..17).chain([50]).collect();
    wait_exactly(&store, &want, &mut collector);

    // While it runs: the current file is rotated, read to its end, then compressed.
    std::fs::rename(&app, logs.join("app.log.2")).unwrap();
    append(&logs.join("app.log.2"), 1700..1800);
    append(&app, 1800..1900);
    want.extend([17, 18]);
    wait_exactly(&store, &want, &mut collector);
    gzip(&logs.join("app.log.2"));
    // The compressed copy is taken once it has been still for 5 s: dated a minute back, it
    // is taken at the next scan.
    let gz = std::fs::File::options()
        .write(true)
        .open(logs.join("app.log.2.gz"))
        .unwrap();
    gz.set_modified(std::time::SystemTime::now() - Duration::from_secs(60))
        .unwrap();
    append(&app, 1900..2000);
    want.push(19);
    wait_exactly(&store, &want, &mut collector);
    // Two new files, each found only by a scan, each awaited in turn: by the time the second
    // arrives, a scan has taken the copy and what it read (had it been sent again) has been
    // shipped before it.
    for n in 0..2 {
        let last = logs.join(format!("app.log.last{n}"));
        std::fs::write(&last, format!("level=info b=last msg=settled-{n}-end\n")).unwrap();
        let query = format!(r#"{{job="gz"}} |= "settled-{n}-end""#);
        let deadline = Instant::now() + Duration::from_secs(60);
        while store.log_lines(&query).is_empty() {
            assert!(
                Instant::now() < deadline,
                "{query} not delivered\n{}",
                collector.describe()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
    wait_exactly(&store, &want, &mut collector);
}
