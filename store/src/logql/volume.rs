//! Counting lines without reading them: `sum [by (...)] (count_over_time(...))`, `rate`,
//! `bytes_over_time` and `bytes_rate` over a selector whose pipeline changes no label (none,
//! or Grafana's `| drop __error__, __error_details__`), grouped by stream labels, `level` and
//! `detected_level`. That is Grafana's logs volume, run with every search in Explore.
//!
//! Lines are visited in the fast fields only (`ts`, `bytes`, and `level`, each line's detected
//! level: `logs.rs`): each adds to a difference array over the steps, per (stream, level
//! code), so a line costs a hash lookup and two additions, and nothing is held per line (the
//! scan limit, which bounds what a query holds, does not apply). A stream's labels are read
//! once. Whatever needs a line's metadata (a `by` label that is neither a stream label nor a
//! level, or a line whose level is in its metadata) makes the caller take the general path.

use std::collections::HashMap;

use logql::{Grouping, PipelineStage, RangeFunction};
use rustc_hash::FxHashMap;
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::query::Query;
use tantivy::{DocId, Score, Searcher, SegmentReader};

use super::metric::Series;
use super::QueryError;
use crate::logs::{LineAddr, LogIndex, LEVELS};
use crate::model::Labels;

/// Whether a pipeline leaves every label as it is: only drops of the error labels, which
/// nothing sets without a parser.
pub(super) fn label_only(stages: &[PipelineStage]) -> bool {
    stages.iter().all(|s| match s {
        PipelineStage::Drop(preds) => preds
            .iter()
            .all(|p| p.matcher.is_none() && matches!(p.name.as_str(), "__error__" | "__error_details__")),
        _ => false,
    })
}

/// The steps: `n` times `step` apart from `first` (ns).
#[derive(Debug, Clone, Copy)]
struct Steps {
    first: i64,
    step: i64,
    n: usize,
    /// The window: lines with `t - offset - range < ts <= t - offset` count at step `t`.
    range: i64,
    offset: i64,
}

impl Steps {
    /// The steps a line at `ts` counts in, as `[lo, hi]`; None if none.
    fn span(&self, ts: i64) -> Option<(usize, usize)> {
        let ceil_div = |a: i64, b: i64| -((-a).div_euclid(b));
        let x = ts.saturating_add(self.offset).saturating_sub(self.first);
        let lo = ceil_div(x, self.step).max(0);
        let hi = (ceil_div(x.saturating_add(self.range), self.step) - 1).min(self.n as i64 - 1);
        (lo <= hi).then_some((lo as usize, hi as usize))
    }
}

/// Per (stream, level code): a line's address (to read the stream's labels) and the
/// difference arrays of its line counts and bytes over the steps.
type Counts = FxHashMap<(u64, u64), (LineAddr, Vec<f64>, Vec<f64>)>;

struct CountLines(Steps, (i64, i64));

struct CountSegment {
    steps: Steps,
    segment: u32,
    range: (i64, i64),
    ts: tantivy::columnar::Column<i64>,
    stream: tantivy::columnar::Column<u64>,
    bytes: tantivy::columnar::Column<u64>,
    level: tantivy::columnar::Column<u64>,
    counts: Counts,
}

impl Collector for CountLines {
    type Fruit = Counts;
    type Child = CountSegment;

    fn for_segment(&self, segment: u32, reader: &SegmentReader) -> tantivy::Result<CountSegment> {
        let ff = reader.fast_fields();
        Ok(CountSegment {
            steps: self.0,
            segment,
            range: self.1,
            ts: ff.i64("ts")?,
            stream: ff.u64("stream")?,
            bytes: ff.u64("bytes")?,
            level: ff.u64("level")?,
            counts: Counts::default(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Counts>) -> tantivy::Result<Counts> {
        let mut all = Counts::default();
        for fruit in fruits {
            for (key, (addr, n, b)) in fruit {
                match all.get_mut(&key) {
                    Some((_, an, ab)) => {
                        an.iter_mut().zip(n).for_each(|(x, y)| *x += y);
                        ab.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                    }
                    None => {
                        all.insert(key, (addr, n, b));
                    }
                }
            }
        }
        Ok(all)
    }
}

impl SegmentCollector for CountSegment {
    type Fruit = Counts;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let stream = self.stream.first(doc).unwrap_or_default();
        let mut sizes = self.bytes.values_for_doc(doc);
        let mut levels = self.level.values_for_doc(doc);
        let (lo, hi) = self.range;
        let n = self.steps.n;
        for (i, ts) in self.ts.values_for_doc(doc).enumerate() {
            let bytes = sizes.next().unwrap_or_default() as f64;
            let level = levels.next().unwrap_or_default();
            if ts < lo || ts >= hi {
                continue;
            }
            let Some((a, b)) = self.steps.span(ts) else {
                continue;
            };
            let (_, count, size) = self.counts.entry((stream, level)).or_insert_with(|| {
                let addr = LineAddr {
                    doc: tantivy::DocAddress::new(self.segment, doc),
                    line: i as u32,
                };
                (addr, vec![0.0; n + 1], vec![0.0; n + 1])
            });
            count[a] += 1.0;
            count[b + 1] -= 1.0;
            size[a] += bytes;
            size[b + 1] -= bytes;
        }
    }

    fn harvest(self) -> Counts {
        self.counts
    }
}

/// What [`count`] needs to know about the query.
pub(super) struct Volume<'a> {
    pub(super) function: RangeFunction,
    pub(super) times: &'a [i64],
    pub(super) range: i64,
    pub(super) offset: i64,
    /// The enclosing `sum`'s grouping (`None`: a sum over everything).
    pub(super) grouping: Option<&'a Grouping>,
}

/// The series of `v` over the lines `query` matches, or `None` when this path cannot count
/// them without reading lines (the caller then does). `hold` accounts for each series.
pub(super) fn count(
    idx: &LogIndex,
    searchers: &[Searcher],
    query: &dyn Query,
    v: &Volume,
    hold: &dyn Fn(&Labels) -> Result<(), QueryError>,
) -> Result<Option<Vec<Series>>, QueryError> {
    use RangeFunction as F;
    if !matches!(
        v.function,
        F::CountOverTime | F::Rate | F::BytesOverTime | F::BytesRate
    ) || v.grouping.is_some_and(|g| g.without)
    {
        return Ok(None);
    }
    let times = v.times;
    let step = if times.len() > 1 { times[1] - times[0] } else { 1 };
    if step <= 0 || times.windows(2).any(|w| w[1] - w[0] != step) {
        return Ok(None);
    }
    let steps = Steps {
        first: times[0],
        step,
        n: times.len(),
        range: v.range,
        offset: v.offset,
    };
    let lo = times[0] - v.offset - v.range + 1;
    let hi = times[times.len() - 1] - v.offset + 1;
    let mut groups: Vec<(Labels, Vec<f64>, Vec<f64>)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    for searcher in searchers {
        let counts = searcher.search(query, &CountLines(steps, (lo, hi)))?;
        let mut reader = idx.reader(searcher);
        let mut stream_labels: FxHashMap<u64, Labels> = FxHashMap::default();
        for ((stream, code), (addr, n, b)) in counts {
            let mut labels = match stream_labels.get(&stream) {
                Some(l) => l.clone(),
                None => {
                    let l = reader.hit(addr)?.labels.clone();
                    stream_labels.insert(stream, l.clone());
                    l
                }
            };
            if code > 0 {
                labels.insert("detected_level".into(), LEVELS[(code - 1) as usize].into());
            } else if !labels.contains_key("level") {
                // The line's level is in its metadata.
                return Ok(None);
            }
            let key = match v.grouping {
                None => Labels::new(),
                Some(g) => {
                    let knowable = |name: &String| {
                        labels.contains_key(name) || matches!(name.as_str(), "level" | "detected_level")
                    };
                    if !g.labels.iter().all(knowable) {
                        return Ok(None);
                    }
                    labels
                        .iter()
                        .filter(|(k, _)| g.labels.contains(k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                }
            };
            match index.get(&key) {
                Some(&i) => {
                    let (_, gn, gb) = &mut groups[i];
                    gn.iter_mut().zip(n).for_each(|(x, y)| *x += y);
                    gb.iter_mut().zip(b).for_each(|(x, y)| *x += y);
                }
                None => {
                    hold(&key)?;
                    index.insert(key.clone(), groups.len());
                    groups.push((key, n, b));
                }
            }
        }
    }
    let range_secs = v.range as f64 / 1e9;
    let mut out: Vec<Series> = groups
        .into_iter()
        .map(|(labels, n, b)| {
            let (mut count, mut bytes) = (0.0, 0.0);
            let points = (0..times.len())
                .map(|i| {
                    count += n[i];
                    bytes += b[i];
                    // Sums of whole numbers well below 2^53: exact.
                    (count > 0.5).then(|| match v.function {
                        F::CountOverTime => count,
                        F::Rate => count / range_secs,
                        F::BytesOverTime => bytes,
                        _ => bytes / range_secs,
                    })
                })
                .collect();
            Series { labels, points }
        })
        .collect();
    out.sort_by(|a, b| a.labels.cmp(&b.labels));
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_counts_in_the_steps_whose_window_holds_it() {
        let s = Steps {
            first: 100,
            step: 10,
            n: 5,
            range: 10,
            offset: 0,
        };
        // Windows: (90,100], (100,110], (110,120], (120,130], (130,140].
        assert_eq!(s.span(100), Some((0, 0)));
        assert_eq!(s.span(101), Some((1, 1)));
        assert_eq!(s.span(90), None);
        assert_eq!(s.span(91), Some((0, 0)));
        assert_eq!(s.span(140), Some((4, 4)));
        assert_eq!(s.span(141), None);
        let wide = Steps { range: 25, ..s };
        // (75,100], (85,110], (95,120], ...: 96 is in the first three.
        assert_eq!(wide.span(96), Some((0, 2)));
        let shifted = Steps { offset: 20, ..s };
        // Windows end 20 earlier: (70,80], (80,90], ...
        assert_eq!(shifted.span(80), Some((0, 0)));
        let instant = Steps {
            step: 1,
            n: 1,
            range: 60,
            offset: 0,
            first: 1000,
        };
        assert_eq!(instant.span(941), Some((0, 0)));
        assert_eq!(instant.span(940), None);
        assert_eq!(instant.span(1000), Some((0, 0)));
    }
}
