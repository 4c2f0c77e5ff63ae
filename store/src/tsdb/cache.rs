//! Decompressed block frames shared by queries.
//!
//! Dashboards ask for the same recent hours every refresh; a frame decompressed for one
//! query serves the next ones. Entries are `(block id, frame)` → bytes, bounded by a byte
//! budget; past it the least recently used quarter goes. Frames of deleted blocks are never
//! asked for again and age out the same way.

use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;

/// Bytes of decompressed frames kept across queries.
pub(crate) const FRAME_CACHE_BYTES: usize = 256 << 20;

/// (block id, frame index).
type Key = (u64, u32);

#[derive(Debug, Default)]
struct Lru {
    /// Frame bytes and the tick of their last use.
    frames: FxHashMap<Key, (Arc<Vec<u8>>, u64)>,
    bytes: usize,
    tick: u64,
}

#[derive(Debug)]
pub(crate) struct FrameCache {
    lru: Mutex<Lru>,
    budget: usize,
}

impl FrameCache {
    pub(crate) fn new(budget: usize) -> Self {
        FrameCache {
            lru: Mutex::new(Lru::default()),
            budget,
        }
    }

    pub(crate) fn get(&self, block: u64, frame: u32) -> Option<Arc<Vec<u8>>> {
        let mut lru = self.lru.lock().expect("frame cache lock");
        lru.tick += 1;
        let tick = lru.tick;
        lru.frames.get_mut(&(block, frame)).map(|(f, used)| {
            *used = tick;
            f.clone()
        })
    }

    pub(crate) fn insert(&self, block: u64, frame: u32, bytes: Arc<Vec<u8>>) {
        if bytes.len() > self.budget {
            return;
        }
        let mut lru = self.lru.lock().expect("frame cache lock");
        lru.tick += 1;
        let tick = lru.tick;
        lru.bytes += bytes.len();
        if let Some((old, _)) = lru.frames.insert((block, frame), (bytes, tick)) {
            lru.bytes -= old.len();
        }
        if lru.bytes > self.budget {
            // Evict the least recently used until three quarters of the budget are left.
            let mut by_use: Vec<(Key, u64, usize)> = lru
                .frames
                .iter()
                .map(|(k, (f, used))| (*k, *used, f.len()))
                .collect();
            by_use.sort_unstable_by_key(|e| e.1);
            for (k, _, len) in by_use {
                if lru.bytes <= self.budget / 4 * 3 {
                    break;
                }
                lru.frames.remove(&k);
                lru.bytes -= len;
            }
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        self.lru.lock().expect("frame cache lock").bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_recently_used_within_budget() {
        let c = FrameCache::new(4000);
        for f in 0..3 {
            c.insert(1, f, Arc::new(vec![0; 1000]));
        }
        assert!(c.get(1, 0).is_some(), "frame 0 used again");
        c.insert(1, 3, Arc::new(vec![0; 1000]));
        c.insert(1, 4, Arc::new(vec![0; 1000]));
        assert!(c.bytes() <= 3000, "{}", c.bytes());
        assert!(c.get(1, 0).is_some(), "recently used stays");
        assert!(c.get(1, 4).is_some(), "newest stays");
        assert!(c.get(1, 1).is_none(), "least recently used went");
        assert!(c.get(2, 0).is_none(), "blocks are told apart");
        c.insert(1, 9, Arc::new(vec![0; 5000]));
        assert!(c.get(1, 9).is_none(), "a frame over the budget is not kept");
    }
}
