//! Disaster recovery of the store itself: a backup job with `store_snapshot` takes a
//! consistent snapshot of a running store's data, and on a fresh machine `obs backup
//! restore` of it gives a store that answers with the same data (README runbook).

use std::time::{Duration, Instant};

use obs_e2e::{enc, http_get, http_post, now_ns, obs_bin, Proc, StoreProc};

fn count_lines(base: &str) -> usize {
    let now = now_ns() as u128;
    let url = format!(
        "{base}/loki/api/v1/query_range?query={}&start={}&end={}&limit=5000",
        enc(r#"{app="dr"}"#),
        now - 3_600_000_000_000,
        now + 60_000_000_000
    );
    let Ok((200, body)) = http_get(&url) else { return 0 };
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["data"]["result"]
        .as_array()
        .map(|streams| {
            streams
                .iter()
                .map(|s| s["values"].as_array().map_or(0, Vec::len))
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_store_comes_back_from_its_backup() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let store = StoreProc::start(dir);
    let base = store.url("");
    let base = base.trim_end_matches('/').to_string();
    let now = now_ns() as u128;
    for batch in 0..4u128 {
        let values: Vec<_> = (0..250u128)
            .map(|i| {
                serde_json::json!([
                    (now - 1_000_000_000 * (1000 - batch * 250 - i)).to_string(),
                    format!("line {batch}-{i}")
                ])
            })
            .collect();
        let body = serde_json::json!({"streams": [{"stream": {"app": "dr"}, "values": values}]});
        let (status, text) = http_post(
            &format!("{base}/loki/api/v1/push"),
            "application/json",
            body.to_string().as_bytes(),
        )
        .unwrap();
        assert_eq!(status, 204, "{text}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while count_lines(&base) < 1000 {
        assert!(Instant::now() < deadline, "lines not searchable");
        std::thread::sleep(Duration::from_millis(100));
    }

    std::fs::write(dir.join("pw"), "dr-password").unwrap();
    let repo = dir.join("offsite");
    std::fs::write(
        dir.join("obs.toml"),
        format!(
            "version = 1\n[[backup.repositories]]\nname = \"offsite\"\nurl = \"{}\"\npassword_file = \"{}\"\n\n\
             [[backup.jobs]]\nname = \"store\"\nrepository = \"offsite\"\nstore_snapshot = \"{base}\"\nschedule = \"0 0 3 * * *\"\n",
            repo.display(),
            dir.join("pw").display()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        let (code, out, err) = Proc::run(obs_bin(), args, dir);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
        out
    };
    run(&[
        "backup",
        "init",
        "--repo",
        repo.to_str().unwrap(),
        "--password-file",
        "pw",
    ]);
    let out = run(&[
        "backup",
        "run",
        "store",
        "--config",
        "obs.toml",
        "--data-dir",
        "state",
    ]);
    assert!(out.contains("backup of job store: ok"), "{out}");
    drop(store); // the machine is gone

    // A fresh machine: restore the snapshot and start a store on it.
    let fresh = dir.join("fresh");
    std::fs::create_dir(&fresh).unwrap();
    run(&[
        "backup",
        "restore",
        "latest",
        "--repo",
        repo.to_str().unwrap(),
        "--password-file",
        "pw",
        "--target",
        fresh.to_str().unwrap(),
        "--verify",
    ]);
    let snapshot = dir.join("store-data/snapshots/latest");
    let restored = fresh.join(snapshot.strip_prefix("/").unwrap());
    assert!(restored.join("wal").is_dir(), "{}", restored.display());
    let again_dir = dir.join("again");
    std::fs::create_dir(&again_dir).unwrap();
    let again = StoreProc::start_on_data(&again_dir, &restored);
    let base = again.url("");
    assert_eq!(
        count_lines(base.trim_end_matches('/')),
        1000,
        "every line is back"
    );
}

/// Backup reports made while the store is down are spooled and delivered, with their
/// original timestamps, once it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_are_spooled_while_the_store_is_down() {
    use obs_backup::{Gauge, LogLine, Reporter};
    let work = tempfile::tempdir().unwrap();
    let port = obs_e2e::free_port();
    let base = format!("http://127.0.0.1:{port}");
    let reporter = Reporter::new(&base, work.path());
    let t = now_ns() / 1_000_000 - 120_000;
    let gauge = Gauge {
        name: "obs_backup_drill_success".to_string(),
        job: "offline".to_string(),
        repo: "r".to_string(),
        value: 0.0,
        time_ms: t,
    };
    let log = LogLine {
        job: "offline".to_string(),
        repo: "r".to_string(),
        level: "error".to_string(),
        time_ns: t * 1_000_000,
        line: "restore drill failed while the store was down".to_string(),
    };
    let err = reporter
        .send(vec![gauge], vec![log])
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 report(s) spooled"), "{err}");
    assert!(work.path().join("report-spool.jsonl").exists());

    let store_dir = work.path().join("store");
    std::fs::create_dir(&store_dir).unwrap();
    let data = store_dir.join("data");
    let _store = tokio::task::spawn_blocking(move || StoreProc::start_on_port(&store_dir, &data, port))
        .await
        .unwrap();
    reporter.send(Vec::new(), Vec::new()).await.unwrap();
    assert!(!work.path().join("report-spool.jsonl").exists(), "spool emptied");
    let at = t as f64 / 1000.0;
    let url = format!("{base}/api/v1/query?query=obs_backup_drill_success&time={at}");
    let (status, body) = tokio::task::spawn_blocking(move || http_get(&url).unwrap())
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert!(
        body.contains("\"offline\"") && body.contains(&format!("[{at},\"0\"]")),
        "{body}"
    );
}
