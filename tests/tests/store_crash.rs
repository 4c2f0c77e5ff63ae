//! Kill -9 mid-ingest loses nothing acknowledged (design.md, "WAL first"): a client pushes
//! batches of uniquely numbered lines while the store is SIGKILLed; after a restart on the same
//! data dir every acknowledged line is there exactly once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use obs_e2e::{enc, http_post, StoreProc};
use obs_store::prompb;

const BATCH: usize = 200;

fn push_batch(url: &str, base_ns: i64, batch_no: usize) -> bool {
    let values: Vec<serde_json::Value> = (0..BATCH)
        .map(|i| {
            let id = batch_no * BATCH + i;
            serde_json::json!([
                (base_ns + id as i64).to_string(),
                format!("line id={id} payload=abcdefghijklmnopqrstuvwxyz")
            ])
        })
        .collect();
    let body = serde_json::json!({"streams": [{"stream": {"job": "crash"}, "values": values}]}).to_string();
    matches!(http_post(url, "application/json", body.as_bytes()), Ok((204, _)))
}

/// Two writer threads send numbered batches with `send(url, worker, batch_no)` until the
/// store, once it has acknowledged 40 batches, is SIGKILLed mid-request and restarted on
/// its data. Returns the restarted store, the acknowledged batch numbers and one past the
/// highest batch number tried.
fn write_through_kill_9(
    store: StoreProc,
    path: &str,
    send: impl Fn(&str, usize, usize) -> bool + Send + Clone + 'static,
) -> (StoreProc, Vec<usize>, usize) {
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let url = store.url(path);
    let writers: Vec<_> = (0..2)
        .map(|worker| {
            let (acked, stop, url, send) = (acked.clone(), stop.clone(), url.clone(), send.clone());
            std::thread::spawn(move || {
                let mut batch_no = worker;
                while !stop.load(Ordering::Relaxed) {
                    if send(&url, worker, batch_no) {
                        acked.lock().unwrap().push(batch_no);
                    }
                    batch_no += 2;
                }
                batch_no
            })
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked.lock().unwrap().len() < 40 {
        assert!(Instant::now() < deadline, "store acknowledged too few batches");
        std::thread::sleep(Duration::from_millis(10));
    }
    let store = store.kill_and_restart();
    stop.store(true, Ordering::Relaxed);
    let sent = writers.into_iter().map(|w| w.join().unwrap()).max().unwrap();
    let acked = acked.lock().unwrap().clone();
    (store, acked, sent)
}

#[test]
fn kill_9_mid_ingest_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProc::start(dir.path());
    let base_ns = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64 - 600_000_000_000;
    let (store, acked, sent) = write_through_kill_9(store, "/loki/api/v1/push", move |url, _, batch_no| {
        push_batch(url, base_ns, batch_no)
    });

    // Everything acknowledged must come back after the restart (commits run every second).
    let want: usize = acked.len() * BATCH;
    let query = |limit: usize, start_id: usize| {
        let uri = format!(
            "/loki/api/v1/query_range?query={}&start={}&end={}&limit={limit}&direction=forward",
            enc(r#"{job="crash"}"#),
            base_ns + start_id as i64,
            base_ns + (sent * BATCH) as i64 + 1
        );
        store.get_json(&uri)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut counts: HashMap<usize, usize> = HashMap::new();
    loop {
        counts.clear();
        let mut next = 0;
        loop {
            let v = query(5000, next);
            let values: Vec<serde_json::Value> = v["data"]["result"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|s| s["values"].as_array().unwrap().clone())
                .collect();
            for line in &values {
                let text = line[1].as_str().unwrap();
                let id: usize = text.split_whitespace().nth(1).unwrap()["id=".len()..]
                    .parse()
                    .unwrap();
                *counts.entry(id).or_default() += 1;
                next = next.max(id + 1);
            }
            if values.len() < 5000 {
                break;
            }
        }
        let have_all = acked
            .iter()
            .all(|b| (0..BATCH).all(|i| counts.contains_key(&(b * BATCH + i))));
        if have_all || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let missing: Vec<usize> = acked
        .iter()
        .flat_map(|b| (0..BATCH).map(move |i| b * BATCH + i))
        .filter(|id| !counts.contains_key(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged lines lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    let dupes = counts.values().filter(|&&c| c > 1).count();
    assert_eq!(dupes, 0, "lines stored twice after replay");
    assert!(
        counts.len() >= want,
        "{} lines back, {want} acknowledged",
        counts.len()
    );
}

/// One batch: `BATCH` samples of `crash_metric{worker=…}` at timestamps unique to the batch.
fn write_batch(url: &str, base_ms: i64, worker: usize, batch_no: usize) -> bool {
    use prost::Message;
    let label = |n: &str, v: &str| prompb::Label {
        name: n.into(),
        value: v.into(),
    };
    let samples = (0..BATCH)
        .map(|i| {
            let id = batch_no * BATCH + i;
            prompb::Sample {
                value: id as f64,
                timestamp: base_ms + id as i64,
            }
        })
        .collect();
    let req = prompb::WriteRequest {
        timeseries: vec![prompb::TimeSeries {
            labels: vec![
                label("__name__", "crash_metric"),
                label("worker", &worker.to_string()),
            ],
            samples,
        }],
        metadata: Vec::new(),
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&req.encode_to_vec())
        .unwrap();
    matches!(http_post(url, "application/x-protobuf", &body), Ok((204, _)))
}

#[test]
fn kill_9_mid_remote_write_loses_no_acknowledged_sample() {
    let dir = tempfile::tempdir().unwrap();
    let store = StoreProc::start(dir.path());
    let base_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64 - 300_000;
    let (store, acked, _) = write_through_kill_9(store, "/api/v1/write", move |url, worker, batch_no| {
        write_batch(url, base_ms, worker, batch_no)
    });
    // Every sample is its own id at its own timestamp: read them all back as a range vector.
    let at = (base_ms + 200_000) as f64 / 1000.0;
    let v = store.get_json(&format!(
        "/api/v1/query?query={}&time={at}",
        enc("crash_metric[10m]")
    ));
    let mut have = std::collections::HashSet::new();
    for s in v["data"]["result"].as_array().unwrap() {
        for p in s["values"].as_array().unwrap() {
            let id: f64 = p[1].as_str().unwrap().parse().unwrap();
            let t = (p[0].as_f64().unwrap() * 1000.0).round() as i64;
            assert_eq!(t, base_ms + id as i64, "sample {id} at the wrong time");
            have.insert(id as usize);
        }
    }
    let missing: Vec<usize> = acked
        .iter()
        .flat_map(|b| (0..BATCH).map(move |i| b * BATCH + i))
        .filter(|id| !have.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged samples lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    assert!(have.len() >= acked.len() * BATCH);
}
