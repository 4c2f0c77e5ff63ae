//! Day-partitioned tantivy indexes fed from the WAL, shared by logs and traces.
//!
//! # Layout
//!
//! ```text
//! <dir>/<YYYY-MM-DD>/     one tantivy index per UTC day of the documents' time
//!     meta.json           tantivy's; its commit payload is {"wal_seq": N}: every WAL record
//!                         with seq <= N is in this partition
//! ```
//!
//! # Invariants and recovery
//!
//! Documents are added under one lock, in WAL sequence order. [`Partitions::commit`] commits
//! every partition that received documents with the highest sequence number applied so far as
//! its payload. On replay, [`Adder::add`] skips a partition whose payload already covers the
//! record, so replaying the WAL neither loses nor duplicates documents. Retention deletes whole
//! partitions; idle writers are closed to give their memory back.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use chrono::{DateTime, NaiveDate};
use tantivy::schema::Schema;
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument};

pub(crate) const DAY_NS: i64 = 86_400 * 1_000_000_000;
/// Indexing memory per active partition (split among tantivy's indexing threads). Since ids
/// left the postings (they are in bloom filters), larger segments no longer pay: in `store-bench`, 64 MiB
/// took ~15% less ingest CPU than 256 MiB (six interleaved pairs, 1 GiB each; the term table
/// of a smaller segment misses the cache less) and 32 MiB more than 64 (merges).
const WRITER_BUDGET: usize = 64 << 20;
/// Merge only once this many segments of a size level exist (tantivy's default is 8).
const MIN_SEGMENTS_TO_MERGE: usize = 16;
const IDLE_WRITER_SECS: u64 = 120;

#[derive(Debug, thiserror::Error)]
pub(crate) enum IndexError {
    #[error("index error in {path}: {source}")]
    Tantivy {
        path: PathBuf,
        source: tantivy::TantivyError,
    },
    #[error("index io error in {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{path} holds log partitions of schema {version}, written by a build of obs before 0.1.0's log format was settled; \
         this build reads only schema v6. Move {path} out of the data dir (its lines will not be searchable) and start again"
    )]
    OldSchema { path: PathBuf, version: &'static str },
}

struct Partition {
    index: Index,
    reader: IndexReader,
    writer: Option<IndexWriter>,
    committed_seq: u64,
    dirty: bool,
    last_write: Instant,
}

/// A set of day partitions sharing one schema.
pub(crate) struct Partitions {
    dir: PathBuf,
    schema: Schema,
    /// Registers tokenizers on each opened index.
    setup: fn(&Index),
    parts: Mutex<BTreeMap<i64, Partition>>,
}

impl std::fmt::Debug for Partitions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Partitions").field("dir", &self.dir).finish()
    }
}

/// Settings of new partitions: zstd-compressed doc store in 64 KiB blocks (log lines and spans
/// compress well together). Level 1: in `store-bench` the index was as small as with level 3,
/// for less CPU. Existing partitions keep the settings in their `meta.json`.
fn index_settings() -> tantivy::IndexSettings {
    tantivy::IndexSettings {
        docstore_compression: tantivy::store::Compressor::Zstd(tantivy::store::ZstdCompressor {
            compression_level: Some(1),
        }),
        docstore_blocksize: 64 << 10,
        ..Default::default()
    }
}

fn day_name(day: i64) -> String {
    DateTime::from_timestamp(day * 86_400, 0)
        .map(|d| d.format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| format!("day{day}"))
}

fn day_from_name(name: &str) -> Option<i64> {
    let date = NaiveDate::parse_from_str(name, "%Y-%m-%d").ok()?;
    Some(
        date.and_hms_opt(0, 0, 0)?
            .and_utc()
            .timestamp()
            .div_euclid(86_400),
    )
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> IndexError + '_ {
    move |source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn tv(path: &Path) -> impl Fn(tantivy::TantivyError) -> IndexError + '_ {
    move |source| IndexError::Tantivy {
        path: path.to_path_buf(),
        source,
    }
}

impl Partitions {
    /// Opens every partition under `dir`.
    pub(crate) fn open(dir: PathBuf, schema: Schema, setup: fn(&Index)) -> Result<Partitions, IndexError> {
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        let p = Partitions {
            dir: dir.clone(),
            schema,
            setup,
            parts: Mutex::new(BTreeMap::new()),
        };
        let mut parts = BTreeMap::new();
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            if let Some(day) = day_from_name(&entry.file_name().to_string_lossy()) {
                parts.insert(day, p.open_partition(day)?);
            }
        }
        *p.lock() = parts;
        Ok(p)
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<i64, Partition>> {
        self.parts.lock().expect("partition lock")
    }

    fn open_partition(&self, day: i64) -> Result<Partition, IndexError> {
        let path = self.dir.join(day_name(day));
        let index = if path.join("meta.json").exists() {
            Index::open_in_dir(&path).map_err(tv(&path))?
        } else {
            std::fs::create_dir_all(&path).map_err(io(&path))?;
            Index::builder()
                .schema(self.schema.clone())
                .settings(index_settings())
                .create_in_dir(&path)
                .map_err(tv(&path))?
        };
        (self.setup)(&index);
        let committed_seq = index
            .load_metas()
            .map_err(tv(&path))?
            .payload
            .and_then(|p| serde_json::from_str::<serde_json::Value>(&p).ok())
            .and_then(|v| v.get("wal_seq")?.as_u64())
            .unwrap_or(0);
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(tv(&path))?;
        Ok(Partition {
            index,
            reader,
            writer: None,
            committed_seq,
            dirty: false,
            last_write: Instant::now(),
        })
    }

    /// Locks the partitions for adding the documents of one WAL record.
    pub(crate) fn adder(&self) -> Adder<'_> {
        Adder {
            owner: self,
            parts: self.lock(),
        }
    }

    /// Commits every partition with new documents, recording that all WAL records up to
    /// `applied_through` are in it, and makes them visible to searches.
    pub(crate) fn commit(&self, applied_through: u64) -> Result<(), IndexError> {
        for (&day, part) in self.lock().iter_mut() {
            let path = self.dir.join(day_name(day));
            if part.dirty {
                let writer = part.writer.as_mut().expect("dirty partitions have a writer");
                let mut prepared = writer.prepare_commit().map_err(tv(&path))?;
                prepared.set_payload(&format!("{{\"wal_seq\":{applied_through}}}"));
                prepared.commit().map_err(tv(&path))?;
                part.reader.reload().map_err(tv(&path))?;
                part.committed_seq = applied_through;
                part.dirty = false;
                part.last_write = Instant::now();
            } else if part.writer.is_some() && part.last_write.elapsed().as_secs() > IDLE_WRITER_SECS {
                if let Some(w) = part.writer.take() {
                    w.wait_merging_threads().map_err(tv(&path))?;
                }
            }
        }
        Ok(())
    }

    /// Commits every partition and closes its writer, waiting for merges to finish, so that
    /// no file changes until the next document arrives (callers hold the apply lock). Used
    /// for consistent snapshots.
    pub(crate) fn quiesce(&self, applied_through: u64) -> Result<(), IndexError> {
        self.commit(applied_through)?;
        for (&day, part) in self.lock().iter_mut() {
            if let Some(w) = part.writer.take() {
                w.wait_merging_threads()
                    .map_err(tv(&self.dir.join(day_name(day))))?;
            }
        }
        Ok(())
    }

    /// Deletes partitions whose whole day ended before `cutoff_ns`. Returns how many.
    pub(crate) fn drop_before(&self, cutoff_ns: i64) -> Result<usize, IndexError> {
        let mut parts = self.lock();
        let old: Vec<i64> = parts
            .keys()
            .copied()
            .filter(|d| (d + 1) * DAY_NS <= cutoff_ns)
            .collect();
        for day in &old {
            parts.remove(day);
            let path = self.dir.join(day_name(*day));
            std::fs::remove_dir_all(&path).map_err(io(&path))?;
        }
        Ok(old.len())
    }

    /// The highest WAL sequence number any partition has committed.
    pub(crate) fn max_committed_seq(&self) -> u64 {
        self.lock().values().map(|p| p.committed_seq).max().unwrap_or(0)
    }

    /// (partitions, bytes on disk), for `/metrics`.
    pub(crate) fn disk_usage(&self) -> (usize, u64) {
        let count = self.lock().len();
        (count, dir_size(&self.dir))
    }

    /// Searchers for the partitions that may hold documents in `[start_ns, end_ns)`, oldest
    /// first.
    pub(crate) fn searchers(&self, start_ns: i64, end_ns: i64) -> Vec<Searcher> {
        self.day_searchers(start_ns, end_ns)
            .into_iter()
            .map(|(_, s)| s)
            .collect()
    }

    /// [`searchers`](Self::searchers) with their days.
    pub(crate) fn day_searchers(&self, start_ns: i64, end_ns: i64) -> Vec<(i64, Searcher)> {
        let first = start_ns.div_euclid(DAY_NS);
        let last = (end_ns - 1).div_euclid(DAY_NS);
        if last < first {
            return Vec::new();
        }
        self.lock()
            .range(first..=last)
            .map(|(day, p)| (*day, p.reader.searcher()))
            .collect()
    }
}

/// Adds documents while holding the partition lock.
pub(crate) struct Adder<'a> {
    owner: &'a Partitions,
    parts: MutexGuard<'a, BTreeMap<i64, Partition>>,
}

impl Adder<'_> {
    /// Adds `doc` (from WAL record `seq`) to the partition of `ts_ns`, unless that partition
    /// already holds the record. Returns whether it was added.
    pub(crate) fn add(&mut self, ts_ns: i64, seq: u64, doc: TantivyDocument) -> Result<bool, IndexError> {
        let day = ts_ns.div_euclid(DAY_NS);
        let part = match self.parts.entry(day) {
            std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => v.insert(self.owner.open_partition(day)?),
        };
        if seq <= part.committed_seq {
            return Ok(false);
        }
        let path = || self.owner.dir.join(day_name(day));
        if part.writer.is_none() {
            let writer: IndexWriter = part.index.writer(WRITER_BUDGET).map_err(|e| tv(&path())(e))?;
            let mut policy = tantivy::indexer::LogMergePolicy::default();
            policy.set_min_num_segments(MIN_SEGMENTS_TO_MERGE);
            writer.set_merge_policy(Box::new(policy));
            part.writer = Some(writer);
        }
        let writer = part.writer.as_ref().expect("writer opened above");
        writer.add_document(doc).map_err(|e| tv(&path())(e))?;
        part.dirty = true;
        Ok(true)
    }
}

fn dir_size(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_size(&e.path()),
            _ => e.metadata().map(|m| m.len()).unwrap_or(0),
        })
        .sum()
}
