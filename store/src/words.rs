//! How log lines are cut into indexed words (the block tokenizer, [`block_analyzer`]), what
//! of them goes to a block's bloom filter instead ([`bloom_pieces`]), and how needles are cut
//! ([`words`]) for the index hints of line filters (`logs.rs`).
//!
//! # Glossary
//!
//! - **word**: a run of letters and digits, lowercased. Words of fewer than
//!   [`MIN_WORD_BYTES`] bytes are not indexed (`1`, `05`, `v1`, `id` are in most lines and
//!   narrow no search; a hint never uses them either: any word holding a hint word of 3 bytes
//!   is itself indexed). Words of [`MAX_WORD_BYTES`] or more (a base64 blob) are not indexed.
//! - **id**: a word of [`MIN_ID_BYTES`] or more hex digits (trace and request ids, hashes,
//!   long numbers). Ids are unique, so as words they would be most of the postings and of the
//!   ingest work: they are kept out of the postings.
//! - **run**: a run of [`MIN_ID_BYTES`] or more hex digits inside a longer word
//!   (`req7f3a9c1e5b2d4a60`): treated like an id, as a needle may be a bare id inside it.
//! - **number**: a word of [`MIN_NUMBER_BYTES`] to 7 ASCII digits (sizes, durations, user
//!   ids): kept out of the postings too. Numbers of 3 digits (status codes) stay words.
//! - **piece**: a [`CHUNK`]-byte part of an id or run, lowercased, one every
//!   [`BLOOM_STRIDE`] bytes from its start; a needle of 7 hex digits or more holds a whole
//!   piece wherever it starts. A **start** is an id's or run's first [`START_BYTES`] bytes: a
//!   needle that starts a word holds one, and narrows far better with it.
//! - **window**: each [`CHUNK`]-byte window of a number; its first window is kept once more
//!   as the number's start.
//! - **mark**: a term indexed once per text, which no word can be (words never hold `#`):
//!   [`HAS_IDS`] (the text has ids or runs), [`HAS_NUMBERS`] (numbers), [`HAS_LONG`] (a word
//!   too long to index), [`RUNS_CUT`] (every text). A needle too short to hold a piece or a
//!   window, or cut by its edge, can only be narrowed to the texts so marked.
//!
//! Pieces, starts and windows go to the block's bloom filter (`logs/bloom.rs`), where a
//! needle finds them at a fraction of what postings cost to write; the postings hold the
//! words and the marks, each distinct word of a block once.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use tantivy::tokenizer::{TextAnalyzer, Token, TokenStream, Tokenizer};

/// Shorter words are left out of the index.
pub(crate) const MIN_WORD_BYTES: usize = 3;
/// Words this long or longer (before lowercasing) are left out of the index.
const MAX_WORD_BYTES: usize = 256;
/// Hex words this long or longer are ids: out of the postings, their pieces in the filter.
pub(crate) const MIN_ID_BYTES: usize = 8;
/// Words of ASCII digits this long or longer, and shorter than an id, are numbers: their
/// windows go to the bloom filter instead of the postings.
pub(crate) const MIN_NUMBER_BYTES: usize = CHUNK;
/// The length of an id's pieces.
pub(crate) const CHUNK: usize = 4;
/// An id's pieces start this many bytes apart in a block's bloom filter: every piece.
pub(crate) const BLOOM_STRIDE: usize = CHUNK;
/// Indexed once for a text with ids: a short needle may lie between two indexed pieces of an
/// id, and then only this narrows the search. Words never hold `#`.
pub(crate) const HAS_IDS: &str = "#ids";
/// Indexed once for a text with a word of [`MAX_WORD_BYTES`] or more, which is not indexed.
pub(crate) const HAS_LONG: &str = "#long";
/// Indexed once for every text: its words' hex runs are treated like ids.
pub(crate) const RUNS_CUT: &str = "#runs";
/// Indexed once for a text with numbers ([`is_number`]), which are not indexed as words: a
/// needle of 3 digits may lie inside one, and then only this narrows the search.
pub(crate) const HAS_NUMBERS: &str = "#nums";

/// The analyzer of a block of lines (`logs.rs`): its words, each distinct word once
/// (postings are per block, so repeats are wasted work), with ids, hex runs inside longer
/// words and numbers left out but for the marks: their pieces and windows are in the block's
/// bloom filter ([`bloom_pieces`]).
pub(crate) fn block_analyzer() -> TextAnalyzer {
    TextAnalyzer::from(Words::new(Cut::IdsAndRuns, true).without_numbers())
}

/// Whole words, as the index holds them but with ids and numbers kept: how needles are read.
pub(crate) fn words() -> TextAnalyzer {
    TextAnalyzer::from(Words::new(Cut::Nothing, false))
}

/// What the words tokenizer leaves out of the words, for marks.
#[derive(Clone, Copy, PartialEq)]
enum Cut {
    /// Nothing: every word is passed (needles).
    Nothing,
    /// Ids and, inside longer words, runs of hex digits as long as an id (both marked
    /// [`HAS_IDS`] once); every text is marked [`RUNS_CUT`], and one with a word too long to
    /// index [`HAS_LONG`] (blocks).
    IdsAndRuns,
}

/// The next run of at least [`MIN_ID_BYTES`] hex digits in the (lowercased) word from byte
/// `from` on.
fn hex_run(word: &str, from: usize) -> Option<(usize, usize)> {
    let bytes = word.as_bytes();
    let mut at = from;
    while at < bytes.len() {
        let start = at;
        while at < bytes.len() && is_hex_byte(bytes[at]) {
            at += 1;
        }
        if at - start >= MIN_ID_BYTES {
            return Some((start, at));
        }
        at += 1;
    }
    None
}

/// Whether the (lowercased) word is indexed in pieces.
pub(crate) fn is_id(word: &str) -> bool {
    word.len() >= MIN_ID_BYTES && is_hex(word)
}

/// Whether the word is a number: [`MIN_NUMBER_BYTES`] ASCII digits or more, fewer than an id.
pub(crate) fn is_number(word: &str) -> bool {
    (MIN_NUMBER_BYTES..MIN_ID_BYTES).contains(&word.len()) && word.bytes().all(|b| b.is_ascii_digit())
}

/// Whether the (lowercased) text can be part of an id.
pub(crate) fn is_hex(text: &str) -> bool {
    text.bytes().all(is_hex_byte)
}

/// Whether the (lowercased) byte is a hex digit.
fn is_hex_byte(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// What a piece of [`bloom_pieces`] is part of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Piece {
    /// An id or a hex run inside a longer word.
    Id,
    /// A number: the piece is one of its windows.
    Number,
    /// A number's first window: a needle that starts a word holds it.
    NumberStart,
    /// The first [`START_BYTES`] bytes of an id or run: with the first piece, they narrow
    /// a needle that starts a word to the blocks with an id that starts with it.
    Start,
}

/// The length of a [`Piece::Start`].
pub(crate) const START_BYTES: usize = CHUNK + 1;

/// Calls `piece` with each [`CHUNK`]-byte piece, lowercased, that starts a multiple of
/// [`BLOOM_STRIDE`] bytes into an id or a hex run inside a longer word of `text` (the ids and
/// runs [`block_analyzer`] marks, pieces left out only where shorter than a chunk), the
/// [`Piece::Start`] of each (before its pieces), and each [`CHUNK`]-byte window of each number
/// ([`is_number`]; its first also as a [`Piece::NumberStart`], before them), in text order,
/// repeats included. These go to a block's bloom filter (`logs/bloom.rs`).
///
/// A scan of its own rather than the tokenizer's: it looks for runs of hex digits, and at
/// words only around runs as long as an id or a number, to leave out those in words too long
/// to index or inside longer words. The runs are the tokenizer's: a hex run of a lowercased
/// word is a run of ASCII hex digits as written (no other char lowercases to one), and a word
/// holds the hex runs it touches; a number is a run of digits that is a whole word.
///
/// Most bytes are not looked at: a run as long as an id holds one of every [`MIN_ID_BYTES`]
/// bytes (a number one of every [`MIN_NUMBER_BYTES`]), so only those are, and runs are grown
/// from the ones that are hex digits.
pub(crate) fn bloom_pieces(text: &str, mut piece: impl FnMut(&[u8], Piece)) {
    let bytes = text.as_bytes();
    let hex = |at: usize| bytes[at].is_ascii_hexdigit();
    let step = MIN_NUMBER_BYTES;
    // The word of the last run as long as an id: where it ends, and whether it is indexed.
    let (mut word_end, mut indexed) = (0, false);
    // Every byte before `probe` not yet grown into a run is not in a run as long as an id.
    let mut probe = 0;
    while probe < bytes.len() {
        if !hex(probe) {
            probe += step;
            continue;
        }
        // The byte before the last probe was not hex, or ended a run: growing stops there.
        let mut from = probe;
        while from > 0 && hex(from - 1) {
            from -= 1;
        }
        let mut at = probe + 1;
        while at < bytes.len() && hex(at) {
            at += 1;
        }
        // `at` is not hex: the next run starts after it.
        probe = at + 1;
        if at - from < MIN_ID_BYTES {
            let run = &bytes[from..at];
            if run.len() >= MIN_NUMBER_BYTES
                && run.iter().all(u8::is_ascii_digit)
                && whole_word(text, from, at)
            {
                piece(&run[..CHUNK], Piece::NumberStart);
                for window in run.windows(CHUNK) {
                    piece(window, Piece::Number);
                }
            }
            continue;
        }
        if from >= word_end {
            // A new word: each byte is looked at once more, at most.
            let before = text[..from].chars().rev().take_while(|c| c.is_alphanumeric());
            let word_start = from - before.map(char::len_utf8).sum::<usize>();
            word_end = run_end(text, at, true).0;
            indexed = word_end - word_start < MAX_WORD_BYTES;
        }
        if indexed {
            let mut lower = [0; START_BYTES];
            lower.copy_from_slice(&bytes[from..from + START_BYTES]);
            lower.make_ascii_lowercase();
            piece(&lower, Piece::Start);
        }
        if indexed {
            for start in (from..=at - CHUNK).step_by(BLOOM_STRIDE) {
                let mut lower = [0; CHUNK];
                lower.copy_from_slice(&bytes[start..start + CHUNK]);
                lower.make_ascii_lowercase();
                piece(&lower, Piece::Id);
            }
        }
    }
}

/// Whether `text[from..to]` is a whole word: no word char just before or after it.
fn whole_word(text: &str, from: usize, to: usize) -> bool {
    let before = text[..from]
        .chars()
        .next_back()
        .is_some_and(char::is_alphanumeric);
    let after = text[to..].chars().next().is_some_and(char::is_alphanumeric);
    !before && !after
}

/// The words tokenizer, in one pass over the text (it was a chain of tantivy's
/// `SimpleTokenizer`, `RemoveLongFilter`, `LowerCaser` and filters of ours, and that chain was a
/// seventh of ingest CPU). The words are exactly the chain's, as partitions written by it are
/// still searched with needles cut by this: runs of chars that are `char::is_alphanumeric`,
/// under [`MAX_WORD_BYTES`] as written, lowercased char by char (no final-sigma rule), at least
/// [`MIN_WORD_BYTES`] once lowercased; positions count every run. Then, if asked, ids are cut
/// in pieces and each distinct word of a text is passed once.
#[derive(Clone)]
struct Words {
    cut: Cut,
    distinct: bool,
    /// Whether numbers are passed (else only [`HAS_NUMBERS`]).
    numbers: bool,
    /// The distinct words of the current text, kept between texts so their memory is reused.
    seen: Seen,
}

impl Words {
    fn new(cut: Cut, distinct: bool) -> Words {
        Words {
            cut,
            distinct,
            numbers: true,
            seen: Seen::default(),
        }
    }

    fn without_numbers(self) -> Words {
        Words {
            numbers: false,
            ..self
        }
    }
}

/// A set of words: their bytes are appended to one string, and the table holds their ranges
/// (a set of `String`s cost an allocation and a free per word).
#[derive(Clone, Default)]
struct Seen {
    table: HashTable<(u32, u32)>,
    words: String,
}

impl Seen {
    fn clear(&mut self) {
        self.table.clear();
        self.words.clear();
    }

    /// Adds `word`; whether it was new.
    fn insert(&mut self, word: &str) -> bool {
        let hash = FxBuildHasher.hash_one(word);
        if self.table.find(hash, |&r| at(&self.words, r) == word).is_some() {
            return false;
        }
        // Texts are far below 4 GiB (a request's size limit).
        let range = (self.words.len() as u32, word.len() as u32);
        self.words.push_str(word);
        let words = &self.words;
        self.table
            .insert_unique(hash, range, |&r| FxBuildHasher.hash_one(at(words, r)));
        true
    }
}

/// The word at `(from, len)` of [`Seen::words`].
fn at(words: &str, (from, len): (u32, u32)) -> &str {
    &words[from as usize..(from + len) as usize]
}

impl Tokenizer for Words {
    type TokenStream<'a> = WordStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> WordStream<'a> {
        self.seen.clear();
        WordStream {
            text,
            at: 0,
            token: Token::default(),
            runs: 0,
            cut_ids: self.cut == Cut::IdsAndRuns,
            in_word: (self.cut == Cut::IdsAndRuns).then(String::new),
            in_word_at: 0,
            mark_runs: self.cut == Cut::IdsAndRuns,
            marked: false,
            marked_long: false,
            numbers: self.numbers,
            marked_numbers: false,
            seen: self.distinct.then_some(&mut self.seen),
        }
    }
}

struct WordStream<'a> {
    text: &'a str,
    /// Where the scan for the next word starts.
    at: usize,
    token: Token,
    /// Runs of word chars seen so far, indexed or not (a word's position).
    runs: usize,
    /// Whether ids are left out, for marks.
    cut_ids: bool,
    /// With runs cut: the word whose runs are being looked for (empty if none), and where the
    /// search for its next run starts.
    in_word: Option<String>,
    in_word_at: usize,
    /// Whether [`RUNS_CUT`] is yet to be emitted for this text.
    mark_runs: bool,
    /// Whether [`HAS_IDS`] was emitted for this text.
    marked: bool,
    /// Whether [`HAS_LONG`] was emitted for this text.
    marked_long: bool,
    /// Whether numbers are passed, and whether [`HAS_NUMBERS`] was emitted for this text.
    numbers: bool,
    marked_numbers: bool,
    seen: Option<&'a mut Seen>,
}

/// ASCII bytes that are word chars (letters and digits).
static ASCII_WORD: [bool; 128] = {
    let mut table = [false; 128];
    let mut b = 0;
    while b < 128 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    table
};

/// The char starting at byte `at` of `text`, and whether it is part of a word.
fn word_char(text: &str, at: usize) -> (usize, bool) {
    match text.as_bytes()[at] {
        b @ 0..=127 => (1, ASCII_WORD[b as usize]),
        _ => {
            let c = text[at..].chars().next().expect("at is a char boundary");
            (c.len_utf8(), c.is_alphanumeric())
        }
    }
}

/// Where the run of chars starting at `at` that are (`word`) or are not word chars ends, and
/// whether the run is all ASCII. ASCII bytes are skipped in a tight loop.
fn run_end(text: &str, mut at: usize, word: bool) -> (usize, bool) {
    let bytes = text.as_bytes();
    let mut ascii = true;
    loop {
        while at < bytes.len() && bytes[at] < 128 && ASCII_WORD[bytes[at] as usize] == word {
            at += 1;
        }
        if at == bytes.len() || bytes[at] < 128 {
            return (at, ascii);
        }
        let (len, is_word) = word_char(text, at);
        if is_word != word {
            return (at, ascii);
        }
        ascii = false;
        at += len;
    }
}

impl WordStream<'_> {
    /// Reads the next word (or, once each, [`HAS_LONG`] and [`HAS_NUMBERS`]) into the token:
    /// false at the end of the text.
    fn next_word(&mut self) -> bool {
        let text = self.text;
        loop {
            let (from, _) = run_end(text, self.at, false);
            if from == text.len() {
                self.at = from;
                return false;
            }
            let (to, ascii) = run_end(text, from, true);
            self.at = to;
            self.runs += 1;
            let out = &mut self.token.text;
            out.clear();
            if to - from >= MAX_WORD_BYTES {
                // Texts are marked where ids are cut: when indexing, not in needles.
                if !self.cut_ids || self.marked_long {
                    continue;
                }
                self.marked_long = true;
                out.push_str(HAS_LONG);
            } else {
                // Lowercasing keeps the length of ASCII words.
                if ascii && to - from < MIN_WORD_BYTES {
                    continue;
                }
                let word = &text[from..to];
                if ascii {
                    out.push_str(word);
                    out.make_ascii_lowercase();
                } else {
                    out.extend(word.chars().flat_map(char::to_lowercase));
                }
                if out.len() < MIN_WORD_BYTES {
                    continue;
                }
                if !self.numbers && is_number(out) {
                    if self.marked_numbers {
                        continue;
                    }
                    self.marked_numbers = true;
                    out.clear();
                    out.push_str(HAS_NUMBERS);
                }
            }
            self.token.offset_from = from;
            self.token.offset_to = to;
            self.token.position = self.runs - 1;
            return true;
        }
    }

    /// Steps past the next run of the word whose runs are looked for: false if none.
    fn next_run(&mut self) -> bool {
        let Some(word) = &self.in_word else {
            return false;
        };
        let Some((_, to)) = hex_run(word, self.in_word_at) else {
            self.in_word_at = word.len();
            return false;
        };
        self.in_word_at = to;
        true
    }

    /// Puts [`HAS_IDS`] in the token if it was not emitted for this text yet.
    fn mark_ids(&mut self) -> bool {
        if self.marked {
            return false;
        }
        self.marked = true;
        self.token.text.clear();
        self.token.text.push_str(HAS_IDS);
        true
    }

    /// The token's next text: [`RUNS_CUT`] first, then [`HAS_IDS`] or a word.
    fn next_text(&mut self) -> bool {
        if std::mem::take(&mut self.mark_runs) {
            self.token.text.clear();
            self.token.text.push_str(RUNS_CUT);
            // Before any word (a new token's position is `usize::MAX`).
            self.token.position = 0;
            return true;
        }
        loop {
            if self.next_run() {
                if self.mark_ids() {
                    return true;
                }
                continue;
            }
            if !self.next_word() {
                return false;
            }
            if !self.cut_ids || !is_id(&self.token.text) {
                // A longer word may hold runs after it.
                if let Some(word) = self.in_word.as_mut() {
                    if self.token.text.len() > MIN_ID_BYTES && hex_run(&self.token.text, 0).is_some() {
                        word.clear();
                        word.push_str(&self.token.text);
                        self.in_word_at = 0;
                    }
                }
                return true;
            }
            if self.mark_ids() {
                return true;
            }
        }
    }
}

impl TokenStream for WordStream<'_> {
    fn advance(&mut self) -> bool {
        while self.next_text() {
            let new = match self.seen.as_mut() {
                Some(seen) => seen.insert(&self.token.text),
                None => true,
            };
            if new {
                return true;
            }
        }
        false
    }

    fn token(&self) -> &Token {
        &self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercased_and_short_ones_left_out() {
        let mut a = words();
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

    fn texts(mut analyzer: TextAnalyzer, text: &str) -> Vec<String> {
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while let Some(t) = stream.next() {
            out.push(t.text.clone());
        }
        out
    }

    #[test]
    fn ids_and_numbers_are_marked_not_indexed() {
        let words = texts(
            block_analyzer(),
            "t=4BF92F3577B34DA6 abc123 deadbeef 1234567 123456789 x",
        );
        assert_eq!(words, ["#runs", "#ids", "abc123", "#nums"]);
        assert!(is_id("0123456789abcdef") && !is_id("0123456") && !is_id("0123456789abcdeg"));
    }

    #[test]
    fn blocks_mark_hex_runs_inside_words_and_filter_their_pieces() {
        let text = "x=Req0123456789ABCDEFz ok beef-1234 g12345678h87654321x";
        let words = texts(block_analyzer(), text);
        let expect = [
            "#runs",
            "req0123456789abcdefz",
            "#ids",
            "beef",
            "#nums",
            "g12345678h87654321x",
        ];
        assert_eq!(words, expect);
        let expect = [
            "^01234", "0123", "4567", "89ab", "cdef", "^#1234", "#1234", "^12345", "1234", "5678", "^87654",
            "8765", "4321",
        ];
        assert_eq!(pieces_of(text), expect);
    }

    #[test]
    fn blocks_keep_numbers_in_the_filter_and_are_marked() {
        let text = "took 12345 ms, 200 OK 2026-11-23 x9876 1234567 12345678 ٣4567 4567٣";
        let words = texts(block_analyzer(), text);
        // Numbers of 4 to 7 digits only mark the text; 3 digits, words with letters and ids
        // (8 hex digits or more) are as ever.
        let expect = ["#runs", "took", "#nums", "200", "x9876", "#ids", "٣4567", "4567٣"];
        assert_eq!(words, expect);
        let windows = [
            "^#1234", "#1234", "#2345", "^#2026", "#2026", "^#1234", "#1234", "#2345", "#3456", "#4567",
        ];
        let pieces = ["1234", "5678"];
        let all: Vec<&str> = windows
            .iter()
            .chain(&["^12345"])
            .chain(&pieces)
            .copied()
            .collect();
        assert_eq!(pieces_of(text), all);
    }

    /// [`bloom_pieces`] of `text`, in order, a number's windows marked with a `#` before and
    /// starts with a `^`.
    pub(super) fn pieces_of(text: &str) -> Vec<String> {
        let mut out = Vec::new();
        bloom_pieces(text, |p, of| {
            let mark = match of {
                Piece::Id => "",
                Piece::Number => "#",
                Piece::Start => "^",
                Piece::NumberStart => "^#",
            };
            out.push(format!("{mark}{}", std::str::from_utf8(p).unwrap()));
        });
        out
    }

    #[test]
    fn bloom_pieces_leave_out_words_too_long_to_index() {
        // Runs in words of 255 bytes and of 256, the first cut short by a non-ASCII letter.
        let word = |len: usize| format!("é{}0123456789ab", "x".repeat(len - 14));
        assert_eq!(
            pieces_of(&format!("a {} b", word(255))),
            ["^01234", "0123", "4567", "89ab"]
        );
        assert!(pieces_of(&format!("a {} b", word(256))).is_empty());
        let long = format!("{}-deadbeef", "0123456789g".repeat(40));
        assert_eq!(pieces_of(&long), ["^deadb", "dead", "beef"]);
    }
}

#[cfg(test)]
mod same_as_tantivy {
    //! The one-pass tokenizer against tantivy's filter chain it replaced (partitions written
    //! with that chain are searched with needles cut by this one) and a plain model of cutting
    //! ids and passing distinct words.

    use super::*;
    use tantivy::tokenizer::{LowerCaser, RemoveLongFilter, SimpleTokenizer};

    fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<(String, usize, usize, usize)> {
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while let Some(t) = stream.next() {
            out.push((t.text.clone(), t.offset_from, t.offset_to, t.position));
        }
        out
    }

    /// The words as tantivy's chain made them.
    fn chain(text: &str) -> Vec<(String, usize, usize, usize)> {
        let mut chain = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(MAX_WORD_BYTES))
            .filter(LowerCaser)
            .build();
        let mut all = tokens(&mut chain, text);
        all.retain(|(w, ..)| w.len() >= MIN_WORD_BYTES);
        all
    }

    /// A block's words: ids, runs and numbers only marked, texts marked and repeats dropped,
    /// one step at a time.
    fn model(text: &str) -> Vec<String> {
        let mut simple = TextAnalyzer::from(SimpleTokenizer::default());
        let long = tokens(&mut simple, text)
            .into_iter()
            .find(|(w, ..)| w.len() >= MAX_WORD_BYTES);
        let mut long_at = long.map(|(_, from, ..)| from);
        let mut out = vec![RUNS_CUT.to_string()];
        for (word, from, ..) in chain(text) {
            if long_at.is_some_and(|at| at < from) {
                out.push(HAS_LONG.to_string());
                long_at = None;
            }
            if is_id(&word) {
                if !out.iter().any(|w| w == HAS_IDS) {
                    out.push(HAS_IDS.to_string());
                }
            } else if word.len() >= 4 && word.len() < 8 && word.chars().all(|c| c.is_ascii_digit()) {
                if !out.iter().any(|w| w == HAS_NUMBERS) {
                    out.push(HAS_NUMBERS.to_string());
                }
            } else {
                out.push(word.clone());
                let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
                if word.split(|c| !hex(c)).any(|run| run.len() >= MIN_ID_BYTES)
                    && !out.iter().any(|w| w == HAS_IDS)
                {
                    out.push(HAS_IDS.to_string());
                }
            }
        }
        if long_at.is_some() {
            out.push(HAS_LONG.to_string());
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|w| seen.insert(w.clone()));
        out
    }

    /// The pieces of a block's bloom filter: each hex run of at least an id's length in the
    /// chain's words (an id is a run), its first 5 bytes and every whole piece; and every
    /// 4-byte window of the words of 4 to 7 ASCII digits, the first once more.
    fn bloom_model(text: &str) -> Vec<String> {
        let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        let mut out = Vec::new();
        for (word, ..) in chain(text) {
            if (4..8).contains(&word.len()) && word.chars().all(|c| c.is_ascii_digit()) {
                out.push(format!("^#{}", &word[..4]));
                out.extend((0..=word.len() - 4).map(|at| format!("#{}", &word[at..at + 4])));
            }
            for run in word.split(|c| !hex(c)).filter(|run| run.len() >= MIN_ID_BYTES) {
                out.push(format!("^{}", &run[..5]));
                let starts = (0..=run.len() - CHUNK).step_by(BLOOM_STRIDE);
                out.extend(starts.map(|at| run[at..at + CHUNK].to_string()));
            }
        }
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(600))]

        #[test]
        fn words_are_the_chains_and_cut_and_distinct_as_modelled(
            parts in proptest::collection::vec(
                "[a-zA-Z0-9]{0,12}|[0-9]{3,9}|[0-9a-fA-F]{6,40}|[g-z][0-9a-fA-F]{6,20}|[ .=:/_\"{}-]{1,3}|[ÉéßİıΣσςÅ٣७①ﬁ🙂ǅ]{1,3}|[a-z]{250,260}",
                0..40,
            ),
            texts in 1usize..4,
        ) {
            let text: String = parts.concat();
            proptest::prop_assert_eq!(tokens(&mut words(), &text), chain(&text));
            proptest::prop_assert_eq!(super::tests::pieces_of(&text), bloom_model(&text));
            let mut block = block_analyzer();
            // The analyzers are reused across texts, as tantivy does.
            for _ in 0..texts {
                let texts_of = |a: &mut TextAnalyzer| tokens(a, &text).into_iter().map(|t| t.0).collect::<Vec<_>>();
                proptest::prop_assert_eq!(texts_of(&mut block), model(&text));
            }
        }
    }
}
