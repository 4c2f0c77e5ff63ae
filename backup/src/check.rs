//! `check`: is the repository whole, and (with `--read-data`) is every byte intact?
//!
//! Structure: every index file opens; every indexed pack exists; every snapshot's trees load
//! (authenticated, hash-checked) and every chunk they name is indexed. Unindexed packs (left
//! by an interrupted backup) are warnings: prune removes them. Data: each selected pack is
//! downloaded and hashed against its name, its header opened and every blob in it decrypted
//! and hashed against its id. Damaged packs are named, with the snapshots and files that use
//! them.

use std::collections::{HashMap, HashSet};

use futures::StreamExt;
use serde::Serialize;

use crate::error::Result;
use crate::progress::bytes_bar;
use crate::repo::pack::read_header;
use crate::repo::{lock, pack_path, BlobType, Id, Repository};
use crate::tree::{walk, NodeKind};

/// Which packs `--read-data` reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReadData {
    None,
    All,
    /// A random share of packs, in (0, 1].
    Percent(f64),
    /// Part `n` of `t` (1-based), by pack id: runs with 1/5 .. 5/5 together read everything.
    Slice(u32, u32),
}

impl std::str::FromStr for ReadData {
    type Err = String;
    /// `10%` or `2/5`.
    fn from_str(s: &str) -> Result<ReadData, String> {
        let bad = || format!("bad subset {s:?}: write a percentage like 10% or a part like 2/5");
        if let Some(p) = s.strip_suffix('%') {
            let p: f64 = p.trim().parse().map_err(|_| bad())?;
            return (p > 0.0 && p <= 100.0)
                .then_some(ReadData::Percent(p / 100.0))
                .ok_or_else(bad);
        }
        let (n, t) = s.split_once('/').ok_or_else(bad)?;
        let (n, t): (u32, u32) = (
            n.trim().parse().map_err(|_| bad())?,
            t.trim().parse().map_err(|_| bad())?,
        );
        (n >= 1 && n <= t)
            .then_some(ReadData::Slice(n, t))
            .ok_or_else(bad)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CheckReport {
    pub snapshots: usize,
    pub trees: usize,
    pub packs: usize,
    pub blobs: usize,
    pub packs_read: usize,
    pub bytes_read: u64,
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub damaged_packs: Vec<DamagedPack>,
    /// Files (and trees) that use damaged or missing data.
    pub affected: Vec<Affected>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DamagedPack {
    pub id: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Affected {
    pub snapshot: String,
    pub path: String,
}

impl CheckReport {
    pub fn is_ok(&self) -> bool {
        self.errors.is_empty()
    }
}

pub async fn check(
    repo: std::sync::Arc<Repository>,
    read_data: ReadData,
    progress: bool,
    retry_lock: std::time::Duration,
) -> Result<CheckReport> {
    let guard = lock::lock(&repo, false, "backup check", retry_lock).await?;
    let result = run(&repo, read_data, progress).await;
    guard.release().await?;
    result
}

async fn run(repo: &Repository, read_data: ReadData, progress: bool) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let mut found = structure(repo, &mut report).await?;
    let chosen = packs_to_read(&found, read_data);
    read_packs(repo, &chosen, progress, &mut found, &mut report).await;
    affected(repo, &found, &mut report).await;
    Ok(report)
}

/// What the structure check found, for the data check and the list of what is hurt.
struct Found {
    /// Pack sizes in storage.
    stored: HashMap<Id, u64>,
    blob_pack: HashMap<Id, (Id, BlobType)>,
    indexed_packs: HashSet<Id>,
    /// Packs missing or unreadable: every blob in them is suspect.
    damaged_packs: HashSet<Id>,
    /// Blobs missing or damaged.
    bad_blobs: HashSet<Id>,
    snapshots: Vec<(Id, crate::snapshot::Snapshot)>,
}

/// Index files, packs, snapshots and their trees; reads no pack.
async fn structure(repo: &Repository, report: &mut CheckReport) -> Result<Found> {
    let stored: HashMap<Id, u64> = repo.list_ids("data").await?.into_iter().collect();
    // Index files, one by one so that a bad one is reported and the rest still used.
    let mut blob_pack: HashMap<Id, (Id, BlobType)> = HashMap::new();
    let mut indexed_packs: HashSet<Id> = HashSet::new();
    let mut files = Vec::new();
    for (id, _) in repo.list_ids("index").await? {
        match repo.load_index_file(&id).await {
            Ok(f) => files.push((id, f)),
            Err(e) => report.errors.push(format!("index/{id}: {e}")),
        }
    }
    let superseded: HashSet<Id> = files.iter().flat_map(|(_, f)| f.supersedes.clone()).collect();
    for (_, file) in files.iter().filter(|(id, _)| !superseded.contains(id)) {
        for pack in &file.packs {
            indexed_packs.insert(pack.id);
            for b in &pack.blobs {
                blob_pack.entry(b.id).or_insert((pack.id, b.kind));
            }
        }
    }
    report.packs = indexed_packs.len();
    report.blobs = blob_pack.len();
    let mut damaged_packs: HashSet<Id> = HashSet::new();
    for pack in &indexed_packs {
        if !stored.contains_key(pack) {
            report
                .errors
                .push(format!("pack {pack} is in the index but missing from storage"));
            report.damaged_packs.push(DamagedPack {
                id: pack.to_string(),
                reason: "missing".to_string(),
            });
            damaged_packs.insert(*pack);
        }
    }
    for pack in stored.keys().filter(|p| !indexed_packs.contains(p)) {
        report.warnings.push(format!(
            "pack {pack} is in no index (left by an interrupted backup; `obs backup prune` removes it)"
        ));
    }

    // Snapshots and their trees.
    let snapshots = repo.snapshots().await?;
    report.snapshots = snapshots.len();
    let mut seen_trees = HashSet::new();
    let mut bad_blobs: HashSet<Id> = HashSet::new();
    for (sid, snap) in &snapshots {
        let mut missing = Vec::new();
        let walked = walk(repo, snap.tree, |path, node| {
            for c in &node.content {
                if !blob_pack.contains_key(&c.id) {
                    missing.push(format!(
                        "{}: chunk {} is in no index",
                        path.display(),
                        c.id.short()
                    ));
                    bad_blobs.insert(c.id);
                }
            }
            node.kind == NodeKind::Dir && node.subtree.is_some_and(|t| seen_trees.insert(t))
        })
        .await;
        for m in missing {
            report.errors.push(format!("snapshot {}: {m}", sid.short()));
        }
        if let Err(e) = walked {
            report.errors.push(format!("snapshot {}: {e}", sid.short()));
            report.affected.push(Affected {
                snapshot: sid.short(),
                path: format!("(a directory listing: {e})"),
            });
        }
    }
    report.trees = seen_trees.len() + snapshots.len();

    Ok(Found {
        stored,
        blob_pack,
        indexed_packs,
        damaged_packs,
        bad_blobs,
        snapshots,
    })
}

/// The packs `--read-data` reads, by pack id.
fn packs_to_read(found: &Found, read_data: ReadData) -> Vec<Id> {
    let (indexed_packs, stored) = (&found.indexed_packs, &found.stored);
    let mut chosen: Vec<Id> = indexed_packs
        .iter()
        .filter(|p| stored.contains_key(p))
        .copied()
        .collect();
    chosen.sort();
    match read_data {
        ReadData::None => chosen.clear(),
        ReadData::All => {}
        ReadData::Percent(p) => {
            use rand::seq::SliceRandom;
            chosen.shuffle(&mut rand::rng());
            chosen.truncate(
                ((chosen.len() as f64 * p).ceil() as usize)
                    .max(1)
                    .min(chosen.len()),
            );
        }
        ReadData::Slice(n, t) => chosen.retain(|p| u32::from(p.0[0]) % t == n - 1),
    }
    chosen
}

/// Downloads and checks `chosen`, four at a time, with a progress bar.
async fn read_packs(
    repo: &Repository,
    chosen: &[Id],
    progress: bool,
    found: &mut Found,
    report: &mut CheckReport,
) {
    let Found {
        stored,
        damaged_packs,
        bad_blobs,
        ..
    } = found;
    let bar = bytes_bar(progress, "check");
    bar.set_length(chosen.iter().map(|p| stored[p]).sum());
    let reads = chosen
        .iter()
        .copied()
        .map(|pack| async move { (pack, read_pack(repo, &pack).await) });
    let mut reads = futures::stream::iter(reads).buffer_unordered(4);
    while let Some((pack, result)) = reads.next().await {
        report.packs_read += 1;
        report.bytes_read += stored[&pack];
        bar.inc(stored[&pack]);
        if let Err((reason, blobs)) = result {
            report.errors.push(format!("pack {pack}: {reason}"));
            report.damaged_packs.push(DamagedPack {
                id: pack.to_string(),
                reason,
            });
            match blobs {
                Some(blobs) => bad_blobs.extend(blobs),
                None => {
                    damaged_packs.insert(pack);
                }
            }
        }
    }
    bar.finish_and_clear();
}

/// Every file that uses a bad blob or a blob in a damaged pack.
async fn affected(repo: &Repository, found: &Found, report: &mut CheckReport) {
    let Found {
        blob_pack,
        damaged_packs,
        bad_blobs,
        snapshots,
        ..
    } = found;
    if !damaged_packs.is_empty() || !bad_blobs.is_empty() {
        let is_bad = |id: &Id| {
            bad_blobs.contains(id) || blob_pack.get(id).is_some_and(|(p, _)| damaged_packs.contains(p))
        };
        for (sid, snap) in snapshots {
            let mut hit = Vec::new();
            let _ = walk(repo, snap.tree, |path, node| {
                if node.content.iter().any(|c| is_bad(&c.id)) || node.subtree.as_ref().is_some_and(&is_bad) {
                    hit.push(path.display().to_string());
                }
                true
            })
            .await;
            report.affected.extend(hit.into_iter().map(|path| Affected {
                snapshot: sid.short(),
                path,
            }));
        }
    }
}

/// Downloads one pack and checks everything in it. On failure: the reason, and the bad
/// blobs when the header could be read (otherwise every blob of the pack is suspect).
async fn read_pack(repo: &Repository, pack: &Id) -> Result<(), (String, Option<Vec<Id>>)> {
    let bytes = repo
        .get(&pack_path(pack))
        .await
        .map_err(|e| (e.to_string(), None))?;
    let name_ok = Id::of_bytes(&bytes) == *pack;
    let header = read_header(repo.key(), &bytes, &format!("pack {}", pack.short()))
        .map_err(|e| (format!("header unreadable: {e}"), None))?;
    let bad: Vec<Id> = header
        .iter()
        .filter(|b| {
            let at = b.offset as usize..b.offset as usize + b.len as usize;
            repo.open_blob(&b.id, &bytes[at], "blob").is_err()
        })
        .map(|b| b.id)
        .collect();
    if !bad.is_empty() {
        let what = format!(
            "{} of {} blobs fail authentication or their hash{}",
            bad.len(),
            header.len(),
            if name_ok {
                ""
            } else {
                "; the pack's content does not match its name"
            }
        );
        return Err((what, Some(bad)));
    }
    if !name_ok {
        return Err((
            "content does not match its name (changed after it was written)".to_string(),
            Some(Vec::new()),
        ));
    }
    Ok(())
}
