//! `obs-collector`: runs on every node and ships its logs, metrics and traces to the store.
//!
//! Data flow (built by the collector issue; today this crate holds its config section):
//!
//! ```text
//! sources (files, journald, container logs, host metrics, Prometheus scrape, OTLP receiver)
//!   -> processors (parse, enrich, relabel) -> disk spool (checksummed segments)
//!   -> exporters (OTLP/gRPC to the store; optional fan-out) -> ack -> checkpoint
//! ```
//!
//! [`CollectorConfig`] is the `[collector]` section of the obs config file.

mod config;
pub mod spool;

pub use config::{
    CollectorConfig, FileSource, DEFAULT_OTLP_GRPC_ADDR, DEFAULT_OTLP_HTTP_ADDR, DEFAULT_STORE_URL,
};
