//! How log lines are cut into indexed words (the `obs_words` tokenizer), for indexing and for
//! the index hints of line filters alike.
//!
//! Words are runs of letters and digits, lowercased. Words of fewer than [`MIN_WORD_BYTES`]
//! bytes are not indexed: `1`, `05`, `v1`, `id` are in most lines, so their postings cost a
//! quarter of the indexing work and narrow no search. A hint never uses them either, which
//! keeps hints safe on every partition: any word that contains a hint word of 3 bytes or more
//! is itself 3 bytes or more, so it is indexed. Words of 256 bytes or more are not indexed.

use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, SimpleTokenizer, TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer,
};

/// Shorter words are left out of the index.
pub(crate) const MIN_WORD_BYTES: usize = 3;

pub(crate) fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(256))
        .filter(LowerCaser)
        .filter(RemoveShort)
        .build()
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
}
