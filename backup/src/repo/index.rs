//! Which blob is where: index files in the repository and the in-memory [`Index`].
//!
//! # Index file format (version 1)
//!
//! `index/<id>` holds `seal(flag || body)` where body is `1u8 || postcard IndexFile`:
//! a list of packs, each with its blobs (type, id, offset, stored length), and the ids of
//! index files this one replaces (written by prune; readers skip superseded files that
//! still exist). A backup writes one index file per pack right after the pack lands, so an
//! interrupted backup leaves its uploaded packs indexed and the next run skips them; at the
//! end of a backup they are folded into one file.
//!
//! # Memory
//!
//! The in-memory index is a sorted `Vec` of 36-byte entries: the first 24 bytes of the
//! blob id, a pack number, offset and length (top bit: tree). 192 bits of a keyed hash make
//! an accidental match vanishingly unlikely (2^-96 after 2^48 blobs), and every read checks
//! the full id again. The pack table adds 32 bytes per pack (about 2 per blob). Blobs added during a run sit in a small hash map until
//! [`Index::finish`] merges them.

// Public for the benches and cross-process tests (feature `testing`), crate-wide otherwise.
#![cfg_attr(not(feature = "testing"), allow(unreachable_pub, dead_code))]

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::pack::PackedBlob;
use super::{BlobType, Id, Repository};
use crate::error::{Error, Result};

const FORMAT: u8 = 1;
const TREE_BIT: u32 = 1 << 31;

/// One `index/<id>` object.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IndexFile {
    pub packs: Vec<IndexPack>,
    pub supersedes: Vec<Id>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexPack {
    pub id: Id,
    pub blobs: Vec<PackedBlob>,
}

/// Where a blob is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub pack: Id,
    pub kind: BlobType,
    pub offset: u32,
    pub len: u32,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    id: [u8; 24],
    pack: u32,
    offset: u32,
    len: u32,
}

fn prefix(id: &Id) -> [u8; 24] {
    id.0[..24].try_into().expect("24 bytes")
}

/// The in-memory index of every blob in the repository.
#[derive(Debug, Default)]
pub struct Index {
    entries: Vec<Entry>,
    recent: HashMap<[u8; 24], Entry>,
    packs: Vec<Id>,
}

impl Index {
    /// Adds a pack's blobs. A pack listed twice (by two index files) takes two slots in the
    /// pack table, which is cheaper than a map from pack id to slot for every pack.
    pub fn add_pack(&mut self, pack: Id, blobs: &[PackedBlob]) {
        let number = self.packs.len() as u32;
        self.packs.push(pack);
        for b in blobs {
            let len = b.len | if b.kind == BlobType::Tree { TREE_BIT } else { 0 };
            let entry = Entry {
                id: prefix(&b.id),
                pack: number,
                offset: b.offset,
                len,
            };
            self.recent.entry(entry.id).or_insert(entry);
        }
        // Keep the hash map small: merging when it reaches half the table costs O(log n)
        // sorts overall, and peak memory stays near the table's own size.
        if self.recent.len() > (64 << 10).max(self.entries.len() / 2) {
            self.finish();
        }
    }

    /// Merges recently added blobs into the sorted table.
    pub fn finish(&mut self) {
        if self.recent.is_empty() {
            return;
        }
        let recent = std::mem::take(&mut self.recent);
        self.entries.extend(recent.into_values());
        self.entries.sort_unstable_by_key(|e| e.id);
        self.entries.dedup_by(|a, b| a.id == b.id);
        self.entries.shrink_to_fit();
        self.packs.shrink_to_fit();
    }

    fn entry(&self, id: &Id) -> Option<&Entry> {
        let key = prefix(id);
        match self.entries.binary_search_by(|e| e.id.cmp(&key)) {
            Ok(i) => Some(&self.entries[i]),
            Err(_) => self.recent.get(&key),
        }
    }

    pub fn contains(&self, id: &Id) -> bool {
        self.entry(id).is_some()
    }

    pub fn get(&self, id: &Id) -> Option<Location> {
        self.entry(id).map(|e| Location {
            pack: self.packs[e.pack as usize],
            kind: if e.len & TREE_BIT != 0 {
                BlobType::Tree
            } else {
                BlobType::Data
            },
            offset: e.offset,
            len: e.len & !TREE_BIT,
        })
    }

    pub fn len(&self) -> usize {
        self.entries.len() + self.recent.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn packs(&self) -> &[Id] {
        &self.packs
    }

    /// Heap bytes of the sorted table per indexed blob (after [`Index::finish`]).
    pub fn bytes_per_blob(&self) -> f64 {
        let bytes = self.entries.capacity() * std::mem::size_of::<Entry>() + self.packs.capacity() * 32;
        bytes as f64 / self.len().max(1) as f64
    }
}

impl Repository {
    /// Writes an index file; returns its id.
    pub async fn save_index(&self, file: &IndexFile) -> Result<Id> {
        let mut plain = vec![FORMAT];
        plain.extend(postcard::to_stdvec(file).expect("index serializes"));
        self.save_raw("index", &plain).await
    }

    pub async fn load_index_file(&self, id: &Id) -> Result<IndexFile> {
        let plain = self.load_raw("index", id).await?;
        let what = || format!("index/{id}");
        match plain.split_first() {
            Some((&FORMAT, body)) => postcard::from_bytes(body).map_err(|e| Error::Corrupt {
                what: what(),
                why: e.to_string(),
            }),
            _ => Err(Error::Format(format!("{} has an unknown format", what()))),
        }
    }

    /// Every index file that is not superseded by another.
    pub async fn load_index_files(&self) -> Result<Vec<(Id, IndexFile)>> {
        let ids = self.list_ids("index").await?;
        let mut files = Vec::new();
        let loads = ids
            .into_iter()
            .map(|(id, _)| async move { (id, self.load_index_file(&id).await) });
        let mut stream = futures::stream::iter(loads).buffer_unordered(16);
        use futures::StreamExt;
        while let Some((id, file)) = stream.next().await {
            files.push((id, file?));
        }
        let superseded: HashSet<Id> = files.iter().flat_map(|(_, f)| f.supersedes.clone()).collect();
        files.retain(|(id, _)| !superseded.contains(id));
        files.sort_by_key(|(id, _)| *id);
        Ok(files)
    }

    /// Rebuilds the in-memory index from the repository's index files.
    pub async fn reload_index(&self) -> Result<()> {
        let files = self.load_index_files().await?;
        let mut index = Index::default();
        for (_, file) in &files {
            for pack in &file.packs {
                index.add_pack(pack.id, &pack.blobs);
            }
        }
        index.finish();
        *self.index.write().expect("index lock") = index;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_blobs_before_and_after_finish() {
        let mut index = Index::default();
        let ids: Vec<Id> = (0..1000u32).map(|i| Id::of_bytes(&i.to_le_bytes())).collect();
        let pack_a = Id::of_bytes(b"a");
        let blobs: Vec<PackedBlob> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| PackedBlob {
                kind: if i % 10 == 0 {
                    BlobType::Tree
                } else {
                    BlobType::Data
                },
                id: *id,
                offset: i as u32 * 7,
                len: i as u32 + 1,
            })
            .collect();
        index.add_pack(pack_a, &blobs[..500]);
        index.finish();
        index.add_pack(Id::of_bytes(b"b"), &blobs[500..]);
        for (i, id) in ids.iter().enumerate() {
            let loc = index.get(id).unwrap();
            assert_eq!(loc.offset, i as u32 * 7);
            assert_eq!(loc.len, i as u32 + 1);
            assert_eq!(loc.kind == BlobType::Tree, i % 10 == 0);
            assert_eq!(loc.pack == pack_a, i < 500);
        }
        index.finish();
        assert_eq!(index.len(), 1000);
        assert!(index.get(&ids[999]).is_some());
        assert!(!index.contains(&Id::of_bytes(b"nope")));
        assert!(index.bytes_per_blob() <= 40.0, "{}", index.bytes_per_blob());
    }
}
