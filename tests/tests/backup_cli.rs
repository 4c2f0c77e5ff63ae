//! `obs backup` as users run it: the real binary, on a local directory and on SeaweedFS.
//! A backup killed with SIGKILL leaves a valid repository and the next run does not upload
//! again what had landed; errors name what to do.

use std::path::Path;
use std::time::{Duration, Instant};

use obs_e2e::{obs_bin, Proc, S3Server};

fn obs(dir: &Path, args: &[&str]) -> (i32, String, String) {
    Proc::run(obs_bin(), args, dir)
}

/// Deterministic, poorly compressible bytes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Objects below `dir` in the repository (a local path or s3://bucket/prefix).
fn objects_under(repo: &str, dir: &str) -> usize {
    let Some(rest) = repo.strip_prefix("s3://") else {
        // Objects only: a process killed mid-PUT leaves object_store's staging files
        // (`<id>#<n>`) behind, which are not objects.
        fn walk(p: &Path) -> usize {
            let Ok(rd) = std::fs::read_dir(p) else { return 0 };
            rd.flatten()
                .map(|e| match e.path().is_dir() {
                    true => walk(&e.path()),
                    false => usize::from(e.file_name().to_str().is_some_and(|n| !n.contains('#'))),
                })
                .sum()
        }
        return walk(&Path::new(repo).join(dir));
    };
    use futures::TryStreamExt;
    use object_store::ObjectStore;
    let (bucket, prefix) = rest.split_once('/').unwrap();
    let store = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let p = object_store::path::Path::from(format!("{prefix}/{dir}"));
        let all: Vec<_> = store.list(Some(&p)).try_collect().await.unwrap();
        all.len()
    })
}

fn kill_during_create_then_resume(repo: &str) {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(dir.join("pw"), "secret\n").unwrap();
    let data = dir.join("data");
    std::fs::create_dir(&data).unwrap();
    for i in 0..6u64 {
        std::fs::write(data.join(format!("f{i}")), noise(i, 24 << 20)).unwrap();
    }
    let repo_args = ["--repo", repo, "--password-file", "pw"];
    fn with<'a>(cmd: &[&'a str], repo: &[&'a str]) -> Vec<&'a str> {
        [cmd, repo].concat()
    }
    let (code, _, err) = obs(dir, &with(&["backup", "init"], &repo_args));
    assert_eq!(code, 0, "{err}");

    let mut first = Proc::obs("create", &with(&["backup", "create", "data"], &repo_args), dir);
    let deadline = Instant::now() + Duration::from_secs(120);
    while objects_under(repo, "index") < 2 {
        assert!(
            first.wait_timeout(Duration::ZERO).is_none(),
            "finished before the kill: {}",
            first.describe()
        );
        assert!(Instant::now() < deadline, "no packs landed: {}", first.describe());
        std::thread::sleep(Duration::from_millis(20));
    }
    first.signal(nix::sys::signal::Signal::SIGKILL);
    first.wait_timeout(Duration::from_secs(10)).expect("killed");
    let landed = objects_under(repo, "index");

    // The repository is valid: structure checks out, with at most a warning about a pack
    // that landed without its index file.
    let (code, out, err) = obs(dir, &with(&["backup", "check"], &repo_args));
    assert_eq!(code, 0, "{out}{err}");

    let (code, out, err) = obs(
        dir,
        &with(&["backup", "create", "data", "--output", "json"], &repo_args),
    );
    assert_eq!(code, 0, "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    let summary = &json["snapshot"]["summary"];
    let total = summary["total_bytes"].as_u64().unwrap();
    let added = summary["data_added"].as_u64().unwrap();
    assert_eq!(total, 6 * (24 << 20));
    // Each landed index file names a pack of at least 16 MiB that was not sent again.
    assert!(
        added + landed as u64 * (15 << 20) <= total,
        "re-uploaded: added {added} of {total} after {landed} packs had landed"
    );

    // The killed process left its lock; prune (exclusive) sees its pid is gone and goes on.
    assert_eq!(objects_under(repo, "locks"), 1);
    let (code, out, err) = obs(dir, &with(&["backup", "prune"], &repo_args));
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(objects_under(repo, "locks"), 0, "prune removed the stale lock");
    let (code, out, err) = obs(dir, &with(&["backup", "check", "--read-data"], &repo_args));
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains("warning"), "{out}");
    let (code, out, err) = obs(
        dir,
        &with(
            &["backup", "restore", "latest", "--target", "out", "--verify"],
            &repo_args,
        ),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verified"), "{out}");
    let restored = dir.join("out").join(data.strip_prefix("/").unwrap());
    for i in 0..6u64 {
        assert!(
            std::fs::read(restored.join(format!("f{i}"))).unwrap() == noise(i, 24 << 20),
            "f{i}"
        );
    }
}

#[test]
fn kill_9_during_create_then_resume_on_a_local_directory() {
    let repo = tempfile::tempdir().unwrap();
    kill_during_create_then_resume(&repo.path().join("repo").display().to_string());
}

#[test]
fn kill_9_during_create_then_resume_on_s3() {
    let s3 = S3Server::start();
    s3.export_env();
    kill_during_create_then_resume(&format!("s3://{}/kill9-{}", s3.bucket(), std::process::id()));
}

#[test]
fn errors_say_what_to_do() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    std::fs::write(dir.join("pw"), "right").unwrap();
    std::fs::write(dir.join("bad"), "wrong").unwrap();

    let (code, _, err) = obs(dir, &["backup", "snapshots", "--password-file", "pw"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--repo") && err.contains("OBS_BACKUP_REPO"), "{err}");

    let (code, _, err) = obs(
        dir,
        &["backup", "snapshots", "--repo", "r", "--password-file", "pw"],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("no repository at r") && err.contains("obs backup init"),
        "{err}"
    );

    let (code, _, err) = obs(dir, &["backup", "init", "--repo", "r", "--password-file", "pw"]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = obs(dir, &["backup", "init", "--repo", "r", "--password-file", "pw"]);
    assert_eq!(code, 1);
    assert!(err.contains("already exists"), "{err}");
    let (code, _, err) = obs(
        dir,
        &["backup", "snapshots", "--repo", "r", "--password-file", "bad"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("wrong password"), "{err}");

    // A failing --stdin-from command fails the backup and writes no snapshot.
    let (code, _, err) = obs(
        dir,
        &[
            "backup",
            "create",
            "--repo",
            "r",
            "--password-file",
            "pw",
            "--stdin-from",
            "echo partial; echo 'pg_dump: connection refused' >&2; exit 3",
            "--stdin-filename",
            "db.sql",
        ],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("connection refused") && err.contains("no snapshot was written"),
        "{err}"
    );
    let (code, out, _) = obs(
        dir,
        &[
            "backup",
            "snapshots",
            "--repo",
            "r",
            "--password-file",
            "pw",
            "--output",
            "json",
        ],
    );
    assert_eq!(code, 0);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&out).unwrap(),
        serde_json::json!([])
    );

    // A working one is stored as /db.sql and restored byte for byte.
    let (code, _, err) = obs(
        dir,
        &[
            "backup",
            "create",
            "--repo",
            "r",
            "--password-file",
            "pw",
            "--stdin-from",
            "printf 'CREATE TABLE t;\\n'",
            "--stdin-filename",
            "db.sql",
            "--tag",
            "db",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = obs(
        dir,
        &["backup", "ls", "--repo", "r", "--password-file", "pw", "latest"],
    );
    assert_eq!(code, 0);
    assert!(out.contains("/db.sql"), "{out}");
    let (code, _, err) = obs(
        dir,
        &[
            "backup",
            "restore",
            "--repo",
            "r",
            "--password-file",
            "pw",
            "latest",
            "--target",
            "t",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(dir.join("t/db.sql")).unwrap(), b"CREATE TABLE t;\n");

    // A write error during restore (here the file-size limit, as a full disk would) stops
    // the restore with the file and the reason, exit 1, and leaves the repository intact.
    std::fs::create_dir(dir.join("big")).unwrap();
    std::fs::write(dir.join("big/blob"), noise(5, 3 << 20)).unwrap();
    let (code, _, err) = obs(
        dir,
        &["backup", "create", "--repo", "r", "--password-file", "pw", "big"],
    );
    assert_eq!(code, 0, "{err}");
    let script = format!(
        "trap '' XFSZ; ulimit -f 1024; exec {} backup restore --repo r --password-file pw latest --target limited",
        obs_bin().display()
    );
    let (code, _, err) = Proc::run(Path::new("/bin/sh"), &["-c", &script], dir);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("big/blob") && err.contains("File too large"),
        "{err}"
    );
    let (code, out, err) = obs(
        dir,
        &[
            "backup",
            "check",
            "--read-data",
            "--repo",
            "r",
            "--password-file",
            "pw",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");

    let (code, _, err) = obs(dir, &["backup", "forget", "--repo", "r", "--password-file", "pw"]);
    assert_eq!(code, 2);
    assert!(err.contains("--keep-"), "{err}");
}
