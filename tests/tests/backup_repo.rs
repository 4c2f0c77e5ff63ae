//! The backup repository through the library, on a local directory and on a real S3 server
//! (SeaweedFS, started by scripts/s3-server): the same scenarios run on both.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use obs_backup::testing::lock;
use obs_backup::{check, forget, prune, ForgetOptions, KdfParams, PruneOptions, ReadData};
use obs_backup::{
    create, restore, CreateOptions, Error, InitOptions, KeepPolicy, Repository, RestoreOptions,
};
use obs_e2e::S3Server;

const PASSWORD: &[u8] = b"a long passphrase";

fn init_opts() -> InitOptions {
    InitOptions {
        // Cheap KDF so the suite spends its time on backups, not on argon2.
        kdf: KdfParams {
            m_kib: 1024,
            t: 1,
            p: 1,
        },
        pack_size: 4 << 20,
        ..Default::default()
    }
}

/// Deterministic bytes: a mix of compressible text and incompressible noise.
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (x >> 60) < 4 {
            out.extend_from_slice(format!("line {} of a log file\n", x % 1000).as_bytes());
        } else {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.truncate(len);
    out
}

/// A tree with every file type we keep.
fn make_tree(root: &Path) {
    use std::os::unix::ffi::OsStrExt;
    std::fs::create_dir_all(root.join("etc/app")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("etc/app/config.toml"), b"key = 1\n").unwrap();
    std::fs::write(root.join("etc/zero"), b"").unwrap();
    std::fs::write(root.join("big.bin"), bytes(1, 9 << 20)).unwrap();
    std::fs::write(root.join("medium.log"), bytes(2, 700_000)).unwrap();
    std::fs::write(root.join(std::ffi::OsStr::from_bytes(b"not-utf8-\xff")), b"x").unwrap();
    std::fs::set_permissions(
        root.join("etc/app/config.toml"),
        std::fs::Permissions::from_mode(0o640),
    )
    .unwrap();
    std::fs::set_permissions(root.join("etc/app"), std::fs::Permissions::from_mode(0o751)).unwrap();
    std::os::unix::fs::symlink("etc/app/config.toml", root.join("link")).unwrap();
    std::os::unix::fs::symlink("/nowhere", root.join("dangling")).unwrap();
    std::fs::hard_link(root.join("medium.log"), root.join("medium.hardlink")).unwrap();
    nix::unistd::mkfifo(
        &root.join("fifo"),
        nix::sys::stat::Mode::from_bits_truncate(0o600),
    )
    .unwrap();
    xattr::set(root.join("etc/app/config.toml"), "user.origin", b"ansible").unwrap();
    let old = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
    std::fs::File::options()
        .write(true)
        .open(root.join("etc/zero"))
        .unwrap()
        .set_modified(old)
        .unwrap();
}

/// Every entry under `a` exists under `b` with the same type, content, mode, mtime and links.
fn assert_same_tree(a: &Path, b: &Path) {
    let mut stack = vec![PathBuf::new()];
    let mut seen = 0;
    while let Some(rel) = stack.pop() {
        for e in std::fs::read_dir(a.join(&rel)).unwrap() {
            let name = rel.join(e.unwrap().file_name());
            let (pa, pb) = (a.join(&name), b.join(&name));
            let ma = std::fs::symlink_metadata(&pa).unwrap();
            let mb = std::fs::symlink_metadata(&pb).unwrap_or_else(|e| panic!("{}: {e}", pb.display()));
            assert_eq!(ma.file_type(), mb.file_type(), "{}", name.display());
            assert_eq!(ma.mode(), mb.mode(), "mode of {}", name.display());
            if !ma.is_dir() {
                assert_eq!(ma.mtime(), mb.mtime(), "mtime of {}", name.display());
                assert_eq!(ma.mtime_nsec(), mb.mtime_nsec(), "mtime of {}", name.display());
            }
            if ma.is_file() {
                assert_eq!(
                    std::fs::read(&pa).unwrap(),
                    std::fs::read(&pb).unwrap(),
                    "{}",
                    name.display()
                );
                assert_eq!(ma.nlink(), mb.nlink(), "links of {}", name.display());
            } else if ma.is_symlink() {
                assert_eq!(std::fs::read_link(&pa).unwrap(), std::fs::read_link(&pb).unwrap());
            } else if ma.is_dir() {
                stack.push(name);
            }
            seen += 1;
        }
    }
    assert!(seen > 5);
}

fn backup_opts(paths: &[&Path]) -> CreateOptions {
    CreateOptions {
        paths: paths.iter().map(|p| p.to_path_buf()).collect(),
        ..Default::default()
    }
}

async fn round_trip_every_file_type(url: &str) {
    let data = tempfile::tempdir().unwrap();
    make_tree(data.path());
    let repo = Arc::new(Repository::init(url, PASSWORD, init_opts()).await.unwrap());
    let (id, snap) = create(repo.clone(), backup_opts(&[data.path()])).await.unwrap();
    assert_eq!(snap.summary.files_new, 6, "{:?}", snap.summary);
    assert!(snap.summary.errors.is_empty());

    let repo = Arc::new(Repository::open(url, PASSWORD).await.unwrap());
    let (found, _) = repo.find_snapshot(&id.short()).await.unwrap();
    assert_eq!(found, id);
    let target = tempfile::tempdir().unwrap();
    let opts = RestoreOptions {
        target: target.path().to_path_buf(),
        verify: true,
        ..Default::default()
    };
    let summary = restore(repo.clone(), &snap, opts).await.unwrap();
    assert!(summary.verified);
    assert_eq!(summary.links, 1);
    let restored = target.path().join(data.path().strip_prefix("/").unwrap());
    assert_same_tree(data.path(), &restored);
    let origin = xattr::get(restored.join("etc/app/config.toml"), "user.origin").unwrap();
    assert_eq!(
        origin.as_deref(),
        Some(&b"ansible"[..]),
        "extended attributes come back"
    );
    let ino = |p: &Path| std::fs::metadata(p).unwrap().ino();
    assert_eq!(
        ino(&restored.join("medium.log")),
        ino(&restored.join("medium.hardlink"))
    );

    // --include restores one path and the directories leading to it.
    let partial = tempfile::tempdir().unwrap();
    let opts = RestoreOptions {
        target: partial.path().to_path_buf(),
        includes: vec![data.path().join("etc/app")],
        ..Default::default()
    };
    restore(repo.clone(), &snap, opts).await.unwrap();
    let base = partial.path().join(data.path().strip_prefix("/").unwrap());
    assert_eq!(
        std::fs::read(base.join("etc/app/config.toml")).unwrap(),
        b"key = 1\n"
    );
    assert!(!base.join("big.bin").exists() && !base.join("etc/zero").exists());

    // A drill's sample: a tiny share of the files, plus everything under `always`.
    let sampled = tempfile::tempdir().unwrap();
    let opts = RestoreOptions {
        target: sampled.path().to_path_buf(),
        sample: Some(1e-9),
        always: vec![data.path().join("etc")],
        verify: true,
        ..Default::default()
    };
    let summary = restore(repo.clone(), &snap, opts).await.unwrap();
    let base = sampled.path().join(data.path().strip_prefix("/").unwrap());
    assert_eq!(summary.files, 2, "{summary:?}");
    assert_eq!(
        std::fs::read(base.join("etc/app/config.toml")).unwrap(),
        b"key = 1\n"
    );
    assert!(base.join("etc/zero").exists() && !base.join("big.bin").exists());

    let report = check(repo, ReadData::All, false, Duration::ZERO).await.unwrap();
    assert!(report.is_ok(), "{:?}", report.errors);
    assert!(report.packs_read >= 2, "{report:?}");
}

async fn second_backup_dedups_and_reads_only_changes(url: &str) {
    let data = tempfile::tempdir().unwrap();
    make_tree(data.path());
    let repo = Arc::new(Repository::init(url, PASSWORD, init_opts()).await.unwrap());
    let (_, first) = create(repo.clone(), backup_opts(&[data.path()])).await.unwrap();
    let (_, again) = create(repo.clone(), backup_opts(&[data.path()])).await.unwrap();
    assert_eq!(again.summary.files_unmodified, 6);
    assert_eq!(again.summary.data_blobs, 0, "{:?}", again.summary);

    // Change 64 KiB in the middle of the 9 MiB file: only the chunks around it are new.
    let mut big = std::fs::read(data.path().join("big.bin")).unwrap();
    big[4 << 20..(4 << 20) + 65536].copy_from_slice(&bytes(9, 65536));
    std::fs::write(data.path().join("big.bin"), &big).unwrap();
    let (_, third) = create(repo.clone(), backup_opts(&[data.path()])).await.unwrap();
    assert_eq!(third.summary.files_changed, 1);
    assert_eq!(third.summary.files_unmodified, 5);
    // Content-defined chunking: the chunks before the change are the same, the
    // new ones are one run that covers the change, and the cuts resynchronise
    // after it (chunk sizes depend on the repository's secret seed, so the test
    // reads the real cut points back rather than assuming them).
    let path = data.path().join("big.bin");
    let old = file_chunks(&repo, &first.tree, &path).await;
    let new = file_chunks(&repo, &third.tree, &path).await;
    let old_ids: std::collections::HashSet<_> = old.iter().map(|c| c.id).collect();
    let fresh: Vec<usize> = (0..new.len())
        .filter(|&i| !old_ids.contains(&new[i].id))
        .collect();
    assert_eq!(
        third.summary.data_blobs,
        fresh.len() as u64,
        "{:?}",
        third.summary
    );
    let (run_start, run_end) = (fresh[0], fresh[fresh.len() - 1]);
    assert_eq!(
        fresh.len(),
        run_end - run_start + 1,
        "one run of new chunks: {fresh:?}"
    );
    let offset = |i: usize| new[..i].iter().map(|c| c.len as usize).sum::<usize>();
    assert!(offset(run_start) <= 4 << 20 && offset(run_end + 1) >= (4 << 20) + 65536);
    assert_eq!(
        new[..run_start],
        old[..run_start],
        "chunks before the change are reused"
    );
    assert!(
        fresh.len() < new.len(),
        "some of the file is reused: {fresh:?} of {}",
        new.len()
    );
    let fresh_bytes: u64 = fresh.iter().map(|&i| new[i].len as u64).sum();
    // Bytes added are the new chunks plus the three small trees on the path.
    let trees = third.summary.data_added.checked_sub(fresh_bytes);
    assert!(
        trees.is_some_and(|t| t < 65536),
        "{fresh_bytes} {:?}",
        third.summary
    );
}

/// The chunk list of the file at `path` in the snapshot whose root tree is `root`.
async fn file_chunks(repo: &Repository, root: &obs_backup::Id, path: &Path) -> Vec<obs_backup::ChunkRef> {
    let mut tree = repo.load_tree(root).await.unwrap();
    let parts = obs_backup::components(path);
    for (i, name) in parts.iter().enumerate() {
        let node = tree
            .find(name)
            .unwrap_or_else(|| panic!("{} not in the snapshot", path.display()));
        if i + 1 == parts.len() {
            return node.content.clone();
        }
        tree = repo.load_tree(&node.subtree.unwrap()).await.unwrap();
    }
    unreachable!("{} has no components", path.display())
}

async fn wrong_password_and_second_init_are_refused(url: &str) {
    Repository::init(url, PASSWORD, init_opts()).await.unwrap();
    let err = Repository::open(url, b"wrong").await.unwrap_err();
    assert!(matches!(err, Error::WrongPassword(_)), "{err}");
    assert!(err.to_string().contains("OBS_BACKUP_PASSWORD"));
    let err = Repository::init(url, PASSWORD, init_opts()).await.unwrap_err();
    assert!(matches!(err, Error::AlreadyExists(_)), "{err}");
    Repository::open(url, PASSWORD)
        .await
        .expect("the first repository is untouched");
}

async fn forget_and_prune_keep_exactly_the_policy(url: &str) {
    let data = tempfile::tempdir().unwrap();
    let repo = Arc::new(Repository::init(url, PASSWORD, init_opts()).await.unwrap());
    let mut ids = Vec::new();
    for i in 0..5u64 {
        std::fs::write(data.path().join("db.dump"), bytes(100 + i, 3 << 20)).unwrap();
        ids.push(create(repo.clone(), backup_opts(&[data.path()])).await.unwrap().0);
    }
    let size = |repo: Arc<Repository>| async move {
        repo.list_ids("data")
            .await
            .unwrap()
            .iter()
            .map(|(_, s)| s)
            .sum::<u64>()
    };
    let before = size(repo.clone()).await;
    let opts = ForgetOptions {
        policy: KeepPolicy {
            last: Some(2),
            ..Default::default()
        },
        ..Default::default()
    };
    let decisions = forget(repo.clone(), opts).await.unwrap();
    let kept: Vec<_> = decisions.iter().filter(|d| d.keep).map(|d| d.id).collect();
    assert_eq!(kept, [ids[4], ids[3]]);
    let left: Vec<_> = repo
        .snapshots()
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left, [ids[3], ids[4]]);

    let plan = prune(repo.clone(), PruneOptions::default()).await.unwrap();
    assert!(
        !plan.packs_delete.is_empty() || !plan.packs_repack.is_empty(),
        "{plan:?}"
    );
    let after = size(repo.clone()).await;
    assert!(
        after < before * 2 / 3,
        "prune freed too little: {before} -> {after}"
    );
    let report = check(repo.clone(), ReadData::All, false, Duration::ZERO)
        .await
        .unwrap();
    assert!(report.is_ok() && report.warnings.is_empty(), "{report:?}");
    for id in &left {
        let (_, snap) = repo.find_snapshot(&id.to_string()).await.unwrap();
        let target = tempfile::tempdir().unwrap();
        let opts = RestoreOptions {
            target: target.path().to_path_buf(),
            verify: true,
            ..Default::default()
        };
        restore(repo.clone(), &snap, opts).await.unwrap();
    }
    // Nothing left to do: a second prune changes nothing.
    let again = prune(repo.clone(), PruneOptions::default()).await.unwrap();
    assert!(
        again.packs_delete.is_empty() && again.packs_repack.is_empty(),
        "{again:?}"
    );
}

async fn bit_flips_are_found_and_named(url: &str, flip: impl AsyncFn(&Repository, &str)) {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("precious.db"), bytes(7, 2 << 20)).unwrap();
    std::fs::write(data.path().join("other.txt"), b"small").unwrap();
    let repo = Arc::new(Repository::init(url, PASSWORD, init_opts()).await.unwrap());
    let (id, _) = create(repo.clone(), backup_opts(&[data.path()])).await.unwrap();
    let (pack, size) = repo
        .list_ids("data")
        .await
        .unwrap()
        .into_iter()
        .max_by_key(|(_, s)| *s)
        .unwrap();
    assert!(size > 64 << 10, "the largest pack holds file data");
    let hex = pack.to_string();
    flip(&repo, &format!("data/{}/{hex}", &hex[..2])).await;
    let report = check(repo.clone(), ReadData::All, false, Duration::ZERO)
        .await
        .unwrap();
    assert!(!report.is_ok());
    assert_eq!(report.damaged_packs.len(), 1, "{report:?}");
    assert_eq!(report.damaged_packs[0].id, hex);
    let precious = data.path().join("precious.db").display().to_string();
    assert!(
        report
            .affected
            .iter()
            .any(|a| a.snapshot == id.short() && a.path == precious),
        "{:?}",
        report.affected
    );
    // Structure alone does not read data: it passes.
    let report = check(repo, ReadData::None, false, Duration::ZERO).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
}

async fn concurrent_create_and_prune_lose_nothing(url: &str) {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("a"), bytes(11, 6 << 20)).unwrap();
    let repo = Arc::new(Repository::init(url, PASSWORD, init_opts()).await.unwrap());
    create(repo.clone(), backup_opts(&[data.path()])).await.unwrap();
    std::fs::write(data.path().join("b"), bytes(12, 12 << 20)).unwrap();
    let waiting = CreateOptions {
        retry_lock: Duration::from_secs(120),
        ..backup_opts(&[data.path()])
    };
    let (made, pruned) = tokio::join!(
        create(repo.clone(), waiting),
        prune(
            repo.clone(),
            PruneOptions {
                dry_run: false,
                retry_lock: Duration::from_secs(120)
            }
        )
    );
    let (_, snap) = made.unwrap();
    pruned.unwrap();
    // And a prune after the fact must not take anything the snapshots use.
    prune(repo.clone(), PruneOptions::default()).await.unwrap();
    let repo = Arc::new(Repository::open(url, PASSWORD).await.unwrap());
    let report = check(repo.clone(), ReadData::All, false, Duration::ZERO)
        .await
        .unwrap();
    assert!(report.is_ok(), "{report:?}");
    let target = tempfile::tempdir().unwrap();
    let opts = RestoreOptions {
        target: target.path().to_path_buf(),
        verify: true,
        ..Default::default()
    };
    restore(repo, &snap, opts).await.unwrap();
    let restored = target.path().join(data.path().strip_prefix("/").unwrap());
    assert_eq!(std::fs::read(restored.join("b")).unwrap(), bytes(12, 12 << 20));
}

async fn a_held_lock_is_named_and_released_locks_are_gone(url: &str) {
    let data = tempfile::tempdir().unwrap();
    std::fs::write(data.path().join("f"), b"x").unwrap();
    let repo = Arc::new(Repository::init(url, PASSWORD, init_opts()).await.unwrap());
    let held = lock::lock(&repo, true, "backup prune", Duration::ZERO)
        .await
        .unwrap();
    let err = create(repo.clone(), backup_opts(&[data.path()]))
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Locked(_)), "{msg}");
    assert!(
        msg.contains("exclusive lock held by `backup prune`") && msg.contains("obs backup unlock"),
        "{msg}"
    );
    held.release().await.unwrap();
    create(repo.clone(), backup_opts(&[data.path()])).await.unwrap();
    assert!(repo.locks().await.unwrap().is_empty(), "locks are released");
}

/// A file whose read fails is left out and named in the summary; the files read beside it
/// (in parallel, by other readers) are all there, and the snapshot restores them.
/// `/proc/self/mem` opens but fails at offset 0 (EIO), even for root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_file_is_skipped_and_named() {
    let data = tempfile::tempdir().unwrap();
    make_tree(data.path());
    let dir = tempfile::tempdir().unwrap();
    let url = dir.path().join("repo").display().to_string();
    let repo = Arc::new(Repository::init(&url, PASSWORD, init_opts()).await.unwrap());
    let mem = Path::new("/proc/self/mem");
    let (id, snap) = create(repo.clone(), backup_opts(&[data.path(), mem]))
        .await
        .unwrap();
    assert_eq!(snap.summary.files_new, 6, "{:?}", snap.summary);
    assert_eq!(snap.summary.errors.len(), 1, "{:?}", snap.summary);
    assert!(
        snap.summary.errors[0].starts_with("/proc/self/mem: "),
        "{:?}",
        snap.summary
    );
    let target = tempfile::tempdir().unwrap();
    restore(
        repo.clone(),
        &repo.find_snapshot(&id.short()).await.unwrap().1,
        RestoreOptions {
            target: target.path().to_path_buf(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(!target.path().join("proc/self/mem").exists());
    assert_same_tree(
        data.path(),
        &target.path().join(data.path().strip_prefix("/").unwrap()),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_suite_on_a_local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let url = |name: &str| dir.path().join(name).display().to_string();
    round_trip_every_file_type(&url("round-trip")).await;
    second_backup_dedups_and_reads_only_changes(&url("dedup")).await;
    wrong_password_and_second_init_are_refused(&url("password")).await;
    forget_and_prune_keep_exactly_the_policy(&url("forget")).await;
    let flip_local = async |_: &Repository, path: &str| {
        let file = dir.path().join("flip").join(path);
        let mut b = std::fs::read(&file).unwrap();
        let mid = b.len() / 2;
        b[mid] ^= 0x01;
        std::fs::write(&file, b).unwrap();
    };
    bit_flips_are_found_and_named(&url("flip"), flip_local).await;
    concurrent_create_and_prune_lose_nothing(&url("concurrent")).await;
    a_held_lock_is_named_and_released_locks_are_gone(&url("locks")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repository_suite_on_s3() {
    let s3 = S3Server::start();
    s3.export_env();
    let run = format!("suite-{}", std::process::id());
    let url = |name: &str| format!("s3://{}/{run}/{name}", s3.bucket());
    round_trip_every_file_type(&url("round-trip")).await;
    second_backup_dedups_and_reads_only_changes(&url("dedup")).await;
    wrong_password_and_second_init_are_refused(&url("password")).await;
    forget_and_prune_keep_exactly_the_policy(&url("forget")).await;
    let flip_s3 = async |repo: &Repository, path: &str| {
        use object_store::ObjectStoreExt;
        let path = object_store::path::Path::from(path);
        let mut b = repo
            .store()
            .get(&path)
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .to_vec();
        let mid = b.len() / 2;
        b[mid] ^= 0x01;
        repo.store().put(&path, b.into()).await.unwrap();
    };
    bit_flips_are_found_and_named(&url("flip"), flip_s3).await;
    concurrent_create_and_prune_lose_nothing(&url("concurrent")).await;
    a_held_lock_is_named_and_released_locks_are_gone(&url("locks")).await;
}
