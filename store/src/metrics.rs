//! The store's own metrics, served on `/metrics` in the Prometheus text format.

use std::fmt::Write;
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    started: Arc<Instant>,
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        Metrics {
            started: Arc::new(Instant::now()),
        }
    }

    pub(crate) fn render(&self) -> String {
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
        let _ = writeln!(
            out,
            "# HELP obs_store_uptime_seconds Seconds since the store started."
        );
        let _ = writeln!(out, "# TYPE obs_store_uptime_seconds gauge");
        let _ = writeln!(
            out,
            "obs_store_uptime_seconds {:.3}",
            self.started.elapsed().as_secs_f64()
        );
        out
    }
}
