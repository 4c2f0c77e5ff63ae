//! Golden: a repository written by format version 1 (checked in under
//! `tests/fixtures/repo-v1`) must open, check and restore with every later version.
//! Regenerate only when the format version changes: `OBS_REGENERATE_GOLDEN=1 cargo test -p
//! obs-backup --test golden_repo` (and keep the old fixture under its version's name).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use obs_backup::{
    check, create, restore, CreateOptions, InitOptions, KdfParams, ReadData, Repository, RestoreOptions,
};

const PASSWORD: &[u8] = b"obs-golden-v1";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo-v1")
}

/// The files the fixture holds, by path relative to the backed-up directory.
fn expected() -> Vec<(&'static str, Vec<u8>)> {
    let mut x: u32 = 7;
    let bin: Vec<u8> = (0..200_000)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (x >> 16) as u8
        })
        .collect();
    vec![
        ("a.txt", b"hello, version 1\n".to_vec()),
        ("dir/b.bin", bin),
        ("dir/empty", Vec::new()),
    ]
}

async fn regenerate() {
    let dir = fixture();
    let _ = std::fs::remove_dir_all(&dir);
    let src = tempfile::tempdir().unwrap();
    for (rel, content) in expected() {
        let p = src.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    std::os::unix::fs::symlink("a.txt", src.path().join("link")).unwrap();
    let opts = InitOptions {
        kdf: KdfParams {
            m_kib: 1024,
            t: 1,
            p: 1,
        },
        ..Default::default()
    };
    let repo = Arc::new(
        Repository::init(dir.to_str().unwrap(), PASSWORD, opts)
            .await
            .unwrap(),
    );
    let opts = CreateOptions {
        paths: vec![src.path().to_path_buf()],
        tags: vec!["golden".to_string()],
        host: Some("golden-host".to_string()),
        ..Default::default()
    };
    create(repo, opts).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_repository_opens_checks_and_restores() {
    if std::env::var_os("OBS_REGENERATE_GOLDEN").is_some() {
        regenerate().await;
    }
    // Work on a copy: opening takes a lock, and the fixture must stay as it was written.
    let copy = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(fixture())
        .arg(copy.path().join("repo"))
        .status()
        .unwrap();
    assert!(status.success());
    let url = copy.path().join("repo").display().to_string();
    let repo = Arc::new(Repository::open(&url, PASSWORD).await.unwrap());
    let snaps = repo.snapshots().await.unwrap();
    assert_eq!(snaps.len(), 1);
    let (_, snap) = &snaps[0];
    assert_eq!(snap.host, "golden-host");
    assert_eq!(snap.tags, ["golden"]);

    let report = check(repo.clone(), ReadData::All, false, Duration::ZERO)
        .await
        .unwrap();
    assert!(report.is_ok() && report.warnings.is_empty(), "{report:?}");

    let target = tempfile::tempdir().unwrap();
    let opts = RestoreOptions {
        target: target.path().to_path_buf(),
        verify: true,
        ..Default::default()
    };
    restore(repo, snap, opts).await.unwrap();
    let base = target.path().join(snap.paths[0].trim_start_matches('/'));
    for (rel, content) in expected() {
        assert_eq!(std::fs::read(base.join(rel)).unwrap(), content, "{rel}");
    }
    assert_eq!(std::fs::read_link(base.join("link")).unwrap(), Path::new("a.txt"));
}
