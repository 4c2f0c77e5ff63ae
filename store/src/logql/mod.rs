//! LogQL over the log index: parse (the `logql-parser` crate), plan (selector and substring
//! filters become tantivy queries; everything else runs per line in a [`pipeline::Pipeline`]),
//! and evaluate log queries ([`query_logs`]) and metric queries ([`metric::eval`]).
//!
//! Every query is bounded by [`Limits`]; hitting a bound is an error that names the bound.

mod best;
pub(crate) mod metric;
pub(crate) mod pipeline;
mod volume;

use std::collections::BTreeMap;

use logql::{MatchOp, StreamSelector};
use tantivy::query::{BooleanQuery, Occur, Query};

use crate::logs::{LogIndex, Matched};
use crate::model::Labels;
use best::Best;
use pipeline::Pipeline;

/// Why a query failed; all but `Index` are the caller's to fix (HTTP 400).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum QueryError {
    #[error("parse error at line {line}, col {col}: {message}")]
    Parse { line: u32, col: u32, message: String },
    #[error("invalid regex {0:?}: {1}")]
    BadRegex(String, String),
    #[error("invalid template {0:?}: {1}")]
    BadTemplate(String, String),
    #[error("not supported yet: {0}")]
    Unsupported(String),
    #[error(
        "queries require at least one regexp or equality matcher that does not have an empty-compatible value. \
         For instance, app=~\".*\" does not meet this requirement, but app=~\".+\" will"
    )]
    EmptyCompatibleSelector,
    #[error("{0}")]
    Limit(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("index error: {0}")]
    Index(String),
}

impl QueryError {
    pub(crate) fn is_client_error(&self) -> bool {
        !matches!(self, QueryError::Index(_))
    }
}

impl From<tantivy::TantivyError> for QueryError {
    fn from(e: tantivy::TantivyError) -> Self {
        QueryError::Index(e.to_string())
    }
}

/// Bounds on what one query may cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Lines read from the index (before pipeline filtering).
    pub(crate) max_lines_scanned: usize,
    /// Series in a metric query's result.
    pub(crate) max_series: usize,
    /// Memory of the series a metric query holds on the way to its result.
    pub(crate) max_intermediate_bytes: usize,
    /// Lines returned by a log query (Loki's max_entries_limit_per_query).
    pub(crate) max_entries: usize,
    pub(crate) max_range_ns: i64,
    pub(crate) max_steps: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_lines_scanned: 5_000_000,
            max_series: 10_000,
            max_intermediate_bytes: 256 << 20,
            max_entries: 5_000,
            max_range_ns: 32 * 86_400 * 1_000_000_000,
            max_steps: 11_000,
        }
    }
}

/// Parses a LogQL query once its text is within the bounds of [`crate::guard`], on a deep
/// stack; callers evaluate and drop the tree inside `guard::deep` too.
pub(crate) fn parse(q: &str) -> Result<logql::Expr, QueryError> {
    crate::guard::check(q).map_err(QueryError::Limit)?;
    crate::guard::deep(|| guard_parser(|| logql::parse(q)))
        .map_err(|message| QueryError::Parse {
            line: 1,
            col: 1,
            message,
        })?
        .map_err(|e| QueryError::Parse {
            line: e.line,
            col: e.col,
            message: e.message,
        })
}

/// Runs the third-party LogQL parser, turning a panic inside it into an error: fuzzing found
/// inputs (overlong duration literals such as `66666666666666666666m`) on which logql-parser
/// 0.1.4's lexer panics, and no query may take a request (or the store) down.
pub(crate) fn guard_parser<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|_| "the query could not be parsed (a literal is out of range)".to_string())
}

/// Tantivy query clauses, combined with AND/NOT by the caller.
pub(crate) type Clauses = Vec<(Occur, Box<dyn Query>)>;

/// The tantivy clauses for a stream selector.
pub(crate) fn selector_clauses(idx: &LogIndex, sel: &StreamSelector) -> Result<Clauses, QueryError> {
    let mut clauses: Clauses = Vec::new();
    let mut selective = false;
    let present = |name: &str| idx.label_regex(name, ".+").map_err(QueryError::Unsupported);
    for m in &sel.matchers {
        match m.op {
            MatchOp::Eq if m.value.is_empty() => clauses.push((Occur::MustNot, present(&m.name)?)),
            MatchOp::Eq => {
                selective = true;
                clauses.push((Occur::Must, idx.label_term(&m.name, &m.value)));
            }
            MatchOp::Neq if m.value.is_empty() => clauses.push((Occur::Must, present(&m.name)?)),
            MatchOp::Neq => clauses.push((Occur::MustNot, idx.label_term(&m.name, &m.value))),
            MatchOp::Re | MatchOp::Nre => {
                let re = pipeline::anchored(&m.value)?;
                let q = idx
                    .label_regex(&m.name, &m.value)
                    .map_err(|e| QueryError::BadRegex(m.value.clone(), e))?;
                let empty_ok = re.is_match("");
                match (m.op, empty_ok) {
                    (MatchOp::Re, false) => {
                        selective = true;
                        clauses.push((Occur::Must, q));
                    }
                    // Matches the value or the label's absence.
                    (MatchOp::Re, true) => clauses.push((
                        Occur::MustNot,
                        Box::new(BooleanQuery::new(vec![
                            (Occur::Must, present(&m.name)?),
                            (Occur::MustNot, q),
                        ])),
                    )),
                    (_, false) => clauses.push((Occur::MustNot, q)),
                    (_, true) => {
                        clauses.push((Occur::Must, present(&m.name)?));
                        clauses.push((Occur::MustNot, q));
                    }
                }
            }
            op => return Err(QueryError::Unsupported(format!("matcher {op}"))),
        }
    }
    if !selective {
        return Err(QueryError::EmptyCompatibleSelector);
    }
    Ok(clauses)
}

/// Selector clauses plus index hints for the pipeline's substring filters.
pub(crate) fn plan(idx: &LogIndex, sel: &StreamSelector, pipeline: &Pipeline) -> Result<Clauses, QueryError> {
    let mut clauses = selector_clauses(idx, sel)?;
    for needle in pipeline.required_substrings() {
        if let Some(hint) = idx.needle_hint(needle) {
            clauses.push((Occur::Must, hint));
        }
    }
    Ok(clauses)
}

/// One stream of a log query's result.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StreamOut {
    pub(crate) labels: Labels,
    /// (ns, line), in the query's direction.
    pub(crate) entries: Vec<(i64, String)>,
}

/// What a query read, for Loki's `stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Scanned {
    pub(crate) lines: usize,
    pub(crate) bytes: usize,
}

/// Runs a log query over `[start_ns, end_ns)`: up to `limit` lines, newest first when
/// `backward`, grouped into streams by their labels after the pipeline.
pub(crate) fn query_logs(
    idx: &LogIndex,
    q: &logql::LogQuery,
    start_ns: i64,
    end_ns: i64,
    limit: usize,
    backward: bool,
    limits: &Limits,
) -> Result<(Vec<StreamOut>, Scanned), QueryError> {
    if limit > limits.max_entries {
        return Err(QueryError::Limit(format!(
            "max entries limit per query exceeded, limit > max_entries_limit ({limit} > {})",
            limits.max_entries
        )));
    }
    let pipeline = Pipeline::compile(&q.pipeline)?;
    let clauses = plan(idx, &q.selector, &pipeline)?;
    let mut searchers = idx.searchers(start_ns, end_ns);
    if backward {
        searchers.reverse();
    }
    let mut best = Best::new(limit, backward);
    let mut scanned = Scanned::default();
    let mut lines = Vec::new();
    for searcher in &searchers {
        // The blocks the query matches, found once, read newest (or oldest) first.
        let clauses = clauses.iter().map(|(o, q)| (*o, q.box_clone())).collect();
        let matched = Matched::find(searcher, &idx.query(start_ns, end_ns, clauses))?;
        let mut blocks = idx.blocks_in_order(searcher, &matched, (start_ns, end_ns), backward)?;
        let mut reader = idx.reader(searcher);
        while let Some(bound) = blocks.bound() {
            if best.beats(bound) {
                break;
            }
            lines.clear();
            blocks.next_block(&mut lines);
            for &(ts, addr) in &lines {
                scanned.lines += 1;
                if scanned.lines > limits.max_lines_scanned {
                    return Err(scan_limit(limits));
                }
                let line = reader.line(addr)?;
                scanned.bytes += line.len();
                if !pipeline.prefilter(line) || !best.wants((ts, addr)) {
                    continue;
                }
                let hit = reader.hit(addr)?;
                if let Some(out) = pipeline.run(hit.labels, hit.metadata, hit.line) {
                    best.push((ts, addr), out.labels, out.line);
                }
            }
        }
        // Partitions are read in time order: a later one has no better line.
        if best.full() {
            break;
        }
    }
    let mut streams: BTreeMap<Labels, Vec<(i64, String)>> = BTreeMap::new();
    for ((ts, _), labels, line) in best.into_sorted() {
        streams.entry(labels).or_default().push((ts, line));
    }
    let out = streams
        .into_iter()
        .map(|(labels, entries)| StreamOut { labels, entries })
        .collect();
    Ok((out, scanned))
}

pub(crate) fn scan_limit(limits: &Limits) -> QueryError {
    QueryError::Limit(format!(
        "the query would read more than {} log lines (max_lines_scanned); narrow the selector, add a line filter, or shorten the time range",
        limits.max_lines_scanned
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LogBatch, LogEntry, LogStream};

    /// (stream labels, time, line)
    pub(crate) type Line<'a> = (&'a [(&'a str, &'a str)], i64, &'a str);

    pub(crate) fn index_with(lines: &[Line]) -> (tempfile::TempDir, LogIndex) {
        let dir = tempfile::tempdir().unwrap();
        let idx = LogIndex::open(dir.path()).unwrap();
        for (seq, (labels, ts, line)) in lines.iter().enumerate() {
            let batch = LogBatch {
                streams: vec![LogStream {
                    labels: labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                    entries: vec![LogEntry {
                        ts_ns: *ts,
                        line: line.to_string(),
                        metadata: vec![],
                    }],
                }],
            };
            idx.apply(seq as u64 + 1, &batch).unwrap();
        }
        idx.commit(lines.len() as u64).unwrap();
        (dir, idx)
    }

    fn logs(idx: &LogIndex, q: &str, limit: usize, backward: bool) -> Result<Vec<StreamOut>, QueryError> {
        let logql::Expr::Log(lq) = parse(q)? else {
            panic!("not a log query")
        };
        query_logs(idx, &lq, 0, 1_000_000, limit, backward, &Limits::default()).map(|r| r.0)
    }

    const A: &[(&str, &str)] = &[("job", "api"), ("level", "error")];
    const B: &[(&str, &str)] = &[("job", "web"), ("level", "info")];

    #[test]
    fn selectors_filters_direction_and_limit() {
        let lines: Vec<Line> = (0..1000)
            .map(|i| (if i % 2 == 0 { A } else { B }, i as i64, "GET /x took 5ms"))
            .collect();
        let (_d, idx) = index_with(&lines);
        let out = logs(&idx, r#"{job="api"}"#, 10, true).unwrap();
        assert_eq!(out.len(), 1);
        let ts: Vec<i64> = out[0].entries.iter().map(|e| e.0).collect();
        assert_eq!(ts, (0..10).map(|i| 998 - 2 * i).collect::<Vec<_>>());
        let fwd = logs(&idx, r#"{job=~"api|web"}"#, 700, false).unwrap();
        assert_eq!(fwd.iter().map(|s| s.entries.len()).sum::<usize>(), 700);
        assert_eq!(fwd[0].entries[0].0, 0);
        assert!(logs(&idx, r#"{job="api", level!="error"}"#, 10, true)
            .unwrap()
            .is_empty());
        assert_eq!(
            logs(&idx, r#"{job="api"} |= "took 5""#, 5, true).unwrap()[0]
                .entries
                .len(),
            5
        );
        assert!(logs(&idx, r#"{job="api"} |= "took 6""#, 5, true)
            .unwrap()
            .is_empty());
    }

    /// The lines of blocks from several segments and streams, times out of order and often
    /// shared: each limit, either way, gives the first lines by time and address, as a sort of
    /// all matching lines does.
    #[test]
    fn the_first_lines_by_time_come_from_blocks_read_in_order_either_way() {
        let dir = tempfile::tempdir().unwrap();
        let idx = LogIndex::open(dir.path()).unwrap();
        let mut all = Vec::new();
        for part in 0..3u64 {
            let streams = [A, B].map(|labels| LogStream {
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                entries: (0..700)
                    .map(|i| LogEntry {
                        ts_ns: (i * 7919 + part as i64 * 13) % 450,
                        line: format!("l{part} {i} {}", if i % 3 == 0 { "hit" } else { "miss" }),
                        metadata: vec![],
                    })
                    .collect(),
            });
            for s in &streams {
                all.extend(
                    s.entries
                        .iter()
                        .filter(|e| e.line.ends_with("hit"))
                        .map(|e| (e.ts_ns, e.line.clone())),
                );
            }
            idx.apply(
                part + 1,
                &LogBatch {
                    streams: streams.to_vec(),
                },
            )
            .unwrap();
            idx.commit(part + 1).unwrap();
        }
        all.sort();
        for limit in [1, 5, 64, 1000, 1400, 5000] {
            for backward in [false, true] {
                let out = logs(&idx, r#"{job=~".+"} |= "hit""#, limit, backward).unwrap();
                let mut got: Vec<(i64, String)> = out.into_iter().flat_map(|s| s.entries).collect();
                got.sort();
                let n = limit.min(all.len());
                // Lines that share the last time kept may differ from a sort by text.
                let want = if backward {
                    &all[all.len() - n..]
                } else {
                    &all[..n]
                };
                let times = |v: &[(i64, String)]| v.iter().map(|e| e.0).collect::<Vec<_>>();
                assert_eq!(times(&got), times(want), "limit {limit}, backward {backward}");
            }
        }
    }

    #[test]
    fn equal_timestamps_without_loss_or_duplicates() {
        let lines: Vec<Line> = (0..600).map(|i| (A, (i / 7) as i64, "x")).collect();
        let (_d, idx) = index_with(&lines);
        let out = logs(&idx, r#"{job="api"}"#, 600, true).unwrap();
        assert_eq!(out[0].entries.len(), 600);
    }

    #[test]
    fn runs_of_one_timestamp_longer_than_a_block() {
        let dir = tempfile::tempdir().unwrap();
        let idx = LogIndex::open(dir.path()).unwrap();
        // Runs of 5000 lines share a timestamp: more than a block holds.
        let lines: Vec<String> = (0..30_000).map(|i| format!("line {i}")).collect();
        let batch = LogBatch {
            streams: vec![LogStream {
                labels: [("job".to_string(), "api".to_string())].into(),
                entries: (lines.iter().enumerate())
                    .map(|(i, line)| LogEntry {
                        ts_ns: i as i64 / 5000,
                        line: line.clone(),
                        metadata: vec![],
                    })
                    .collect(),
            }],
        };
        idx.apply(1, &batch).unwrap();
        idx.commit(1).unwrap();
        let want: Vec<(i64, &str)> = (lines.iter().enumerate())
            .filter(|(_, l)| l.contains("99"))
            .map(|(i, l)| (i as i64 / 5000, l.as_str()))
            .collect();
        for backward in [false, true] {
            let out = logs(&idx, r#"{job="api"} |= "99""#, want.len(), backward).unwrap();
            let got: Vec<(i64, &str)> = out[0].entries.iter().map(|(ts, l)| (*ts, l.as_str())).collect();
            let mut times: Vec<i64> = got.iter().map(|e| e.0).collect();
            if backward {
                times.reverse();
            }
            assert!(times.is_sorted(), "in time order");
            let mut got = got;
            got.sort_unstable_by_key(|(_, l)| l.split(' ').nth(1).unwrap().parse::<u32>().unwrap());
            assert_eq!(got, want, "backward: {backward}");
        }
    }

    #[test]
    fn order_inside_blocks_of_lines() {
        let dir = tempfile::tempdir().unwrap();
        let idx = LogIndex::open(dir.path()).unwrap();
        // One record: blocks of many lines, several lines per timestamp.
        let batch = LogBatch {
            streams: vec![LogStream {
                labels: [("job".to_string(), "api".to_string())].into(),
                entries: (0..1000)
                    .map(|i| LogEntry {
                        ts_ns: i / 7,
                        line: format!("line {i}"),
                        metadata: vec![],
                    })
                    .collect(),
            }],
        };
        idx.apply(1, &batch).unwrap();
        idx.commit(1).unwrap();
        let back = logs(&idx, r#"{job="api"}"#, 600, true).unwrap();
        let ts: Vec<i64> = back[0].entries.iter().map(|e| e.0).collect();
        let want: Vec<i64> = (400..1000).rev().map(|i| i / 7).collect();
        assert_eq!(ts, want);
        let fwd = logs(&idx, r#"{job="api"} |= "line 99""#, 100, false).unwrap();
        let lines: Vec<&str> = fwd[0].entries.iter().map(|e| e.1.as_str()).collect();
        let want: Vec<String> = (0..1000)
            .map(|i| format!("line {i}"))
            .filter(|l| l.contains("line 99"))
            .collect();
        assert_eq!(lines, want);
    }

    #[test]
    fn empty_compatible_selectors_are_refused_like_loki() {
        let (_d, idx) = index_with(&[(A, 1, "x")]);
        assert_eq!(
            logs(&idx, r#"{job=~".*"}"#, 10, true),
            Err(QueryError::EmptyCompatibleSelector)
        );
        assert_eq!(logs(&idx, r#"{job=~".+"}"#, 10, true).unwrap().len(), 1);
        assert!(matches!(
            logs(&idx, r#"{job="api""#, 10, true),
            Err(QueryError::Parse { .. })
        ));
        assert!(matches!(
            logs(&idx, r#"{job="api"}"#, 10_000, true),
            Err(QueryError::Limit(_))
        ));
    }
}
