//! The collector's host metrics against the real prometheus-node-exporter on this machine:
//! every `node_*` series the collector makes exists in node_exporter's output under the same
//! name, type and label names, so dashboards written for node_exporter work unchanged.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use obs_e2e::{free_port, http_get, Proc};

/// name -> (type, label-name sets seen) from the Prometheus text format.
fn exposition(text: &str) -> BTreeMap<String, (String, BTreeSet<Vec<String>>)> {
    let mut out: BTreeMap<String, (String, BTreeSet<Vec<String>>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            out.entry(name.to_string()).or_default().0 = kind.to_string();
        } else if !line.starts_with('#') && !line.is_empty() {
            let series = line.rsplit_once(' ').unwrap().0;
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            let mut names: Vec<String> = labels
                .split("\",")
                .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.trim().to_string()))
                .collect();
            names.sort();
            out.entry(name.to_string()).or_default().1.insert(names);
        }
    }
    out
}

#[test]
fn host_metric_names_types_and_labels_match_node_exporter() {
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("--web.listen-address=127.0.0.1:{port}");
    let exporter = Proc::spawn(
        "node_exporter",
        Path::new("prometheus-node-exporter"),
        &[&listen],
        work.path(),
    );
    let url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        if let Ok((200, body)) = http_get(&url) {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "node_exporter did not start: {}",
            exporter.describe()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let theirs = exposition(&text);
    let ours = obs_collector::host_metrics();
    assert!(ours.len() > 20, "{} samples", ours.len());
    let mut missing = Vec::new();
    let mut checked = BTreeSet::new();
    for s in &ours {
        let Some((kind, label_sets)) = theirs.get(&s.name) else {
            missing.push(s.name.clone());
            continue;
        };
        let want = if s.counter { "counter" } else { "gauge" };
        assert_eq!(kind, want, "{}: node_exporter says {kind}", s.name);
        let mut names: Vec<String> = s.labels.iter().map(|(k, _)| k.to_string()).collect();
        names.sort();
        assert!(
            label_sets.contains(&names),
            "{}: our labels {names:?}, node_exporter's {label_sets:?}",
            s.name
        );
        checked.insert(s.name.clone());
    }
    missing.sort();
    missing.dedup();
    assert!(missing.is_empty(), "not in node_exporter's output: {missing:?}");
    for core in [
        "node_cpu_seconds_total",
        "node_load1",
        "node_memory_MemAvailable_bytes",
        "node_filesystem_avail_bytes",
        "node_network_receive_bytes_total",
        "node_boot_time_seconds",
    ] {
        assert!(checked.contains(core), "{core} not produced");
    }
    exporter.signal(nix::sys::signal::Signal::SIGTERM);
}
