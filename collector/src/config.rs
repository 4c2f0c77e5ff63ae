//! The `[collector]` config section.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

pub const DEFAULT_STORE_URL: &str = "http://127.0.0.1:9701";
pub const DEFAULT_OTLP_GRPC_ADDR: &str = "127.0.0.1:4317";
pub const DEFAULT_OTLP_HTTP_ADDR: &str = "127.0.0.1:4318";

/// `[collector]` as written in the config file. Unknown keys are an error.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// The store's OTLP/gRPC endpoint.
    pub store: String,
    /// Spool and checkpoints; `None` means "the caller picks".
    pub data_dir: Option<PathBuf>,
    /// Bearer token for the store (role `ingest`).
    pub token_file: Option<PathBuf>,
    /// OTLP receiver for local apps.
    pub otlp_grpc_addr: SocketAddr,
    pub otlp_http_addr: SocketAddr,
    /// Collect node_exporter-like host metrics from /proc and /sys.
    pub host_metrics: bool,
    pub files: Vec<FileSource>,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            store: DEFAULT_STORE_URL.to_string(),
            data_dir: None,
            token_file: None,
            otlp_grpc_addr: DEFAULT_OTLP_GRPC_ADDR.parse().expect("valid default address"),
            otlp_http_addr: DEFAULT_OTLP_HTTP_ADDR.parse().expect("valid default address"),
            host_metrics: true,
            files: Vec::new(),
        }
    }
}

/// One `[[collector.files]]` entry: log files to tail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// Glob patterns, rescanned for new files.
    pub paths: Vec<String>,
    /// Labels added to every line from these files.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_use_the_standard_otlp_ports() {
        let cfg: CollectorConfig = toml::from_str("").unwrap();
        assert_eq!(cfg.store, DEFAULT_STORE_URL);
        assert_eq!(cfg.otlp_grpc_addr.port(), 4317);
        assert_eq!(cfg.otlp_http_addr.port(), 4318);
    }

    #[test]
    fn file_sources_reject_unknown_keys() {
        let err = toml::from_str::<CollectorConfig>("[[files]]\npath = [\"/var/log/*.log\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `path`"), "{err}");
    }
}
