//! Logs on disk: tantivy indexes per UTC day, fed from the WAL in sequence order.
//!
//! # Layout
//!
//! ```text
//! <data_dir>/logs/v6/<YYYY-MM-DD>/      a tantivy index holding the lines whose time is that day
//!     meta.json                         tantivy's; its commit payload is {"wal_seq": N}: every WAL
//!                                       record with seq <= N is in this index
//! ```
//!
//! The directory names the log schema, version 6: the one schema of this release. Until the
//! first release a format changes in place; after it, a change ships with a reader of the
//! previous version or a migration (ARCHITECTURE.md). Directories of the schemas that builds
//! before 0.1.0 wrote (`logs/v1` to `logs/v5`) are refused at start with what to do.
//!
//! # Schema
//!
//! One document per **block**: up to [`BLOCK_LINES`] lines (and about [`BLOCK_BYTES`]) of one
//! stream from one WAL record, all of one day. Postings are per block, so a word common to the
//! block's lines is indexed once, not once per line.
//!
//! | field    | type  | options                 | holds                                           |
//! |----------|-------|-------------------------|-------------------------------------------------|
//! | `ts`     | i64   | fast                    | each line's time in Unix ns, in line order      |
//! | `stream` | u64   | fast, stored            | FNV-1a 64 of the sorted `name=value\0` labels   |
//! | `label`  | text  | raw terms               | one term `name=value` per stream label          |
//! | `labels` | text  | stored                  | the stream labels as a JSON object              |
//! | `line`   | text  | `obs_block_words_v5`, stored | the lines, each followed by `\n`: each distinct word indexed once, ids and numbers only by marks (`words.rs`) |
//! | `meta`   | text  | stored                  | absent if no line has structured metadata, else each line's as JSON `[[[name, value]]]` (1) |
//! | `bytes`  | u64   | fast                    | each line's length in bytes, in line order: where `line` is cut (lines may hold `\n`) |
//! | `text`   | text  | stored                  | reserved, never written (its place keeps the field ids below) |
//! | `ts_min`, `ts_max` | i64 | fast          | the time of the block's first and last line      |
//! | `bloom`  | u64   | fast                    | the block's bloom filter: the pieces and starts of its ids, the windows of its numbers (`logs/bloom.rs`) |
//! | `level`  | u64   | fast                    | each line's detected level, in line order (2) |
//!
//! (1) Without `detected_level`: it is derived from the line when read (`model.rs`).
//! (2) [`LEVELS`]`[code - 1]`: the `detected_level` a line without a level label or level
//! metadata gets; 0 for the others. Metric queries count by level from it without reading
//! lines (Grafana's logs volume, `sum by (level, detected_level) (count_over_time(...))`).
//!
//! A time range selects blocks by `ts_min` and `ts_max` (a scan of one value per block, not one
//! per line); the lines in range are then picked from `ts`. A block's stored document is its
//! text in one value, its labels and, rarely, metadata: times and sizes are read from the fast
//! fields (`read.rs`).
//!
//! A needle (`|= "..."`) becomes a query over the index ([`LogIndex::needle_hint`]): its words
//! in the postings, its ids' pieces and its numbers' windows in the blocks' bloom filters; the
//! words of the index (pieces, windows, runs, marks) are defined in `words.rs`.
//!
//! # Durability
//!
//! Partitioning, commit payloads and replay are `partitions.rs`'s: lines are added after their
//! WAL record is durable, committed every [`COMMIT_INTERVAL`](crate::ingest::COMMIT_INTERVAL),
//! and replay neither loses nor duplicates them.

mod bloom;
mod matched;
mod read;

use std::path::Path;

use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RegexQuery, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, FAST, STORED, STRING,
};
use tantivy::{Index, Searcher, TantivyDocument, Term};

use crate::model::{Labels, LogBatch, LogEntry};
use crate::words;

pub(crate) use crate::partitions::IndexError;
use crate::partitions::{Partitions, DAY_NS};
pub(crate) use matched::Matched;
pub(crate) use read::{BlocksInOrder, LineAddr, LineReader, LineRef, StreamStats};

/// The directory of the partitions under `<data_dir>/logs`: the schema's version.
const SCHEMA_DIR: &str = "v6";
/// Directories of the log schemas written before 0.1.0's was settled: refused at start.
const OLD_SCHEMA_DIRS: [&str; 5] = ["v1", "v2", "v3", "v4", "v5"];

/// The levels `detect_level` finds, by `level` column code - 1.
pub(crate) const LEVELS: [&str; 7] = ["unknown", "trace", "debug", "info", "warn", "error", "critical"];

/// Every line's `level` column code, in stream and line order: computed once per batch, on
/// the request's task, and shared by the index and error tracking.
pub(crate) fn level_codes(batch: &LogBatch) -> Vec<u8> {
    batch
        .streams
        .iter()
        .flat_map(|s| {
            let labelled = s.labels.contains_key("level");
            s.entries
                .iter()
                .map(move |e| if labelled { 0 } else { level_code(e) })
        })
        .collect()
}

/// The `level` column code (see the schema) of a line whose stream has no `level` label: its
/// detected level, or 0 when its metadata holds a level.
fn level_code(entry: &LogEntry) -> u8 {
    if entry
        .metadata
        .iter()
        .any(|(k, _)| k == "level" || k == "detected_level")
    {
        return 0;
    }
    let level = crate::model::detect_level(&entry.line);
    LEVELS.iter().position(|l| *l == level).map_or(0, |i| i as u8 + 1)
}
/// The tokenizer of `line` ([`words::block_analyzer`]); partitions name it in their schema.
const LINE_WORDS: &str = "obs_block_words_v5";

/// Most lines in a block. Larger blocks index a common word once for more lines, and a
/// needle search reads more lines per block that may hold it: in `store-bench`, 256 lines
/// took ~10% less ingest CPU than 128 for about the same needle latency (a block is read in
/// one value).
const BLOCK_LINES: usize = 256;
/// A block ends once its lines reach this many bytes.
const BLOCK_BYTES: usize = 64 << 10;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    pub(crate) ts: Field,
    pub(crate) stream: Field,
    pub(crate) label: Field,
    pub(crate) labels: Field,
    pub(crate) line: Field,
    pub(crate) meta: Field,
    pub(crate) bytes: Field,
    /// The times of a block's first and last line.
    pub(crate) ts_min: Field,
    pub(crate) ts_max: Field,
    /// The block's bloom filter.
    pub(crate) bloom: Field,
    /// Each line's detected level code.
    pub(crate) level: Field,
}

/// The schema of the partitions and its fields.
fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let words = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(LINE_WORDS)
                .set_index_option(IndexRecordOption::Basic),
        )
        .set_stored();
    let ts = b.add_i64_field("ts", FAST);
    let stream = b.add_u64_field("stream", FAST | STORED);
    let label = b.add_text_field("label", STRING);
    let labels = b.add_text_field("labels", STORED);
    let line = b.add_text_field("line", words);
    let meta = b.add_text_field("meta", STORED);
    let bytes = b.add_u64_field("bytes", FAST);
    b.add_text_field("text", STORED);
    let fields = Fields {
        ts,
        stream,
        label,
        labels,
        line,
        meta,
        bytes,
        ts_min: b.add_i64_field("ts_min", FAST),
        ts_max: b.add_i64_field("ts_max", FAST),
        bloom: b.add_u64_field(bloom::FIELD, FAST),
        level: b.add_u64_field("level", FAST),
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

/// One line read back from the index, borrowed from its [`LineReader`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct LogHit<'a> {
    pub(crate) ts_ns: i64,
    pub(crate) stream: u64,
    pub(crate) labels: &'a Labels,
    pub(crate) line: &'a str,
    pub(crate) metadata: &'a [(String, String)],
}

/// Day-partitioned log indexes.
#[derive(Debug)]
pub(crate) struct LogIndex {
    parts: Partitions,
    pub(crate) fields: Fields,
}

fn setup(index: &Index) {
    index.tokenizers().register(LINE_WORDS, words::block_analyzer());
}

/// The blocks of a stream's entries: runs of at most [`BLOCK_LINES`] lines and about
/// [`BLOCK_BYTES`], each within one day.
fn blocks(entries: &[LogEntry]) -> impl Iterator<Item = &[LogEntry]> {
    let mut rest = entries;
    std::iter::from_fn(move || {
        let first = rest.first()?;
        let day = first.ts_ns.div_euclid(DAY_NS);
        let mut bytes = 0;
        let mut n = 0;
        while n < rest.len().min(BLOCK_LINES)
            && bytes < BLOCK_BYTES
            && rest[n].ts_ns.div_euclid(DAY_NS) == day
        {
            bytes += rest[n].line.len();
            n += 1;
        }
        let (block, tail) = rest.split_at(n);
        rest = tail;
        Some(block)
    })
}

impl LogIndex {
    /// Opens every partition under `<data_dir>/logs`; refuses partitions of an older schema.
    pub(crate) fn open(data_dir: &Path) -> Result<LogIndex, IndexError> {
        let logs = data_dir.join("logs");
        for old in OLD_SCHEMA_DIRS {
            let path = logs.join(old);
            if path.is_dir() {
                return Err(IndexError::OldSchema { path, version: old });
            }
        }
        let (schema, fields) = schema();
        let parts = Partitions::open(logs.join(SCHEMA_DIR), schema, setup)?;
        Ok(LogIndex { parts, fields })
    }

    /// Adds the lines of WAL record `seq` to their partitions, skipping partitions that
    /// already hold it. Returns how many lines were added.
    /// `levels` are the lines' [`level_codes`].
    pub(crate) fn apply_with_levels(
        &self,
        seq: u64,
        batch: &LogBatch,
        levels: &[u8],
    ) -> Result<usize, IndexError> {
        let f = self.fields;
        let mut adder = self.parts.adder();
        let mut added = 0;
        let mut hashes = Vec::new();
        let mut line_no = 0;
        for stream in &batch.streams {
            let id = stream_id(&stream.labels);
            let labels_json = serde_json::to_string(&stream.labels).expect("labels serialize");
            let label_terms: Vec<String> = stream.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            for block in blocks(&stream.entries) {
                let mut text = String::with_capacity(block.iter().map(|e| e.line.len() + 1).sum());
                for e in block {
                    text.push_str(&e.line);
                    text.push('\n');
                }
                let filter = bloom::build(&text, &mut hashes);
                // Room for the values at once: the document's buffer grew by doubling, copying
                // the block's text each time. (Numbers take up to 10 bytes, texts 9 plus their
                // bytes; the label terms are about as long as their JSON.)
                let numbers = 2 * block.len() + label_terms.len() + filter.len();
                let room = text.len() + 2 * labels_json.len() + 16 * numbers + 64;
                let mut doc = TantivyDocument::with_capacity(room);
                let times = block.iter().map(|e| e.ts_ns);
                doc.add_i64(f.ts_min, times.clone().min().expect("blocks are not empty"));
                doc.add_i64(f.ts_max, times.max().expect("blocks are not empty"));
                for e in block {
                    doc.add_i64(f.ts, e.ts_ns);
                    doc.add_u64(f.bytes, e.line.len() as u64);
                    doc.add_u64(f.level, u64::from(levels.get(line_no).copied().unwrap_or(0)));
                    line_no += 1;
                }
                doc.add_u64(f.stream, id);
                for term in &label_terms {
                    doc.add_text(f.label, term);
                }
                doc.add_text(f.labels, &labels_json);
                for word in filter {
                    doc.add_u64(f.bloom, word);
                }
                doc.add_text(f.line, &text);
                if block.iter().any(|e| !e.metadata.is_empty()) {
                    let metadata: Vec<_> = block.iter().map(|e| &e.metadata).collect();
                    let json = serde_json::to_string(&metadata).expect("metadata serializes");
                    doc.add_text(f.meta, json);
                }
                if adder.add(block[0].ts_ns, seq, doc)? {
                    added += block.len();
                }
            }
        }
        Ok(added)
    }

    /// [`apply_with_levels`](Self::apply_with_levels), finding the levels.
    #[cfg(test)]
    pub(crate) fn apply(&self, seq: u64, batch: &LogBatch) -> Result<usize, IndexError> {
        self.apply_with_levels(seq, batch, &level_codes(batch))
    }

    /// Commits new lines (see [`Partitions::commit`]).
    pub(crate) fn commit(&self, applied_through: u64) -> Result<(), IndexError> {
        self.parts.commit(applied_through)
    }

    /// Commits and closes writers (see [`Partitions::quiesce`]).
    pub(crate) fn quiesce(&self, applied_through: u64) -> Result<(), IndexError> {
        self.parts.quiesce(applied_through)
    }

    /// Deletes the partitions of days that ended before `cutoff_ns`; returns how many.
    pub(crate) fn drop_before(&self, cutoff_ns: i64) -> Result<usize, IndexError> {
        self.parts.drop_before(cutoff_ns)
    }

    /// The last WAL record the partitions hold.
    pub(crate) fn max_committed_seq(&self) -> u64 {
        self.parts.max_committed_seq()
    }

    /// (partitions, bytes on disk), for `/metrics`.
    pub(crate) fn disk_usage(&self) -> (usize, u64) {
        self.parts.disk_usage()
    }

    /// Searchers for the partitions that may hold lines in `[start_ns, end_ns)`, oldest first.
    pub(crate) fn searchers(&self, start_ns: i64, end_ns: i64) -> Vec<Searcher> {
        self.parts.searchers(start_ns, end_ns)
    }

    /// A reader of lines in one of [`searchers`](Self::searchers)'s partitions.
    pub(crate) fn reader<'a>(&self, searcher: &'a Searcher) -> LineReader<'a> {
        LineReader::new(self.fields, searcher)
    }

    /// The blocks of `matched` in `searcher`'s partition in the order a query for the lines in
    /// `range` reads them (see [`BlocksInOrder`]).
    pub(crate) fn blocks_in_order(
        &self,
        searcher: &Searcher,
        matched: &Matched,
        range: (i64, i64),
        backward: bool,
    ) -> tantivy::Result<BlocksInOrder> {
        BlocksInOrder::open(searcher, matched, range, backward)
    }

    /// A query for `[start_ns, end_ns)` and the given extra clauses (selector, line hints).
    pub(crate) fn query(
        &self,
        start_ns: i64,
        end_ns: i64,
        clauses: Vec<(Occur, Box<dyn Query>)>,
    ) -> BooleanQuery {
        let range = read::TimeRange {
            lo: start_ns,
            hi: end_ns,
        };
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
            // An id is not a word of the postings, and neither is an id cut on the left: it
            // may be inside a longer word, whose hex runs are cut like ids (a pattern would
            // scan the whole term dictionary for nothing).
            let word: Option<Box<dyn Query>> = match (open_left, open_right) {
                (true, _) if words::is_id(&text) => None,
                (false, false) => Some(Box::new(self.word_term(&text))),
                (false, true) => Some(Box::new(self.word_regex(&format!("{escaped}.*"))?)),
                (true, false) => Some(Box::new(self.word_regex(&format!(".*{escaped}"))?)),
                (true, true) => Some(Box::new(self.word_regex(&format!(".*{escaped}.*"))?)),
            };
            // A line word that is an id, or a hex run, holds the needle word in pieces.
            let id: Option<Box<dyn Query>> = match (open_left, open_right) {
                _ if !words::is_hex(&text) => None,
                (false, false) => words::is_id(&text).then(|| self.pieces(&text, true)),
                _ => Some(self.pieces(&text, !open_left)),
            };
            // The needle word may also be inside a word too long to be indexed.
            let mut any: Vec<(Occur, Box<dyn Query>)> =
                word.into_iter().map(|w| (Occur::Should, w)).collect();
            any.extend(id.map(|id| (Occur::Should, id)));
            let number = self.number(&text, open_left || open_right, !open_left);
            any.extend(number.map(|n| (Occur::Should, n)));
            any.push((Occur::Should, Box::new(self.word_term(words::HAS_LONG))));
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        }
        (!clauses.is_empty()).then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>)
    }

    /// Blocks whose numbers may hold the needle word `digits` (`open`: cut by the needle's
    /// edge, so maybe part of a longer number; `at_start`: not cut on the left): of 4 digits
    /// or more, by its windows (and numbers' first windows); of 3 cut by an edge, only the
    /// blocks with numbers at all.
    fn number(&self, digits: &str, open: bool, at_start: bool) -> Option<Box<dyn Query>> {
        if digits.len() >= words::MIN_ID_BYTES || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let numbers = self.word_term(words::HAS_NUMBERS);
        if digits.len() < words::MIN_NUMBER_BYTES {
            return open.then(|| Box::new(numbers) as Box<dyn Query>);
        }
        Some(Box::new(BooleanQuery::new(vec![
            (Occur::Must, Box::new(numbers)),
            (Occur::Must, Box::new(bloom::Bloom::of_number(digits, at_start))),
        ])))
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

    /// The blocks whose filter may hold the whole pieces of `fragment` of an id at some offset
    /// from a piece's start (only 0 with `at_start`) or, if at some offset it holds none, the
    /// blocks with ids at all.
    fn pieces(&self, fragment: &str, at_start: bool) -> Box<dyn Query> {
        match bloom::Bloom::of_fragment(fragment, at_start) {
            Some(bloom) => Box::new(bloom),
            None => Box::new(self.word_term(words::HAS_IDS)),
        }
    }

    /// Every line in `[lo, hi)` of the documents matching `query` as refs (time, stream,
    /// size); `Err(count)` past `max`.
    pub(crate) fn refs(
        &self,
        searchers: &[Searcher],
        query: &dyn Query,
        range: (i64, i64),
        max: usize,
    ) -> Result<Result<Vec<LineRef>, usize>, tantivy::TantivyError> {
        let mut out = Vec::new();
        for (part, searcher) in searchers.iter().enumerate() {
            let found = searcher.search(query, &read::AllLines(range))?;
            for (ts_ns, stream, bytes, addr) in found {
                out.push(LineRef {
                    ts_ns,
                    stream,
                    bytes,
                    addr,
                    part,
                });
            }
            if out.len() > max {
                return Ok(Err(out.len()));
            }
        }
        Ok(Ok(out))
    }

    /// Streams with lines in `[lo, hi)` in the documents matching `query`, with their line
    /// counts and bytes, per (partition, stream).
    pub(crate) fn stream_stats(
        &self,
        searchers: &[Searcher],
        query: &dyn Query,
        range: (i64, i64),
    ) -> Result<Vec<(u64, StreamStats)>, tantivy::TantivyError> {
        let mut out = Vec::new();
        for (part, searcher) in searchers.iter().enumerate() {
            for (stream, (addr, lines, bytes)) in searcher.search(query, &read::StreamLines(range))? {
                out.push((
                    stream,
                    StreamStats {
                        part,
                        addr,
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

#[cfg(test)]
mod tests;
