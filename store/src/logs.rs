//! Logs on disk: one tantivy index per UTC day, fed from the WAL in sequence order.
//!
//! # Layout (version 1)
//!
//! ```text
//! <data_dir>/logs/v1/<YYYY-MM-DD>/      a tantivy index holding the lines whose time is that day
//!     meta.json                         tantivy's; its commit payload is {"wal_seq": N}: every WAL
//!                                       record with seq <= N is in this index
//! ```
//!
//! Schema v1, one document per line:
//!
//! | field    | type  | options                 | holds                                         |
//! |----------|-------|-------------------------|-----------------------------------------------|
//! | `ts`     | i64   | fast, stored (*)        | time in Unix nanoseconds                      |
//! | `stream` | u64   | fast, stored            | FNV-1a 64 of the sorted `name=value\0` labels |
//! | `label`  | text  | raw terms               | one term `name=value` per stream label        |
//! | `labels` | text  | stored                  | the stream labels as a JSON object            |
//! | `line`   | text  | `obs_words`, stored     | the line; its words for filtering (`words.rs`) |
//! | `meta`   | text  | stored                  | structured metadata as JSON `[[name, value]]` |
//! | `bytes`  | u64   | fast                    | length of the line in bytes                   |
//!
//! (*) Partitions created before 2026-12 also index `ts` (one unique term per line that no
//! query used: time ranges are read from the fast field). Both kinds open and answer alike;
//! each partition keeps the schema in its `meta.json`.
//!
//! # Durability
//!
//! Partitioning, commit payloads and replay are `partitions.rs`'s: lines are added after their
//! WAL record is durable, committed every [`COMMIT_INTERVAL`](crate::ingest::COMMIT_INTERVAL),
//! and replay neither loses nor duplicates them.

use std::ops::Bound;
use std::path::Path;

use tantivy::collector::TopDocs;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RangeQuery, RegexQuery, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, STORED, STRING,
};
use tantivy::{DocAddress, Index, Order, Searcher, TantivyDocument, Term};

use crate::model::{Labels, LogBatch};
use crate::words;

pub(crate) use crate::partitions::IndexError;
use crate::partitions::Partitions;
#[cfg(test)]
use crate::partitions::DAY_NS;

const WORDS: &str = "obs_words";
const SCHEMA_VERSION: &str = "v1";

#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    pub(crate) ts: Field,
    pub(crate) stream: Field,
    pub(crate) label: Field,
    pub(crate) labels: Field,
    pub(crate) line: Field,
    pub(crate) meta: Field,
    pub(crate) bytes: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let words = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(WORDS)
                .set_index_option(IndexRecordOption::Basic),
        )
        .set_stored();
    let fields = Fields {
        ts: b.add_i64_field("ts", FAST | STORED),
        stream: b.add_u64_field("stream", FAST | STORED),
        label: b.add_text_field("label", STRING),
        labels: b.add_text_field("labels", STORED),
        line: b.add_text_field("line", words),
        meta: b.add_text_field("meta", STORED),
        bytes: b.add_u64_field("bytes", FAST),
    };
    (b.build(), fields)
}

/// The stable id of a label set (FNV-1a 64 over `name=value\0`, in name order).
pub(crate) fn stream_id(labels: &Labels) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k.bytes().chain([b'=']).chain(v.bytes()).chain([0]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// One line read back from the index.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LogHit {
    pub(crate) ts_ns: i64,
    pub(crate) stream: u64,
    pub(crate) labels: Labels,
    pub(crate) line: String,
    pub(crate) metadata: Vec<(String, String)>,
}

/// A lightweight reference to a matching line: what metric queries need without the line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineRef {
    pub(crate) ts_ns: i64,
    pub(crate) stream: u64,
    pub(crate) bytes: u64,
    pub(crate) doc: DocAddress,
    /// Index into the searcher list the ref came from.
    pub(crate) part: usize,
}

/// Day-partitioned log indexes.
#[derive(Debug)]
pub(crate) struct LogIndex {
    /// Commit, retention and disk usage are the partitions' (the engine calls them directly).
    pub(crate) parts: Partitions,
    pub(crate) fields: Fields,
}

fn setup(index: &Index) {
    index.tokenizers().register(WORDS, words::analyzer());
}

impl LogIndex {
    /// Opens every partition under `<data_dir>/logs/v1`.
    pub(crate) fn open(data_dir: &Path) -> Result<LogIndex, IndexError> {
        Self::open_with(data_dir, setup)
    }

    fn open_with(data_dir: &Path, setup: fn(&Index)) -> Result<LogIndex, IndexError> {
        let (schema, fields) = schema();
        let parts = Partitions::open(data_dir.join("logs").join(SCHEMA_VERSION), schema, setup)?;
        Ok(LogIndex { parts, fields })
    }

    /// Adds the lines of WAL record `seq` to their partitions, skipping partitions that
    /// already hold it. Returns how many lines were added.
    pub(crate) fn apply(&self, seq: u64, batch: &LogBatch) -> Result<usize, IndexError> {
        let f = self.fields;
        let mut adder = self.parts.adder();
        let mut added = 0;
        for stream in &batch.streams {
            let id = stream_id(&stream.labels);
            let labels_json = serde_json::to_string(&stream.labels).expect("labels serialize");
            let label_terms: Vec<String> = stream.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            for e in &stream.entries {
                let mut doc = TantivyDocument::new();
                doc.add_i64(f.ts, e.ts_ns);
                doc.add_u64(f.stream, id);
                for term in &label_terms {
                    doc.add_text(f.label, term);
                }
                doc.add_text(f.labels, &labels_json);
                doc.add_text(f.line, &e.line);
                if !e.metadata.is_empty() {
                    doc.add_text(
                        f.meta,
                        serde_json::to_string(&e.metadata).expect("metadata serializes"),
                    );
                }
                doc.add_u64(f.bytes, e.line.len() as u64);
                added += usize::from(adder.add(e.ts_ns, seq, doc)?);
            }
        }
        Ok(added)
    }

    /// Searchers for the partitions that may hold lines in `[start_ns, end_ns)`, oldest first.
    pub(crate) fn searchers(&self, start_ns: i64, end_ns: i64) -> Vec<Searcher> {
        self.parts.searchers(start_ns, end_ns)
    }

    /// A query for `[start_ns, end_ns)` and the given extra clauses (selector, line hints).
    pub(crate) fn query(
        &self,
        start_ns: i64,
        end_ns: i64,
        clauses: Vec<(Occur, Box<dyn Query>)>,
    ) -> BooleanQuery {
        let range = RangeQuery::new(
            Bound::Included(Term::from_field_i64(self.fields.ts, start_ns)),
            Bound::Excluded(Term::from_field_i64(self.fields.ts, end_ns)),
        );
        let mut all: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, Box::new(range))];
        if clauses.iter().all(|(o, _)| *o == Occur::MustNot) {
            all.push((Occur::Must, Box::new(AllQuery)));
        }
        all.extend(clauses);
        BooleanQuery::new(all)
    }

    /// Term query for the stream label `name=value`.
    pub(crate) fn label_term(&self, name: &str, value: &str) -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(self.fields.label, &format!("{name}={value}")),
            IndexRecordOption::Basic,
        ))
    }

    /// Regex query over the values of stream label `name` (whole value, like Prometheus).
    pub(crate) fn label_regex(&self, name: &str, value_regex: &str) -> Result<Box<dyn Query>, String> {
        let pattern = format!("{}=(?:{value_regex})", regex_syntax_escape(name));
        RegexQuery::from_pattern(&pattern, self.fields.label)
            .map(|q| Box::new(q) as Box<dyn Query>)
            .map_err(|e| format!("invalid regex {value_regex:?}: {e}"))
    }

    /// A query narrowing candidates for the substring filter `|= needle`, from the words the
    /// needle must contain; `None` when it gives no hint. Lines still need the substring check.
    pub(crate) fn needle_hint(&self, needle: &str) -> Option<Box<dyn Query>> {
        let mut tokens = Vec::new();
        let mut analyzer = crate::words::words();
        let mut stream = analyzer.token_stream(needle);
        while let Some(t) = stream.next() {
            tokens.push((t.offset_from, t.offset_to, t.text.clone()));
        }
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let several = tokens.len() > 1;
        for (from, to, text) in tokens {
            // A word cut by the needle's edge may be part of a longer word in the line. A cut
            // on the right is a cheap prefix range of the term dictionary; a cut on the left
            // needs a scan of the whole dictionary, so it is left to the substring check when
            // another word narrows the candidates.
            let open_left = from == 0;
            let open_right = to == needle.len();
            if open_left && several {
                continue;
            }
            let escaped = regex_syntax_escape(&text);
            let word: Box<dyn Query> = match (open_left, open_right) {
                (false, false) => Box::new(self.word_term(&text)),
                (false, true) => Box::new(self.word_regex(&format!("{escaped}.*"))?),
                (true, false) => Box::new(self.word_regex(&format!(".*{escaped}"))?),
                (true, true) => Box::new(self.word_regex(&format!(".*{escaped}.*"))?),
            };
            // In newer partitions, a line word that is an id holds the needle word in pieces.
            let id: Option<Box<dyn Query>> = if !words::is_hex(&text) {
                None
            } else if !open_left && !open_right {
                words::is_id(&text).then(|| self.id_pieces(&text))
            } else {
                match self.id_fragment(&text, !open_left) {
                    Some(q) => Some(q),
                    None => continue,
                }
            };
            let q = match id {
                None => word,
                Some(id) => Box::new(BooleanQuery::new(vec![
                    (Occur::Should, word),
                    (Occur::Should, id),
                ])),
            };
            clauses.push((Occur::Must, q));
        }
        (!clauses.is_empty()).then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>)
    }

    fn word_term(&self, text: &str) -> TermQuery {
        TermQuery::new(
            Term::from_field_text(self.fields.line, text),
            IndexRecordOption::Basic,
        )
    }

    fn word_regex(&self, pattern: &str) -> Option<RegexQuery> {
        RegexQuery::from_pattern(pattern, self.fields.line).ok()
    }

    /// Lines holding the whole id `id`: all of its pieces.
    fn id_pieces(&self, id: &str) -> Box<dyn Query> {
        let mut analyzer = words::analyzer();
        let mut stream = analyzer.token_stream(id);
        let mut pieces: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        while let Some(t) = stream.next() {
            pieces.push((Occur::Must, Box::new(self.word_term(&t.text))));
        }
        Box::new(BooleanQuery::new(pieces))
    }

    /// Lines that may hold `fragment` inside an id (at its start with `at_start`): for each
    /// offset of the fragment in a piece, the pieces it covers, whole ones as terms and cut ones
    /// as short patterns. `None` when some offset leaves nothing to look up.
    fn id_fragment(&self, fragment: &str, at_start: bool) -> Option<Box<dyn Query>> {
        let offsets = if at_start { 0..1 } else { 0..words::CHUNK };
        let mut alternatives: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for offset in offsets {
            let mut parts: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            let (mut at, mut skip) = (0, offset);
            while at < fragment.len() {
                let take = (words::CHUNK - skip).min(fragment.len() - at);
                let piece = &fragment[at..at + take];
                if skip == 0 && take == words::CHUNK {
                    parts.push((Occur::Must, Box::new(self.word_term(piece))));
                } else if take >= 2 {
                    // Hex digits need no escaping.
                    let pattern = format!("{}{piece}.*", ".".repeat(skip));
                    parts.push((Occur::Must, Box::new(self.word_regex(&pattern)?)));
                }
                at += take;
                skip = 0;
            }
            if parts.is_empty() {
                return None;
            }
            alternatives.push((Occur::Should, Box::new(BooleanQuery::new(parts))));
        }
        Some(Box::new(BooleanQuery::new(alternatives)))
    }

    /// Up to `limit` matching lines ordered by time (newest first when `backward`), strictly
    /// before/after `cursor` nanoseconds.
    pub(crate) fn page(
        &self,
        searcher: &Searcher,
        query: &dyn Query,
        backward: bool,
        limit: usize,
    ) -> Result<Vec<(i64, DocAddress)>, tantivy::TantivyError> {
        let order = if backward { Order::Desc } else { Order::Asc };
        searcher.search(
            query,
            &TopDocs::with_limit(limit).order_by_fast_field::<i64>("ts", order),
        )
    }

    /// Reads one stored line.
    pub(crate) fn hit(&self, searcher: &Searcher, addr: DocAddress) -> Result<LogHit, tantivy::TantivyError> {
        let doc: TantivyDocument = searcher.doc(addr)?;
        let f = self.fields;
        let text = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        Ok(LogHit {
            ts_ns: doc.get_first(f.ts).and_then(|v| v.as_i64()).unwrap_or_default(),
            stream: doc
                .get_first(f.stream)
                .and_then(|v| v.as_u64())
                .unwrap_or_default(),
            labels: serde_json::from_str(&text(f.labels)).unwrap_or_default(),
            line: text(f.line),
            metadata: doc
                .get_first(f.meta)
                .and_then(|v| v.as_str())
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default(),
        })
    }

    /// Every line matching `query` in the searchers as refs (time, stream, size), at most `max`.
    pub(crate) fn refs(
        &self,
        searchers: &[Searcher],
        query: &dyn Query,
        max: usize,
    ) -> Result<Result<Vec<LineRef>, usize>, tantivy::TantivyError> {
        let mut out = Vec::new();
        for (part, searcher) in searchers.iter().enumerate() {
            let found = searcher.search(query, &RefCollector)?;
            for (ts_ns, stream, bytes, doc) in found {
                out.push(LineRef {
                    ts_ns,
                    stream,
                    bytes,
                    doc,
                    part,
                });
            }
            if out.len() > max {
                return Ok(Err(out.len()));
            }
        }
        Ok(Ok(out))
    }

    /// Streams matching `query` with their line counts and bytes, keyed by (partition, stream).
    pub(crate) fn stream_stats(
        &self,
        searchers: &[Searcher],
        query: &dyn Query,
    ) -> Result<Vec<(u64, StreamStats)>, tantivy::TantivyError> {
        let mut out = Vec::new();
        for (part, searcher) in searchers.iter().enumerate() {
            for (stream, (doc, lines, bytes)) in searcher.search(query, &StreamCollector)? {
                out.push((
                    stream,
                    StreamStats {
                        part,
                        doc,
                        lines,
                        bytes,
                    },
                ));
            }
        }
        Ok(out)
    }

    /// Label names (and, with `name`, that label's values) present in `[start_ns, end_ns)`'s
    /// partitions.
    pub(crate) fn label_terms(
        &self,
        start_ns: i64,
        end_ns: i64,
        name: Option<&str>,
    ) -> Vec<(String, String)> {
        let mut out = std::collections::BTreeSet::new();
        for searcher in self.searchers(start_ns, end_ns) {
            for seg in searcher.segment_readers() {
                let Ok(inv) = seg.inverted_index(self.fields.label) else {
                    continue;
                };
                let terms = inv.terms();
                let mut stream = match name {
                    Some(n) => {
                        let lo = format!("{n}=");
                        let hi = format!("{n}>");
                        match terms.range().ge(lo.as_bytes()).lt(hi.as_bytes()).into_stream() {
                            Ok(s) => s,
                            Err(_) => continue,
                        }
                    }
                    None => match terms.stream() {
                        Ok(s) => s,
                        Err(_) => continue,
                    },
                };
                while stream.advance() {
                    if let Some((k, v)) = std::str::from_utf8(stream.key())
                        .ok()
                        .and_then(|t| t.split_once('='))
                    {
                        out.insert((k.to_string(), v.to_string()));
                    }
                }
            }
        }
        out.into_iter().collect()
    }
}

/// Escapes regex metacharacters (tantivy's regex syntax is the `regex` crate's).
pub(crate) fn regex_syntax_escape(s: &str) -> String {
    regex::escape(s)
}

/// Per stream: one document's address (to read its labels), line count and bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamStats {
    pub(crate) part: usize,
    pub(crate) doc: DocAddress,
    pub(crate) lines: u64,
    pub(crate) bytes: u64,
}

struct StreamCollector;

struct StreamSegmentCollector {
    segment: u32,
    stream: tantivy::columnar::Column<u64>,
    bytes: tantivy::columnar::Column<u64>,
    out: std::collections::HashMap<u64, (DocAddress, u64, u64)>,
}

impl tantivy::collector::Collector for StreamCollector {
    type Fruit = std::collections::HashMap<u64, (DocAddress, u64, u64)>;
    type Child = StreamSegmentCollector;

    fn for_segment(
        &self,
        segment: u32,
        reader: &tantivy::SegmentReader,
    ) -> tantivy::Result<StreamSegmentCollector> {
        let ff = reader.fast_fields();
        Ok(StreamSegmentCollector {
            segment,
            stream: ff.u64("stream")?,
            bytes: ff.u64("bytes")?,
            out: Default::default(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        let mut all: Self::Fruit = Default::default();
        for fruit in fruits {
            for (k, (doc, n, b)) in fruit {
                let e = all.entry(k).or_insert((doc, 0, 0));
                e.1 += n;
                e.2 += b;
            }
        }
        Ok(all)
    }
}

impl tantivy::collector::SegmentCollector for StreamSegmentCollector {
    type Fruit = std::collections::HashMap<u64, (DocAddress, u64, u64)>;

    fn collect(&mut self, doc: tantivy::DocId, _score: tantivy::Score) {
        let stream = self.stream.first(doc).unwrap_or_default();
        let bytes = self.bytes.first(doc).unwrap_or_default();
        let e = self
            .out
            .entry(stream)
            .or_insert((DocAddress::new(self.segment, doc), 0, 0));
        e.1 += 1;
        e.2 += bytes;
    }

    fn harvest(self) -> Self::Fruit {
        self.out
    }
}

/// Collects (ts, stream, bytes, address) of every matching document from fast fields.
struct RefCollector;

struct RefSegmentCollector {
    segment: u32,
    ts: tantivy::columnar::Column<i64>,
    stream: tantivy::columnar::Column<u64>,
    bytes: tantivy::columnar::Column<u64>,
    out: Vec<(i64, u64, u64, DocAddress)>,
}

impl tantivy::collector::Collector for RefCollector {
    type Fruit = Vec<(i64, u64, u64, DocAddress)>;
    type Child = RefSegmentCollector;

    fn for_segment(
        &self,
        segment: u32,
        reader: &tantivy::SegmentReader,
    ) -> tantivy::Result<RefSegmentCollector> {
        let ff = reader.fast_fields();
        Ok(RefSegmentCollector {
            segment,
            ts: ff.i64("ts")?,
            stream: ff.u64("stream")?,
            bytes: ff.u64("bytes")?,
            out: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

impl tantivy::collector::SegmentCollector for RefSegmentCollector {
    type Fruit = Vec<(i64, u64, u64, DocAddress)>;

    fn collect(&mut self, doc: tantivy::DocId, _score: tantivy::Score) {
        self.out.push((
            self.ts.first(doc).unwrap_or_default(),
            self.stream.first(doc).unwrap_or_default(),
            self.bytes.first(doc).unwrap_or_default(),
            DocAddress::new(self.segment, doc),
        ));
    }

    fn harvest(self) -> Self::Fruit {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LogEntry, LogStream};

    fn batch(labels: &[(&str, &str)], lines: &[(i64, &str)]) -> LogBatch {
        LogBatch {
            streams: vec![LogStream {
                labels: labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                entries: lines
                    .iter()
                    .map(|(ts, l)| LogEntry {
                        ts_ns: *ts,
                        line: l.to_string(),
                        metadata: vec![],
                    })
                    .collect(),
            }],
        }
    }

    fn count(idx: &LogIndex, q: &dyn Query) -> usize {
        idx.refs(&idx.searchers(0, 10 * DAY_NS), q, 1 << 20)
            .unwrap()
            .unwrap()
            .len()
    }

    #[test]
    fn lines_land_in_day_partitions_and_replay_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let idx = LogIndex::open(dir.path()).unwrap();
        let b = batch(&[("job", "a")], &[(5, "day zero"), (DAY_NS + 5, "day one")]);
        assert_eq!(idx.apply(1, &b).unwrap(), 2);
        idx.parts.commit(1).unwrap();
        assert_eq!(idx.parts.disk_usage().0, 2);
        drop(idx);
        let idx = LogIndex::open(dir.path()).unwrap();
        // Replaying record 1 adds nothing; record 2 is new.
        assert_eq!(idx.apply(1, &b).unwrap(), 0);
        assert_eq!(idx.apply(2, &batch(&[("job", "b")], &[(7, "more")])).unwrap(), 1);
        idx.parts.commit(2).unwrap();
        let all = idx.query(0, 10 * DAY_NS, vec![]);
        assert_eq!(count(&idx, &all), 3);
        let a = idx.query(0, 10 * DAY_NS, vec![(Occur::Must, idx.label_term("job", "a"))]);
        assert_eq!(count(&idx, &a), 2);
        assert_eq!(idx.parts.drop_before(DAY_NS).unwrap(), 1);
        assert_eq!(count(&idx, &a), 1);
    }

    #[test]
    fn needle_hints_find_words_and_word_fragments() {
        let dir = tempfile::tempdir().unwrap();
        let idx = LogIndex::open(dir.path()).unwrap();
        let lines = [
            (1, "GET /api/users 200"),
            (2, "connection refused by upstream"),
            (3, "ok"),
        ];
        idx.apply(1, &batch(&[("job", "a")], &lines)).unwrap();
        idx.parts.commit(1).unwrap();
        let hits = |needle: &str| {
            let hint = idx.needle_hint(needle).unwrap();
            count(&idx, &idx.query(0, DAY_NS, vec![(Occur::Must, hint)]))
        };
        assert_eq!(hits("refused by"), 1);
        assert_eq!(hits("nnection ref"), 1);
        assert_eq!(hits("api/us"), 1);
        assert_eq!(
            hits("Refused"),
            1,
            "hints are case-insensitive; the substring check is not"
        );
        assert_eq!(hits("nothere"), 0);
        assert_eq!(hits("200"), 1, "three-byte words are indexed");
        assert_eq!(hits("refused by up"), 1, "short words drop out of a hint");
        assert!(
            idx.needle_hint("by").is_none(),
            "a needle of short words gives no hint"
        );
    }

    /// Ids are indexed in pieces now and were indexed whole before: hints find them in both.
    #[test]
    fn needle_hints_find_ids_and_id_fragments_in_new_and_old_partitions() {
        fn old_words(index: &Index) {
            index.tokenizers().register(WORDS, words::words());
        }
        let lines = [
            (1, "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 done"),
            (2, "req 0123456789abcdef ok"),
            (3, "other 4bf92f3577b34da6ffffffffffffffff"),
            (4, "unrelated text 500 errors added"),
        ];
        let fresh: fn(&Index) = setup;
        for (kind, setup) in [("pieces", fresh), ("whole ids", old_words)] {
            let dir = tempfile::tempdir().unwrap();
            let idx = LogIndex::open_with(dir.path(), setup).unwrap();
            idx.apply(1, &batch(&[("job", "a")], &lines)).unwrap();
            idx.parts.commit(1).unwrap();
            let hits = |needle: &str| {
                let hint = idx.needle_hint(needle).unwrap();
                let refs = idx
                    .refs(
                        &idx.searchers(0, DAY_NS),
                        &idx.query(0, DAY_NS, vec![(Occur::Must, hint)]),
                        100,
                    )
                    .unwrap()
                    .unwrap();
                let mut ts: Vec<i64> = refs.iter().map(|r| r.ts_ns).collect();
                ts.sort();
                ts
            };
            let cases: &[(&str, &[i64])] = &[
                ("4bf92f3577b34da6a3ce929d0e0e4736", &[1]),
                (" 4bf92f3577b34da6a3ce929d0e0e4736 ", &[1]),
                ("=4bf92f3577b34da6a3ce9", &[1]),
                ("4bf92f3577b34da6", &[1, 3]),
                ("92f3577b", &[1, 3]),
                ("e0e4736", &[1]),
                ("ce929d0e0e4736 done", &[1]),
                ("req 0123456789ab", &[2]),
                ("23456789abcdef ok", &[2]),
                ("500", &[4]),
                ("added", &[4]),
                ("ffffffffff", &[3]),
            ];
            for (needle, want) in cases {
                assert_eq!(hits(needle), *want, "{kind}: needle {needle:?}");
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// A hint never leaves out a line that holds the needle, whatever ids the lines hold
        /// and wherever the needle cuts them.
        #[test]
        fn needle_hints_keep_every_line_that_holds_the_needle(
            lines in proptest::collection::vec("(([0-9a-fA-F]{1,40}|[a-z]{1,6}|req|id)[ =:./-]{1,2}){1,6}", 1..40),
            picks in proptest::collection::vec((0usize..1000, 0usize..1000, 1usize..40), 1..30),
            old in proptest::bool::ANY,
        ) {
            fn old_words(index: &Index) {
                index.tokenizers().register(WORDS, words::words());
            }
            let dir = tempfile::tempdir().unwrap();
            let idx = LogIndex::open_with(dir.path(), if old { old_words } else { setup }).unwrap();
            let entries: Vec<(i64, &str)> = lines.iter().enumerate().map(|(i, l)| (i as i64, l.as_str())).collect();
            idx.apply(1, &batch(&[("job", "a")], &entries)).unwrap();
            idx.parts.commit(1).unwrap();
            for (line, from, len) in picks {
                let line = &lines[line % lines.len()];
                let from = from % line.len();
                let needle = &line[from..(from + len).min(line.len())];
                let Some(hint) = idx.needle_hint(needle) else { continue };
                let query = idx.query(0, DAY_NS, vec![(Occur::Must, hint)]);
                let found: std::collections::HashSet<i64> = idx
                    .refs(&idx.searchers(0, DAY_NS), &query, 1000).unwrap().unwrap()
                    .iter().map(|r| r.ts_ns).collect();
                for (ts, l) in &entries {
                    if l.contains(needle) {
                        proptest::prop_assert!(found.contains(ts), "needle {needle:?} misses line {l:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn label_terms_list_names_and_values() {
        let dir = tempfile::tempdir().unwrap();
        let idx = LogIndex::open(dir.path()).unwrap();
        idx.apply(1, &batch(&[("job", "a"), ("level", "info")], &[(1, "x")]))
            .unwrap();
        idx.apply(2, &batch(&[("job", "b")], &[(2, "y")])).unwrap();
        idx.parts.commit(2).unwrap();
        let values = idx.label_terms(0, DAY_NS, Some("job"));
        assert_eq!(values, [("job".into(), "a".into()), ("job".into(), "b".into())]);
        assert_eq!(idx.label_terms(0, DAY_NS, None).len(), 3);
        let re = idx.label_regex("job", "a|c").unwrap();
        assert_eq!(count(&idx, &idx.query(0, DAY_NS, vec![(Occur::Must, re)])), 1);
    }
}
