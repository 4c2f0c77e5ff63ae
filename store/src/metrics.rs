//! The store's own metrics, served on `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use crate::ingest::Engine;

#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    started: Arc<Instant>,
    in_flight: Arc<AtomicU64>,
    /// Heartbeat calls: sent, failed, withheld (rule evaluation unhealthy).
    pub(crate) heartbeats: Arc<[AtomicU64; 3]>,
}

/// Counts one HTTP request as in flight until it is dropped (answered or abandoned).
pub(crate) struct InFlight(Arc<AtomicU64>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    let _ = writeln!(out, "{name} {value}");
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        Metrics {
            started: Arc::new(Instant::now()),
            in_flight: Arc::new(AtomicU64::new(0)),
            heartbeats: Arc::new(Default::default()),
        }
    }

    /// Marks a request as in flight for as long as the returned guard lives.
    pub(crate) fn request(&self) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.in_flight.clone())
    }

    pub(crate) fn render(
        &self,
        engine: &Engine,
        rules: &crate::rules::Rules,
        notifier: Option<&obs_notify::Notifier>,
    ) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP obs_store_build_info Version of the running obs store."
        );
        let _ = writeln!(out, "# TYPE obs_store_build_info gauge");
        let _ = writeln!(
            out,
            "obs_store_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        );
        let uptime = format!("{:.3}", self.started.elapsed().as_secs_f64());
        metric(
            &mut out,
            "obs_store_uptime_seconds",
            "gauge",
            "Seconds since the store started.",
            uptime,
        );
        metric(
            &mut out,
            "obs_store_http_requests_in_flight",
            "gauge",
            "HTTP requests being served, this scrape included.",
            self.in_flight.load(Ordering::Relaxed),
        );
        let s = engine.stats();
        let c = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        metric(
            &mut out,
            "obs_store_log_lines_ingested_total",
            "counter",
            "Log lines acknowledged.",
            c(&s.log_lines),
        );
        metric(
            &mut out,
            "obs_store_log_bytes_ingested_total",
            "counter",
            "Log line bytes acknowledged.",
            c(&s.log_bytes),
        );
        let old = c(&s.rejected_lines);
        metric(
            &mut out,
            "obs_store_log_lines_rejected_total",
            "counter",
            "Log lines older than retention.",
            old,
        );
        let _ = writeln!(
            out,
            "# HELP obs_store_pushes_refused_total Pushes refused whole by an ingest limit.\n# TYPE obs_store_pushes_refused_total counter"
        );
        for limit in crate::limits::Limit::ALL {
            let n = s.refused.get(limit);
            let _ = writeln!(
                out,
                "obs_store_pushes_refused_total{{limit=\"{}\"}} {n}",
                limit.key()
            );
        }
        metric(
            &mut out,
            "obs_store_index_errors_total",
            "counter",
            "WAL records that failed to index.",
            c(&s.apply_errors),
        );
        metric(
            &mut out,
            "obs_store_commits_total",
            "counter",
            "Index commits.",
            c(&s.commits),
        );
        metric(
            &mut out,
            "obs_store_commit_errors_total",
            "counter",
            "Index commits, flushes and retention passes that failed (retried).",
            c(&s.commit_errors),
        );
        metric(
            &mut out,
            "obs_store_wal_bytes",
            "gauge",
            "Bytes in WAL segments on disk.",
            engine.wal_bytes(),
        );
        let (parts, bytes) = engine.logs().disk_usage();
        metric(
            &mut out,
            "obs_store_log_partitions",
            "gauge",
            "Day partitions of the log index.",
            parts,
        );
        metric(
            &mut out,
            "obs_store_log_index_bytes",
            "gauge",
            "Bytes of the log index on disk.",
            bytes,
        );
        let (parts, bytes) = engine.traces().parts.disk_usage();
        metric(
            &mut out,
            "obs_store_trace_partitions",
            "gauge",
            "Day partitions of the trace index.",
            parts,
        );
        metric(
            &mut out,
            "obs_store_trace_index_bytes",
            "gauge",
            "Bytes of the trace index on disk.",
            bytes,
        );
        let t = engine.tsdb().stats();
        let per_series = t.head_bytes.checked_div(t.head_series).unwrap_or(0);
        let bytes_per_sample = if t.block_samples > 0 {
            format!("{:.3}", t.block_bytes as f64 / t.block_samples as f64)
        } else {
            "0".into()
        };
        let rows: [(&str, &str, &str, String); 9] = [
            (
                "obs_store_samples_ingested_total",
                "counter",
                "Metric samples acknowledged.",
                c(&s.samples).to_string(),
            ),
            (
                "obs_store_samples_rejected_total",
                "counter",
                "Metric samples older than retention.",
                c(&s.rejected_samples).to_string(),
            ),
            (
                "obs_store_head_series",
                "gauge",
                "Series in the in-memory metrics head.",
                t.head_series.to_string(),
            ),
            (
                "obs_store_head_samples",
                "gauge",
                "Samples in memory, not yet in a block.",
                t.head_samples.to_string(),
            ),
            (
                "obs_store_head_bytes_per_series",
                "gauge",
                "Approximate head memory per active series.",
                per_series.to_string(),
            ),
            (
                "obs_store_metric_blocks",
                "gauge",
                "Metrics blocks on disk.",
                t.blocks.to_string(),
            ),
            (
                "obs_store_metric_block_bytes",
                "gauge",
                "Bytes of metrics blocks on disk.",
                t.block_bytes.to_string(),
            ),
            (
                "obs_store_metric_block_cache_bytes",
                "gauge",
                "Bytes of decompressed frames and decoded timestamps of metrics blocks kept for queries.",
                t.block_cache_bytes.to_string(),
            ),
            (
                "obs_store_metric_bytes_per_sample",
                "gauge",
                "Disk bytes per sample in metrics blocks.",
                bytes_per_sample,
            ),
        ];
        for (name, kind, help, value) in rows {
            metric(&mut out, name, kind, help, value);
        }
        let _ = writeln!(
            out,
            "# HELP obs_store_retention_seconds How long each signal is kept.\n# TYPE obs_store_retention_seconds gauge"
        );
        let r = engine.retention();
        for (signal, d) in [("logs", r.logs), ("traces", r.traces), ("metrics", r.metrics)] {
            let _ = writeln!(
                out,
                "obs_store_retention_seconds{{signal=\"{signal}\"}} {}",
                d.as_secs()
            );
        }
        let r = rules.stats();
        for (name, help, value) in [
            (
                "obs_store_rule_evaluations_total",
                "Rule evaluations.",
                c(&r.evaluations),
            ),
            (
                "obs_store_rule_evaluation_failures_total",
                "Rule evaluations that failed.",
                c(&r.failures),
            ),
            (
                "obs_store_rule_group_iterations_missed_total",
                "Group evaluations skipped because the previous one overran its interval.",
                c(&r.missed),
            ),
        ] {
            metric(&mut out, name, "counter", help, value);
        }
        metric(
            &mut out,
            "obs_store_rule_file_errors",
            "gauge",
            "Problems found in the rule files at the last (re)load.",
            rules.errors().len(),
        );
        // Only with a heartbeat configured (its first call happens at start).
        if self.heartbeats.iter().any(|c| c.load(Ordering::Relaxed) > 0) {
            let name = "obs_store_heartbeats_total";
            let _ = writeln!(
                out,
                "# HELP {name} Heartbeat calls (dead man's switch), by result: sent, failed, or withheld because rule evaluation is unhealthy.\n# TYPE {name} counter"
            );
            for (result, c) in ["sent", "failed", "withheld"].iter().zip(self.heartbeats.iter()) {
                let _ = writeln!(out, "{name}{{result=\"{result}\"}} {}", c.load(Ordering::Relaxed));
            }
        }
        engine.errors().render_metrics(&mut out);
        if let Some(n) = notifier {
            for (name, help, get) in [
                (
                    "obs_notifications_total",
                    "Notifications delivered, by receiver.",
                    (|s: &obs_notify::ReceiverStats| s.sent.load(Ordering::Relaxed))
                        as fn(&obs_notify::ReceiverStats) -> u64,
                ),
                (
                    "obs_notifications_failed_total",
                    "Notification attempts that failed (they are retried), by receiver.",
                    |s: &obs_notify::ReceiverStats| s.failed.load(Ordering::Relaxed),
                ),
            ] {
                let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
                for (receiver, s) in n.stats() {
                    let _ = writeln!(out, "{name}{{receiver={receiver:?}}} {}", get(s));
                }
            }
            metric(
                &mut out,
                "obs_notifications_queued",
                "gauge",
                "Notifications waiting to be delivered.",
                n.queued(),
            );
        }
        // The filesystem holding the data directory: what `obs status` warns about.
        if let Ok(st) = nix::sys::statvfs::statvfs(engine.data_dir()) {
            let frag = st.fragment_size();
            let disk = [
                (
                    "obs_store_disk_size_bytes",
                    "Size of the filesystem holding the data directory.",
                    st.blocks() * frag,
                ),
                (
                    "obs_store_disk_avail_bytes",
                    "Bytes available to the store on that filesystem.",
                    st.blocks_available() * frag,
                ),
            ];
            for (name, help, value) in disk {
                metric(&mut out, name, "gauge", help, value);
            }
        }
        out
    }
}

/// How often the store records its own metrics into its TSDB.
pub(crate) const SELF_SCRAPE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(15);

/// Records the store's own metrics into its TSDB every [`SELF_SCRAPE_INTERVAL`] as
/// `job="obs-store", instance=<http address>` (as Prometheus scrapes itself), so rules and
/// dashboards can use them.
pub(crate) async fn record_own(
    metrics: Metrics,
    engine: Engine,
    rules: crate::rules::Rules,
    notifier: Option<std::sync::Arc<obs_notify::Notifier>>,
    instance: String,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(SELF_SCRAPE_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let batch = own_samples(
            &metrics.render(&engine, &rules, notifier.as_deref()),
            &instance,
            t,
        );
        if let Err(e) = engine.ingest_samples(batch).await {
            tracing::warn!(error = %e, "recording the store's own metrics failed");
        }
    }
}

/// The samples of a `/metrics` text, labelled with the store's job and instance.
fn own_samples(text: &str, instance: &str, t: i64) -> crate::tsdb::SampleBatch {
    let series = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (desc, value) = l.rsplit_once(' ')?;
            let mut labels = crate::promql::notation::metric(desc).ok()?;
            labels.set("job", "obs-store");
            labels.set("instance", instance);
            Some(crate::tsdb::SeriesSamples {
                labels: labels.into_pairs(),
                samples: vec![(t, value.parse().ok()?)],
            })
        })
        .collect();
    crate::tsdb::SampleBatch { series }
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_metrics_become_labelled_samples() {
        let text = "# HELP a x\n# TYPE a gauge\na 1.5\nb{limit=\"x\"} 2\n";
        let b = super::own_samples(text, "127.0.0.1:9700", 7);
        assert_eq!(b.series.len(), 2);
        let pairs = |v: &[(&str, &str)]| {
            v.iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            b.series[0].labels,
            pairs(&[
                ("__name__", "a"),
                ("instance", "127.0.0.1:9700"),
                ("job", "obs-store")
            ])
        );
        assert_eq!(
            b.series[1].labels,
            pairs(&[
                ("__name__", "b"),
                ("instance", "127.0.0.1:9700"),
                ("job", "obs-store"),
                ("limit", "x")
            ])
        );
        assert_eq!(
            (b.series[0].samples[0], b.series[1].samples[0]),
            ((7, 1.5), (7, 2.0))
        );
    }
}
