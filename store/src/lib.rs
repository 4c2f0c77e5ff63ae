//! `obs-store`: the part of obs that runs *outside* the monitored fleet and that Grafana and
//! `obs query` talk to.
//!
//! Data flow (the parts marked *planned* are built by their own issues):
//!
//! ```text
//! StoreConfig --resolve--> StoreSettings --Store::bind--> BoundStore --serve(shutdown)-->
//!   HTTP (axum, one router per compatible API, token auth by Role):
//!     /ready, /metrics                       (this crate today)
//!     OTLP/HTTP, Loki push, remote_write     (planned) -> WAL -> tantivy / TSDB
//!     Prometheus, Loki, Tempo query APIs     (planned) <- tantivy / TSDB
//! ```
//!
//! [`StoreConfig`] is the `[store]` section of the obs config file, as serde reads it;
//! [`StoreConfig::resolve`] validates it once (reads token files, checks that a non-loopback
//! listener has auth) into [`StoreSettings`], which is what the server runs on.

mod api;
mod auth;
mod config;
mod convert;
mod error;
#[cfg(test)]
mod golden;
mod grpc;
mod ingest;
mod logql;
mod logs;
mod metrics;
mod model;
mod partitions;
mod server;
mod traceql;
mod traces;
mod wal;

pub use auth::Role;
pub use config::{
    StoreConfig, StoreSettings, TlsConfig, TlsSettings, TokenConfig, DEFAULT_GRPC_ADDR, DEFAULT_HTTP_ADDR,
};
pub use error::Error;
pub use server::{BoundStore, Store};
