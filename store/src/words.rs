//! How log lines are cut into indexed words (the `obs_words` tokenizer), for indexing and for
//! the index hints of line filters alike.
//!
//! Words are runs of letters and digits, lowercased. Words of fewer than [`MIN_WORD_BYTES`]
//! bytes are not indexed: `1`, `05`, `v1`, `id` are in most lines, so their postings cost a
//! quarter of the indexing work and narrow no search. A hint never uses them either, which
//! keeps hints safe on every partition: any word that contains a hint word of 3 bytes or more
//! is itself 3 bytes or more, so it is indexed. Words of 256 bytes or more are not indexed.
//!
//! **Ids** — words of [`MIN_ID_BYTES`] or more made only of hex digits (trace and request ids,
//! hashes, long numbers) — are indexed as [`CHUNK`]-byte pieces, one every [`STRIDE`] bytes
//! from the start of the word (`4bf92f3577b34da6` → `4bf9`, `77b3`; a shorter last piece is kept
//! too). Ids are unique, and a unique term per line made the term dictionary (an FST, rebuilt
//! at every segment flush and merge) a quarter of the store's ingest CPU; there are at most
//! 65,536 pieces. Only every other piece is indexed because pieces were still two thirds of
//! all postings; any 8 bytes of an id still overlap indexed pieces by 4. A needle finds its id:
//! `logs.rs` turns the pieces a needle word overlaps into a hint, for every place the needle
//! may start inside an id; a needle short enough to fall between two pieces can only be
//! narrowed to the texts that hold an id ([`HAS_IDS`]). Partitions written before ids were cut
//! (2026-12) hold whole ids, so hints also keep the whole-word clause.

use rustc_hash::FxHashSet;
use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, TextAnalyzerBuilder, Token, TokenFilter,
    TokenStream, Tokenizer,
};

/// Shorter words are left out of the index.
pub(crate) const MIN_WORD_BYTES: usize = 3;
/// Hex words this long or longer are ids, indexed in pieces.
pub(crate) const MIN_ID_BYTES: usize = 8;
/// The length of an id's pieces.
pub(crate) const CHUNK: usize = 4;
/// An id's pieces start this many bytes apart.
pub(crate) const STRIDE: usize = 2 * CHUNK;
/// Indexed once for a text with ids: a short needle may lie between two indexed pieces of an
/// id, and then only this narrows the search. Words never hold `#`.
pub(crate) const HAS_IDS: &str = "#ids";

/// Words: alphanumeric runs, lowercased, of [`MIN_WORD_BYTES`] to 255 bytes.
fn word_builder() -> TextAnalyzerBuilder<impl Tokenizer> {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(256))
        .filter(LowerCaser)
        .filter(RemoveShort)
}

/// Words with ids cut in pieces: how a needle that is a whole id is looked up. (Also the
/// tokenizer of v1 partitions, which are no longer written.)
pub(crate) fn analyzer() -> TextAnalyzer {
    word_builder().filter(CutIds).build()
}

/// The analyzer of a block of lines (`logs.rs`, schema v2): [`analyzer`]'s words, each
/// distinct word of the block once. Postings are per block, so repeats are wasted work.
pub(crate) fn block_analyzer() -> TextAnalyzer {
    word_builder().filter(CutIds).filter(Distinct).build()
}

/// [`block_analyzer`] without cutting ids, as partitions written before 2026-12 hold them:
/// for tests of needle hints against such partitions.
#[cfg(test)]
pub(crate) fn block_analyzer_whole_ids() -> TextAnalyzer {
    word_builder().filter(Distinct).build()
}

/// Whole words as [`analyzer`] sees them before ids are cut: how needles are read.
pub(crate) fn words() -> TextAnalyzer {
    word_builder().build()
}

/// Whether the (lowercased) word is indexed in pieces.
pub(crate) fn is_id(word: &str) -> bool {
    word.len() >= MIN_ID_BYTES
        && word
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether the (lowercased) text can be part of an id.
pub(crate) fn is_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Passes each distinct word of a text once.
#[derive(Clone)]
struct Distinct;

impl TokenFilter for Distinct {
    type Tokenizer<T: Tokenizer> = DistinctTokenizer<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> DistinctTokenizer<T> {
        DistinctTokenizer {
            inner: tokenizer,
            seen: FxHashSet::default(),
        }
    }
}

/// Keeps the set of words seen between texts, so that its memory is reused.
#[derive(Clone)]
struct DistinctTokenizer<T> {
    inner: T,
    seen: FxHashSet<String>,
}

impl<T: Tokenizer> Tokenizer for DistinctTokenizer<T> {
    type TokenStream<'a> = DistinctStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        let DistinctTokenizer { inner, seen } = self;
        seen.clear();
        DistinctStream {
            inner: inner.token_stream(text),
            seen,
        }
    }
}

struct DistinctStream<'a, S> {
    inner: S,
    seen: &'a mut FxHashSet<String>,
}

impl<S: TokenStream> TokenStream for DistinctStream<'_, S> {
    fn advance(&mut self) -> bool {
        while self.inner.advance() {
            let word = &self.inner.token().text;
            if !self.seen.contains(word.as_str()) {
                self.seen.insert(word.clone());
                return true;
            }
        }
        false
    }

    fn token(&self) -> &Token {
        self.inner.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.inner.token_mut()
    }
}

/// Cuts ids into pieces (see the module docs).
#[derive(Clone)]
struct CutIds;

impl TokenFilter for CutIds {
    type Tokenizer<T: Tokenizer> = CutIdsTokenizer<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> CutIdsTokenizer<T> {
        CutIdsTokenizer(tokenizer)
    }
}

#[derive(Clone)]
struct CutIdsTokenizer<T>(T);

impl<T: Tokenizer> Tokenizer for CutIdsTokenizer<T> {
    type TokenStream<'a> = CutIdsStream<T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        CutIdsStream {
            inner: self.0.token_stream(text),
            id: String::new(),
            next: None,
            piece: Token::default(),
            marked: false,
        }
    }
}

struct CutIdsStream<S> {
    inner: S,
    /// The id being cut, and the offset of its next piece while cutting.
    id: String,
    next: Option<usize>,
    piece: Token,
    /// Whether [`HAS_IDS`] was emitted for this text.
    marked: bool,
}

impl<S: TokenStream> CutIdsStream<S> {
    /// Emits the piece at `at` of the current id, if the id is that long.
    fn cut(&mut self, at: usize) -> bool {
        if at >= self.id.len() {
            self.next = None;
            return false;
        }
        let end = (at + CHUNK).min(self.id.len());
        self.piece.text.clear();
        self.piece.text.push_str(&self.id[at..end]);
        self.next = Some(at + STRIDE);
        true
    }
}

impl<S: TokenStream> TokenStream for CutIdsStream<S> {
    fn advance(&mut self) -> bool {
        if let Some(at) = self.next {
            if self.cut(at) {
                return true;
            }
        }
        if !self.inner.advance() {
            return false;
        }
        let word = self.inner.token();
        if !is_id(&word.text) {
            return true;
        }
        self.id.clear();
        self.id.push_str(&word.text);
        self.piece.offset_from = word.offset_from;
        self.piece.offset_to = word.offset_to;
        self.piece.position = word.position;
        if !self.marked {
            self.marked = true;
            self.piece.text.clear();
            self.piece.text.push_str(HAS_IDS);
            self.next = Some(0);
            return true;
        }
        self.cut(0)
    }

    fn token(&self) -> &Token {
        if self.next.is_some() {
            &self.piece
        } else {
            self.inner.token()
        }
    }

    fn token_mut(&mut self) -> &mut Token {
        if self.next.is_some() {
            &mut self.piece
        } else {
            self.inner.token_mut()
        }
    }
}

/// Drops words under [`MIN_WORD_BYTES`] (tantivy has a filter for long words only).
#[derive(Clone)]
struct RemoveShort;

impl TokenFilter for RemoveShort {
    type Tokenizer<T: Tokenizer> = RemoveShortTokenizer<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> RemoveShortTokenizer<T> {
        RemoveShortTokenizer(tokenizer)
    }
}

#[derive(Clone)]
struct RemoveShortTokenizer<T>(T);

impl<T: Tokenizer> Tokenizer for RemoveShortTokenizer<T> {
    type TokenStream<'a> = RemoveShortStream<T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        RemoveShortStream(self.0.token_stream(text))
    }
}

struct RemoveShortStream<S>(S);

impl<S: TokenStream> TokenStream for RemoveShortStream<S> {
    fn advance(&mut self) -> bool {
        while self.0.advance() {
            if self.0.token().text.len() >= MIN_WORD_BYTES {
                return true;
            }
        }
        false
    }

    fn token(&self) -> &Token {
        self.0.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.0.token_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercased_and_short_ones_left_out() {
        let mut a = analyzer();
        let mut s = a.token_stream("GET /api/v1/Users HTTP/1.1 200 id=7F3a x");
        let mut words = Vec::new();
        while let Some(t) = s.next() {
            words.push((t.text.clone(), t.offset_from));
        }
        let expect = [
            ("get", 0),
            ("api", 5),
            ("users", 12),
            ("http", 18),
            ("200", 27),
            ("7f3a", 34),
        ];
        assert_eq!(words, expect.map(|(w, o)| (w.to_string(), o)));
    }

    #[test]
    fn ids_are_cut_in_pieces_from_their_start() {
        let mut a = analyzer();
        let mut s = a.token_stream("t=4BF92F3577B34DA6 abc123 deadbeef 1234567 123456789 x");
        let mut words = Vec::new();
        while let Some(t) = s.next() {
            words.push(t.text.clone());
        }
        let expect = ["#ids", "4bf9", "77b3", "abc123", "dead", "1234567", "1234", "9"];
        assert_eq!(words, expect);
        assert!(is_id("0123456789abcdef") && !is_id("0123456") && !is_id("0123456789abcdeg"));
    }
}
