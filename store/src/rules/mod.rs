//! Alerting and recording rules, evaluated in the store as Prometheus and Loki's ruler
//! evaluate them.
//!
//! ```text
//! [store.rules] globs --file.rs--> groups (Prometheus rule-file format; PromQL or LogQL exprs)
//!   --manager.rs--> one task per group, every `interval` at a fixed offset in it:
//!        group.rs: each rule at one timestamp -> promql/ or logql/ over the engine
//!          recording: the result renamed -> samples
//!          alerting:  elements -> template/ (labels, annotations) -> alert.rs (pending,
//!                     firing, resolved) -> ALERTS, ALERTS_FOR_STATE samples
//!          gone series -> stale markers
//!        -> ingest::Engine (WAL first, like any pushed sample) before the next rule runs
//!   reload (SIGHUP, POST /-/reload): files read again, state kept for unchanged rules
//!   api/rules.rs: /api/v1/rules, /api/v1/alerts (PromQL), /prometheus/api/v1/... (LogQL)
//! ```
//!
//! After a start, alerts are written only once the second evaluation has run and the `for`
//! state of long-`for` alerts was restored from `ALERTS_FOR_STATE` (`group.rs`), as in
//! Prometheus, so a restart does not reset a 10-minute `for`.

pub(crate) mod alert;
mod defaults;
pub(crate) mod file;
pub(crate) mod group;
mod manager;
pub(crate) mod template;
mod unittest;

pub use defaults::PACK as DEFAULT_RULES;
pub use file::{check_files, FileError, Lang};
pub(crate) use manager::{Rules, RulesSettings};
pub use unittest::{run_test_file, TestReport};
