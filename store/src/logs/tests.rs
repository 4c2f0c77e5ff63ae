//! Tests of the log index: partitions, blocks, reading back, and needle hints over every
//! version's partitions.

use super::*;
use crate::model::LogStream;

fn batch(labels: &[(&str, &str)], lines: &[(i64, &str)]) -> LogBatch {
    LogBatch {
        streams: vec![LogStream {
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            entries: lines
                .iter()
                .map(|(ts, l)| LogEntry {
                    ts_ns: *ts,
                    line: l.to_string(),
                    metadata: vec![],
                })
                .collect(),
        }],
    }
}

/// Indexes each line as a block of its own, so hints are checked line by line.
fn apply_each(idx: &LogIndex, lines: &[(i64, &str)]) {
    for (i, line) in lines.iter().enumerate() {
        idx.apply(i as u64 + 1, &batch(&[("job", "a")], &[*line]))
            .unwrap();
    }
    idx.commit(lines.len() as u64).unwrap();
}

/// A log index holding `lines` (each its own record).
fn index_of(lines: &[(i64, &str)]) -> (tempfile::TempDir, LogIndex) {
    let dir = tempfile::tempdir().unwrap();
    let idx = LogIndex::open(dir.path()).unwrap();
    apply_each(&idx, lines);
    (dir, idx)
}

/// The times of the lines of day 0 that the hint of `needle` leaves as candidates.
fn candidates(idx: &LogIndex, needle: &str) -> Vec<i64> {
    let hint = idx.needle_hint(needle).expect("a hint");
    let query = idx.query(0, DAY_NS, vec![(Occur::Must, hint)]);
    let refs = idx.refs(&idx.searchers(0, DAY_NS), &query, (0, DAY_NS), 1000);
    let mut ts: Vec<i64> = refs.unwrap().unwrap().iter().map(|r| r.ts_ns).collect();
    ts.sort();
    ts
}

fn count(idx: &LogIndex, q: &dyn Query) -> usize {
    idx.refs(&idx.searchers(0, 10 * DAY_NS), q, (0, 10 * DAY_NS), 1 << 20)
        .unwrap()
        .unwrap()
        .len()
}

#[test]
fn lines_land_in_day_partitions_and_replay_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let idx = LogIndex::open(dir.path()).unwrap();
    let b = batch(&[("job", "a")], &[(5, "day zero"), (DAY_NS + 5, "day one")]);
    assert_eq!(idx.apply(1, &b).unwrap(), 2);
    idx.parts.commit(1).unwrap();
    assert_eq!(idx.parts.disk_usage().0, 2);
    drop(idx);
    let idx = LogIndex::open(dir.path()).unwrap();
    // Replaying record 1 adds nothing; record 2 is new.
    assert_eq!(idx.apply(1, &b).unwrap(), 0);
    assert_eq!(idx.apply(2, &batch(&[("job", "b")], &[(7, "more")])).unwrap(), 1);
    idx.parts.commit(2).unwrap();
    let all = idx.query(0, 10 * DAY_NS, vec![]);
    assert_eq!(count(&idx, &all), 3);
    let a = idx.query(0, 10 * DAY_NS, vec![(Occur::Must, idx.label_term("job", "a"))]);
    assert_eq!(count(&idx, &a), 2);
    assert_eq!(idx.parts.drop_before(DAY_NS).unwrap(), 1);
    assert_eq!(count(&idx, &a), 1);
}

#[test]
fn blocks_keep_each_line_with_its_time_size_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let idx = LogIndex::open(dir.path()).unwrap();
    // A day and a quarter of a block on each day.
    let day = (BLOCK_LINES + BLOCK_LINES / 4) as i64;
    let entries: Vec<LogEntry> = (0..2 * day)
        .map(|i| LogEntry {
            // Lines `day` and later are on the next day.
            ts_ns: DAY_NS - day + i,
            // Line 7 is empty: values that are empty strings must keep their place.
            // Lines may hold newlines and any other character.
            line: match i {
                7 => String::new(),
                _ if i % 11 == 3 => format!("multi\nline\n{i} é\n"),
                _ => format!("line {i} {}", "x".repeat(i as usize % 7)),
            },
            // The last block (its last quarter) has no metadata at all.
            metadata: match i % 4 {
                _ if i >= 2 * day - day / 5 => vec![],
                0 => vec![("k".into(), i.to_string())],
                1 => vec![("level".into(), "warn".into())],
                _ => vec![],
            },
        })
        .collect();
    let labels: Labels = [("job".to_string(), "a".to_string())].into();
    let b = LogBatch {
        streams: vec![LogStream {
            labels: labels.clone(),
            entries: entries.clone(),
        }],
    };
    assert_eq!(idx.apply(1, &b).unwrap(), entries.len());
    idx.commit(1).unwrap();
    let searchers = idx.searchers(0, 10 * DAY_NS);
    let docs: u64 = searchers.iter().map(|s| s.num_docs()).sum();
    assert_eq!(
        docs, 4,
        "blocks of BLOCK_LINES lines at most, cut at the day's end"
    );

    let all = idx.query(0, 10 * DAY_NS, vec![]);
    let refs = idx
        .refs(&searchers, &all, (0, 10 * DAY_NS), 1000)
        .unwrap()
        .unwrap();
    assert_eq!(refs.len(), entries.len());
    let mut readers: Vec<_> = searchers.iter().map(|s| idx.reader(s)).collect();
    for r in &refs {
        let want = &entries[(r.ts_ns - (DAY_NS - day)) as usize];
        assert_eq!(r.bytes, want.line.len() as u64);
        let hit = readers[r.part].hit(r.addr).unwrap();
        // Lines without a level get one detected when read.
        let mut meta = want.metadata.clone();
        if !meta.iter().any(|(k, _)| k == "level") {
            meta.push((
                "detected_level".into(),
                crate::model::detect_level(&want.line).into(),
            ));
        }
        assert_eq!(
            (hit.ts_ns, hit.line, hit.metadata),
            (want.ts_ns, want.line.as_str(), meta.as_slice())
        );
        assert_eq!(hit.labels, &labels);
    }

    // Only the lines in range count, though their blocks hold more.
    let range = (DAY_NS - 10, DAY_NS + 10);
    let some = idx.query(range.0, range.1, vec![]);
    let refs = idx.refs(&searchers, &some, range, 1000).unwrap().unwrap();
    assert_eq!(refs.len(), 20);
    let stats = idx.stream_stats(&searchers, &some, range).unwrap();
    assert_eq!(stats.iter().map(|(_, s)| s.lines).sum::<u64>(), 20);
    let matched = Matched::find(&searchers[1], &some).unwrap();
    let mut blocks = idx.blocks_in_order(&searchers[1], &matched, range, true).unwrap();
    let mut lines = Vec::new();
    while blocks.next_block(&mut lines) {}
    let mut ts: Vec<i64> = lines.iter().map(|(ts, _)| ts - DAY_NS).collect();
    ts.sort_unstable();
    assert_eq!(ts, (0..10).collect::<Vec<_>>());
}

/// Blocks come newest first by their last line (oldest first by their first): no line of a
/// block is newer (older) than its bound, bounds only fall (rise), and every line in range
/// comes once.
#[test]
fn blocks_in_order_bound_their_lines_and_hold_every_line_once() {
    let dir = tempfile::tempdir().unwrap();
    let idx = LogIndex::open(dir.path()).unwrap();
    // Times out of order and often shared, in three segments.
    let range = (10, 440);
    let (mut seq, mut in_range) = (0, 0);
    for part in 0..3 {
        let lines: Vec<(i64, String)> = (0..700)
            .map(|i| ((i * 7919 + part * 13) % 450, format!("l{part} {i}")))
            .collect();
        let lines: Vec<(i64, &str)> = lines.iter().map(|(t, l)| (*t, l.as_str())).collect();
        in_range += lines
            .iter()
            .filter(|(t, _)| (range.0..range.1).contains(t))
            .count();
        seq += 1;
        idx.apply(seq, &batch(&[("job", "a")], &lines)).unwrap();
        idx.commit(seq).unwrap();
    }
    let searchers = idx.searchers(0, DAY_NS);
    let q = idx.query(range.0, range.1, vec![]);
    let refs = idx.refs(&searchers, &q, range, 10_000).unwrap().unwrap();
    let mut all: Vec<(i64, LineAddr)> = refs.iter().map(|r| (r.ts_ns, r.addr)).collect();
    all.sort_unstable();
    assert_eq!(all.len(), in_range);
    let matched = Matched::find(&searchers[0], &q).unwrap();
    for backward in [false, true] {
        let mut blocks = idx
            .blocks_in_order(&searchers[0], &matched, range, backward)
            .unwrap();
        let (mut read, mut block, mut last_bound) = (Vec::new(), Vec::new(), None);
        while let Some(bound) = blocks.bound() {
            if let Some(last) = last_bound {
                assert!(if backward { bound <= last } else { bound >= last }, "{backward}");
            }
            last_bound = Some(bound);
            block.clear();
            assert!(blocks.next_block(&mut block));
            for (ts, _) in &block {
                assert!(if backward { *ts <= bound } else { *ts >= bound }, "{backward}");
            }
            read.extend_from_slice(&block);
        }
        assert!(!blocks.next_block(&mut block));
        read.sort_unstable();
        assert_eq!(read, all, "backward: {backward}");
    }
}

#[test]
fn needle_hints_find_words_and_word_fragments() {
    let dir = tempfile::tempdir().unwrap();
    let idx = LogIndex::open(dir.path()).unwrap();
    let lines = [
        (1, "GET /api/users 200"),
        (2, "connection refused by upstream"),
        (3, "ok"),
    ];
    apply_each(&idx, &lines);
    let hits = |needle: &str| {
        let hint = idx.needle_hint(needle).unwrap();
        count(&idx, &idx.query(0, DAY_NS, vec![(Occur::Must, hint)]))
    };
    assert_eq!(hits("refused by"), 1);
    assert_eq!(hits("nnection ref"), 1);
    assert_eq!(hits("api/us"), 1);
    assert_eq!(
        hits("Refused"),
        1,
        "hints are case-insensitive; the substring check is not"
    );
    assert_eq!(hits("nothere"), 0);
    assert_eq!(hits("200"), 1, "three-byte words are indexed");
    assert_eq!(hits("refused by up"), 1, "short words drop out of a hint");
    assert!(
        idx.needle_hint("by").is_none(),
        "a needle of short words gives no hint"
    );
}

/// Words of 256 bytes or more are not indexed, so a text with one is a candidate for any
/// needle.
#[test]
fn needle_hints_keep_texts_with_words_too_long_to_index() {
    let dir = tempfile::tempdir().unwrap();
    let idx = LogIndex::open(dir.path()).unwrap();
    let blob = format!("{}xyzzy{}", "Q".repeat(150), "q".repeat(150));
    let lines = [
        (1, "connection refused"),
        (2, &format!("token {blob} end")),
        (3, "other"),
    ];
    apply_each(&idx, &lines);
    let hits = |needle: &str| candidates(&idx, needle);
    assert_eq!(hits("xyzzy"), [2]);
    assert_eq!(hits("qqqxyzzyqqq"), [2]);
    assert_eq!(hits("refused"), [1, 2]);
    assert_eq!(hits("token"), [2]);
    assert_eq!(hits("other"), [2, 3]);
}

/// Ids and hex runs inside words are kept in pieces in the blocks' bloom filters: hints find
/// them whole and in fragments.
#[test]
fn needle_hints_find_ids_and_id_fragments() {
    let lines = [
        (1, "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 done"),
        (2, "req 0123456789abcdef ok"),
        (3, "other 4bf92f3577b34da6ffffffffffffffff"),
        (4, "unrelated text 500 errors added"),
        // Holds `f024` where `13579bdf02468ace` one byte into a piece would, but not `135`
        // where that needle cuts the piece before.
        (5, "span fedcba98f02400001111111111111111"),
        (6, "ok 13579bdf02468ace"),
        (7, "key=user7f3a9c1e5b2d4a60 x"),
    ];
    {
        let (_dir, idx) = index_of(&lines);
        let hits = |needle: &str| candidates(&idx, needle);
        let cases: &[(&str, &[i64])] = &[
            ("4bf92f3577b34da6a3ce929d0e0e4736", &[1]),
            (" 4bf92f3577b34da6a3ce929d0e0e4736 ", &[1]),
            ("=4bf92f3577b34da6a3ce9", &[1]),
            ("4bf92f3577b34da6", &[1, 3]),
            ("92f3577b", &[1, 3]),
            ("e0e4736", &[1]),
            ("ce929d0e0e4736 done", &[1]),
            ("req 0123456789ab", &[2]),
            ("23456789abcdef ok", &[2]),
            ("ffffffffff", &[3]),
            ("13579bdf02468ace", &[6]),
            // Inside a longer word: by the run's pieces.
            ("7f3a9c1e5b2d4a60", &[7]),
            ("9c1e5b2d4a6", &[7]),
            ("user7f3a9c1e", &[7]),
        ];
        for (needle, want) in cases {
            assert_eq!(hits(needle), *want, "needle {needle:?}");
        }
        // A short needle may lie between two pieces of an id: every line with an id is a
        // candidate.
        for needle in ["500", "added"] {
            assert_eq!(hits(needle), [1, 2, 3, 4, 5, 6, 7], "needle {needle:?}");
        }
    }
}

/// Numbers are windows in the blocks' bloom filters: hints find them, and numbers they are
/// part of.
#[test]
fn needle_hints_find_numbers_and_number_fragments() {
    let lines = [
        (1, "GET /x 200 bytes=48213 took 1234ms"),
        (2, "user_id=7395061 done"),
        (3, "port 8443 open"),
        (4, "year 2026 ok"),
        (5, "x 12345678 y"),
        (6, "status 500 unrelated"),
        (7, "v482 abc"),
        (8, "span 00004821aaaabbbb"),
    ];
    {
        let (_dir, idx) = index_of(&lines);
        let hits = |needle: &str| candidates(&idx, needle);
        // Fewer than 7 digits cut on the left may lie between two pieces of an id, so lines
        // with ids (5, 8) are candidates for them.
        let cases: &[(&str, &[i64])] = &[
            ("48213", &[1, 5, 8]),
            ("95061", &[2, 5, 8]),
            ("8443", &[3, 5, 8]),
            // At a word's start: only ids that start with it (by their starts).
            ("bytes=48213", &[1]),
            // Numbers too: 48213 holds 8213, but not at its start.
            ("=8213", &[]),
            ("=4821aa", &[]),
            (" 8443 ", &[3]),
            ("port 8443", &[3]),
            ("year 2026", &[4]),
            ("7395061", &[2]),
            ("=739506", &[2]),
            ("=7395", &[2]),
            ("3456", &[5, 8]),
            ("1234ms", &[1]),
            ("99999", &[5, 8]),
            ("=99999", &[]),
        ];
        let holding = |needle: &str| -> Vec<i64> {
            lines
                .iter()
                .filter(|(_, l)| l.contains(needle))
                .map(|(ts, _)| *ts)
                .collect()
        };
        for (needle, expect) in cases {
            let found = hits(needle);
            assert_eq!(found, *expect, "{needle:?}");
            assert!(holding(needle).iter().all(|ts| found.contains(ts)), "{needle:?}");
        }
        // Three digits cut by an edge may be inside any number: any line with one.
        for needle in ["482", "500", "213 "] {
            let found = hits(needle);
            assert!(holding(needle).iter().all(|ts| found.contains(ts)), "{needle:?}");
        }
        assert_eq!(hits(" 500 "), [6], "numbers of 3 digits are words");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
    /// A hint never leaves out a line that holds the needle, whatever ids (or words too
    /// long to index) the lines hold and wherever the needle cuts them.
    #[test]
    fn needle_hints_keep_every_line_that_holds_the_needle(
        lines in proptest::collection::vec("(([0-9a-fA-F]{1,40}|[0-9]{1,9}|[a-z]{1,6}|req|id|[g-z]{1,3}[0-9a-f]{6,30}[g-z]?|[a-z]{250,270})[ =:./-]{1,2}){1,6}", 1..40),
        picks in proptest::collection::vec((0usize..1000, 0usize..1000, 1usize..40), 1..30),
    ) {
        let entries: Vec<(i64, &str)> = lines.iter().enumerate().map(|(i, l)| (i as i64, l.as_str())).collect();
        let (_dir, idx) = index_of(&entries);
        for (line, from, len) in picks {
            let line = &lines[line % lines.len()];
            let from = from % line.len();
            let needle = &line[from..(from + len).min(line.len())];
            if idx.needle_hint(needle).is_none() {
                continue;
            }
            let found = candidates(&idx, needle);
            for (ts, l) in &entries {
                if l.contains(needle) {
                    proptest::prop_assert!(found.contains(ts), "needle {needle:?} misses line {l:?}");
                }
            }
        }
    }
}

#[test]
fn label_terms_list_names_and_values() {
    let dir = tempfile::tempdir().unwrap();
    let idx = LogIndex::open(dir.path()).unwrap();
    idx.apply(1, &batch(&[("job", "a"), ("level", "info")], &[(1, "x")]))
        .unwrap();
    idx.apply(2, &batch(&[("job", "b")], &[(2, "y")])).unwrap();
    idx.parts.commit(2).unwrap();
    let values = idx.label_terms(0, DAY_NS, Some("job"));
    assert_eq!(values, [("job".into(), "a".into()), ("job".into(), "b".into())]);
    assert_eq!(idx.label_terms(0, DAY_NS, None).len(), 3);
    let re = idx.label_regex("job", "a|c").unwrap();
    assert_eq!(count(&idx, &idx.query(0, DAY_NS, vec![(Occur::Must, re)])), 1);
}
