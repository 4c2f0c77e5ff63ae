use super::*;

type Pairs<'a> = &'a [(&'a str, &'a str)];

fn batch(series: &[(Pairs, &[(i64, f64)])]) -> SampleBatch {
    SampleBatch {
        series: series
            .iter()
            .map(|(l, s)| SeriesSamples {
                labels: l.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
                samples: s.to_vec(),
            })
            .collect(),
    }
}

fn m(op: &str, name: &str, value: &str) -> Matcher {
    let op = match op {
        "=" => MatchOp::Equal,
        "!=" => MatchOp::NotEqual,
        "=~" => MatchOp::Re(regex::Regex::new(&format!("^(?:{value})$")).unwrap()),
        _ => MatchOp::NotRe(regex::Regex::new(&format!("^(?:{value})$")).unwrap()),
    };
    Matcher::new(op, name, value)
}

fn names(q: &dyn Querier, matchers: &[Matcher]) -> Vec<String> {
    let mut v: Vec<String> = q
        .select(matchers, i64::MIN, i64::MAX)
        .unwrap()
        .iter()
        .map(|s| s.labels.to_string())
        .collect();
    v.sort();
    v
}

fn fill(db: &Tsdb, seq: u64) {
    db.apply(
        seq,
        &batch(&[
            (
                &[("__name__", "up"), ("job", "node"), ("instance", "a")],
                &[(1000, 1.0), (2000, 1.0)],
            ),
            (
                &[("__name__", "up"), ("job", "node"), ("instance", "b")],
                &[(1000, 0.0)],
            ),
            (&[("__name__", "up"), ("job", "prom")], &[(1000, 1.0)]),
        ]),
    );
}

#[test]
fn matchers_select_through_postings() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path()).unwrap();
    fill(&db, 1);
    let all = names(&db, &[m("=", "__name__", "up")]);
    assert_eq!(all.len(), 3);
    assert_eq!(
        names(&db, &[m("=", "job", "node"), m("!=", "instance", "a")]),
        vec![r#"up{instance="b", job="node"}"#]
    );
    assert_eq!(names(&db, &[m("=~", "instance", "a|b")]).len(), 2);
    assert_eq!(names(&db, &[m("!~", "job", "node")]), vec![r#"up{job="prom"}"#]);
    // A matcher that matches the empty value selects series without the label.
    assert_eq!(
        names(&db, &[m("=", "__name__", "up"), m("=", "instance", "")]),
        vec![r#"up{job="prom"}"#]
    );
    assert!(names(&db, &[m("=", "job", "nope")]).is_empty());
}

#[test]
fn out_of_order_and_duplicate_samples() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path()).unwrap();
    let l: &[(&str, &str)] = &[("__name__", "x")];
    db.apply(1, &batch(&[(l, &[(3000, 3.0), (1000, 1.0)])]));
    db.apply(2, &batch(&[(l, &[(2000, 2.0), (3000, 3.0)])]));
    let s = db.select(&[], 0, 10_000).unwrap();
    assert_eq!(s[0].samples, vec![(1000, 1.0), (2000, 2.0), (3000, 3.0)]);
    assert_eq!(db.stats().head_samples, 3);
}

#[test]
fn flush_writes_a_block_that_reads_back_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path()).unwrap();
    fill(&db, 7);
    assert_eq!(db.keep_wal_from(), Some(7));
    let before = names(&db, &[]);
    db.flush().unwrap();
    assert_eq!(db.keep_wal_from(), None);
    assert_eq!(db.persisted_through(), 7);
    assert_eq!(names(&db, &[]), before);
    let st = db.stats();
    assert_eq!((st.blocks, st.block_samples, st.head_samples), (1, 4, 0));
    // A newer write for a timestamp in the block wins.
    let l: &[(&str, &str)] = &[("__name__", "up"), ("job", "prom")];
    db.apply(8, &batch(&[(l, &[(1000, 5.0)])]));
    let s = db.select(&[m("=", "job", "prom")], 0, 5000).unwrap();
    assert_eq!(s[0].samples, vec![(1000, 5.0)]);
    drop(db);
    let db = Tsdb::open(dir.path()).unwrap();
    assert_eq!(db.persisted_through(), 7);
    // Replaying a record the block holds changes nothing.
    fill(&db, 7);
    assert_eq!(db.stats().head_samples, 0);
    assert_eq!(names(&db, &[]), before);
}

#[test]
fn closed_windows_compact_into_one_block_and_retention_drops_old_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path()).unwrap();
    let l: &[(&str, &str)] = &[("__name__", "x")];
    let hour = 3_600_000;
    for (seq, t) in [(1, 0), (2, hour / 2), (3, hour)] {
        db.apply(seq, &batch(&[(l, &[(t, seq as f64)])]));
        db.flush().unwrap();
    }
    assert_eq!(db.stats().blocks, 3, "window not closed yet");
    db.apply(4, &batch(&[(l, &[(3 * hour, 4.0)])]));
    db.flush().unwrap();
    let st = db.stats();
    assert_eq!(st.blocks, 2, "the first two hours became one block");
    assert_eq!(st.block_samples, 4);
    let s = db.select(&[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(
        s[0].samples.iter().map(|p| p.1).collect::<Vec<_>>(),
        vec![1.0, 2.0, 3.0, 4.0]
    );
    assert_eq!(db.drop_before(2 * hour), 1);
    let s = db.select(&[], i64::MIN, i64::MAX).unwrap();
    assert_eq!(s[0].samples, vec![(3 * hour, 4.0)]);
    let dirs = std::fs::read_dir(dir.path().join("metrics"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir());
    assert_eq!(dirs.count(), 1, "the dropped blocks' directories are gone");
}

#[test]
fn a_damaged_block_is_quarantined_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path()).unwrap();
    fill(&db, 1);
    db.flush().unwrap();
    drop(db);
    let block_dir = std::fs::read_dir(dir.path().join("metrics"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();
    let index = block_dir.join("index");
    let mut bytes = std::fs::read(&index).unwrap();
    bytes[3] ^= 0xff;
    std::fs::write(&index, bytes).unwrap();
    let db = Tsdb::open(dir.path()).unwrap();
    assert_eq!(db.stats().blocks, 0);
    assert!(std::path::Path::new(&format!("{}.corrupt", block_dir.display())).exists());
}

/// The v1 block format: a block written by an earlier build must keep reading back.
/// Regenerate (only for a deliberate format change) with OBS_REGENERATE_GOLDEN=1.
#[test]
fn golden_block_v1() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metrics-v1");
    type Fixture = Vec<(Arc<Labels>, Vec<(i64, f64)>)>;
    let series: Fixture = (0..3)
        .map(|i| {
            let labels = Labels::from_pairs([
                ("__name__", "node_cpu_seconds_total"),
                ("cpu", ["0", "1", "2"][i]),
            ]);
            let samples = (0..100)
                .map(|k| (1_700_000_000_000 + k * 15_000, (k * (i as i64 + 1)) as f64 * 0.25))
                .collect();
            (Arc::new(labels), samples)
        })
        .collect();
    if std::env::var("OBS_REGENERATE_GOLDEN").is_ok() {
        let _ = std::fs::remove_dir_all(&fixture);
        std::fs::create_dir_all(&fixture).unwrap();
        let b = block::write(
            &fixture,
            series
                .iter()
                .map(|(l, s)| (l.clone(), Cow::Borrowed(s.as_slice()))),
            42,
            0,
            &Interner::default(),
        )
        .unwrap()
        .unwrap();
        std::fs::rename(&b.dir, fixture.join("block")).unwrap();
    }
    let b = block::open(&fixture.join("block"), &Interner::default()).expect("v1 block opens");
    assert_eq!(b.meta.wal_seq, 42);
    assert_eq!(b.meta.samples, 300);
    let out = b.select_all(i64::MIN, i64::MAX).unwrap();
    assert_eq!(out.len(), 3);
    for (got, (labels, samples)) in out.iter().zip(&series) {
        assert_eq!(&got.labels, labels);
        assert_eq!(&got.samples, samples);
    }
}

#[test]
fn a_head_spanning_over_an_hour_asks_to_be_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let db = Tsdb::open(dir.path()).unwrap();
    let l: Pairs = &[("__name__", "x")];
    db.apply(1, &batch(&[(l, &[(0, 1.0), (1000, 1.0)])]));
    assert!(!db.needs_flush());
    db.apply(2, &batch(&[(l, &[(2 * 3_600_000, 1.0)])]));
    assert!(db.needs_flush());
    db.flush().unwrap();
    assert!(!db.needs_flush());
}
