//! Logs on disk: tantivy indexes per UTC day, fed from the WAL in sequence order.
//!
//! # Layout (version 5)
//!
//! ```text
//! <data_dir>/logs/v5/<YYYY-MM-DD>/      a tantivy index holding the lines whose time is that day
//!     meta.json                         tantivy's; its commit payload is {"wal_seq": N}: every WAL
//!                                       record with seq <= N is in this index
//! <data_dir>/logs/v4/<YYYY-MM-DD>/      version 4 partitions (2026-12-02): read, never written
//! <data_dir>/logs/v3/<YYYY-MM-DD>/      version 3 partitions (2026-12-01 to 02): read, never written
//! <data_dir>/logs/v2/<YYYY-MM-DD>/      version 2 partitions (2026-12-01): read, never written
//! <data_dir>/logs/v1/<YYYY-MM-DD>/      version 1 partitions (before 2026-12): read, never written
//! ```
//!
//! Schema v5, one document per **block**: up to [`BLOCK_LINES`] lines (and about
//! [`BLOCK_BYTES`]) of one stream from one WAL record, all of one day. Postings are per block,
//! so a word common to the block's lines is indexed once, not once per line: that was most
//! of the indexing work when each line was a document.
//!
//! | field    | type  | options                 | holds                                           |
//! |----------|-------|-------------------------|-------------------------------------------------|
//! | `ts`     | i64   | fast                    | each line's time in Unix ns, in line order      |
//! | `stream` | u64   | fast, stored            | FNV-1a 64 of the sorted `name=value\0` labels   |
//! | `label`  | text  | raw terms               | one term `name=value` per stream label          |
//! | `labels` | text  | stored                  | the stream labels as a JSON object              |
//! | `line`   | text  | `obs_block_words_v5`, stored | the lines, each followed by `\n`; each distinct word indexed once, ids and numbers of 4 to 7 digits only by marks (`words.rs`) |
//! | `meta`   | text  | stored                  | absent if no line has structured metadata, else each line's as JSON `[[[name, value]]]` (1) |
//! | `bytes`  | u64   | fast                    | each line's length in bytes, in line order: where `line` is cut (lines may hold `\n`) |
//! | `text`   | text  | stored                  | unused (v2's lines)                             |
//! | `ts_min`, `ts_max` | i64 | fast          | the time of the block's first and last line      |
//! | `bloom`  | u64   | fast                    | the bloom filter of the pieces of the block's ids and the windows of its numbers (`logs/bloom.rs`) |
//!
//! (1) Without `detected_level`: it is derived from the line when read (`model.rs`). Lines
//! stored before 2026-12 hold it.
//!
//! A time range selects blocks by `ts_min` and `ts_max` (a scan of one value per block, not one
//! per line); the lines in range are then picked from `ts`.
//!
//! A block's stored document is its text in one value, its labels and, rarely, metadata: times
//! and sizes are read from the fast fields. (Schema v2 stored each line, time and metadata as a
//! value of its own: reading them back was most of a needle search's time per block, and
//! storing them a tenth of ingest; the times were also an eighth of the index.)
//!
//! Schema v4 was v5 but for `line`'s tokenizer, `obs_block_words_v4`, which indexes numbers as
//! words, and filters without numbers. (Numbers were a third of ingest CPU: each a lookup in
//! a term table too large for the cache, like ids before.)
//!
//! Schema v3 was v4 but for: no `bloom`, and `line` tokenized by `obs_block_words`, which
//! indexes the pieces of ids as words.
//!
//! Schema v2 was v3 but for: `ts` also stored, `line` not stored, each line stored as a `text`
//! value and each line's metadata as a `meta` value (JSON `[[name, value]]` or empty).
//!
//! Schema v1 was one document per line: `ts` fast and stored (partitions before 2026-12 also
//! index it), `line` stored as well as indexed, `meta` only when the line has metadata, and
//! no `text`, `ts_min` or `ts_max`.
//!
//! The fields all schemas share have the same ids, so one query answers all (the pieces of a
//! needle's ids are looked up in filters or postings, per segment: `logs/bloom.rs`); `read.rs`
//! reads each version's documents as blocks (a v1 document as a block of one line).
//!
//! # Durability
//!
//! Partitioning, commit payloads and replay are `partitions.rs`'s: lines are added after their
//! WAL record is durable, committed every [`COMMIT_INTERVAL`](crate::ingest::COMMIT_INTERVAL),
//! and replay neither loses nor duplicates them. Records that partitions of older versions
//! already hold are not replayed into v5 ones.

mod bloom;
mod matched;
mod read;
mod unmarked;

use std::path::Path;

use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RegexQuery, TermQuery};
use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST, STORED, STRING,
};
use tantivy::{Index, Searcher, TantivyDocument, Term};

use crate::model::{Labels, LogBatch, LogEntry};
use crate::words;

pub(crate) use crate::partitions::IndexError;
use crate::partitions::{Partitions, DAY_NS};
pub(crate) use matched::Matched;
pub(crate) use read::{BlocksInOrder, LineAddr, LineReader, LineRef, StreamStats};
use unmarked::Unmarked;

/// The tokenizer of `line` in v1 partitions (one line per document).
const WORDS: &str = "obs_words";
/// The tokenizer of `line` in v2 and v3 partitions (a block of lines per document).
const BLOCK_WORDS: &str = "obs_block_words";
/// The tokenizer of `line` in v4 partitions (ids' pieces in bloom filters, not postings).
const BLOCK_WORDS_V4: &str = "obs_block_words_v4";
/// The tokenizer of `line` in v5 partitions (numbers' windows in bloom filters too).
const BLOCK_WORDS_V5: &str = "obs_block_words_v5";

/// Schema versions, oldest first; new lines go to partitions of the last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Version {
    V1,
    V2,
    V3,
    V4,
    V5,
}

impl Version {
    const ALL: [Version; 5] = [Version::V1, Version::V2, Version::V3, Version::V4, Version::V5];
    const CURRENT: Version = Version::V5;

    /// The directory of this version's partitions under `<data_dir>/logs`.
    fn dir(self) -> &'static str {
        match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
            Version::V3 => "v3",
            Version::V4 => "v4",
            Version::V5 => "v5",
        }
    }

    /// The version of a partition, from its schema.
    pub(crate) fn of(schema: &Schema) -> Version {
        match (schema.get_field("text"), schema.get_field("ts")) {
            (Err(_), _) => Version::V1,
            (Ok(_), Ok(ts)) if schema.get_field_entry(ts).is_stored() => Version::V2,
            _ if schema.get_field(bloom::FIELD).is_err() => Version::V3,
            _ if tokenizer_of_line(schema) == Some(BLOCK_WORDS_V5) => Version::V5,
            _ => Version::V4,
        }
    }
}

/// The tokenizer that indexes `line`.
fn tokenizer_of_line(schema: &Schema) -> Option<&str> {
    let line = schema.get_field("line").ok()?;
    match schema.get_field_entry(line).field_type() {
        tantivy::schema::FieldType::Str(options) => Some(options.get_indexing_options()?.tokenizer()),
        _ => None,
    }
}

/// Most lines in a block. Larger blocks index a common word once for more lines, and a
/// needle search reads more lines per block that may hold it: in `store-bench`, 256 lines
/// took ~10% less ingest CPU than 128 for about the same needle latency (v3 reads a block
/// in one value).
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
    /// The lines of a block (v2).
    pub(crate) text: Field,
    /// The times of a block's first and last line (v2).
    pub(crate) ts_min: Field,
    pub(crate) ts_max: Field,
    /// The bloom filter of the block's id pieces (v4) and numbers' windows (v5).
    pub(crate) bloom: Field,
}

/// The schema of `version`'s partitions and its fields.
fn schema(version: Version) -> (Schema, Fields) {
    let v1 = version == Version::V1;
    let mut b = Schema::builder();
    let tokenizer = match version {
        Version::V1 => WORDS,
        Version::V2 | Version::V3 => BLOCK_WORDS,
        Version::V4 => BLOCK_WORDS_V4,
        Version::V5 => BLOCK_WORDS_V5,
    };
    let mut words = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(tokenizer)
            .set_index_option(IndexRecordOption::Basic),
    );
    let ts: NumericOptions = match version {
        Version::V3 | Version::V4 | Version::V5 => FAST.into(),
        Version::V1 | Version::V2 => (FAST | STORED).into(),
    };
    if version != Version::V2 {
        words = words.set_stored();
    }
    let fields = Fields {
        ts: b.add_i64_field("ts", ts),
        stream: b.add_u64_field("stream", FAST | STORED),
        label: b.add_text_field("label", STRING),
        labels: b.add_text_field("labels", STORED),
        line: b.add_text_field("line", words),
        meta: b.add_text_field("meta", STORED),
        bytes: b.add_u64_field("bytes", FAST),
        // Fields since v2 (`text` only in v2): placeholders in v1, whose fields are never
        // written.
        text: only_if(!v1, || b.add_text_field("text", STORED)),
        ts_min: only_if(!v1, || b.add_i64_field("ts_min", FAST)),
        ts_max: only_if(!v1, || b.add_i64_field("ts_max", FAST)),
        bloom: only_if(version >= Version::V4, || b.add_u64_field(bloom::FIELD, FAST)),
    };
    (b.build(), fields)
}

/// The field `add` adds, or if not `present` a placeholder (never written).
fn only_if(present: bool, add: impl FnOnce() -> Field) -> Field {
    if present {
        add()
    } else {
        Field::from_field_id(u32::MAX)
    }
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
    /// Partitions of the current version: all writes go here.
    parts: Partitions,
    /// Partitions of older versions, if any are left, and the last WAL record they hold.
    old: Vec<(Partitions, u64)>,
    pub(crate) fields: Fields,
    /// The version of `parts`: whether blocks get bloom filters of their id pieces (v4) and
    /// numbers (v5).
    version: Version,
}

fn setup(index: &Index) {
    index.tokenizers().register(WORDS, words::analyzer());
    index
        .tokenizers()
        .register(BLOCK_WORDS, words::block_analyzer_v3());
    index
        .tokenizers()
        .register(BLOCK_WORDS_V4, words::block_analyzer_v4());
    index
        .tokenizers()
        .register(BLOCK_WORDS_V5, words::block_analyzer());
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
    /// Opens every partition under `<data_dir>/logs`.
    pub(crate) fn open(data_dir: &Path) -> Result<LogIndex, IndexError> {
        Self::open_with(data_dir, setup, Version::CURRENT)
    }

    /// Opens the partitions, writing those of `current` (tests write older versions too).
    fn open_with(data_dir: &Path, setup: fn(&Index), current: Version) -> Result<LogIndex, IndexError> {
        let dir = |v: Version| data_dir.join("logs").join(v.dir());
        let (schema_now, fields) = schema(current);
        let parts = Partitions::open(dir(current), schema_now, setup)?;
        let mut old = Vec::new();
        for v in Version::ALL.into_iter().filter(|v| *v != current) {
            if dir(v).is_dir() {
                let parts = Partitions::open(dir(v), schema(v).0, setup)?;
                let through = parts.max_committed_seq();
                old.push((parts, through));
            }
        }
        Ok(LogIndex {
            parts,
            old,
            fields,
            version: current,
        })
    }

    /// Adds the lines of WAL record `seq` to their partitions, skipping partitions that
    /// already hold it. Returns how many lines were added.
    pub(crate) fn apply(&self, seq: u64, batch: &LogBatch) -> Result<usize, IndexError> {
        if self.old.iter().any(|(_, through)| seq <= *through) {
            return Ok(0);
        }
        let f = self.fields;
        let mut adder = self.parts.adder();
        let mut added = 0;
        let mut hashes = Vec::new();
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
                let filter = match self.version {
                    Version::V1 | Version::V2 | Version::V3 => Vec::new(),
                    Version::V4 => bloom::build(&text, false, &mut hashes),
                    Version::V5 => bloom::build(&text, true, &mut hashes),
                };
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
        let mut dropped = self.parts.drop_before(cutoff_ns)?;
        for (parts, _) in &self.old {
            dropped += parts.drop_before(cutoff_ns)?;
        }
        Ok(dropped)
    }

    /// The last WAL record the partitions hold.
    pub(crate) fn max_committed_seq(&self) -> u64 {
        let old = self.old.iter().map(|(_, through)| *through);
        old.fold(self.parts.max_committed_seq(), u64::max)
    }

    /// (partitions, bytes on disk), for `/metrics`.
    pub(crate) fn disk_usage(&self) -> (usize, u64) {
        let all = std::iter::once(&self.parts).chain(self.old.iter().map(|(parts, _)| parts));
        all.map(Partitions::disk_usage)
            .fold((0, 0), |(n, bytes), (n1, bytes1)| (n + n1, bytes + bytes1))
    }

    /// Searchers for the partitions that may hold lines in `[start_ns, end_ns)`, oldest first
    /// (of one day, the oldest version's partition first: it was written before the upgrades).
    pub(crate) fn searchers(&self, start_ns: i64, end_ns: i64) -> Vec<Searcher> {
        let mut all = Vec::new();
        for (parts, _) in &self.old {
            all.extend(parts.day_searchers(start_ns, end_ns));
        }
        all.extend(self.parts.day_searchers(start_ns, end_ns));
        // A stable sort: of one day, old versions stay first.
        all.sort_by_key(|(day, _)| *day);
        all.into_iter().map(|(_, s)| s).collect()
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
            let word: Box<dyn Query> = match (open_left, open_right) {
                (false, false) => Box::new(self.word_term(&text)),
                (false, true) => Box::new(self.word_regex(&format!("{escaped}.*"))?),
                (true, false) => Box::new(self.word_regex(&format!(".*{escaped}"))?),
                (true, true) => Box::new(self.word_regex(&format!(".*{escaped}.*"))?),
            };
            // An id cut on the left may be inside a longer word: where hex runs inside words
            // are cut too, its pieces find it there, and the pattern (a scan of the whole term
            // dictionary) is only needed on segments with older documents.
            let word: Box<dyn Query> = if open_left && words::is_id(&text) {
                Box::new(Unmarked {
                    mark: Term::from_field_text(self.fields.line, words::RUNS_CUT),
                    inner: word,
                })
            } else {
                word
            };
            // In newer partitions, a line word that is an id holds the needle word in pieces.
            let id: Option<Box<dyn Query>> = if !words::is_hex(&text) {
                None
            } else if !open_left && !open_right {
                words::is_id(&text).then(|| self.id_pieces(&text))
            } else {
                Some(self.id_fragment(&text, !open_left)?)
            };
            // The needle word may also be inside a word too long to be indexed.
            let mut any = vec![(Occur::Should, word)];
            any.extend(id.map(|id| (Occur::Should, id)));
            let number = self.number(&text, open_left || open_right, !open_left);
            any.extend(number.map(|n| (Occur::Should, n)));
            any.push((Occur::Should, Box::new(self.word_term(words::HAS_LONG))));
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        }
        (!clauses.is_empty()).then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>)
    }

    /// In v5 partitions, blocks whose numbers may hold the needle word `digits` (`open`: cut by
    /// the needle's edge, so maybe part of a longer number; `at_start`: not cut on the left):
    /// of 4 digits or more, by its windows (and numbers' first windows); of 3 cut by an edge,
    /// only the blocks with numbers at all. Older partitions index numbers as words, and have
    /// no [`words::HAS_NUMBERS`].
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

    /// Lines holding the whole id `id`: all of its pieces.
    fn id_pieces(&self, id: &str) -> Box<dyn Query> {
        let mut analyzer = words::analyzer();
        let mut stream = analyzer.token_stream(id);
        let mut pieces: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        while let Some(t) = stream.next() {
            pieces.push((Occur::Must, Box::new(self.word_term(&t.text))));
        }
        self.pieces(id, true, Box::new(BooleanQuery::new(pieces)))
    }

    /// `postings` (pieces as v3 partitions index them) on segments without bloom filters; on
    /// those with, the blocks whose filter may hold the whole pieces of `fragment` at some
    /// offset from a piece's start (only 0 with `at_start`) or, if at some offset it holds
    /// none, the blocks with ids at all.
    fn pieces(&self, fragment: &str, at_start: bool, postings: Box<dyn Query>) -> Box<dyn Query> {
        let filters: Box<dyn Query> = match bloom::Bloom::of_fragment(fragment, at_start) {
            Some(bloom) => Box::new(bloom),
            None => Box::new(self.word_term(words::HAS_IDS)),
        };
        Box::new(bloom::Pieces { filters, postings })
    }

    /// Lines that may hold `fragment` inside an id (at its start with `at_start`): for each
    /// offset of the fragment from a piece's start, the indexed pieces it holds whole, as
    /// terms, and those it cuts, as short patterns; if none, lines with ids at all. A piece
    /// cut to 2 letters is used only when nothing else is there: any word with those 2
    /// letters there matches, which is most texts. `None` only if a pattern does not compile.
    fn id_fragment(&self, fragment: &str, at_start: bool) -> Option<Box<dyn Query>> {
        let offsets = if at_start { 0..1 } else { 0..words::STRIDE };
        let mut alternatives: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for offset in offsets {
            let mut parts: Vec<(Occur, Box<dyn Query>)> = Vec::new();
            let mut cut = Vec::new();
            // `skip`: where the fragment's byte `at` is from the start of its stride.
            let (mut at, mut skip) = (0, offset);
            while at < fragment.len() {
                let left = fragment.len() - at;
                if skip >= words::CHUNK {
                    // Between two indexed pieces.
                    at += (words::STRIDE - skip).min(left);
                    skip = 0;
                    continue;
                }
                let take = (words::CHUNK - skip).min(left);
                let piece = &fragment[at..at + take];
                if skip == 0 && take == words::CHUNK {
                    parts.push((Occur::Must, Box::new(self.word_term(piece))));
                } else if take >= 2 {
                    // Hex digits need no escaping.
                    cut.push((take, format!("{}{piece}.*", ".".repeat(skip))));
                }
                at += take;
                skip += take;
            }
            let whole = !parts.is_empty();
            for (take, pattern) in cut {
                if take > 2 || !whole {
                    parts.push((Occur::Must, Box::new(self.word_regex(&pattern)?)));
                }
            }
            if parts.is_empty() {
                parts.push((Occur::Must, Box::new(self.word_term(words::HAS_IDS))));
            }
            alternatives.push((Occur::Should, Box::new(BooleanQuery::new(parts))));
        }
        Some(self.pieces(fragment, at_start, Box::new(BooleanQuery::new(alternatives))))
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
