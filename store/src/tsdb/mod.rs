//! The metrics TSDB (see issue #4): labels, the storage interface the PromQL engine reads.

pub mod labels;

use std::sync::Arc;

pub use labels::{Labels, METRIC_NAME};
pub use promql_parser::label::{MatchOp, Matcher};

/// Prometheus's staleness marker: a NaN with this exact bit pattern ends a series.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

pub fn stale_nan() -> f64 {
    f64::from_bits(STALE_NAN_BITS)
}

pub fn is_stale(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One series as read from storage: samples sorted by time (ms), staleness markers included.
#[derive(Clone, Debug)]
pub struct RawSeries {
    pub labels: Arc<Labels>,
    pub samples: Vec<(i64, f64)>,
}

/// Read access to stored series, what PromQL and the metadata APIs need.
pub trait Querier: Send + Sync {
    /// Series matching all `matchers` with their samples in `[mint, maxt]` (ms, inclusive).
    /// Series without samples in the range are left out.
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<RawSeries>, String>;
}

/// True when `labels` satisfies every matcher (a missing label matches as "").
pub fn matches_all(labels: &Labels, matchers: &[Matcher]) -> bool {
    matchers.iter().all(|m| m.is_match(labels.get(&m.name).unwrap_or("")))
}
