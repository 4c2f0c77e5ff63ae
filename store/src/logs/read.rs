//! Reading lines back. A document holds a block of lines, so a line is addressed by its
//! document and its place in it ([`LineAddr`]). Times and sizes come from the fast fields `ts`
//! and `bytes` (one value per line, in line order; numeric columns keep the order values were
//! added in), the lines themselves from the stored document: one text cut by the `bytes` of
//! its lines. A log query reads the blocks it matched in time order of their first or last
//! line ([`BlocksInOrder`]).

use std::collections::HashMap;
use std::ops::Bound;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::{BooleanQuery, EnableScoring, Occur, Query, RangeQuery, Weight};
use tantivy::schema::Value;
use tantivy::{DocAddress, DocId, Score, Searcher, SegmentReader, TantivyDocument, TantivyError, Term};

use super::{Fields, LogHit};
use crate::model::{add_detected_level, Labels};

/// Where a line is: its document, and its place among the document's lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct LineAddr {
    pub(crate) doc: DocAddress,
    pub(crate) line: u32,
}

/// A lightweight reference to a matching line: what metric queries need without the line.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LineRef {
    pub(crate) ts_ns: i64,
    pub(crate) stream: u64,
    pub(crate) bytes: u64,
    pub(crate) addr: LineAddr,
    /// Index into the searcher list the ref came from.
    pub(crate) part: usize,
}

/// Per stream: one line's address (to read its labels), line count and bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StreamStats {
    pub(crate) part: usize,
    pub(crate) addr: LineAddr,
    pub(crate) lines: u64,
    pub(crate) bytes: u64,
}

/// Blocks with lines in `[lo, hi)`, by their first and last line's time.
#[derive(Debug, Clone)]
pub(crate) struct TimeRange {
    pub(crate) lo: i64,
    pub(crate) hi: i64,
}

impl Query for TimeRange {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let schema = scoring.schema();
        let term = |name: &str, t: i64| schema.get_field(name).map(|f| Term::from_field_i64(f, t));
        let (starts_before_hi, ends_from_lo) = (term("ts_min", self.hi)?, term("ts_max", self.lo)?);
        BooleanQuery::new(vec![
            (
                Occur::Must,
                Box::new(RangeQuery::new(
                    Bound::Unbounded,
                    Bound::Excluded(starts_before_hi),
                )) as Box<dyn Query>,
            ),
            (
                Occur::Must,
                Box::new(RangeQuery::new(Bound::Included(ends_from_lo), Bound::Unbounded)),
            ),
        ])
        .weight(scoring)
    }
}

/// The lines in `[lo, hi)` of one segment's matching documents.
struct SegmentLines {
    segment: u32,
    ts: Column<i64>,
    stream: Column<u64>,
    bytes: Column<u64>,
    lo: i64,
    hi: i64,
}

impl SegmentLines {
    fn open(segment: u32, reader: &SegmentReader, (lo, hi): (i64, i64)) -> tantivy::Result<SegmentLines> {
        let ff = reader.fast_fields();
        Ok(SegmentLines {
            segment,
            ts: ff.i64("ts")?,
            stream: ff.u64("stream")?,
            bytes: ff.u64("bytes")?,
            lo,
            hi,
        })
    }

    /// Calls `f(ts, stream, bytes, addr)` for each line of `doc` in range.
    fn each(&self, doc: DocId, mut f: impl FnMut(i64, u64, u64, LineAddr)) {
        let stream = self.stream.first(doc).unwrap_or_default();
        let mut sizes = self.bytes.values_for_doc(doc);
        for (i, ts) in self.ts.values_for_doc(doc).enumerate() {
            let bytes = sizes.next().unwrap_or_default();
            if ts >= self.lo && ts < self.hi {
                let addr = LineAddr {
                    doc: DocAddress::new(self.segment, doc),
                    line: i as u32,
                };
                f(ts, stream, bytes, addr);
            }
        }
    }
}

/// A partition's matched blocks in the order a log query reads them: newest first by their
/// last line's time (`backward`), or oldest first by their first line's. A query that has
/// found enough lines stops at the first block whose [`bound`](Self::bound) is worse than the
/// lines it holds: no line of that block, or of any after it, can be better.
pub(crate) struct BlocksInOrder {
    /// (bound, block), the next block last.
    blocks: Vec<(i64, DocAddress)>,
    segments: Vec<SegmentLines>,
}

impl BlocksInOrder {
    pub(super) fn open(
        searcher: &Searcher,
        matched: &super::Matched,
        range: (i64, i64),
        backward: bool,
    ) -> tantivy::Result<BlocksInOrder> {
        let mut blocks = Vec::new();
        let mut segments = Vec::new();
        for (ord, reader) in searcher.segment_readers().iter().enumerate() {
            let ff = reader.fast_fields();
            let bounds = match backward {
                true => ff.i64("ts_max")?,
                false => ff.i64("ts_min")?,
            };
            let unknown = if backward { i64::MAX } else { i64::MIN };
            for &doc in matched.docs(reader.segment_id()) {
                let bound = bounds.first(doc).unwrap_or(unknown);
                blocks.push((bound, DocAddress::new(ord as u32, doc)));
            }
            segments.push(SegmentLines::open(ord as u32, reader, range)?);
        }
        match backward {
            true => blocks.sort_unstable(),
            false => blocks.sort_unstable_by(|a, b| b.cmp(a)),
        }
        Ok(BlocksInOrder { blocks, segments })
    }

    /// The newest (`backward`; else oldest) time a line of the next block may have.
    pub(crate) fn bound(&self) -> Option<i64> {
        self.blocks.last().map(|(bound, _)| *bound)
    }

    /// Appends the lines in range of the next block to `out`, as (time, address); false if no
    /// block is left.
    pub(crate) fn next_block(&mut self, out: &mut Vec<(i64, LineAddr)>) -> bool {
        let Some((_, doc)) = self.blocks.pop() else {
            return false;
        };
        let lines = &self.segments[doc.segment_ord as usize];
        lines.each(doc.doc_id, |ts, _, _, addr| out.push((ts, addr)));
        true
    }
}

/// Every line in range: (ts, stream, bytes, address).
pub(super) struct AllLines(pub(super) (i64, i64));

pub(super) struct AllSegment(SegmentLines, Vec<(i64, u64, u64, LineAddr)>);

impl Collector for AllLines {
    type Fruit = Vec<(i64, u64, u64, LineAddr)>;
    type Child = AllSegment;

    fn for_segment(&self, segment: u32, reader: &SegmentReader) -> tantivy::Result<AllSegment> {
        Ok(AllSegment(
            SegmentLines::open(segment, reader, self.0)?,
            Vec::new(),
        ))
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        Ok(fruits.into_iter().flatten().collect())
    }
}

impl SegmentCollector for AllSegment {
    type Fruit = Vec<(i64, u64, u64, LineAddr)>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let out = &mut self.1;
        self.0
            .each(doc, |ts, stream, bytes, addr| out.push((ts, stream, bytes, addr)));
    }

    fn harvest(self) -> Self::Fruit {
        self.1
    }
}

/// Per stream: (a line's address, lines, bytes) of the lines in range.
pub(super) struct StreamLines(pub(super) (i64, i64));

pub(super) struct StreamSegment(SegmentLines, HashMap<u64, (LineAddr, u64, u64)>);

impl Collector for StreamLines {
    type Fruit = HashMap<u64, (LineAddr, u64, u64)>;
    type Child = StreamSegment;

    fn for_segment(&self, segment: u32, reader: &SegmentReader) -> tantivy::Result<StreamSegment> {
        Ok(StreamSegment(
            SegmentLines::open(segment, reader, self.0)?,
            HashMap::new(),
        ))
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        let mut all = Self::Fruit::new();
        for fruit in fruits {
            for (k, (addr, n, b)) in fruit {
                let e = all.entry(k).or_insert((addr, 0, 0));
                e.1 += n;
                e.2 += b;
            }
        }
        Ok(all)
    }
}

impl SegmentCollector for StreamSegment {
    type Fruit = HashMap<u64, (LineAddr, u64, u64)>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let out = &mut self.1;
        self.0.each(doc, |_, stream, bytes, addr| {
            let e = out.entry(stream).or_insert((addr, 0, 0));
            e.1 += 1;
            e.2 += bytes;
        });
    }

    fn harvest(self) -> Self::Fruit {
        self.1
    }
}

/// Reads lines of one partition, keeping the last document read: lines are mostly read in
/// document order, and a block holds many.
pub(crate) struct LineReader<'a> {
    fields: Fields,
    searcher: &'a Searcher,
    /// Per segment, its `ts` and `bytes` columns once opened.
    columns: HashMap<u32, (Column<i64>, Column<u64>)>,
    last: Option<(DocAddress, Block)>,
}

/// A document's lines.
struct Block {
    stream: u64,
    labels: Labels,
    /// The lines' text, in which `lines` point.
    text: String,
    lines: Vec<BlockLine>,
}

struct BlockLine {
    ts_ns: i64,
    /// Where the line is in [`Block::text`].
    span: std::ops::Range<usize>,
    metadata: Vec<(String, String)>,
}

impl<'a> LineReader<'a> {
    pub(super) fn new(fields: Fields, searcher: &'a Searcher) -> LineReader<'a> {
        LineReader {
            fields,
            searcher,
            columns: HashMap::new(),
            last: None,
        }
    }

    /// Reads one line. Its `detected_level` is derived here, for lines asked for whole only:
    /// most lines read are dropped by line filters ([`line`](Self::line)). (Deriving it is
    /// idempotent: a line that has one is left alone.)
    pub(crate) fn hit(&mut self, addr: LineAddr) -> tantivy::Result<LogHit<'_>> {
        let Block {
            stream,
            labels,
            text,
            lines,
        } = self.block(addr)?;
        let l = &mut lines[addr.line as usize];
        let line = &text[l.span.clone()];
        add_detected_level(labels, line, &mut l.metadata);
        Ok(LogHit {
            ts_ns: l.ts_ns,
            stream: *stream,
            labels,
            line,
            metadata: &l.metadata,
        })
    }

    /// Reads only the text of one line.
    pub(crate) fn line(&mut self, addr: LineAddr) -> tantivy::Result<&str> {
        let block = self.block(addr)?;
        Ok(&block.text[block.lines[addr.line as usize].span.clone()])
    }

    /// The block holding `addr`, loaded if it is not the last one read.
    fn block(&mut self, addr: LineAddr) -> tantivy::Result<&mut Block> {
        if self.last.as_ref().map(|(doc, _)| *doc) != Some(addr.doc) {
            self.last = Some((addr.doc, self.load(addr.doc)?));
        }
        let (_, block) = self.last.as_mut().expect("loaded above");
        if addr.line as usize >= block.lines.len() {
            return Err(corrupt(addr.doc, &format!("no line {}", addr.line)));
        }
        Ok(block)
    }

    fn load(&mut self, addr: DocAddress) -> tantivy::Result<Block> {
        let doc: TantivyDocument = self.searcher.doc(addr)?;
        let f = self.fields;
        let text = |field| doc.get_first(field).and_then(|v| v.as_str()).unwrap_or_default();
        let stream = doc.get_first(f.stream).and_then(|v| v.as_u64());
        let labels = json_or_default(text(f.labels));
        let (ts, bytes) = self.columns(addr.segment_ord)?;
        let mut metas: Vec<Vec<(String, String)>> = json_or_default(text(f.meta));
        metas.resize_with(bytes.values_for_doc(addr.doc_id).count(), Vec::new);
        let mut start = 0;
        let lines: Vec<BlockLine> = (ts.values_for_doc(addr.doc_id))
            .zip(bytes.values_for_doc(addr.doc_id))
            .zip(metas)
            .map(|((ts_ns, len), metadata)| {
                let span = start..start + len as usize;
                start = span.end + 1;
                BlockLine {
                    ts_ns,
                    span,
                    metadata,
                }
            })
            .collect();
        let text = text(f.line).to_string();
        // A damaged document must not take the store down when its lines are sliced.
        if lines.iter().any(|l| text.get(l.span.clone()).is_none()) {
            return Err(corrupt(addr, "line sizes do not match the text"));
        }
        Ok(Block {
            stream: stream.unwrap_or_default(),
            labels,
            text,
            lines,
        })
    }

    /// The `ts` and `bytes` columns of segment `segment`.
    fn columns(&mut self, segment: u32) -> tantivy::Result<(Column<i64>, Column<u64>)> {
        if let Some(c) = self.columns.get(&segment) {
            return Ok(c.clone());
        }
        let ff = self.searcher.segment_reader(segment).fast_fields();
        let c = (ff.i64("ts")?, ff.u64("bytes")?);
        self.columns.insert(segment, c.clone());
        Ok(c)
    }
}

/// Stored JSON, or the default for an empty (or damaged) value.
fn json_or_default<T: serde::de::DeserializeOwned + Default>(json: &str) -> T {
    match json {
        "" => T::default(),
        json => serde_json::from_str(json).unwrap_or_default(),
    }
}

fn corrupt(doc: DocAddress, what: &str) -> TantivyError {
    TantivyError::InternalError(format!("log block {doc:?} is damaged: {what}"))
}
