//! `restore`: plan, then execute. The plan walks the snapshot's trees and lists what to
//! create under the target (each backed-up absolute path recreated below it, as restic
//! does; `--include` narrows it to some paths and the directories leading to them). Then:
//! directories, special files and symlinks; file contents pack by pack, in parallel: each
//! pack's needed span is read with one request (at most 16 MiB, so one GET per pack on S3
//! and sequential reads on disk), every blob in it authenticated and checked against its
//! id, and written with positioned writes into every file that uses it; hard links;
//! finally metadata: owner (when
//! running as root), mode and times, directories last and deepest first so that writing
//! children does not disturb their parents' mtimes. `--verify` re-reads every restored file
//! and checks each chunk's keyed hash.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::runtime::Handle;

use crate::error::{Error, Result};
use crate::progress::bytes_bar;
use crate::repo::{lock, Id, Repository};
use crate::snapshot::{components, Snapshot};
use crate::tree::{Node, NodeKind};

#[derive(Debug, Clone, Default)]
pub struct RestoreOptions {
    pub target: PathBuf,
    /// Absolute paths inside the snapshot; empty = everything.
    pub includes: Vec<PathBuf>,
    pub verify: bool,
    pub progress: bool,
    pub retry_lock: Duration,
    /// Restore only this share of the files, picked at random (drills); `None` = all.
    pub sample: Option<f64>,
    /// Files under these snapshot paths are restored whatever the sample.
    pub always: Vec<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreSummary {
    pub files: u64,
    pub dirs: u64,
    pub links: u64,
    pub special: u64,
    pub bytes: u64,
    pub verified: bool,
    pub duration_secs: f64,
    /// Metadata that could not be applied (e.g. owners when not root).
    pub warnings: Vec<String>,
}

/// One entry to create, at `rel` under the target.
#[derive(Debug, Clone)]
pub(crate) struct PlanItem {
    pub rel: PathBuf,
    pub node: Node,
}

/// Lists what a restore of `snapshot` creates, parents before children.
pub(crate) async fn plan(
    repo: &Repository,
    snapshot: &Snapshot,
    includes: &[PathBuf],
) -> Result<Vec<PlanItem>> {
    let includes: Vec<Vec<Vec<u8>>> = includes.iter().map(|p| components(p)).collect();
    let mut out = Vec::new();
    let mut stack = vec![(PathBuf::new(), Vec::<Vec<u8>>::new(), snapshot.tree)];
    while let Some((dir, comps, tree_id)) = stack.pop() {
        let tree = repo.load_tree(&tree_id).await?;
        let mut subdirs = Vec::new();
        for node in tree.nodes {
            let mut c = comps.clone();
            c.push(node.name.clone());
            // Inside an include, or on the way to one.
            let inside = includes.is_empty() || includes.iter().any(|i| c.starts_with(i));
            let on_way = includes.iter().any(|i| i.starts_with(&c) && i.len() > c.len());
            if !inside && !on_way {
                continue;
            }
            if !inside && node.kind != NodeKind::Dir {
                continue;
            }
            let rel = dir.join(std::ffi::OsStr::from_bytes(&node.name));
            if let (NodeKind::Dir, Some(sub)) = (node.kind, node.subtree) {
                subdirs.push((rel.clone(), c, sub));
            }
            out.push(PlanItem { rel, node });
        }
        // Depth-first, in name order.
        stack.extend(subdirs.into_iter().rev());
    }
    for i in &includes {
        let found = out.iter().any(|item| components(&item.rel) == *i);
        if !found {
            let shown = PathBuf::from("/").join(
                i.iter()
                    .map(|c| std::ffi::OsStr::from_bytes(c))
                    .collect::<PathBuf>(),
            );
            return Err(Error::Usage(format!(
                "{} is not in the snapshot",
                shown.display()
            )));
        }
    }
    Ok(out)
}

/// Restores `snapshot` under `opts.target`.
pub async fn restore(
    repo: Arc<Repository>,
    snapshot: &Snapshot,
    opts: RestoreOptions,
) -> Result<RestoreSummary> {
    let started = Instant::now();
    let guard = lock::lock(&repo, false, "backup restore", opts.retry_lock).await?;
    let mut items = plan(&repo, snapshot, &opts.includes).await?;
    if let Some(share) = opts.sample {
        let always: Vec<Vec<Vec<u8>>> = opts.always.iter().map(|p| components(p)).collect();
        items.retain(|item| {
            item.node.kind != NodeKind::File
                || rand::random::<f64>() < share
                || always.iter().any(|a| components(&item.rel).starts_with(a))
        });
    }
    let handle = Handle::current();
    let repo2 = repo.clone();
    let result = tokio::task::spawn_blocking(move || execute(&repo2, &handle, items, &opts))
        .await
        .map_err(|e| Error::Failed(format!("restore thread failed: {e}")))
        .and_then(|r| r);
    guard.release().await?;
    let mut summary = result?;
    summary.duration_secs = started.elapsed().as_secs_f64();
    Ok(summary)
}

fn execute(
    repo: &Repository,
    handle: &Handle,
    items: Vec<PlanItem>,
    opts: &RestoreOptions,
) -> Result<RestoreSummary> {
    let target = &opts.target;
    std::fs::create_dir_all(target).map_err(|e| Error::io(target, e))?;
    let mut summary = RestoreSummary::default();
    let mut files = Vec::new();
    let mut hard_links = Vec::new();
    let mut first_of_inode: HashMap<(u64, u64), PathBuf> = HashMap::new();
    for item in &items {
        let path = target.join(&item.rel);
        let node = &item.node;
        match node.kind {
            NodeKind::Dir => {
                std::fs::create_dir_all(&path).map_err(|e| Error::io(&path, e))?;
                summary.dirs += 1;
            }
            NodeKind::File => {
                if node.links > 1 && node.inode != 0 {
                    if let Some(first) = first_of_inode.get(&(node.device, node.inode)) {
                        hard_links.push((first.clone(), path));
                        continue;
                    }
                    first_of_inode.insert((node.device, node.inode), path.clone());
                }
                files.push((path, node));
            }
            NodeKind::Symlink => {
                remove_existing(&path)?;
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&node.link_target), &path)
                    .map_err(|e| Error::io(&path, e))?;
                summary.special += 1;
            }
            NodeKind::Fifo | NodeKind::CharDevice | NodeKind::BlockDevice => {
                remove_existing(&path)?;
                let mode = nix::sys::stat::Mode::from_bits_truncate(node.mode);
                let made = match node.kind {
                    NodeKind::Fifo => nix::unistd::mkfifo(&path, mode),
                    NodeKind::CharDevice => {
                        nix::sys::stat::mknod(&path, nix::sys::stat::SFlag::S_IFCHR, mode, node.rdev)
                    }
                    _ => nix::sys::stat::mknod(&path, nix::sys::stat::SFlag::S_IFBLK, mode, node.rdev),
                };
                match made {
                    Ok(()) => summary.special += 1,
                    Err(e) => summary
                        .warnings
                        .push(format!("{}: could not create: {e}", path.display())),
                }
            }
            NodeKind::Socket => {}
        }
    }

    let total: u64 = files.iter().map(|(_, n)| n.size).sum();
    let bar = bytes_bar(opts.progress, "restore");
    bar.set_length(total);
    let packs = pack_plan(repo, &files)?;
    for (path, node) in &files {
        create_sized(path, node.size)?;
    }
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    // Many reads wait on storage: more threads than cores.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).max(2) * 2;
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                if failure.lock().expect("failure lock").is_some() {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((pack, blobs)) = packs.get(i) else { return };
                if let Err(e) = restore_pack(repo, handle, pack, blobs, &files, &bar) {
                    failure.lock().expect("failure lock").get_or_insert(e);
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().expect("failure lock") {
        bar.abandon();
        return Err(e);
    }
    bar.finish_and_clear();
    for (path, node) in &files {
        summary.warnings.extend(apply_xattrs(path, node));
        match apply_metadata(path, node) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                summary.warnings.push(format!("{}: {e}", path.display()))
            }
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    summary.files = files.len() as u64;
    summary.bytes = total;
    for (first, path) in &hard_links {
        remove_existing(path)?;
        std::fs::hard_link(first, path).map_err(|e| Error::io(path, e))?;
        summary.links += 1;
    }
    // Metadata of everything but files (done above), deepest first.
    for item in items.iter().rev() {
        if item.node.kind == NodeKind::File || item.node.kind == NodeKind::Socket {
            continue;
        }
        let path = target.join(&item.rel);
        summary.warnings.extend(apply_xattrs(&path, &item.node));
        if let Err(e) = apply_metadata(&path, &item.node) {
            summary
                .warnings
                .push(format!("{}: metadata: {e}", path.display()));
        }
    }
    if opts.verify {
        verify(repo, &files)?;
        summary.verified = true;
    }
    Ok(summary)
}

fn remove_existing(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(|e| Error::io(path, e)),
        Ok(_) => std::fs::remove_file(path).map_err(|e| Error::io(path, e)),
        Err(_) => Ok(()),
    }
}

/// A blob to restore: where it is in its pack, and every (file, offset) it goes to.
#[derive(Debug)]
struct BlobTarget {
    id: Id,
    offset: u32,
    len: u32,
    raw_len: u32,
    targets: Vec<(usize, u64)>,
}

/// Groups the file contents by pack, so each pack is read once, front to back.
fn pack_plan(repo: &Repository, files: &[(PathBuf, &Node)]) -> Result<Vec<(Id, Vec<BlobTarget>)>> {
    let index = repo.index.read().expect("index lock");
    let mut packs: HashMap<Id, HashMap<Id, BlobTarget>> = HashMap::new();
    for (i, (path, node)) in files.iter().enumerate() {
        let mut at = 0u64;
        for chunk in &node.content {
            let loc = index.get(&chunk.id).ok_or_else(|| Error::Corrupt {
                what: format!("{} (chunk {})", path.display(), chunk.id.short()),
                why: "the chunk is in no index; run `obs backup check`".to_string(),
            })?;
            packs
                .entry(loc.pack)
                .or_default()
                .entry(chunk.id)
                .or_insert_with(|| BlobTarget {
                    id: chunk.id,
                    offset: loc.offset,
                    len: loc.len,
                    raw_len: chunk.len,
                    targets: Vec::new(),
                })
                .targets
                .push((i, at));
            at += chunk.len as u64;
        }
    }
    let mut out: Vec<(Id, Vec<BlobTarget>)> = packs
        .into_iter()
        .map(|(pack, blobs)| {
            let mut blobs: Vec<BlobTarget> = blobs.into_values().collect();
            blobs.sort_by_key(|b| b.offset);
            (pack, blobs)
        })
        .collect();
    out.sort_by_key(|(pack, _)| *pack);
    Ok(out)
}

/// Creates (or truncates) a regular file of `size` bytes, ready for positioned writes.
fn create_sized(path: &Path, size: u64) -> Result<()> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| !m.is_file()) {
        remove_existing(path)?;
    }
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    file.set_len(size).map_err(|e| Error::io(path, e))
}

/// Reads the span of `pack` that holds `blobs` with one request, checks every blob and
/// writes it wherever it goes. Spans with big gaps are read in parts.
fn restore_pack(
    repo: &Repository,
    handle: &Handle,
    pack: &Id,
    blobs: &[BlobTarget],
    files: &[(PathBuf, &Node)],
    bar: &indicatif::ProgressBar,
) -> Result<()> {
    use std::os::unix::fs::FileExt;
    let mut open: HashMap<usize, std::fs::File> = HashMap::new();
    let mut start = 0;
    while start < blobs.len() {
        // Extend the span while the next blob is close (a gap under 1 MiB is cheaper to read).
        let mut end = start + 1;
        while end < blobs.len()
            && blobs[end].offset <= blobs[end - 1].offset + blobs[end - 1].len + (1 << 20)
            && blobs[end].offset + blobs[end].len - blobs[start].offset <= 16 << 20
        {
            end += 1;
        }
        let from = blobs[start].offset as u64;
        let to = blobs[end - 1].offset as u64 + blobs[end - 1].len as u64;
        let bytes = handle.block_on(repo.read_pack_range(pack, from..to))?;
        for b in &blobs[start..end] {
            let at = (b.offset as u64 - from) as usize;
            let what = format!("blob {} in pack {}", b.id.short(), pack.short());
            let data = repo.open_blob(&b.id, &bytes[at..at + b.len as usize], &what)?;
            if data.len() != b.raw_len as usize {
                return Err(Error::Corrupt {
                    what,
                    why: format!("it holds {} bytes, the tree says {}", data.len(), b.raw_len),
                });
            }
            for &(file, offset) in &b.targets {
                let path = &files[file].0;
                let f = match open.entry(file) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => e.insert(
                        std::fs::OpenOptions::new()
                            .write(true)
                            .open(path)
                            .map_err(|e| Error::io(path, e))?,
                    ),
                };
                f.write_all_at(&data, offset).map_err(|e| Error::io(path, e))?;
                bar.inc(data.len() as u64);
            }
        }
        start = end;
    }
    Ok(())
}

/// Extended attributes; the ones the target file system refuses become warnings.
fn apply_xattrs(path: &Path, node: &Node) -> Vec<String> {
    node.xattrs
        .iter()
        .filter_map(|(name, value)| {
            let name = std::ffi::OsStr::from_bytes(name);
            xattr::set(path, name, value).err().map(|e| {
                format!(
                    "{}: extended attribute {}: {e}",
                    path.display(),
                    name.to_string_lossy()
                )
            })
        })
        .collect()
}

/// Owner (as root; others keep their own), mode, then times, without following symlinks.
fn apply_metadata(path: &Path, node: &Node) -> std::io::Result<()> {
    use nix::sys::stat::{utimensat, UtimensatFlags};
    use nix::sys::time::TimeSpec;
    if nix::unistd::geteuid().is_root() {
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            path,
            Some(node.uid.into()),
            Some(node.gid.into()),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )?;
    }
    if node.kind != NodeKind::Symlink {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(node.mode))?;
    }
    let ts = |ns: i64| TimeSpec::new(ns.div_euclid(1_000_000_000), ns.rem_euclid(1_000_000_000));
    utimensat(
        nix::fcntl::AT_FDCWD,
        path,
        &ts(node.mtime_ns),
        &ts(node.mtime_ns),
        UtimensatFlags::NoFollowSymlink,
    )?;
    Ok(())
}

/// Re-reads restored files and checks every chunk against its id.
fn verify(repo: &Repository, files: &[(PathBuf, &Node)]) -> Result<()> {
    let mut bad = Vec::new();
    let mut buf = Vec::new();
    for (path, node) in files {
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let mut ok = true;
        for chunk in &node.content {
            buf.clear();
            (&mut file)
                .take(chunk.len as u64)
                .read_to_end(&mut buf)
                .map_err(|e| Error::io(path, e))?;
            if buf.len() != chunk.len as usize || repo.key().blob_id(&buf) != chunk.id {
                ok = false;
                break;
            }
        }
        let mut rest = [0u8; 1];
        if ok && file.read(&mut rest).map_err(|e| Error::io(path, e))? != 0 {
            ok = false;
        }
        if !ok {
            bad.push(path.display().to_string());
        }
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(Error::Failed(format!(
            "verify: {} restored file(s) differ from the snapshot: {}",
            bad.len(),
            bad.join(", ")
        )))
    }
}
