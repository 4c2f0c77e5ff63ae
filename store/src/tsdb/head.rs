//! The head: the newest samples, in memory, as the WAL delivered them.
//!
//! Series are found through an inverted index (label name -> value -> series ids). Samples
//! are kept sorted per series; an out-of-order sample is inserted in place and a sample at
//! an existing timestamp replaces it, so a resent batch changes nothing. The head is frozen
//! and written out as a block every few minutes (see `mod.rs`).

use std::collections::{BTreeMap, HashMap};

use std::sync::Arc;

use super::labels::{is_canonical, Interner};
use super::{matches_all, Labels, MatchOp, Matcher, RawSeries, SampleBatch};

/// A sample: (ms, value).
pub(crate) type Point = (i64, f64);

/// Label name -> value -> series ids (ascending): the inverted index of a head or block.
pub(crate) type Postings = BTreeMap<String, BTreeMap<String, Vec<u32>>>;

#[derive(Default)]
pub(crate) struct Head {
    ids: HashMap<Labels, u32>,
    series: Vec<(Arc<Labels>, Vec<Point>)>,
    /// name -> value -> ids (ascending).
    postings: Postings,
    pub(crate) samples: usize,
    pub(crate) mint: i64,
    pub(crate) maxt: i64,
    /// WAL sequence numbers of the records applied here.
    pub(crate) first_seq: Option<u64>,
    pub(crate) last_seq: u64,
}

impl Head {
    pub(crate) fn new() -> Self {
        Head {
            mint: i64::MAX,
            maxt: i64::MIN,
            ..Default::default()
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.samples == 0
    }

    pub(crate) fn series_count(&self) -> usize {
        self.series.len()
    }

    /// Approximate heap bytes held, for `/metrics`.
    pub(crate) fn bytes(&self) -> usize {
        self.series
            .iter()
            .map(|(l, s)| {
                s.capacity() * 16 + l.iter().map(|(n, v)| n.len() + v.len() + 48).sum::<usize>() + 64
            })
            .sum()
    }

    fn id_for(&mut self, pairs: &[(String, String)], interner: &Interner) -> u32 {
        // Senders keep label sets sorted: look those up without building a `Labels`.
        if is_canonical(pairs) {
            if let Some(&id) = self.ids.get(pairs) {
                return id;
            }
        }
        let labels = Labels::new(pairs.to_vec());
        if let Some(&id) = self.ids.get(&labels) {
            return id;
        }
        let id = self.series.len() as u32;
        let labels = interner.intern(labels);
        for (n, v) in labels.iter() {
            self.postings
                .entry(n.to_string())
                .or_default()
                .entry(v.to_string())
                .or_default()
                .push(id);
        }
        self.ids.insert((*labels).clone(), id);
        self.series.push((labels, Vec::new()));
        id
    }

    pub(crate) fn append(&mut self, seq: u64, batch: &SampleBatch, interner: &Interner) {
        self.first_seq.get_or_insert(seq);
        self.last_seq = seq;
        for s in &batch.series {
            let id = self.id_for(&s.labels, interner);
            let buf = &mut self.series[id as usize].1;
            for &(t, v) in &s.samples {
                self.mint = self.mint.min(t);
                self.maxt = self.maxt.max(t);
                match buf.last() {
                    Some(&(last, _)) if last < t => buf.push((t, v)),
                    None => buf.push((t, v)),
                    _ => match buf.binary_search_by_key(&t, |p| p.0) {
                        Ok(i) => {
                            buf[i].1 = v;
                            continue;
                        }
                        Err(i) => buf.insert(i, (t, v)),
                    },
                }
                self.samples += 1;
            }
        }
    }

    /// Ids of the series that can match: the intersection of the postings of every matcher
    /// that cannot match an empty value. Callers still check all matchers.
    fn candidates(&self, matchers: &[Matcher]) -> Vec<u32> {
        candidates(&self.postings, self.series.len(), matchers)
    }

    pub(crate) fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64, out: &mut Vec<RawSeries>) {
        for id in self.candidates(matchers) {
            let (labels, samples) = &self.series[id as usize];
            if !matches_all(labels, matchers) {
                continue;
            }
            let lo = samples.partition_point(|p| p.0 < mint);
            let hi = samples.partition_point(|p| p.0 <= maxt);
            if lo < hi {
                out.push(RawSeries {
                    labels: labels.clone(),
                    samples: samples[lo..hi].to_vec(),
                });
            }
        }
    }

    /// Labels of matching series with samples in `[mint, maxt]`.
    pub(crate) fn series_labels(
        &self,
        matchers: &[Matcher],
        mint: i64,
        maxt: i64,
        out: &mut Vec<Arc<Labels>>,
    ) {
        for id in self.candidates(matchers) {
            let (labels, samples) = &self.series[id as usize];
            let lo = samples.partition_point(|p| p.0 < mint);
            if matches_all(labels, matchers) && samples.get(lo).is_some_and(|p| p.0 <= maxt) {
                out.push(labels.clone());
            }
        }
    }

    /// Every series with its samples, sorted by labels (what a block is written from).
    pub(crate) fn all_sorted(&self) -> Vec<(Arc<Labels>, &[Point])> {
        let mut v: Vec<_> = self
            .series
            .iter()
            .map(|(l, s)| (l.clone(), s.as_slice()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}

/// Candidate ids from an inverted index; see [`Head::candidates`].
pub(crate) fn candidates(postings: &Postings, total: usize, matchers: &[Matcher]) -> Vec<u32> {
    let mut result: Option<Vec<u32>> = None;
    // Equality first: its list is ready-made and usually the shortest.
    let mut ordered: Vec<&Matcher> = matchers.iter().filter(|m| !m.is_match("")).collect();
    ordered.sort_by_key(|m| !matches!(m.op, MatchOp::Equal));
    for m in ordered {
        let ids: Vec<u32> = match (&m.op, postings.get(&m.name)) {
            (_, None) => Vec::new(),
            (MatchOp::Equal, Some(vals)) => vals.get(&m.value).cloned().unwrap_or_default(),
            (_, Some(vals)) => {
                // The union of every matching value's list, as a bitmap (no sort).
                let mut bits = vec![0u64; total.div_ceil(64)];
                for (_, ids) in vals.iter().filter(|(v, _)| m.is_match(v)) {
                    for &id in ids {
                        if let Some(w) = bits.get_mut(id as usize / 64) {
                            *w |= 1 << (id % 64);
                        }
                    }
                }
                let has = |id: u32| {
                    bits.get(id as usize / 64)
                        .is_some_and(|w| w & (1 << (id % 64)) != 0)
                };
                match result.take() {
                    Some(prev) => prev.into_iter().filter(|&id| has(id)).collect(),
                    None => (0..total as u32).filter(|&id| has(id)).collect(),
                }
            }
        };
        result = Some(match (result, &m.op) {
            (Some(prev), MatchOp::Equal) => intersect(&prev, &ids),
            _ => ids,
        });
        if result.as_ref().is_some_and(|r| r.is_empty()) {
            break;
        }
    }
    result.unwrap_or_else(|| (0..total as u32).collect())
}

fn intersect(a: &[u32], b: &[u32]) -> Vec<u32> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                out.push(a[i]);
                i += 1;
                j += 1;
            }
        }
    }
    out
}
