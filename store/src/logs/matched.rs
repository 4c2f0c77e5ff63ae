//! The documents a query matches in one partition, found once and then used as a query.
//!
//! A log query pages through a partition in time order and runs its query again for each
//! page (`logql::query_logs`). The selector and needle hints are the same for every page, and
//! a needle that is a bare id or word fragment is hinted by regexes that scan each segment's
//! whole term dictionary: run per page, those scans were most of such a search's time.
//! [`Matched::find`] runs the query once, on the segments in parallel, and keeps each segment's
//! matching documents, in order; as a query, it hands them back without touching the index.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use tantivy::index::SegmentId;
use tantivy::query::{EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::{DocId, DocSet, Executor, Score, Searcher, SegmentReader, TantivyError, TERMINATED};

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

impl Query for Matched {
    fn weight(&self, _: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }
}

impl Weight for Matched {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let docs = self
            .0
            .get(&reader.segment_id())
            .cloned()
            .unwrap_or_else(|| Arc::new([]));
        Ok(Box::new(Docs::new(docs, boost)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        match self.0.get(&reader.segment_id()) {
            Some(docs) if docs.binary_search(&doc).is_ok() => Ok(Explanation::new("Matched", 1.0)),
            _ => Err(TantivyError::InvalidArgument(format!(
                "document {doc} does not match"
            ))),
        }
    }
}

/// A scorer of documents found beforehand, ascending: one segment's [`Matched`] documents.
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
    use tantivy::query::{BooleanQuery, Occur, TermQuery};
    use tantivy::schema::{IndexRecordOption, Schema, STRING};
    use tantivy::{doc, Index, Term};

    use super::*;

    #[test]
    fn matched_documents_answer_as_the_query_did_alone_and_in_an_intersection() {
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
        let even = term("even");
        let matched = Matched::find(&searcher, even.as_ref()).unwrap();
        assert_eq!(matched.len(), 75);
        let docs = |q: &dyn Query| searcher.search(q, &DocSetCollector).unwrap();
        assert_eq!(docs(&matched), docs(even.as_ref()));
        // Intersections seek through the matched documents.
        for other in ["third", "odd", "all"] {
            let with =
                |q: Box<dyn Query>| BooleanQuery::new(vec![(Occur::Must, q), (Occur::Must, term(other))]);
            let want = docs(&with(term("even")));
            assert_eq!(docs(&with(Box::new(matched.clone()))), want, "even and {other}");
        }
        assert!(docs(&with_nothing(&searcher)).is_empty());
    }

    /// A query that matched nothing matches nothing as [`Matched`].
    fn with_nothing(searcher: &Searcher) -> Matched {
        let nothing = tantivy::query::EmptyQuery;
        Matched::find(searcher, &nothing).unwrap()
    }
}
