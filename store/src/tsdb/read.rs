//! Reading series for a query, one series at a time and from several threads.
//!
//! ```text
//! Tsdb::plan(matchers, mint, maxt)
//!   blocks: matching series ids (postings, chunk time ranges; nothing decoded)
//!   frozen heads, head: the matching samples copied (minutes of data)
//!   -> TsdbPlan: per series, label-sorted: its block ids and memory parts
//! TsdbPlan::read_each(visit)
//!   threads take runs of neighbouring series; per series: decode its chunks of each block
//!   (every block has a ReadCache per thread: last frames, decoded timestamp streams),
//!   append the memory parts, merge (the newest write of a timestamp wins), visit(i, series)
//! ```
//!
//! A query that reduces series as it reads them (a range function, an aggregation) holds
//! one series' samples per thread instead of every series' at once.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;

use super::block::{Block, ReadCache};
use super::cache::BlockCaches;
use super::{dedup_newest_wins, Labels, Matcher, RawSeries, Tsdb};

/// Matching series, found but not yet read.
pub trait SeriesPlan: Send + Sync {
    /// How many series may be visited (those without samples in the range are skipped).
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `visit(i, series)` for every series with samples, `i` being its place in label
    /// order, possibly from several threads at once; stops early when `visit` says false.
    fn read_each(&self, visit: &(dyn Fn(usize, RawSeries) -> bool + Sync)) -> Result<(), String>;
}

/// A plan over series already read, sorted by labels.
#[derive(Debug)]
pub struct Selected(Vec<RawSeries>);

impl Selected {
    pub fn new(mut series: Vec<RawSeries>) -> Self {
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        Selected(series)
    }
}

impl SeriesPlan for Selected {
    fn len(&self) -> usize {
        self.0.len()
    }

    fn read_each(&self, visit: &(dyn Fn(usize, RawSeries) -> bool + Sync)) -> Result<(), String> {
        for (i, s) in self.0.iter().enumerate() {
            if !visit(i, s.clone()) {
                break;
            }
        }
        Ok(())
    }
}

struct Planned {
    labels: Arc<Labels>,
    /// (index into `TsdbPlan::blocks`, series id in that block), oldest block first.
    parts: Vec<(u32, u32)>,
    /// Samples from frozen heads, then from the head.
    memory: Vec<Vec<(i64, f64)>>,
}

pub(crate) struct TsdbPlan<'a> {
    caches: &'a BlockCaches,
    blocks: Vec<Arc<Block>>,
    series: Vec<Planned>,
    mint: i64,
    maxt: i64,
}

/// Fewest series a reading thread is started for.
const SERIES_PER_THREAD: usize = 64;

impl Tsdb {
    pub(crate) fn plan_read(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> TsdbPlan<'_> {
        let (blocks, frozen) = {
            let st = self.read();
            (st.blocks.clone(), st.frozen.clone())
        };
        // Label sets are interned (`labels::Interner`): one series is one address.
        let mut index: FxHashMap<usize, usize> = FxHashMap::default();
        let mut series: Vec<Planned> = Vec::new();
        let mut slot = |labels: &Arc<Labels>, series: &mut Vec<Planned>| -> usize {
            *index.entry(Arc::as_ptr(labels) as usize).or_insert_with(|| {
                series.push(Planned {
                    labels: labels.clone(),
                    parts: Vec::new(),
                    memory: Vec::new(),
                });
                series.len() - 1
            })
        };
        for (bi, b) in blocks.iter().enumerate() {
            for id in b.matching(matchers, mint, maxt) {
                let i = slot(b.labels(id), &mut series);
                series[i].parts.push((bi as u32, id));
            }
        }
        let mut memory = Vec::new();
        for h in &frozen {
            h.select(matchers, mint, maxt, &mut memory);
        }
        self.read().head.select(matchers, mint, maxt, &mut memory);
        for m in memory {
            let i = slot(&m.labels, &mut series);
            series[i].memory.push(m.samples);
        }
        series.sort_by(|a, b| a.labels.cmp(&b.labels));
        debug_assert!(
            series.windows(2).all(|w| w[0].labels != w[1].labels),
            "interned label sets are one address each"
        );
        TsdbPlan {
            caches: &self.caches,
            blocks,
            series,
            mint,
            maxt,
        }
    }
}

impl TsdbPlan<'_> {
    /// Reads one series; `size` is a guess of its length (the previous series').
    fn read_one(&self, p: &Planned, caches: &mut [ReadCache], size: usize) -> Result<RawSeries, String> {
        let mut samples: Vec<(i64, f64)> = Vec::with_capacity(size);
        // Whether the part appended at `start` begins after what came before it.
        let follows = |samples: &[(i64, f64)], start: usize| {
            start == 0 || start == samples.len() || samples[start - 1].0 < samples[start].0
        };
        let mut in_order = true;
        for &(bi, id) in &p.parts {
            let start = samples.len();
            self.blocks[bi as usize]
                .read(id, self.mint, self.maxt, &mut caches[bi as usize], &mut samples)
                .map_err(|e| e.to_string())?;
            in_order &= follows(&samples, start);
        }
        for m in &p.memory {
            let start = samples.len();
            samples.extend_from_slice(m);
            in_order &= follows(&samples, start);
        }
        if !in_order {
            // Late samples or a resend overlap earlier parts: sort, the newest write wins.
            dedup_newest_wins(&mut samples);
        }
        Ok(RawSeries {
            labels: p.labels.clone(),
            samples,
        })
    }
}

impl SeriesPlan for TsdbPlan<'_> {
    fn len(&self) -> usize {
        self.series.len()
    }

    fn read_each(&self, visit: &(dyn Fn(usize, RawSeries) -> bool + Sync)) -> Result<(), String> {
        let n = self.series.len();
        let threads = std::thread::available_parallelism()
            .map_or(1, |p| p.get())
            .min(n.div_ceil(SERIES_PER_THREAD))
            .max(1);
        // Runs of neighbouring series share frames: a thread takes a run at a time.
        let run = (n / (threads * 4)).max(SERIES_PER_THREAD);
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let error: Mutex<Option<String>> = Mutex::new(None);
        let work = || {
            let mut caches: Vec<ReadCache> = (0..self.blocks.len())
                .map(|_| ReadCache::new(self.caches))
                .collect();
            let mut size = 0;
            loop {
                let from = next.fetch_add(run, Ordering::Relaxed);
                if from >= n || stop.load(Ordering::Relaxed) {
                    return;
                }
                for i in from..(from + run).min(n) {
                    match self.read_one(&self.series[i], &mut caches, size) {
                        Ok(s) if s.samples.is_empty() => {}
                        Ok(s) => {
                            size = s.samples.len();
                            if !visit(i, s) {
                                stop.store(true, Ordering::Relaxed);
                                return;
                            }
                        }
                        Err(e) => {
                            *error.lock().expect("read error lock") = Some(e);
                            stop.store(true, Ordering::Relaxed);
                            return;
                        }
                    }
                }
            }
        };
        if threads == 1 {
            work();
        } else {
            std::thread::scope(|scope| {
                for _ in 1..threads {
                    scope.spawn(work);
                }
                work();
            });
        }
        match error.into_inner().expect("read error lock") {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
