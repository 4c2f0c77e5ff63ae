//! How log lines are cut into indexed words (the `obs_words` tokenizer), for indexing and for
//! the index hints of line filters alike.
//!
//! Words are runs of letters and digits, lowercased. Words of fewer than [`MIN_WORD_BYTES`]
//! bytes are not indexed: `1`, `05`, `v1`, `id` are in most lines, so their postings cost a
//! quarter of the indexing work and narrow no search. A hint never uses them either, which
//! keeps hints safe on every partition: any word that contains a hint word of 3 bytes or more
//! is itself 3 bytes or more, so it is indexed. Words of 256 bytes or more (a base64 blob) are
//! not indexed; a text that has one is marked once with [`HAS_LONG`], and every hint word also
//! accepts texts so marked, as the needle may be inside such a word. (Partitions written
//! before 2026-12-02 are not marked: there a needle inside a word that long is not found.)
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
//!
//! **Pieces in bloom filters** (v4 partitions, since 2026-12-02): even in pieces, ids were most
//! of the postings, and adding them most of the store's ingest CPU (each a lookup in a hash
//! table too large for the cache). v4 postings hold the marks but no pieces; every piece of an
//! id — one every [`BLOOM_STRIDE`] = [`CHUNK`] bytes — goes to the block's bloom filter
//! instead ([`bloom_pieces`], `logs/bloom.rs`), where a needle of 7 hex digits or more holds
//! a whole piece wherever it starts.
//!
//! **Numbers in bloom filters** (v5 partitions): words of [`MIN_NUMBER_BYTES`] to 7 ASCII
//! digits (sizes, durations, user ids) were most of the remaining distinct words, and so of
//! the indexing work. v5 postings hold a mark, [`HAS_NUMBERS`], instead; every 4-byte window
//! of a number goes to the block's filter, and its first window once more, as a start. A
//! needle of 4 digits or more finds the numbers that hold it by its windows (one that starts
//! a word, `user_id=9640`, those that start with it, by its first window as a start too); one
//! of 3 digits cut by the needle's edge, only by the mark. Numbers of 3 digits (status
//! codes) are few and stay words. v5 filters also hold the first
//! 5 bytes of each id and run (its start): a needle of 5 to 7 hex digits that starts a word
//! (`user_id=48213`) holds only one whole piece, which a block's filter holds by chance far more
//! often than that piece and the start together.
//!
//! **Hex runs inside longer words** (`req7f3a9c1e5b2d4a60`) of [`MIN_ID_BYTES`] or more are cut
//! the same way, after the word itself, and every text is marked [`RUNS_CUT`] (since
//! 2026-12-02). A needle that is an id cut by its edge (a bare trace id) may be inside such a
//! word: in older documents only a pattern over the whole term dictionary finds it, which was
//! most of the time of such a search; `logs/unmarked.rs` runs that pattern only on segments
//! with unmarked documents.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;
use tantivy::tokenizer::{TextAnalyzer, Token, TokenStream, Tokenizer};

/// Shorter words are left out of the index.
pub(crate) const MIN_WORD_BYTES: usize = 3;
/// Words this long or longer (before lowercasing) are left out of the index.
const MAX_WORD_BYTES: usize = 256;
/// Hex words this long or longer are ids, indexed in pieces.
pub(crate) const MIN_ID_BYTES: usize = 8;
/// Words of ASCII digits this long or longer, and shorter than an id, are numbers: in v5
/// blocks, their windows go to the bloom filter instead of the postings.
pub(crate) const MIN_NUMBER_BYTES: usize = CHUNK;
/// The length of an id's pieces.
pub(crate) const CHUNK: usize = 4;
/// An id's pieces start this many bytes apart (in v3 partitions' postings).
pub(crate) const STRIDE: usize = 2 * CHUNK;
/// An id's pieces start this many bytes apart in a v4 block's bloom filter: every piece.
pub(crate) const BLOOM_STRIDE: usize = CHUNK;
/// Indexed once for a text with ids: a short needle may lie between two indexed pieces of an
/// id, and then only this narrows the search. Words never hold `#`.
pub(crate) const HAS_IDS: &str = "#ids";
/// Indexed once for a text with a word of [`MAX_WORD_BYTES`] or more, which is not indexed.
pub(crate) const HAS_LONG: &str = "#long";
/// Indexed once for every text whose words' hex runs are cut like ids (since 2026-12-02): a
/// segment where every document has it needs no scan of its term dictionary for an id inside
/// a longer word.
pub(crate) const RUNS_CUT: &str = "#runs";
/// Indexed once for a v5 text with numbers ([`is_number`]), which are not indexed as words: a
/// needle of 3 digits may lie inside one, and then only this narrows the search.
pub(crate) const HAS_NUMBERS: &str = "#nums";

/// Words with ids cut in pieces: how a needle that is a whole id is looked up. (Also the
/// tokenizer of v1 partitions, which are no longer written.)
pub(crate) fn analyzer() -> TextAnalyzer {
    TextAnalyzer::from(Words::new(Cut::Ids, false))
}

/// The analyzer of a block of lines in v5 partitions (`logs.rs`): [`analyzer`]'s words, each
/// distinct word of the block once (postings are per block, so repeats are wasted work), and
/// ids, hex runs inside longer words and numbers left out but for the marks: their pieces and
/// windows are in the block's bloom filter ([`bloom_pieces`]).
pub(crate) fn block_analyzer() -> TextAnalyzer {
    TextAnalyzer::from(
        Words::new(Cut::IdsAndRuns, true)
            .without_pieces()
            .without_numbers(),
    )
}

/// The analyzer of a block of lines in v4 partitions: [`block_analyzer`] with numbers indexed
/// as words.
pub(crate) fn block_analyzer_v4() -> TextAnalyzer {
    TextAnalyzer::from(Words::new(Cut::IdsAndRuns, true).without_pieces())
}

/// The analyzer of a block of lines in v2 and v3 partitions: [`block_analyzer`] with the
/// pieces of ids and runs indexed too.
pub(crate) fn block_analyzer_v3() -> TextAnalyzer {
    TextAnalyzer::from(Words::new(Cut::IdsAndRuns, true))
}

/// [`block_analyzer`] as partitions written before hold words: with ids cut but not runs
/// inside words (before 2026-12-02), or ids whole too (before 2026-12-01). For tests of
/// needle hints against such partitions.
#[cfg(test)]
pub(crate) fn block_analyzer_of_old(ids_cut: bool) -> TextAnalyzer {
    TextAnalyzer::from(Words::new(if ids_cut { Cut::Ids } else { Cut::Nothing }, true))
}

/// Whole words as [`analyzer`] sees them before ids are cut: how needles are read.
pub(crate) fn words() -> TextAnalyzer {
    TextAnalyzer::from(Words::new(Cut::Nothing, false))
}

/// What the words tokenizer cuts in pieces.
#[derive(Clone, Copy, PartialEq)]
enum Cut {
    Nothing,
    /// Ids, and texts with a word too long to index are marked [`HAS_LONG`].
    Ids,
    /// Ids and, inside longer words, runs of hex digits as long as an id; and every text is
    /// marked [`RUNS_CUT`].
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
    /// A number's first window (v5): a needle that starts a word holds it.
    NumberStart,
    /// The first [`START_BYTES`] bytes of an id or run (v5): with the first piece, they narrow
    /// a needle that starts a word to the blocks with an id that starts with it.
    Start,
}

/// The length of a [`Piece::Start`].
pub(crate) const START_BYTES: usize = CHUNK + 1;

/// Calls `piece` with each [`CHUNK`]-byte piece, lowercased, that starts a multiple of
/// [`BLOOM_STRIDE`] bytes into an id or a hex run inside a longer word of `text` (the ids and
/// runs [`block_analyzer_v3`] cuts, pieces left out only where shorter than a chunk), and with
/// `v5`, the [`Piece::Start`] of each (before its pieces) and each [`CHUNK`]-byte window of each
/// number ([`is_number`]; its first also as a [`Piece::NumberStart`], before them), in text
/// order, repeats included. These go to a v4 (v5) block's bloom filter (`logs/bloom.rs`).
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
pub(crate) fn bloom_pieces(text: &str, v5: bool, mut piece: impl FnMut(&[u8], Piece)) {
    let bytes = text.as_bytes();
    let hex = |at: usize| bytes[at].is_ascii_hexdigit();
    let step = if v5 { MIN_NUMBER_BYTES } else { MIN_ID_BYTES };
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
            if v5
                && run.len() >= MIN_NUMBER_BYTES
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
        if indexed && v5 {
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
    /// Whether the pieces of ids and runs are passed (else only the marks).
    pieces: bool,
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
            pieces: true,
            numbers: true,
            seen: Seen::default(),
        }
    }

    fn without_pieces(self) -> Words {
        Words {
            pieces: false,
            ..self
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
            id: (self.cut != Cut::Nothing).then(String::new),
            in_word: (self.cut == Cut::IdsAndRuns).then(String::new),
            in_word_at: 0,
            mark_runs: self.cut == Cut::IdsAndRuns,
            pieces: self.pieces,
            next_piece: None,
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
    /// With ids cut: the id (or run) being cut, and the offset of its next piece while cutting.
    id: Option<String>,
    /// With runs cut: the word whose runs are being cut (empty if none), and where the search
    /// for its next run starts.
    in_word: Option<String>,
    in_word_at: usize,
    /// Whether [`RUNS_CUT`] is yet to be emitted for this text.
    mark_runs: bool,
    /// Whether pieces are passed.
    pieces: bool,
    next_piece: Option<usize>,
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
                if self.id.is_none() || self.marked_long {
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

    /// Puts the next piece of the id being cut in the token: false past its end.
    fn next_piece(&mut self) -> bool {
        let (Some(at), Some(id)) = (self.next_piece, &self.id) else {
            return false;
        };
        if at >= id.len() || !self.pieces {
            self.next_piece = None;
            return false;
        }
        self.token.text.clear();
        self.token.text.push_str(&id[at..(at + CHUNK).min(id.len())]);
        self.next_piece = Some(at + STRIDE);
        true
    }

    /// Puts the next run of the word whose runs are being cut in `id`, to cut: false if none.
    fn next_run(&mut self) -> bool {
        let (Some(word), Some(id)) = (&self.in_word, &mut self.id) else {
            return false;
        };
        let Some((from, to)) = hex_run(word, self.in_word_at) else {
            self.in_word_at = word.len();
            return false;
        };
        id.clear();
        id.push_str(&word[from..to]);
        self.in_word_at = to;
        self.next_piece = Some(0);
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

    /// The token's next text: [`RUNS_CUT`] first, then a piece of an id or run, [`HAS_IDS`] or
    /// a word.
    fn next_text(&mut self) -> bool {
        if std::mem::take(&mut self.mark_runs) {
            self.token.text.clear();
            self.token.text.push_str(RUNS_CUT);
            // Before any word (a new token's position is `usize::MAX`).
            self.token.position = 0;
            return true;
        }
        loop {
            if self.next_piece() {
                return true;
            }
            if self.next_run() {
                if self.mark_ids() {
                    return true;
                }
                continue;
            }
            if !self.next_word() {
                return false;
            }
            let Some(id) = self.id.as_mut().filter(|_| is_id(&self.token.text)) else {
                // A longer word may hold runs to cut after it.
                if let Some(word) = self.in_word.as_mut() {
                    if self.token.text.len() > MIN_ID_BYTES && hex_run(&self.token.text, 0).is_some() {
                        word.clear();
                        word.push_str(&self.token.text);
                        self.in_word_at = 0;
                    }
                }
                return true;
            };
            std::mem::swap(id, &mut self.token.text);
            self.next_piece = Some(0);
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

    fn texts(mut analyzer: TextAnalyzer, text: &str) -> Vec<String> {
        let mut stream = analyzer.token_stream(text);
        let mut out = Vec::new();
        while let Some(t) = stream.next() {
            out.push(t.text.clone());
        }
        out
    }

    #[test]
    fn ids_are_cut_in_pieces_from_their_start() {
        let words = texts(
            analyzer(),
            "t=4BF92F3577B34DA6 abc123 deadbeef 1234567 123456789 x",
        );
        let expect = ["#ids", "4bf9", "77b3", "abc123", "dead", "1234567", "1234", "9"];
        assert_eq!(words, expect);
        assert!(is_id("0123456789abcdef") && !is_id("0123456") && !is_id("0123456789abcdeg"));
    }

    #[test]
    fn blocks_cut_hex_runs_inside_words_and_are_marked() {
        let text = "x=Req0123456789ABCDEFz ok beef-1234 g12345678h87654321x";
        let words = texts(block_analyzer_v3(), text);
        let expect = [
            "#runs",
            "req0123456789abcdefz",
            "#ids",
            "0123",
            "89ab",
            "beef",
            "1234",
            "g12345678h87654321x",
            // `1234` again is left out: each distinct word once.
            "8765",
        ];
        assert_eq!(words, expect);
        // v4 keeps the marks; the pieces, one every 4 bytes, go to the bloom filter.
        let words = texts(block_analyzer_v4(), text);
        let expect = [
            "#runs",
            "req0123456789abcdefz",
            "#ids",
            "beef",
            "1234",
            "g12345678h87654321x",
        ];
        assert_eq!(words, expect);
        let expect = ["0123", "4567", "89ab", "cdef", "1234", "5678", "8765", "4321"];
        assert_eq!(pieces_of(text, false), expect);
    }

    #[test]
    fn v5_blocks_keep_numbers_in_the_filter_and_are_marked() {
        let text = "took 12345 ms, 200 OK 2026-11-23 x9876 1234567 12345678 ٣4567 4567٣";
        let words = texts(block_analyzer(), text);
        // Numbers of 4 to 7 digits only mark the text; 3 digits, words with letters and ids
        // (8 hex digits or more) are as in v4.
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
        assert_eq!(pieces_of(text, true), all);
        assert_eq!(pieces_of(text, false), pieces);
    }

    /// [`bloom_pieces`] of `text`, in order, a number's windows marked with a `#` before and
    /// starts with a `^`.
    pub(super) fn pieces_of(text: &str, v5: bool) -> Vec<String> {
        let mut out = Vec::new();
        bloom_pieces(text, v5, |p, of| {
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
            pieces_of(&format!("a {} b", word(255)), false),
            ["0123", "4567", "89ab"]
        );
        assert!(pieces_of(&format!("a {} b", word(256)), true).is_empty());
        let long = format!("{}-deadbeef", "0123456789g".repeat(40));
        assert_eq!(pieces_of(&long, true), ["^deadb", "dead", "beef"]);
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

    /// Ids and runs cut (their pieces passed if `pieces`), numbers passed or only marked,
    /// texts marked and repeats dropped, one step at a time.
    fn model(text: &str, cut: Cut, distinct: bool, pieces: bool, numbers: bool) -> Vec<String> {
        let cut_ids = cut != Cut::Nothing;
        let pieces = |id: &str| -> Vec<String> {
            (0..id.len())
                .step_by(STRIDE)
                .filter(|_| pieces)
                .map(|at| id[at..(at + CHUNK).min(id.len())].to_string())
                .collect()
        };
        let mut simple = TextAnalyzer::from(SimpleTokenizer::default());
        let long = tokens(&mut simple, text)
            .into_iter()
            .find(|(w, ..)| w.len() >= MAX_WORD_BYTES);
        let mut long_at = long.filter(|_| cut_ids).map(|(_, from, ..)| from);
        let mut out = Vec::new();
        if cut == Cut::IdsAndRuns {
            out.push(RUNS_CUT.to_string());
        }
        for (word, from, ..) in chain(text) {
            if long_at.is_some_and(|at| at < from) {
                out.push(HAS_LONG.to_string());
                long_at = None;
            }
            if cut_ids && is_id(&word) {
                if !out.iter().any(|w| w == HAS_IDS) {
                    out.push(HAS_IDS.to_string());
                }
                out.extend(pieces(&word));
            } else if !numbers
                && word.len() >= 4
                && word.len() < 8
                && word.chars().all(|c| c.is_ascii_digit())
            {
                if !out.iter().any(|w| w == HAS_NUMBERS) {
                    out.push(HAS_NUMBERS.to_string());
                }
            } else {
                out.push(word.clone());
                let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
                for run in word.split(|c| !hex(c)).filter(|run| run.len() >= MIN_ID_BYTES) {
                    if cut == Cut::IdsAndRuns {
                        if !out.iter().any(|w| w == HAS_IDS) {
                            out.push(HAS_IDS.to_string());
                        }
                        out.extend(pieces(run));
                    }
                }
            }
        }
        if long_at.is_some() {
            out.push(HAS_LONG.to_string());
        }
        if distinct {
            let mut seen = std::collections::HashSet::new();
            out.retain(|w| seen.insert(w.clone()));
        }
        out
    }

    /// The pieces of a v4 block's bloom filter: every whole piece of the hex runs of at least
    /// an id's length in the chain's words (an id is a run); with `v5`, also each run's first 5
    /// bytes and every 4-byte window of the words of 4 to 7 ASCII digits.
    fn bloom_model(text: &str, v5: bool) -> Vec<String> {
        let hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        let mut out = Vec::new();
        for (word, ..) in chain(text) {
            if v5 && (4..8).contains(&word.len()) && word.chars().all(|c| c.is_ascii_digit()) {
                out.push(format!("^#{}", &word[..4]));
                out.extend((0..=word.len() - 4).map(|at| format!("#{}", &word[at..at + 4])));
            }
            for run in word.split(|c| !hex(c)).filter(|run| run.len() >= MIN_ID_BYTES) {
                if v5 {
                    out.push(format!("^{}", &run[..5]));
                }
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
            proptest::prop_assert_eq!(super::tests::pieces_of(&text, false), bloom_model(&text, false));
            proptest::prop_assert_eq!(super::tests::pieces_of(&text, true), bloom_model(&text, true));
            let mut a = analyzer();
            let mut block = block_analyzer();
            let mut v4 = block_analyzer_v4();
            let mut v3 = block_analyzer_v3();
            let mut before_runs = block_analyzer_of_old(true);
            let mut whole = block_analyzer_of_old(false);
            // The analyzers are reused across texts, as tantivy does.
            for _ in 0..texts {
                let texts_of = |a: &mut TextAnalyzer| tokens(a, &text).into_iter().map(|t| t.0).collect::<Vec<_>>();
                proptest::prop_assert_eq!(texts_of(&mut a), model(&text, Cut::Ids, false, true, true));
                proptest::prop_assert_eq!(texts_of(&mut block), model(&text, Cut::IdsAndRuns, true, false, false));
                proptest::prop_assert_eq!(texts_of(&mut v4), model(&text, Cut::IdsAndRuns, true, false, true));
                proptest::prop_assert_eq!(texts_of(&mut v3), model(&text, Cut::IdsAndRuns, true, true, true));
                proptest::prop_assert_eq!(texts_of(&mut before_runs), model(&text, Cut::Ids, true, true, true));
                proptest::prop_assert_eq!(texts_of(&mut whole), model(&text, Cut::Nothing, true, true, true));
            }
        }
    }
}
