use std::collections::BTreeSet;

use proptest::prelude::*;

use super::*;

fn small() -> SpoolConfig {
    SpoolConfig {
        segment_bytes: 256,
        max_bytes: 1 << 20,
        full_wait: Duration::from_millis(10),
        ..SpoolConfig::default()
    }
}

fn payload(id: u64, len: usize) -> Vec<u8> {
    let mut p = id.to_le_bytes().to_vec();
    p.resize(8 + len, (id % 251) as u8);
    p
}

fn id_of(r: &Record) -> u64 {
    u64::from_le_bytes(r.payload[..8].try_into().unwrap())
}

/// Reads everything from the acknowledged position, acknowledging as it goes.
fn drain(spool: &Spool) -> Vec<u64> {
    drain_for(spool, 0)
}

/// [`drain`] for one consumer.
fn drain_for(spool: &Spool, consumer: usize) -> Vec<u64> {
    drain_from_as(spool, consumer, spool.acked(consumer))
}

#[test]
fn records_come_back_in_order_across_segments_and_restarts() {
    let fs = Arc::new(MemFs::default());
    let spool = Spool::open(fs.clone(), small()).unwrap();
    for id in 0..20 {
        spool.append(Kind::Logs, &payload(id, 30)).unwrap();
    }
    spool.sync().unwrap();
    assert!(fs.list().unwrap().len() > 3, "rolled over several segments");
    drop(spool);
    let spool = Spool::open(fs.clone(), small()).unwrap();
    assert_eq!(drain(&spool), (0..20).collect::<Vec<_>>());
    for id in 20..25 {
        spool.append(Kind::Traces, &payload(id, 5)).unwrap();
    }
    assert_eq!(drain(&spool), (20..25).collect::<Vec<_>>());
    let segs = fs
        .list()
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .count();
    assert_eq!(
        segs, 1,
        "acknowledged segments are deleted, all but the one being written"
    );
    drop(spool);
    let spool = Spool::open(fs, small()).unwrap();
    assert_eq!(
        drain(&spool),
        Vec::<u64>::new(),
        "nothing acknowledged comes back"
    );
}

#[test]
fn a_torn_tail_is_truncated_and_counted() {
    let fs = Arc::new(MemFs::default());
    let spool = Spool::open(fs.clone(), small()).unwrap();
    spool.append(Kind::Logs, &payload(1, 10)).unwrap();
    spool.sync().unwrap();
    spool.append(Kind::Logs, &payload(2, 10)).unwrap();
    drop(spool);
    fs.crash(5);
    let spool = Spool::open(fs.clone(), small()).unwrap();
    assert_eq!(spool.stats.torn_bytes.load(Ordering::Relaxed), 5);
    assert_eq!(drain(&spool), [1]);
}

#[test]
fn a_power_cut_across_unsynced_segments_is_truncated_not_quarantined() {
    let fs = Arc::new(MemFs::default());
    let spool = Spool::open(fs.clone(), small()).unwrap();
    spool.append(Kind::Logs, &payload(1, 10)).unwrap();
    spool.sync().unwrap();
    // Three segments' worth, never synced: each file keeps 5 bytes past what was synced.
    for id in 2..20 {
        spool.append(Kind::Logs, &payload(id, 30)).unwrap();
    }
    let segments = fs.list().unwrap().iter().filter(|n| n.ends_with(".seg")).count();
    assert!(segments >= 3, "{segments} segments");
    drop(spool);
    fs.crash(5);
    let spool = Spool::open(fs.clone(), small()).unwrap();
    assert_eq!(
        spool.stats.torn_bytes.load(Ordering::Relaxed),
        5 * segments as u64,
        "the cut record of the first segment and each later segment's stub"
    );
    assert_eq!(drain(&spool), [1]);
    assert_eq!(spool.stats.quarantined_segments.load(Ordering::Relaxed), 0);
    // Appends go on in a segment numbered after every one seen.
    spool.append(Kind::Logs, &payload(30, 10)).unwrap();
    assert_eq!(drain(&spool), [30]);
}

#[test]
fn the_background_sync_makes_appends_durable() {
    let fs = Arc::new(MemFs::default());
    let spool = Arc::new(Spool::open(fs.clone(), small()).unwrap());
    spool.sync_in_background(Duration::from_millis(5));
    let mut end = Position::default();
    for id in 0..20 {
        end = spool.append(Kind::Logs, &payload(id, 30)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while spool.durable() < end {
        assert!(
            Instant::now() < deadline,
            "never synced: {:?} < {end:?}",
            spool.durable()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // What it reported durable survives a crash.
    drop(spool);
    fs.crash(0);
    let spool = Spool::open(fs.clone(), small()).unwrap();
    assert_eq!(drain(&spool), (0..20).collect::<Vec<_>>());
}

#[test]
fn a_corrupt_segment_is_quarantined_and_shipping_goes_on() {
    let fs = Arc::new(MemFs::default());
    let spool = Spool::open(fs.clone(), small()).unwrap();
    for id in 0..12 {
        spool.append(Kind::Metrics, &payload(id, 30)).unwrap();
    }
    let mut segs: Vec<String> = fs
        .list()
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".seg"))
        .collect();
    segs.sort();
    // Damage the second record of the first segment.
    fs.flip(&segs[0], HEADER as usize + (RECORD_HEADER + 38) + 12);
    let ids = drain(&spool);
    assert_eq!(ids[0], 0, "the record before the damage is delivered");
    assert!(!ids.contains(&1));
    assert_eq!(
        *ids.last().unwrap(),
        11,
        "later segments are still shipped: {ids:?}"
    );
    assert_eq!(spool.stats.quarantined_segments.load(Ordering::Relaxed), 1);
    assert_eq!(*fs.quarantined.lock().unwrap(), [segs[0].clone()]);
}

#[test]
fn a_full_spool_waits_then_drops_the_oldest_segment_and_counts_it() {
    let fs = Arc::new(MemFs::default());
    let cfg = SpoolConfig {
        segment_bytes: 200,
        max_bytes: 400,
        full_wait: Duration::from_millis(20),
        ..SpoolConfig::default()
    };
    let spool = Spool::open(fs, cfg).unwrap();
    let started = Instant::now();
    for id in 0..30 {
        spool.append(Kind::Logs, &payload(id, 40)).unwrap();
    }
    assert!(started.elapsed() >= Duration::from_millis(20), "it waited first");
    assert!(spool.size() <= 400);
    let dropped = spool.stats.dropped_records.load(Ordering::Relaxed);
    let ids = drain(&spool);
    assert_eq!(
        ids.len() as u64 + dropped,
        30,
        "every record is delivered or counted"
    );
    assert_eq!(*ids.last().unwrap(), 29, "the newest are kept");
    assert!(ids.windows(2).all(|w| w[0] + 1 == w[1]), "one run: {ids:?}");
}

#[test]
fn a_waiting_writer_gets_in_when_the_shipper_frees_space() {
    let fs = Arc::new(MemFs::default());
    let cfg = SpoolConfig {
        segment_bytes: 200,
        max_bytes: 400,
        full_wait: Duration::from_secs(30),
        ..SpoolConfig::default()
    };
    let spool = Arc::new(Spool::open(fs, cfg).unwrap());
    let writer = {
        let spool = spool.clone();
        std::thread::spawn(move || {
            for id in 0..20 {
                spool.append(Kind::Logs, &payload(id, 40)).unwrap();
            }
        })
    };
    let mut got = Vec::new();
    let mut at = spool.acked(0);
    while got.len() < 20 {
        let b = spool.read(at, 1000).unwrap();
        got.extend(b.records.iter().map(id_of));
        at = b.next;
        spool.ack(0, at).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    writer.join().unwrap();
    assert_eq!(got, (0..20).collect::<Vec<_>>());
    assert_eq!(spool.stats.dropped_records.load(Ordering::Relaxed), 0);
}

fn segments(fs: &MemFs) -> usize {
    fs.list().unwrap().iter().filter(|n| n.ends_with(".seg")).count()
}

#[test]
fn every_consumer_gets_every_record_and_segments_go_once_all_passed() {
    let fs = Arc::new(MemFs::default());
    let cfg = SpoolConfig {
        consumers: vec!["loki".into()],
        ..small()
    };
    let spool = Spool::open(fs.clone(), cfg.clone()).unwrap();
    for id in 0..20 {
        spool.append(Kind::Logs, &payload(id, 30)).unwrap();
    }
    assert_eq!(drain_for(&spool, 0), (0..20).collect::<Vec<_>>());
    assert!(segments(&fs) > 3, "the forward still needs them");
    drop(spool);
    let spool = Spool::open(fs.clone(), cfg).unwrap();
    assert_eq!(
        drain_for(&spool, 0),
        Vec::<u64>::new(),
        "the store's cursor was kept"
    );
    assert_eq!(
        drain_for(&spool, 1),
        (0..20).collect::<Vec<_>>(),
        "so was the forward's"
    );
    assert_eq!(segments(&fs), 0, "every segment is gone once both passed it");
    assert!(fs.list().unwrap().contains(&"ack.loki".to_string()));
}

#[test]
fn a_lagging_forward_never_holds_the_store_back() {
    let fs = Arc::new(MemFs::default());
    let cfg = SpoolConfig {
        segment_bytes: 200,
        max_bytes: 400,
        full_wait: Duration::from_secs(600),
        consumers: vec!["down".into()],
    };
    let spool = Spool::open(fs, cfg).unwrap();
    let mut store = Vec::new();
    let mut at = spool.acked(0);
    for id in 0..30 {
        // Would wait 10 minutes if a full spool waited for the forward too.
        spool.append(Kind::Logs, &payload(id, 40)).unwrap();
        let b = spool.read(at, 1000).unwrap();
        store.extend(b.records.iter().map(id_of));
        at = b.next;
        spool.ack(0, at).unwrap();
    }
    assert_eq!(store, (0..30).collect::<Vec<_>>());
    assert_eq!(
        spool.stats.dropped_records.load(Ordering::Relaxed),
        0,
        "the store lost nothing"
    );
    let lost = spool.stats.forward_dropped_records.load(Ordering::Relaxed);
    assert!(lost > 0, "the forward fell behind a full spool");
    let forward = drain_for(&spool, 1);
    assert_eq!(
        forward.len() as u64 + lost,
        30,
        "every record is delivered or counted"
    );
    assert_eq!(*forward.last().unwrap(), 29, "the newest are kept");
}

#[derive(Debug, Clone)]
enum Op {
    Append(usize),
    Sync,
    Ship(usize),
    Crash(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0usize..120).prop_map(Op::Append),
        1 => Just(Op::Sync),
        2 => (1usize..400).prop_map(Op::Ship),
        1 => (0usize..40).prop_map(Op::Crash),
    ]
}

proptest! {
    /// Against an in-memory filesystem that loses unsynced bytes on a crash: every record
    /// synced before a crash is delivered, in order, and the only duplicates are records
    /// read but not yet acknowledged when the crash came.
    #[test]
    fn model(ops in proptest::collection::vec(op(), 1..80)) {
        let fs = Arc::new(MemFs::default());
        let mut spool = Spool::open(fs.clone(), small()).unwrap();
        let mut next_id = 0u64;
        let mut durable: BTreeSet<u64> = BTreeSet::new();
        let mut pending: Vec<u64> = Vec::new();
        let mut delivered: Vec<u64> = Vec::new();
        let mut unacked: Vec<u64> = Vec::new();
        let mut may_repeat: BTreeSet<u64> = BTreeSet::new();
        let mut cursor = spool.acked(0);
        for op in ops {
            match op {
                Op::Append(len) => {
                    spool.append(Kind::Logs, &payload(next_id, len)).unwrap();
                    pending.push(next_id);
                    next_id += 1;
                }
                Op::Sync => {
                    spool.sync().unwrap();
                    durable.extend(pending.drain(..));
                }
                Op::Ship(max) => {
                    let b = spool.read(cursor, max).unwrap();
                    let ids: Vec<u64> = b.records.iter().map(id_of).collect();
                    delivered.extend(&ids);
                    unacked.extend(&ids);
                    cursor = b.next;
                    // Acknowledge every other batch, so some stay unacknowledged.
                    if max % 2 == 0 {
                        spool.ack(0, cursor).unwrap();
                        unacked.clear();
                    }
                }
                Op::Crash(torn) => {
                    drop(spool);
                    fs.crash(torn);
                    spool = Spool::open(fs.clone(), small()).unwrap();
                    may_repeat.extend(unacked.drain(..));
                    pending.clear();
                    cursor = spool.acked(0);
                }
            }
        }
        spool.sync().unwrap();
        durable.extend(pending.drain(..));
        delivered.extend(drain_from(&spool, cursor));
        let mut seen = BTreeSet::new();
        for id in &delivered {
            prop_assert!(seen.insert(*id) || may_repeat.contains(id), "{id} delivered twice: {delivered:?}");
        }
        for id in &durable {
            prop_assert!(seen.contains(id), "durable record {id} lost: {delivered:?}");
        }
        let firsts: Vec<u64> = {
            let mut s = BTreeSet::new();
            delivered.iter().copied().filter(|id| s.insert(*id)).collect()
        };
        prop_assert!(firsts.windows(2).all(|w| w[0] < w[1]), "out of order: {delivered:?}");
        prop_assert_eq!(spool.stats.dropped_records.load(Ordering::Relaxed), 0);
        // A crash is never mistaken for corruption.
        prop_assert_eq!(spool.stats.quarantined_segments.load(Ordering::Relaxed), 0);
    }
}

fn drain_from(spool: &Spool, at: Position) -> Vec<u64> {
    drain_from_as(spool, 0, at)
}

fn drain_from_as(spool: &Spool, consumer: usize, mut at: Position) -> Vec<u64> {
    let mut ids = Vec::new();
    loop {
        let b = spool.read(at, 1000).unwrap();
        if b.records.is_empty() && b.next == at {
            return ids;
        }
        ids.extend(b.records.iter().map(id_of));
        at = b.next;
        spool.ack(consumer, at).unwrap();
    }
}
