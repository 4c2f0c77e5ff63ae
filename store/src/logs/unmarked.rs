//! A query run only on segments where some documents lack a mark term.
//!
//! A needle that is an id cut by the needle's edge, like a bare trace id, may lie inside a
//! longer word. Partitions written since 2026-12-02 cut the hex runs inside words like ids
//! and mark every document (`words::RUNS_CUT`), so the id's pieces find it there; older
//! documents need a pattern over the whole term dictionary (`.*<id>.*`), which is most of such
//! a search's time. [`Unmarked`] runs that pattern only on segments with unmarked documents.

use tantivy::query::{EmptyScorer, EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::{DocId, Score, SegmentReader, Term};

/// `inner` on segments where some documents lack `mark`; nothing on the others.
#[derive(Debug)]
pub(crate) struct Unmarked {
    pub(crate) mark: Term,
    pub(crate) inner: Box<dyn Query>,
}

impl Clone for Unmarked {
    fn clone(&self) -> Unmarked {
        Unmarked {
            mark: self.mark.clone(),
            inner: self.inner.box_clone(),
        }
    }
}

impl Query for Unmarked {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(UnmarkedWeight {
            mark: self.mark.clone(),
            inner: self.inner.weight(scoring)?,
        }))
    }
}

struct UnmarkedWeight {
    mark: Term,
    inner: Box<dyn Weight>,
}

impl UnmarkedWeight {
    fn all_marked(&self, reader: &SegmentReader) -> tantivy::Result<bool> {
        let marked = reader.inverted_index(self.mark.field())?.doc_freq(&self.mark)?;
        Ok(marked == reader.max_doc())
    }
}

impl Weight for UnmarkedWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        if self.all_marked(reader)? {
            return Ok(Box::new(EmptyScorer));
        }
        self.inner.scorer(reader, boost)
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        if self.all_marked(reader)? {
            return Err(tantivy::TantivyError::InvalidArgument(format!(
                "document {doc} does not match: every document of its segment is marked"
            )));
        }
        self.inner.explain(reader, doc)
    }
}

#[cfg(test)]
mod tests {
    use tantivy::collector::Count;
    use tantivy::query::AllQuery;
    use tantivy::schema::{Schema, STRING};
    use tantivy::{doc, Index, IndexWriter};

    use super::*;

    #[test]
    fn the_inner_query_runs_only_where_some_documents_are_unmarked() {
        let mut schema = Schema::builder();
        let word = schema.add_text_field("word", STRING);
        let index = Index::create_in_ram(schema.build());
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        // Segments of 4 documents: all marked, half marked, none marked.
        for marked in [4, 2, 0] {
            for i in 0..4 {
                let w = if i < marked { "#mark" } else { "other" };
                writer.add_document(doc!(word => w)).unwrap();
            }
            writer.commit().unwrap();
        }
        let query = Unmarked {
            mark: Term::from_field_text(word, "#mark"),
            inner: Box::new(AllQuery),
        };
        let count = |index: &Index| index.reader().unwrap().searcher().search(&query, &Count).unwrap();
        assert_eq!(count(&index), 8, "the all-marked segment is skipped");
        // Merged into one segment, some of whose documents are unmarked.
        let segments = index.searchable_segment_ids().unwrap();
        writer.merge(&segments).wait().unwrap();
        writer.wait_merging_threads().unwrap();
        assert_eq!(index.searchable_segment_ids().unwrap().len(), 1);
        assert_eq!(count(&index), 12);
    }
}
