//! The store's own metrics, served on `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::ingest::Engine;

#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    started: Arc<Instant>,
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
        }
    }

    pub(crate) fn render(&self, engine: &Engine) -> String {
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
            "obs_store_wal_bytes",
            "gauge",
            "Bytes in WAL segments on disk.",
            engine.wal_bytes(),
        );
        let (parts, bytes) = engine.logs().parts.disk_usage();
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
        out
    }
}
