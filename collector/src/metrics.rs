//! The collector's own metrics: served as Prometheus text on the OTLP/HTTP port's `/metrics`,
//! and shipped to the store with the rest (resource `service.name = "obs-collector"`,
//! `service.instance.id = <host>`, so `job="obs-collector", instance="<host>"`), which is
//! what `obs status` reads to show each collector's last delivery, spool size and drops.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::host::Sample;
use crate::spool::Spool;
use crate::Stats;

fn sample(name: &str, value: u64, counter: bool) -> Sample {
    Sample {
        name: name.to_string(),
        labels: Vec::new(),
        value: value as f64,
        counter,
    }
}

/// Every counter and gauge, now.
pub(crate) fn samples(stats: &Stats, spool: &Spool) -> Vec<Sample> {
    let (f, e, s) = (&stats.files, &stats.export, &spool.stats);
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    vec![
        sample("obs_collector_lines_read_total", l(&f.lines), true),
        sample("obs_collector_bytes_read_total", l(&f.bytes), true),
        sample("obs_collector_lines_truncated_total", l(&f.truncated_lines), true),
        sample("obs_collector_lines_filtered_total", l(&f.filtered_lines), true),
        sample("obs_collector_file_rotations_total", l(&f.rotations), true),
        sample("obs_collector_open_files", l(&f.open_files), false),
        sample("obs_collector_file_lag_bytes", l(&f.lag_bytes), false),
        sample("obs_collector_spool_bytes", spool.size(), false),
        sample("obs_collector_spool_max_bytes", spool.max_bytes(), false),
        sample("obs_collector_spool_records_total", l(&s.appended_records), true),
        sample(
            "obs_collector_spool_dropped_records_total",
            l(&s.dropped_records),
            true,
        ),
        sample(
            "obs_collector_spool_dropped_bytes_total",
            l(&s.dropped_bytes),
            true,
        ),
        sample(
            "obs_collector_spool_quarantined_segments_total",
            l(&s.quarantined_segments),
            true,
        ),
        sample("obs_collector_spool_torn_bytes_total", l(&s.torn_bytes), true),
        sample("obs_collector_shipped_requests_total", l(&e.sent_requests), true),
        sample("obs_collector_shipped_records_total", l(&e.sent_records), true),
        sample("obs_collector_shipped_bytes_total", l(&e.sent_bytes), true),
        sample("obs_collector_retries_total", l(&e.retries), true),
        sample(
            "obs_collector_rejected_requests_total",
            l(&e.rejected_requests),
            true,
        ),
        sample("obs_collector_rejected_items_total", l(&e.rejected_items), true),
        sample(
            "obs_collector_last_delivery_timestamp_seconds",
            l(&e.last_success),
            false,
        ),
        sample(
            "obs_collector_forward_dropped_records_total",
            l(&s.forward_dropped_records),
            true,
        ),
        // When this report was made: `obs status` shows it as "last seen".
        sample("obs_collector_report_timestamp_seconds", crate::now_secs(), false),
    ]
    .into_iter()
    .chain(stats.forwards.iter().flat_map(|(name, e)| {
        [
            ("obs_collector_forward_requests_total", l(&e.sent_requests), true),
            ("obs_collector_forward_records_total", l(&e.sent_records), true),
            ("obs_collector_forward_bytes_total", l(&e.sent_bytes), true),
            ("obs_collector_forward_retries_total", l(&e.retries), true),
            (
                "obs_collector_forward_rejected_requests_total",
                l(&e.rejected_requests),
                true,
            ),
            (
                "obs_collector_forward_last_delivery_timestamp_seconds",
                l(&e.last_success),
                false,
            ),
        ]
        .map(|(metric, v, counter)| Sample {
            labels: vec![("destination", name.clone())],
            ..sample(metric, v, counter)
        })
    }))
    .collect()
}

/// Prometheus text exposition format.
pub(crate) fn render(stats: &Stats, spool: &Spool) -> String {
    let mut out = String::new();
    let mut typed = std::collections::HashSet::new();
    for s in samples(stats, spool) {
        if typed.insert(s.name.clone()) {
            let kind = if s.counter { "counter" } else { "gauge" };
            let _ = writeln!(out, "# TYPE {} {kind}", s.name);
        }
        let labels: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")))
            .collect();
        let labels = match labels.is_empty() {
            true => String::new(),
            false => format!("{{{}}}", labels.join(",")),
        };
        let _ = writeln!(out, "{}{labels} {}", s.name, s.value);
    }
    out
}

/// Ships the collector's own metrics into the spool every `interval` until shutdown.
pub(crate) async fn run(
    stats: Arc<Stats>,
    spool: Arc<Spool>,
    host: String,
    interval: Duration,
    shutdown: watch::Receiver<bool>,
) {
    let start_ns = crate::now_ns();
    let mut ticker = crate::otlp::Ticker::new(interval, shutdown);
    while ticker.next().await {
        let now_ns = crate::now_ns();
        let req = crate::host::to_otlp(samples(&stats, &spool), "obs-collector", &host, start_ns, now_ns);
        crate::otlp::spool_metrics(&spool, vec![req], "the collector's own metrics").await;
    }
}
