//! The documents a query matches in one partition, found once, on its segments in parallel
//! ([`Matched::find`]): a log query then reads them block by block in time order
//! (`read::BlocksInOrder`, `logql::query_logs`). Also [`Docs`], a scorer of documents found
//! beforehand (the blocks a bloom filter passes).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use tantivy::index::SegmentId;
use tantivy::query::{EnableScoring, Query, Scorer};
use tantivy::{DocId, DocSet, Executor, Score, Searcher, SegmentReader, TERMINATED};

/// Each segment's documents matching a query, ascending.
#[derive(Debug, Clone)]
pub(crate) struct Matched(Arc<HashMap<SegmentId, Arc<[DocId]>>>);

impl Matched {
    /// Runs `query` over every segment of `searcher`.
    pub(crate) fn find(searcher: &Searcher, query: &dyn Query) -> tantivy::Result<Matched> {
        let weight = query.weight(EnableScoring::disabled_from_searcher(searcher))?;
        let segments = executor().map(
            |reader: &SegmentReader| {
                let mut docs = Vec::new();
                weight.for_each_no_score(reader, &mut |found| docs.extend_from_slice(found))?;
                Ok((reader.segment_id(), docs.into()))
            },
            searcher.segment_readers().iter(),
        )?;
        Ok(Matched(Arc::new(segments.into_iter().collect())))
    }

    /// The documents of `segment` that matched, ascending.
    pub(crate) fn docs(&self, segment: SegmentId) -> &[DocId] {
        self.0.get(&segment).map_or(&[], |docs| docs)
    }

    /// How many documents matched, over all segments.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.values().map(|docs| docs.len()).sum()
    }
}

/// Threads for [`Matched::find`], one per core, shared by all queries (started on first use).
fn executor() -> &'static Executor {
    static EXECUTOR: OnceLock<Executor> = OnceLock::new();
    EXECUTOR.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        Executor::multi_thread(cores, "obs-search-").unwrap_or_else(|_| Executor::single_thread())
    })
}

/// A scorer of documents found beforehand, ascending.
pub(super) struct Docs {
    docs: Arc<[DocId]>,
    at: usize,
    score: Score,
}

impl Docs {
    pub(super) fn new(docs: Arc<[DocId]>, score: Score) -> Docs {
        Docs { docs, at: 0, score }
    }
}

impl DocSet for Docs {
    fn advance(&mut self) -> DocId {
        self.at = (self.at + 1).min(self.docs.len());
        self.doc()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        let rest = &self.docs[self.at..];
        self.at += rest.partition_point(|&d| d < target);
        self.doc()
    }

    fn doc(&self) -> DocId {
        self.docs.get(self.at).copied().unwrap_or(TERMINATED)
    }

    fn size_hint(&self) -> u32 {
        (self.docs.len() - self.at) as u32
    }
}

impl Scorer for Docs {
    fn score(&mut self) -> Score {
        self.score
    }
}

#[cfg(test)]
mod tests {
    use tantivy::collector::DocSetCollector;
    use tantivy::query::TermQuery;
    use tantivy::schema::{IndexRecordOption, Schema, STRING};
    use tantivy::{doc, Index, Term};

    use super::*;

    #[test]
    fn matched_documents_are_the_querys_in_each_segment() {
        let mut schema = Schema::builder();
        let word = schema.add_text_field("word", STRING);
        let index = Index::create_in_ram(schema.build());
        let mut writer = index.writer_with_num_threads(1, 15_000_000).unwrap();
        // Three segments; document i holds "all", "even" or "odd", and "third" every third.
        for segment in 0..3 {
            for i in 0..50 {
                let parity = if i % 2 == 0 { "even" } else { "odd" };
                let mut d = doc!(word => "all", word => parity);
                if (segment * 50 + i) % 3 == 0 {
                    d.add_text(word, "third");
                }
                writer.add_document(d).unwrap();
            }
            writer.commit().unwrap();
        }
        let searcher = index.reader().unwrap().searcher();
        assert_eq!(searcher.segment_readers().len(), 3);
        let term = |w: &str| -> Box<dyn Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(word, w),
                IndexRecordOption::Basic,
            ))
        };
        for w in ["even", "third", "all"] {
            let matched = Matched::find(&searcher, term(w).as_ref()).unwrap();
            let want = searcher.search(term(w).as_ref(), &DocSetCollector).unwrap();
            assert_eq!(matched.len(), want.len(), "{w}");
            for (ord, reader) in searcher.segment_readers().iter().enumerate() {
                let docs = matched.docs(reader.segment_id());
                let of_segment = want.iter().filter(|d| d.segment_ord == ord as u32);
                let mut of_segment: Vec<DocId> = of_segment.map(|d| d.doc_id).collect();
                of_segment.sort_unstable();
                assert_eq!(docs, of_segment, "{w}");
            }
        }
        let nothing = Matched::find(&searcher, &tantivy::query::EmptyQuery).unwrap();
        assert_eq!(nothing.len(), 0);
    }
}
