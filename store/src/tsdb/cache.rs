//! Decompressed block frames and decoded timestamp streams, shared by queries.
//!
//! Dashboards ask for the same recent hours every refresh; a frame decompressed (or a
//! timestamp stream decoded) for one query serves the next ones. Entries are keyed by block
//! id and position, bounded by a byte budget; past it the least recently used quarter
//! goes. Entries of deleted blocks are never asked for again and age out the same way.

use std::hash::Hash;
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;

/// Bytes of decompressed frames kept across queries.
pub(crate) const FRAME_CACHE_BYTES: usize = 256 << 20;
/// Bytes of decoded timestamps kept across queries.
pub(crate) const TIMES_CACHE_BYTES: usize = 64 << 20;

/// What an entry costs in memory.
pub(crate) trait Weigh {
    fn weight(&self) -> usize;
}

impl<T> Weigh for Vec<T> {
    fn weight(&self) -> usize {
        self.len() * std::mem::size_of::<T>()
    }
}

#[derive(Debug)]
struct Entries<K, V> {
    /// Values and the tick of their last use.
    map: FxHashMap<K, (Arc<V>, u64)>,
    bytes: usize,
    tick: u64,
}

/// A least-recently-used map bounded by the weight of its values.
#[derive(Debug)]
pub(crate) struct Lru<K, V> {
    entries: Mutex<Entries<K, V>>,
    budget: usize,
}

impl<K: Hash + Eq + Copy, V: Weigh> Lru<K, V> {
    pub(crate) fn new(budget: usize) -> Self {
        Lru {
            entries: Mutex::new(Entries {
                map: FxHashMap::default(),
                bytes: 0,
                tick: 0,
            }),
            budget,
        }
    }

    pub(crate) fn get(&self, key: K) -> Option<Arc<V>> {
        let mut e = self.entries.lock().expect("cache lock");
        e.tick += 1;
        let tick = e.tick;
        e.map.get_mut(&key).map(|(v, used)| {
            *used = tick;
            v.clone()
        })
    }

    pub(crate) fn insert(&self, key: K, value: Arc<V>) {
        let weight = value.weight();
        if weight > self.budget {
            return;
        }
        let mut e = self.entries.lock().expect("cache lock");
        e.tick += 1;
        let tick = e.tick;
        e.bytes += weight;
        if let Some((old, _)) = e.map.insert(key, (value, tick)) {
            e.bytes -= old.weight();
        }
        if e.bytes > self.budget {
            // Evict the least recently used until three quarters of the budget are left.
            let mut by_use: Vec<(K, u64, usize)> = e
                .map
                .iter()
                .map(|(k, (v, used))| (*k, *used, v.weight()))
                .collect();
            by_use.sort_unstable_by_key(|x| x.1);
            for (k, _, w) in by_use {
                if e.bytes <= self.budget / 4 * 3 {
                    break;
                }
                e.map.remove(&k);
                e.bytes -= w;
            }
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.entries.lock().expect("cache lock").bytes
    }
}

/// The caches a TSDB's readers share.
#[derive(Debug)]
pub(crate) struct BlockCaches {
    /// (block id, frame index) -> decompressed frame.
    pub frames: Lru<(u64, u32), Vec<u8>>,
    /// (block id, frame index, offset) -> decoded timestamp stream.
    pub times: Lru<(u64, u32, u32), Vec<i64>>,
}

impl Default for BlockCaches {
    fn default() -> Self {
        BlockCaches {
            frames: Lru::new(FRAME_CACHE_BYTES),
            times: Lru::new(TIMES_CACHE_BYTES),
        }
    }
}

impl BlockCaches {
    pub(crate) fn bytes(&self) -> usize {
        self.frames.bytes() + self.times.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_recently_used_within_budget() {
        let c: Lru<(u64, u32), Vec<u8>> = Lru::new(4000);
        for f in 0..3 {
            c.insert((1, f), Arc::new(vec![0; 1000]));
        }
        assert!(c.get((1, 0)).is_some(), "frame 0 used again");
        c.insert((1, 3), Arc::new(vec![0; 1000]));
        c.insert((1, 4), Arc::new(vec![0; 1000]));
        assert!(c.bytes() <= 3000, "{}", c.bytes());
        assert!(c.get((1, 0)).is_some(), "recently used stays");
        assert!(c.get((1, 4)).is_some(), "newest stays");
        assert!(c.get((1, 1)).is_none(), "least recently used went");
        assert!(c.get((2, 0)).is_none(), "blocks are told apart");
        c.insert((1, 9), Arc::new(vec![0; 5000]));
        assert!(c.get((1, 9)).is_none(), "an entry over the budget is not kept");
        let t: Lru<u8, Vec<i64>> = Lru::new(100);
        t.insert(1, Arc::new(vec![0; 10]));
        assert_eq!(t.bytes(), 80, "weighed in bytes");
    }
}
