//! Bloom filters of a block's ids' pieces and starts and its numbers' windows (`words.rs`
//! defines them), and the queries that read them.
//!
//! Ids are unique, so their pieces were most of the postings, and adding each posting meant a
//! lookup in a term table too large for the cache: most of the store's ingest CPU. Numbers of
//! 4 to 7 digits (sizes, durations, user ids) were the next largest part. A needle only ever asks
//! whether a block holds a piece, which a filter of the block's own answers at a fraction of
//! the cost to write, with a few false positives that the substring check drops.
//!
//! # Format
//!
//! A block's filter is its `bloom` fast field: `n` u64 values, in order, of `m = 64 n` bits;
//! bit `b` is bit `b % 64` of value `b / 64`. `n = ceil(p * BITS_PER_PIECE / 64)` for the
//! block's `p` distinct piece hashes ([`words::bloom_pieces`]: pieces, the first 5 bytes of
//! every id, and every 4-byte window of every number); a block without pieces has no values.
//! A piece's hash is `h = xxh3_64(piece)`
//! (its 4 bytes, lowercased), a number's window's `xxh3_64` with seed 1, an id's start's with
//! seed 2 and a number's first window's (once more) with seed 3 (so that no two kinds share
//! hashes); its [`K`] bits are
//! `b_i = (b_0 + i * step) % m` for `i` in `0..K`, where `b_0 = (h1 * m) >> 32`,
//! `step = ((h2 * (m - 1)) >> 32) + 1`, `h1 = h & 0xffff_ffff` and `h2 = h >> 32` (double
//! hashing, each hash mapped into `0..m` by a multiply: no division, and no step of 0).
//!
//! With [`BITS_PER_PIECE`] = 10 and [`K`] = 7, about 0.8% of blocks without a piece pass for
//! it; a needle of 11 hex digits or more holds two pieces, wherever it starts in an id, and one
//! of 5 or more that starts a word holds a piece and a start. A
//! reader takes `m` from the number of values, so `BITS_PER_PIECE` and how pieces are counted
//! may change without a new version; `K`, the hash and the bits may not
//! (`the_bits_of_pieces_are_pinned`, and the `store-v6` golden fixture).

use tantivy::query::{EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::{DocId, Score, SegmentReader};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::matched::Docs;
use crate::words::{self, Piece};

/// The fast field holding a block's filter.
pub(crate) const FIELD: &str = "bloom";
/// Filter bits per piece.
const BITS_PER_PIECE: usize = 10;
/// Bits set per piece.
const K: usize = 7;
/// The hash seed of numbers' windows.
const NUMBER_SEED: u64 = 1;
/// The hash seed of ids' starts.
const START_SEED: u64 = 2;
/// The hash seed of numbers' first windows.
const NUMBER_START_SEED: u64 = 3;

/// The hash of a piece of an id.
pub(crate) fn hash(piece: &[u8]) -> u64 {
    xxh3_64(piece)
}

/// The hash of a window of a number: seeded apart from ids' pieces, so that a needle looked up
/// in ids does not pass every block with a number that shares 4 digits with it.
fn hash_window(window: &[u8]) -> u64 {
    xxh3_64_with_seed(window, NUMBER_SEED)
}

/// The hash of the first window of a number ([`Piece::NumberStart`]).
fn hash_number_start(window: &[u8]) -> u64 {
    xxh3_64_with_seed(window, NUMBER_START_SEED)
}

/// The hash of the start of an id ([`Piece::Start`]).
fn hash_start(start: &[u8]) -> u64 {
    xxh3_64_with_seed(start, START_SEED)
}

/// The bits of the piece hashed `h` in a filter of `m` bits (`m` a multiple of 64).
fn bits(h: u64, m: u64) -> impl Iterator<Item = u64> {
    let (h1, h2) = (h & 0xffff_ffff, h >> 32);
    let step = ((h2 * (m - 1)) >> 32) + 1;
    // `b + step < 2m`: a subtraction wraps it.
    let next = move |b: &u64| Some(if b + step >= m { b + step - m } else { b + step });
    std::iter::successors(Some((h1 * m) >> 32), next).take(K)
}

/// The filter of the pieces and starts of the ids in `text` and the windows of its numbers,
/// as its `bloom` values. `hashes` is scratch space, kept by the caller so its memory is reused.
pub(crate) fn build(text: &str, hashes: &mut Vec<u64>) -> Vec<u64> {
    hashes.clear();
    words::bloom_pieces(text, |piece, of| {
        hashes.push(match of {
            Piece::Id => hash(piece),
            Piece::Number => hash_window(piece),
            Piece::Start => hash_start(piece),
            Piece::NumberStart => hash_number_start(piece),
        })
    });
    // A number such as a year is in most lines of a block: sized by the repeats, its filter
    // was several times larger than it needs.
    hashes.sort_unstable();
    hashes.dedup();
    let mut words = vec![0u64; (hashes.len() * BITS_PER_PIECE).div_ceil(64)];
    let m = 64 * words.len() as u64;
    for &h in hashes.iter() {
        for b in bits(h, m) {
            words[(b / 64) as usize] |= 1 << (b % 64);
        }
    }
    words
}

/// Whether the filter of `n` values, read by `word`, may hold every piece of `hashes`.
fn may_hold(n: u32, word: impl Fn(u32) -> u64, hashes: &[u64]) -> bool {
    let m = 64 * u64::from(n);
    if m > u64::from(u32::MAX) {
        // Past what a block of a request's size gets (bits are computed in 64 bits from 32-bit
        // hashes): a damaged index. Keep the block; its lines are still checked.
        return true;
    }
    n > 0
        && hashes
            .iter()
            .all(|&h| bits(h, m).all(|b| word((b / 64) as u32) & (1 << (b % 64)) != 0))
}

/// Blocks whose filter may hold all the pieces of one of the `alternatives` (piece hashes).
#[derive(Debug, Clone)]
pub(crate) struct Bloom {
    alternatives: Vec<Vec<u64>>,
}

impl Bloom {
    /// Blocks that may hold `digits` (of [`words::CHUNK`] or more) inside a number (at its
    /// start with `at_start`): all its windows (and its first as a number's first).
    pub(crate) fn of_number(digits: &str, at_start: bool) -> Bloom {
        let bytes = digits.as_bytes();
        let windows = bytes.windows(words::CHUNK).map(hash_window);
        let first = at_start.then(|| hash_number_start(&bytes[..words::CHUNK]));
        Bloom {
            alternatives: vec![windows.chain(first).collect()],
        }
    }

    /// Blocks that may hold `fragment` inside an id or hex run (at its start with `at_start`):
    /// for each offset of the fragment from a piece's start, the whole pieces it holds, and at
    /// an id's start, its start too. `None` if at some offset it holds none.
    pub(crate) fn of_fragment(fragment: &str, at_start: bool) -> Option<Bloom> {
        let offsets = if at_start { 0..1 } else { 0..words::BLOOM_STRIDE };
        let start = fragment.as_bytes().get(..words::START_BYTES).filter(|_| at_start);
        let mut alternatives = Vec::new();
        for offset in offsets {
            let first = (words::BLOOM_STRIDE - offset) % words::BLOOM_STRIDE;
            let starts = (first..).step_by(words::BLOOM_STRIDE);
            let mut hashes: Vec<u64> = starts
                .take_while(|at| at + words::CHUNK <= fragment.len())
                .map(|at| hash(&fragment.as_bytes()[at..at + words::CHUNK]))
                .collect();
            if hashes.is_empty() {
                return None;
            }
            hashes.extend(start.map(hash_start));
            alternatives.push(hashes);
        }
        Some(Bloom { alternatives })
    }

    fn docs(&self, reader: &SegmentReader) -> tantivy::Result<Vec<DocId>> {
        let Some(column) = reader.fast_fields().column_opt::<u64>(FIELD)? else {
            // No block of the segment has pieces.
            return Ok(Vec::new());
        };
        let alternatives = &self.alternatives;
        let mut docs = Vec::new();
        for doc in 0..reader.max_doc() {
            let rows = column.index.value_row_ids(doc);
            let n = rows.end - rows.start;
            let word = |i: u32| column.values.get_val(rows.start + i);
            if alternatives.iter().any(|hashes| may_hold(n, word, hashes)) {
                docs.push(doc);
            }
        }
        Ok(docs)
    }
}

impl Query for Bloom {
    fn weight(&self, _: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(self.clone()))
    }
}

impl Weight for Bloom {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        Ok(Box::new(Docs::new(self.docs(reader)?.into(), boost)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        if self.docs(reader)?.contains(&doc) {
            Ok(Explanation::new("its bloom filter may hold the pieces", 1.0))
        } else {
            Err(tantivy::TantivyError::InvalidArgument(format!(
                "document {doc} does not match: its bloom filter holds none of the alternatives"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter_of(pieces: &[&[u8; 4]]) -> Vec<u64> {
        let text: Vec<String> = pieces
            .iter()
            .map(|p| format!("{}0000", std::str::from_utf8(&p[..]).unwrap()))
            .collect();
        let mut scratch = Vec::new();
        build(&text.join(" "), &mut scratch)
    }

    fn holds(filter: &[u64], pieces: &[&[u8]]) -> bool {
        let hashes: Vec<u64> = pieces.iter().map(|p| hash(p)).collect();
        may_hold(filter.len() as u32, |i| filter[i as usize], &hashes)
    }

    #[test]
    fn a_filter_holds_its_pieces_and_few_others() {
        // 500 ids of 8 hex digits: 1000 pieces.
        let ids: Vec<String> = (0..500u32)
            .map(|i| format!("{:08x}", i.wrapping_mul(2_654_435_761)))
            .collect();
        let mut scratch = Vec::new();
        let filter = build(&ids.join(" "), &mut scratch);
        // 1000 pieces and 500 starts.
        assert_eq!(filter.len(), (1500 * BITS_PER_PIECE).div_ceil(64));
        for id in &ids {
            assert!(
                holds(&filter, &[&id.as_bytes()[..4], &id.as_bytes()[4..]]),
                "{id}"
            );
        }
        let others = (0..65_536u32)
            .map(|p| format!("{p:04x}"))
            .filter(|p| {
                !ids.iter()
                    .any(|id| id.starts_with(p.as_str()) || id.ends_with(p.as_str()))
            })
            .collect::<Vec<_>>();
        let passed = others.iter().filter(|p| holds(&filter, &[p.as_bytes()])).count();
        let rate = passed as f64 / others.len() as f64;
        assert!(rate < 0.015, "false positive rate {rate}");
    }

    #[test]
    fn a_block_without_pieces_holds_none() {
        let mut scratch = Vec::new();
        assert!(build("no ids nor numbers here 123 x1234", &mut scratch).is_empty());
        assert!(!holds(&[], &[b"1234"]));
        let filter = filter_of(&[b"beef"]);
        assert!(holds(&filter, &[b"beef"]) && holds(&filter, &[b"0000"]));
    }

    #[test]
    fn a_filter_longer_than_any_block_gets_holds_everything() {
        let empty = |_| 0;
        assert!(!may_hold(1 << 20, empty, &[hash(b"beef")]));
        assert!(may_hold(1 << 26, empty, &[hash(b"beef")]));
    }

    /// The hash and bit positions are part of the on-disk format: pinned (the values were
    /// computed apart, with Python's `xxhash` package).
    #[test]
    fn the_bits_of_pieces_are_pinned() {
        assert_eq!(hash(b"4bf9"), 0x0021_f20f_a699_1382);
        assert_eq!(hash_window(b"2026"), 0xb642_724c_05b9_1b38);
        assert_eq!(hash_start(b"4bf90"), 0xc634_73ef_8390_80a4);
        assert_eq!(hash_number_start(b"2026"), 0x6839_f8e9_2fee_8b9f);
        // Ids' pieces and starts, numbers' windows and first windows, and each distinct
        // piece once (8 pieces: 80 bits, 2 values).
        let mut scratch = Vec::new();
        let text = "t=2026 2026 n=12345 id=4BF90000";
        let filter = build(text, &mut scratch);
        assert_eq!(filter, [0x0d99_0858_08cc_0886, 0x8a21_4c80_3bf8_aa22]);
    }
}
