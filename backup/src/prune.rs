//! `prune`: delete what no snapshot uses. Plan, then execute, under an exclusive lock.
//!
//! Plan: walk every snapshot's trees to find the blobs in use (any tree that cannot be read
//! stops the prune: nothing is deleted when in doubt). Each indexed pack is then kept (all
//! blobs used), deleted (none used) or repacked (some used); packs in no index (left by an
//! interrupted backup) are deleted.
//!
//! Execute, in an order where a crash at any point leaves a valid repository: write the plan
//! (`prune/<id>`); copy the used blobs of repacked packs into new packs (sealed bytes are
//! moved as they are, after authenticating them); write one new index file that supersedes
//! all the old ones; delete the old index files; only then delete packs; finally the plan.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use object_store::path::Path;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::repo::index::{IndexFile, IndexPack};
use crate::repo::pack::{read_header, PackBuilder};
use crate::repo::{lock, pack_path, Id, Repository};
use crate::tree::walk;

#[derive(Debug, Clone, Default)]
pub struct PruneOptions {
    pub dry_run: bool,
    pub retry_lock: Duration,
}

/// What a prune does (or would do, with `--dry-run`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PrunePlan {
    pub snapshots: usize,
    pub blobs_used: usize,
    pub blobs_unused: usize,
    pub packs_keep: Vec<Id>,
    pub packs_repack: Vec<Id>,
    pub packs_delete: Vec<Id>,
    /// Packs no index names (from interrupted backups).
    pub packs_unindexed: Vec<Id>,
    pub bytes_freed: u64,
    pub bytes_repacked: u64,
}

pub async fn prune(repo: Arc<Repository>, opts: PruneOptions) -> Result<PrunePlan> {
    let guard = lock::lock(&repo, true, "backup prune", opts.retry_lock).await?;
    let result = match plan(&repo).await {
        Ok(planned) if opts.dry_run || planned.nothing_to_do() => Ok(planned.report),
        Ok(planned) => execute(&repo, planned).await,
        Err(e) => Err(e),
    };
    guard.release().await?;
    result
}

/// A prune's plan, and what executing it needs.
struct Planned {
    report: PrunePlan,
    /// Blobs a snapshot uses.
    used: HashSet<Id>,
    /// Used blobs, each in the first kept or repacked pack that has it: a repacked pack's
    /// blob is copied if it is still here (then removed).
    placed: HashSet<Id>,
    /// The index entries of the packs kept as they are.
    kept: Vec<IndexPack>,
    index_files: usize,
}

impl Planned {
    fn nothing_to_do(&self) -> bool {
        let r = &self.report;
        r.packs_delete.is_empty()
            && r.packs_repack.is_empty()
            && r.packs_unindexed.is_empty()
            && self.index_files <= 1
    }
}

/// Plans a prune: which blobs are used, which packs are kept, repacked or deleted. Reads only.
async fn plan(repo: &Repository) -> Result<Planned> {
    let snapshots = repo.snapshots().await?;
    let files = repo.load_index_files().await?;
    {
        // Make sure trees of every indexed pack can be found while walking.
        let mut index = repo.index.write().expect("index lock");
        *index = Default::default();
        for (_, f) in &files {
            for p in &f.packs {
                index.add_pack(p.id, &p.blobs);
            }
        }
        index.finish();
    }
    let mut used: HashSet<Id> = HashSet::new();
    for (sid, snap) in &snapshots {
        used.insert(snap.tree);
        walk(repo, snap.tree, |_, node| {
            used.extend(node.content.iter().map(|c| c.id));
            if let Some(t) = node.subtree {
                used.insert(t);
            }
            true
        })
        .await
        .map_err(|e| {
            Error::Failed(format!(
                "snapshot {} cannot be read ({e}); nothing was deleted; run `obs backup check`",
                sid.short()
            ))
        })?;
    }
    let stored: HashMap<Id, u64> = repo.list_ids("data").await?.into_iter().collect();

    let mut plan = PrunePlan {
        snapshots: snapshots.len(),
        ..Default::default()
    };
    // Each used blob is kept once: in the first kept pack that has it.
    let mut placed: HashSet<Id> = HashSet::new();
    let mut packs: Vec<&IndexPack> = files.iter().flat_map(|(_, f)| &f.packs).collect();
    packs.sort_by_key(|p| p.id);
    packs.dedup_by_key(|p| p.id);
    let mut new_index: Vec<IndexPack> = Vec::new();
    let mut all_blobs: HashSet<Id> = HashSet::new();
    for pack in &packs {
        all_blobs.extend(pack.blobs.iter().map(|b| b.id));
        if !stored.contains_key(&pack.id) {
            continue; // missing: if it held the only copy of a used blob, that is caught below
        }
        let wanted = pack
            .blobs
            .iter()
            .filter(|b| used.contains(&b.id) && !placed.contains(&b.id))
            .count();
        let size = stored[&pack.id];
        if wanted == pack.blobs.len() {
            placed.extend(pack.blobs.iter().map(|b| b.id));
            plan.packs_keep.push(pack.id);
            new_index.push((*pack).clone());
        } else if wanted == 0 {
            plan.packs_delete.push(pack.id);
            plan.bytes_freed += size;
        } else {
            placed.extend(pack.blobs.iter().filter(|b| used.contains(&b.id)).map(|b| b.id));
            plan.packs_repack.push(pack.id);
            plan.bytes_repacked += size;
        }
    }
    if let Some(lost) = used.iter().find(|id| !placed.contains(id)) {
        return Err(Error::Failed(format!(
            "blob {} is used but stored in no pack; nothing was deleted; run `obs backup check`",
            lost.short()
        )));
    }
    let indexed: HashSet<Id> = packs.iter().map(|p| p.id).collect();
    for (id, size) in &stored {
        if !indexed.contains(id) {
            plan.packs_unindexed.push(*id);
            plan.bytes_freed += size;
        }
    }
    plan.packs_unindexed.sort();
    plan.blobs_used = used.len();
    plan.blobs_unused = all_blobs.difference(&used).count();
    Ok(Planned {
        report: plan,
        used,
        placed,
        kept: new_index,
        index_files: files.len(),
    })
}

/// Carries out a plan in crash-safe order (see the module doc).
async fn execute(repo: &Repository, planned: Planned) -> Result<PrunePlan> {
    let Planned {
        report: plan,
        used,
        mut placed,
        kept: mut new_index,
        ..
    } = planned;
    let plan_id = repo.save_object("prune", &plan).await?;
    // Repack: copy the used blobs, authenticated, into new packs.
    let mut builder = PackBuilder::default();
    let mut written = Vec::new();
    for pack_id in &plan.packs_repack {
        let bytes = repo.get(&pack_path(pack_id)).await?;
        let header = read_header(repo.key(), &bytes, &format!("pack {pack_id}"))?;
        for b in header {
            if !used.contains(&b.id) || !placed.remove(&b.id) {
                continue;
            }
            let sealed = &bytes[b.offset as usize..(b.offset + b.len) as usize];
            repo.open_blob(&b.id, sealed, &format!("blob {} in pack {pack_id}", b.id.short()))?;
            builder.add(b.kind, b.id, sealed.to_vec());
            if builder.size() >= repo.config().pack_size as usize {
                written.push(write_pack(repo, std::mem::take(&mut builder)).await?);
            }
        }
    }
    if !builder.is_empty() {
        written.push(write_pack(repo, builder).await?);
    }
    new_index.extend(written);
    let old_files: Vec<Id> = repo
        .list_ids("index")
        .await?
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    repo.save_index(&IndexFile {
        packs: new_index,
        supersedes: old_files.clone(),
    })
    .await?;
    for id in &old_files {
        repo.delete(&Path::from(format!("index/{id}"))).await?;
    }
    for id in plan
        .packs_delete
        .iter()
        .chain(&plan.packs_repack)
        .chain(&plan.packs_unindexed)
    {
        repo.delete(&pack_path(id)).await?;
    }
    repo.delete(&Path::from(format!("prune/{plan_id}"))).await?;
    repo.reload_index().await?;
    Ok(plan)
}

async fn write_pack(repo: &Repository, builder: PackBuilder) -> Result<IndexPack> {
    let pack = builder.finish(repo.key());
    repo.put_new(&pack_path(&pack.id), pack.bytes).await?;
    Ok(IndexPack {
        id: pack.id,
        blobs: pack.blobs,
    })
}
