//! The metrics TSDB: an in-memory head fed from the WAL, cut into immutable compressed
//! blocks, compacted, and dropped by age.
//!
//! ```text
//! remote_write / OTLP -> SampleBatch -> WAL (Kind::Samples) -> Tsdb::apply -> head.rs
//! every FLUSH_INTERVAL: head frozen -> block.rs (level 0, ~minutes) -> blocks/
//! compaction: level-0 blocks of a closed 2-hour window -> one level-1 block
//! retention: blocks entirely older than the retention period are deleted
//! query: Querier::select merges blocks (oldest first), frozen heads and the head; for a
//!        timestamp present twice the newest write wins, so resends are idempotent
//! ```
//!
//! The WAL keeps every record from the oldest one whose samples are still only in memory
//! ([`Tsdb::keep_wal_from`]); each block records the highest WAL sequence it holds, and a
//! restart replays only records after it. Samples are `(ms, f64)`; staleness markers are
//! stored like any value and honoured by the PromQL engine.

pub mod block;
mod cache;
pub mod chunk;
pub(crate) mod head;
pub mod labels;
pub mod read;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use labels::Interner;
pub use labels::{Labels, METRIC_NAME};
pub use promql_parser::label::{MatchOp, Matcher};

use block::{Block, BlockError};
use head::Head;
pub use read::{Selected, SeriesPlan};

/// Prometheus's staleness marker: a NaN with this exact bit pattern ends a series.
pub const STALE_NAN_BITS: u64 = obs_otlp_prom::STALE_NAN_BITS;

/// How often the head is written out as a block.
pub(crate) const FLUSH_INTERVAL: Duration = Duration::from_secs(10 * 60);
/// A head holding more samples than this (about 32 MiB) is written out early.
const HEAD_MAX_SAMPLES: usize = 2_000_000;
/// ... and so is one spanning more time than this (a backfill, a long outage replayed).
const HEAD_MAX_SPAN_MS: i64 = 3600 * 1000;
const COMPACT_WINDOW_MS: i64 = 2 * 3600 * 1000;

pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One series as read from storage: samples sorted by time (ms), staleness markers included.
#[derive(Clone, Debug)]
pub struct RawSeries {
    pub labels: Arc<Labels>,
    pub samples: Vec<(i64, f64)>,
}

/// Read access to stored series, what PromQL and the metadata APIs need.
pub trait Querier: Send + Sync {
    /// Series matching all `matchers` with their samples in `[mint, maxt]` (ms, inclusive).
    /// Series without samples in the range are left out.
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<RawSeries>, String>;

    /// The same series, to be read one at a time ([`SeriesPlan::read_each`]).
    fn plan(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Box<dyn SeriesPlan + '_>, String> {
        Ok(Box::new(Selected::new(self.select(matchers, mint, maxt)?)))
    }
}

/// Series held in a plain list, scanned on every select: a `Querier` for tests and fuzzing.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct SeriesList(pub Vec<RawSeries>);

impl Querier for SeriesList {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<RawSeries>, String> {
        Ok(self
            .0
            .iter()
            .filter(|s| matches_all(&s.labels, matchers))
            .map(|s| RawSeries {
                labels: s.labels.clone(),
                samples: s
                    .samples
                    .iter()
                    .copied()
                    .filter(|p| p.0 >= mint && p.0 <= maxt)
                    .collect(),
            })
            .filter(|s| !s.samples.is_empty())
            .collect())
    }
}

/// True when `labels` satisfies every matcher (a missing label matches as "").
pub fn matches_all(labels: &Labels, matchers: &[Matcher]) -> bool {
    matchers
        .iter()
        .all(|m| m.is_match(labels.get(&m.name).unwrap_or("")))
}

/// What `/api/v1/metadata` reports per metric family.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricMeta {
    #[serde(rename = "type")]
    pub kind: String,
    pub help: String,
    pub unit: String,
}

/// Samples of many series: the WAL record and the unit of ingest.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SampleBatch {
    pub series: Vec<SeriesSamples>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SeriesSamples {
    pub labels: Vec<(String, String)>,
    pub samples: Vec<(i64, f64)>,
}

impl SampleBatch {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("sample batch serializes")
    }

    pub fn decode(data: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(data)
    }

    pub fn sample_count(&self) -> usize {
        self.series.iter().map(|s| s.samples.len()).sum()
    }
}

struct State {
    head: Head,
    /// Heads being written out; still queried until their block is in `blocks`.
    frozen: Vec<Arc<Head>>,
    /// Ordered by `wal_seq`: later blocks hold newer writes.
    blocks: Vec<Arc<Block>>,
    persisted_through: u64,
}

/// Sizes for `/metrics`.
#[derive(Debug, Default, Clone)]
pub(crate) struct TsdbStats {
    pub head_series: usize,
    pub head_samples: usize,
    pub head_bytes: usize,
    pub blocks: usize,
    pub block_bytes: u64,
    pub block_samples: u64,
    pub block_cache_bytes: usize,
}

pub(crate) struct Tsdb {
    dir: PathBuf,
    state: RwLock<State>,
    /// Serializes flush, compaction and retention.
    maintenance: Mutex<()>,
    /// Label sets shared by the head and the blocks (a series is one pointer everywhere).
    interner: Interner,
    /// Decompressed frames and decoded timestamps of blocks, shared by queries.
    caches: cache::BlockCaches,
    /// Metric family metadata as senders last described it; saved at each flush to
    /// `metadata.json` (a convenience for Grafana, not replayed from the WAL).
    metadata: RwLock<BTreeMap<String, MetricMeta>>,
    last_flush: Mutex<Option<std::time::Instant>>,
}

impl std::fmt::Debug for Tsdb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tsdb").field("dir", &self.dir).finish()
    }
}

impl Tsdb {
    /// Opens `<data_dir>/metrics`: deletes unfinished blocks, quarantines damaged ones.
    pub(crate) fn open(data_dir: &Path) -> Result<Tsdb, BlockError> {
        let dir = data_dir.join("metrics");
        std::fs::create_dir_all(&dir).map_err(|source| BlockError::Io {
            path: dir.clone(),
            source,
        })?;
        let mut blocks = Vec::new();
        let interner = Interner::default();
        let entries = std::fs::read_dir(&dir).map_err(|source| BlockError::Io {
            path: dir.clone(),
            source,
        })?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if name.ends_with(".corrupt") || !path.is_dir() {
                continue;
            }
            if name.ends_with(".tmp") {
                tracing::warn!(path = %path.display(), "removing a block left unfinished by a crash");
                let _ = std::fs::remove_dir_all(&path);
                continue;
            }
            match block::open(&path, &interner) {
                Ok(b) => blocks.push(Arc::new(b)),
                Err(e) => {
                    let aside = dir.join(format!("{name}.corrupt"));
                    tracing::error!(error = %e, moved_to = %aside.display(), "damaged metrics block quarantined");
                    let _ = std::fs::rename(&path, &aside);
                }
            }
        }
        blocks.sort_by_key(|b| b.meta.wal_seq);
        let persisted_through = blocks.iter().map(|b| b.meta.wal_seq).max().unwrap_or(0);
        let metadata = std::fs::read(dir.join("metadata.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(Tsdb {
            dir,
            state: RwLock::new(State {
                head: Head::new(),
                frozen: Vec::new(),
                blocks,
                persisted_through,
            }),
            maintenance: Mutex::new(()),
            interner,
            caches: cache::BlockCaches::default(),
            metadata: RwLock::new(metadata),
            last_flush: Mutex::new(None),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().expect("tsdb lock")
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().expect("tsdb lock")
    }

    /// Highest WAL sequence whose samples are in blocks.
    pub(crate) fn persisted_through(&self) -> u64 {
        self.read().persisted_through
    }

    /// Adds WAL record `seq`; records already in blocks (a replay) are skipped.
    pub(crate) fn apply(&self, seq: u64, batch: &SampleBatch) {
        let mut st = self.write();
        if seq > st.persisted_through {
            st.head.append(seq, batch, &self.interner);
        }
    }

    pub(crate) fn set_metadata(&self, meta: BTreeMap<String, MetricMeta>) {
        if !meta.is_empty() {
            self.metadata.write().expect("metadata lock").extend(meta);
        }
    }

    pub(crate) fn metadata(&self) -> BTreeMap<String, MetricMeta> {
        self.metadata.read().expect("metadata lock").clone()
    }

    /// True when the head is big enough to write out before its interval is up. A wide
    /// time span alone (late samples) counts at most once a minute, so a sender that is
    /// always late does not cause a block per second.
    pub(crate) fn needs_flush(&self) -> bool {
        let st = self.read();
        let recently = self
            .last_flush
            .lock()
            .expect("flush time")
            .is_some_and(|t| t.elapsed() < Duration::from_secs(60));
        st.head.samples > HEAD_MAX_SAMPLES
            || (!recently && !st.head.is_empty() && st.head.maxt - st.head.mint > HEAD_MAX_SPAN_MS)
    }

    /// The oldest WAL record whose samples are only in memory, if any.
    pub(crate) fn keep_wal_from(&self) -> Option<u64> {
        let st = self.read();
        st.frozen
            .iter()
            .filter_map(|h| h.first_seq)
            .chain(st.head.first_seq)
            .min()
    }

    pub(crate) fn stats(&self) -> TsdbStats {
        let st = self.read();
        TsdbStats {
            head_series: st.head.series_count(),
            head_samples: st.head.samples + st.frozen.iter().map(|h| h.samples).sum::<usize>(),
            head_bytes: st.head.bytes() + st.frozen.iter().map(|h| h.bytes()).sum::<usize>(),
            blocks: st.blocks.len(),
            block_bytes: st.blocks.iter().map(|b| b.bytes).sum(),
            block_samples: st.blocks.iter().map(|b| b.meta.samples).sum(),
            block_cache_bytes: self.caches.bytes(),
        }
    }

    /// Writes the head out as a block (and any head a failed flush left frozen), then
    /// compacts. Blocking.
    pub(crate) fn flush(&self) -> Result<(), BlockError> {
        let _m = self.maintenance.lock().expect("maintenance lock");
        *self.last_flush.lock().expect("flush time") = Some(std::time::Instant::now());
        {
            let mut st = self.write();
            if !st.head.is_empty() {
                let h = std::mem::replace(&mut st.head, Head::new());
                st.frozen.push(Arc::new(h));
            }
        }
        let frozen: Vec<Arc<Head>> = self.read().frozen.clone();
        for h in frozen {
            let series = h.all_sorted();
            let b = block::write(
                &self.dir,
                series.into_iter().map(|(l, s)| (l, Cow::Borrowed(s))),
                h.last_seq,
                0,
                &self.interner,
            )?;
            let mut st = self.write();
            st.frozen.retain(|f| !Arc::ptr_eq(f, &h));
            if let Some(b) = b {
                st.persisted_through = st.persisted_through.max(b.meta.wal_seq);
                st.blocks.push(Arc::new(b));
            }
        }
        let meta =
            serde_json::to_vec(&*self.metadata.read().expect("metadata lock")).expect("metadata serializes");
        let path = self.dir.join("metadata.json");
        let tmp = self.dir.join("metadata.json.tmp");
        std::fs::write(&tmp, meta)
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|source| BlockError::Io { path, source })?;
        let compacted = self.compact_locked();
        self.interner.sweep();
        compacted
    }

    /// Merges the blocks of each closed 2-hour window into one.
    fn compact_locked(&self) -> Result<(), BlockError> {
        let blocks = self.read().blocks.clone();
        let Some(horizon) = blocks.iter().map(|b| b.meta.maxt).max() else {
            return Ok(());
        };
        let mut groups: BTreeMap<i64, Vec<Arc<Block>>> = BTreeMap::new();
        for b in &blocks {
            if b.meta.level == 0 {
                groups
                    .entry(b.meta.mint.div_euclid(COMPACT_WINDOW_MS))
                    .or_default()
                    .push(b.clone());
            }
        }
        for (window, group) in groups {
            let closed = (window + 1) * COMPACT_WINDOW_MS <= horizon;
            if !closed || (group.len() < 2 && group.iter().all(|b| b.meta.level > 0)) {
                continue;
            }
            let mut merged: BTreeMap<Arc<Labels>, Vec<(i64, f64)>> = BTreeMap::new();
            for b in &group {
                for s in b.select_all(i64::MIN, i64::MAX)? {
                    let e = merged.entry(s.labels).or_default();
                    e.extend(s.samples);
                }
            }
            for s in merged.values_mut() {
                dedup_newest_wins(s);
            }
            let wal_seq = group.iter().map(|b| b.meta.wal_seq).max().unwrap_or(0);
            let new = block::write(
                &self.dir,
                merged.into_iter().map(|(l, s)| (l, Cow::Owned(s))),
                wal_seq,
                1,
                &self.interner,
            )?;
            {
                let mut st = self.write();
                st.blocks.retain(|b| !group.iter().any(|g| Arc::ptr_eq(b, g)));
                if let Some(n) = new {
                    st.blocks.push(Arc::new(n));
                }
                st.blocks.sort_by_key(|b| b.meta.wal_seq);
            }
            for b in &group {
                let _ = std::fs::remove_dir_all(&b.dir);
            }
            tracing::debug!(blocks = group.len(), window, "compacted metrics blocks");
        }
        Ok(())
    }

    /// Deletes blocks whose newest sample is older than `cutoff_ms`; returns how many.
    pub(crate) fn drop_before(&self, cutoff_ms: i64) -> usize {
        let _m = self.maintenance.lock().expect("maintenance lock");
        let old: Vec<Arc<Block>> = {
            let mut st = self.write();
            let (old, keep): (Vec<_>, Vec<_>) = st.blocks.drain(..).partition(|b| b.meta.maxt < cutoff_ms);
            st.blocks = keep;
            old
        };
        let n = old.len();
        for b in &old {
            let _ = std::fs::remove_dir_all(&b.dir);
        }
        drop(old);
        self.interner.sweep();
        n
    }

    /// Labels of matching series with samples in `[mint, maxt]`, sorted, each once.
    pub(crate) fn series_labels(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Vec<Arc<Labels>> {
        let mut out = Vec::new();
        let (blocks, frozen) = {
            let st = self.read();
            st.head.series_labels(matchers, mint, maxt, &mut out);
            (st.blocks.clone(), st.frozen.clone())
        };
        for h in frozen {
            h.series_labels(matchers, mint, maxt, &mut out);
        }
        for b in blocks {
            b.series_labels(matchers, mint, maxt, &mut out);
        }
        out.sort();
        out.dedup();
        out
    }
}

/// Sorts by time; of samples with the same time the last one (the newest write) stays.
pub(crate) fn dedup_newest_wins(s: &mut Vec<(i64, f64)>) {
    s.sort_by_key(|p| p.0); // stable: later writes stay after earlier ones
    let mut out: Vec<(i64, f64)> = Vec::with_capacity(s.len());
    for p in s.drain(..) {
        match out.last_mut() {
            Some(last) if last.0 == p.0 => *last = p,
            _ => out.push(p),
        }
    }
    *s = out;
}

impl Querier for Tsdb {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<RawSeries>, String> {
        let plan = self.plan_read(matchers, mint, maxt);
        let out = Mutex::new(Vec::with_capacity(plan.len()));
        plan.read_each(&|_, s| {
            out.lock().expect("select lock").push(s);
            true
        })?;
        Ok(out.into_inner().expect("select lock"))
    }

    fn plan(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Box<dyn SeriesPlan + '_>, String> {
        Ok(Box::new(self.plan_read(matchers, mint, maxt)))
    }
}

#[cfg(test)]
mod tests;
