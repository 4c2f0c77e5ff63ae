//! `obs-store`: the part of obs that runs *outside* the monitored fleet and that Grafana and
//! `obs query` talk to.
//!
//! Data flow:
//!
//! ```text
//! StoreConfig --resolve--> StoreSettings --Store::bind--> BoundStore --serve(shutdown)-->
//!   ingest: OTLP/gRPC (grpc.rs), OTLP/HTTP + Loki push + remote_write (api/)
//!           -> convert.rs (logs, spans) / convert_metrics.rs (samples)
//!           -> ingest::Engine: wal.rs (fsync, group commit) -> logs.rs / traces.rs
//!              (tantivy day partitions, partitions.rs) / tsdb/ (head -> blocks)
//!           -> ack; commits every second, metrics blocks every 10 minutes
//!   query:  api/loki.rs -> logql/ ; api/tempo.rs -> traceql.rs -> traces.rs ;
//!           api/prom.rs -> promql/ -> tsdb/
//!   uptime: push heartbeats and the status page (uptime/)
//!   errors: exceptions in logs, spans and Sentry events grouped into issues (errors/)
//!   auth:   bearer tokens by Role on every route group (auth.rs); optional TLS
//! ```
//!
//! [`StoreConfig`] is the `[store]` section of the obs config file, as serde reads it;
//! [`StoreConfig::resolve`] validates it once (reads token files, checks that a non-loopback
//! listener has auth) into [`StoreSettings`], which is what the server runs on.

mod api;
mod auth;
mod config;
mod convert;
mod convert_metrics;
mod error;
mod errors;
#[cfg(test)]
mod golden;
mod grpc;
mod guard;
mod ingest;
mod limits;
mod logql;
mod logs;
mod metrics;
mod model;
mod partitions;
pub mod promql;
pub mod rules;
mod server;
mod traceql;
mod traces;
pub mod tsdb;
mod uptime;
mod wal;
mod words;

/// Prometheus remote_write 1.0 protobuf messages, for the store's clients: the benches and
/// end-to-end tests send real remote_write requests with them.
pub mod prompb {
    pub use crate::convert_metrics::prompb::*;
}

/// Entry points for the fuzz targets in `store/fuzz` (not an API): every decoder and parser
/// that takes untrusted input, run to completion on arbitrary bytes.
#[doc(hidden)]
pub mod fuzzing {
    use prost::Message;

    pub fn loki_push_json(data: &[u8]) {
        let _ = crate::convert::loki_push_json(data);
    }

    pub fn loki_push_proto(data: &[u8]) {
        let _ = crate::convert::loki_push_proto(data);
    }

    pub fn otlp_logs(data: &[u8]) {
        use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
        if let Ok(req) = ExportLogsServiceRequest::decode(data) {
            let _ = crate::convert::otlp_logs(&req, 0);
        }
        if let Ok(req) = serde_json::from_slice::<ExportLogsServiceRequest>(data) {
            let _ = crate::convert::otlp_logs(&req, 0);
        }
    }

    pub fn otlp_traces(data: &[u8]) {
        use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
        if let Ok(req) = ExportTraceServiceRequest::decode(data) {
            let _ = crate::convert::otlp_traces(&req);
        }
    }

    /// Parses a LogQL query and, for log queries, compiles and runs its pipeline on a line.
    pub fn logql(data: &[u8]) {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let (query, line) = text
            .split_once('\n')
            .unwrap_or((text, "level=info msg=\"x\" {\"a\":1}"));
        // The store contains panics of the third-party parser (see `logql::guard_parser`);
        // libFuzzer's panic hook would abort on them anyway, so it is silenced for that call.
        let hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let parsed = crate::logql::parse(query);
        std::panic::set_hook(hook);
        if let Ok(::logql::Expr::Log(lq)) = parsed {
            if let Ok(p) = crate::logql::pipeline::Pipeline::compile(&lq.pipeline) {
                let _ = p.run(&Default::default(), &[], line);
            }
        }
    }

    /// Splits a Sentry envelope and turns its events into log lines, then reads each back
    /// as grouping does.
    pub fn sentry_envelope(data: &[u8]) {
        if let Ok(items) = crate::errors::sentry::envelope_items(data) {
            for (_, payload) in items {
                if let Ok(event) = serde_json::from_slice(payload) {
                    if let Ok((labels, entry)) = crate::errors::sentry::to_log("1", None, event, 0) {
                        let _ = crate::errors::extract::from_log(&labels, &entry, None);
                    }
                }
            }
        }
    }

    /// Finds the error in a log line: stack traces of every runtime, parameterisation.
    pub fn error_line(data: &[u8]) {
        if let Ok(line) = std::str::from_utf8(data) {
            let labels = [("level".to_string(), "error".to_string())].into();
            let entry = crate::model::LogEntry {
                ts_ns: 0,
                line: line.to_string(),
                metadata: vec![("exception_stacktrace".into(), line.to_string())],
            };
            let _ = crate::errors::extract::from_log(&labels, &entry, None);
            let plain = crate::model::LogEntry {
                metadata: Vec::new(),
                ..entry
            };
            let _ = crate::errors::extract::from_log(&labels, &plain, None);
        }
    }

    pub fn traceql(data: &[u8]) {
        if let Ok(text) = std::str::from_utf8(data) {
            let _ = crate::traceql::parse(text);
        }
    }

    pub fn remote_write(data: &[u8]) {
        let _ = crate::convert_metrics::remote_write(data);
    }

    pub fn otlp_metrics(data: &[u8]) {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
        if let Ok(req) = ExportMetricsServiceRequest::decode(data) {
            let _ = crate::convert_metrics::otlp_metrics(&req);
        }
        if let Ok(req) = serde_json::from_slice::<ExportMetricsServiceRequest>(data) {
            let _ = crate::convert_metrics::otlp_metrics(&req);
        }
    }

    /// Splits the input into a timestamp and a value stream and decodes them as a chunk.
    pub fn metrics_chunk(data: &[u8]) {
        let cut = data.first().map_or(0, |b| *b as usize).min(data.len());
        let (ts, values) = data.split_at(cut);
        let mut out = Vec::new();
        let _ = crate::tsdb::chunk::decode(ts, values, &mut out);
    }

    /// Parses a PromQL query and evaluates it, instant and over a short range, against a
    /// few series (counters, a gauge with a staleness marker, classic histogram buckets).
    pub fn promql(data: &[u8]) {
        use std::sync::Arc;

        use crate::tsdb::{Labels, RawSeries, SeriesList};

        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let series = |pairs: &[(&str, &str)], f: &dyn Fn(i64) -> f64| RawSeries {
            labels: Arc::new(Labels::from_pairs(pairs.iter().copied())),
            samples: (0..40).map(|i| (i * 15_000, f(i))).collect(),
        };
        let store = SeriesList(vec![
            series(&[("__name__", "up"), ("job", "a")], &|_| 1.0),
            series(&[("__name__", "req_total"), ("job", "a")], &|i| (i * 3) as f64),
            series(&[("__name__", "req_total"), ("job", "b")], &|i| {
                ((i % 7) * 5) as f64
            }),
            series(&[("__name__", "g"), ("job", "a")], &|i| {
                if i == 20 {
                    crate::tsdb::stale_nan()
                } else {
                    i as f64 * 0.5
                }
            }),
            series(&[("__name__", "h_bucket"), ("le", "0.5")], &|i| i as f64),
            series(&[("__name__", "h_bucket"), ("le", "+Inf")], &|i| (i * 2) as f64),
        ]);
        let opts = crate::promql::Options {
            max_samples: 1_000_000,
            timeout: std::time::Duration::from_millis(200),
            ..Default::default()
        };
        if let Ok(expr) = crate::promql::parse(text) {
            let _ = crate::promql::instant(&store, &expr, 300_000, &opts);
            let _ = crate::promql::range(&store, &expr, 0, 600_000, 60_000, &opts);
        }
    }
}

pub use auth::Role;
pub use config::{
    HeartbeatConfig, Retention, RulesConfig, StatusPageConfig, StoreConfig, StoreSettings, TlsConfig,
    TlsSettings, TokenConfig, TokenSource, DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR,
};
pub use error::Error;
pub use errors::ErrorsConfig;
pub use limits::IngestLimits;
pub use server::{BoundStore, Store};
