//! Issue #7 end to end: `obs up` with a backup job on a short schedule backs up a directory
//! and a SQLite database (dumped with `stdin_from`) to SeaweedFS, a drill restores and
//! verifies it, and `obs_backup_drill_success` = 1 is then queryable through the store's
//! Prometheus API. Corrupting the packs makes the next drill fail, report 0 and log why.

use std::path::Path;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use obs_e2e::{enc, free_port, http_get, now_ns, obs_bin, Proc, S3Server};

/// The value of an instant PromQL query for job "app", if there is one.
fn query(base: &str, promql: &str) -> Option<f64> {
    let (status, body) = http_get(&format!("{base}/api/v1/query?query={}", enc(promql))).ok()?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let result = v["data"]["result"].as_array()?;
    let sample = result.iter().find(|r| r["metric"]["job"] == "app")?;
    sample["value"][1].as_str()?.parse().ok()
}

fn wait_for(what: &str, up: &mut Proc, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(
            up.wait_timeout(Duration::ZERO).is_none(),
            "obs up exited: {}",
            up.describe()
        );
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {}",
            up.describe()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn flip_every_pack(repo_prefix: &str, s3: &S3Server) {
    use futures::TryStreamExt;
    use object_store::{ObjectStore, ObjectStoreExt};
    let store = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(s3.bucket())
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let prefix = object_store::path::Path::from(format!("{repo_prefix}/data"));
        let packs: Vec<_> = store.list(Some(&prefix)).try_collect().await.unwrap();
        assert!(!packs.is_empty());
        for meta in packs {
            let mut b = store
                .get(&meta.location)
                .await
                .unwrap()
                .bytes()
                .await
                .unwrap()
                .to_vec();
            let mid = b.len() / 3;
            b[mid] ^= 0x40;
            store.put(&meta.location, b.into()).await.unwrap();
        }
    });
}

#[test]
fn scheduled_backup_and_drill_report_into_the_store() {
    let s3 = S3Server::start();
    s3.export_env();
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let app = dir.join("app");
    std::fs::create_dir(&app).unwrap();
    std::fs::write(app.join("settings.toml"), "port = 8080\n").unwrap();
    let db = dir.join("app.db");
    let (code, _, err) = Proc::run(
        Path::new("sqlite3"),
        &[
            db.to_str().unwrap(),
            "create table users(name text); insert into users values ('ann'), ('bob');",
        ],
        dir,
    );
    assert_eq!(code, 0, "{err}");
    std::fs::write(dir.join("pw"), "drill-password").unwrap();
    let prefix = format!("sched-{}", std::process::id());
    let repo = format!("s3://{}/{prefix}", s3.bucket());
    let (code, _, err) = Proc::run(
        obs_bin(),
        &["backup", "init", "--repo", &repo, "--password-file", "pw"],
        dir,
    );
    assert_eq!(code, 0, "{err}");

    let (port, grpc) = (free_port(), free_port());
    let base = format!("http://127.0.0.1:{port}");
    let config = format!(
        r#"version = 1
[store]
http_addr = "127.0.0.1:{port}"
grpc_addr = "127.0.0.1:{grpc}"

[[backup.repositories]]
name = "seaweed"
url = "{repo}"
password_file = "{pw}"

[[backup.jobs]]
name = "app"
repository = "seaweed"
paths = ["{app}"]
stdin_from = [{{ command = "sqlite3 {db} .dump", filename = "app.sql" }}]
schedule = "*/2 * * * * *"
keep = {{ last = 3 }}
before = ["echo before >> {hooks}"]
after = ["echo after-$OBS_BACKUP_RESULT >> {hooks}"]
report_to = "{base}"

[backup.jobs.drill]
schedule = "*/3 * * * * *"
verify = "sqlite3 {{restore}}/check.db < {{restore}}/app.sql && test \"$(sqlite3 {{restore}}/check.db 'select count(*) from users')\" = 2"
"#,
        pw = dir.join("pw").display(),
        app = app.display(),
        db = db.display(),
        hooks = dir.join("hooks.log").display(),
    );
    std::fs::write(dir.join("obs.toml"), config).unwrap();
    let data = dir.join("data");
    let mut up = Proc::obs(
        "up",
        &["up", "--config", "obs.toml", "--data-dir", data.to_str().unwrap()],
        dir,
    );
    up.wait_http_ok(&format!("{base}/ready"), Duration::from_secs(60));

    wait_for(
        "a successful drill reported",
        &mut up,
        Duration::from_secs(90),
        || query(&base, "obs_backup_drill_success") == Some(1.0),
    );
    assert!(query(&base, "obs_backup_last_success_timestamp_seconds").is_some_and(|t| t > 1.7e9));
    assert!(query(&base, "obs_backup_snapshot_age_seconds").is_some_and(|a| (0.0..600.0).contains(&a)));
    assert!(query(&base, "obs_backup_duration_seconds").is_some());
    assert!(query(&base, "obs_backup_drill_duration_seconds").is_some());
    assert!(query(&base, "obs_backup_bytes_added").is_some());

    assert!(query(&base, "obs_backup_next_run_timestamp_seconds").is_some_and(|t| t > 1.7e9));
    let hooks = std::fs::read_to_string(dir.join("hooks.log")).unwrap();
    assert!(hooks.starts_with("before\nafter-success\n"), "{hooks}");
    let (code, out, err) = Proc::run(
        obs_bin(),
        &["status", "--store", &base, "--min-disk-free", "0"],
        dir,
    );
    assert_eq!(code, 0, "{out}{err}");
    let row = out
        .lines()
        .find(|l| l.trim_start().starts_with("app "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        row.contains("seaweed") && row.contains(" ago") && row.contains("ok"),
        "{out}"
    );

    flip_every_pack(&prefix, &s3);
    wait_for(
        "a failed drill reported",
        &mut up,
        Duration::from_secs(90),
        || query(&base, "obs_backup_drill_success") == Some(0.0),
    );
    // The reason is in the store's logs.
    let logql = r#"{service_name="obs-backup", job="app"} |= "restore drill failed""#;
    let now = now_ns();
    let url = format!(
        "{base}/loki/api/v1/query_range?query={}&start={}&end={}&limit=5",
        enc(logql),
        now - 600_000_000_000,
        now + 60_000_000_000
    );
    let mut body = String::new();
    wait_for(
        "the failed drill's log line",
        &mut up,
        Duration::from_secs(30),
        || {
            body = http_get(&url).map(|(_, b)| b).unwrap_or_default();
            // An earlier drill may have failed for another reason (one that
            // ran before the first backup finds no snapshot): wait for this one.
            body.contains("is damaged") || body.contains("authentication failed")
        },
    );

    let (code, out, err) = Proc::run(
        obs_bin(),
        &["status", "--store", &base, "--min-disk-free", "0"],
        dir,
    );
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("problem: backup job app: last restore drill failed"),
        "{out}"
    );

    up.signal(Signal::SIGTERM);
    let exit = up
        .wait_timeout(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("obs up did not stop within 30 s of SIGTERM: {}", up.describe()));
    assert!(exit.success(), "{}", up.describe());
    let state = std::fs::read_to_string(data.join("backup/backup-state.json")).unwrap();
    assert!(state.contains("\"last_drill\""), "{state}");
}
