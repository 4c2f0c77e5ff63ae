//! The `[store]` config section and its validated runtime form.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::auth::{Role, Tokens};
use crate::limits::IngestLimits;
use crate::rules::group::Env;
use crate::rules::RulesSettings;
pub use crate::uptime::{HeartbeatConfig, StatusPageConfig};
use crate::Error;

pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:9700";
pub const DEFAULT_GRPC_ADDR: &str = "127.0.0.1:9701";

/// `[store]` as written in the config file. Unknown keys are an error.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// Where the WAL and indexes live; `None` means "the caller picks" (`obs up` uses
    /// `./obs-data/store`).
    pub data_dir: Option<PathBuf>,
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    /// How long data is kept, e.g. "30d" (every signal, unless overridden below).
    #[serde(deserialize_with = "deserialize_duration")]
    pub retention: Duration,
    /// Retention of logs, overriding `retention`.
    #[serde(deserialize_with = "deserialize_opt_duration")]
    pub logs_retention: Option<Duration>,
    /// Retention of traces, overriding `retention`.
    #[serde(deserialize_with = "deserialize_opt_duration")]
    pub traces_retention: Option<Duration>,
    /// Retention of metrics, overriding `retention`.
    #[serde(deserialize_with = "deserialize_opt_duration")]
    pub metrics_retention: Option<Duration>,
    /// Bearer tokens; with none, the store only listens on loopback.
    pub tokens: Vec<TokenConfig>,
    /// Allow a non-loopback listener without tokens (the `--insecure` flag).
    pub insecure: bool,
    /// Serve both ports over TLS (`[store.tls]`).
    pub tls: Option<TlsConfig>,
    /// Ingest limits (see `limits.rs`), with Loki's names and defaults.
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    pub max_label_names_per_series: usize,
    pub max_label_names_per_metric_series: usize,
    pub max_streams_per_push: usize,
    /// `[store.rules]`: alerting and recording rules.
    pub rules: RulesConfig,
    /// `[store.alerting]`: where alerts are sent (receivers, route, inhibition).
    pub alerting: obs_notify::NotifyConfig,
    /// `[[store.heartbeats]]`: push heartbeats expected every period.
    pub heartbeats: Vec<HeartbeatConfig>,
    /// `[store.status_page]`: the page at `/status`.
    pub status_page: StatusPageConfig,
    /// `[store.errors]`: exceptions grouped into issues.
    pub errors: crate::errors::ErrorsConfig,
}

/// `[store.rules]` as written: rule files and how often they run.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RulesConfig {
    /// Globs of Prometheus rule files (PromQL).
    pub files: Vec<String>,
    /// Globs of Loki ruler files (LogQL).
    pub loki_files: Vec<String>,
    /// How often groups without their own `interval` run.
    #[serde(deserialize_with = "deserialize_duration")]
    pub evaluation_interval: Duration,
    /// Load the built-in rule pack.
    pub defaults: bool,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            files: Vec::new(),
            loki_files: Vec::new(),
            evaluation_interval: Duration::from_secs(60),
            defaults: true,
        }
    }
}

/// `[store.tls]`: PEM files for the server certificate chain and its private key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// Loaded TLS material.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            data_dir: None,
            http_addr: DEFAULT_HTTP_ADDR.parse().expect("valid default address"),
            grpc_addr: DEFAULT_GRPC_ADDR.parse().expect("valid default address"),
            retention: Duration::from_secs(30 * 24 * 3600),
            logs_retention: None,
            traces_retention: None,
            metrics_retention: None,
            tokens: Vec::new(),
            insecure: false,
            tls: None,
            max_label_name_length: IngestLimits::default().max_label_name_length,
            max_label_value_length: IngestLimits::default().max_label_value_length,
            max_label_names_per_series: IngestLimits::default().max_label_names_per_series,
            max_label_names_per_metric_series: IngestLimits::default().max_label_names_per_metric_series,
            max_streams_per_push: IngestLimits::default().max_streams_per_push,
            rules: RulesConfig::default(),
            alerting: obs_notify::NotifyConfig::default(),
            heartbeats: Vec::new(),
            status_page: StatusPageConfig::default(),
            errors: crate::errors::ErrorsConfig::default(),
        }
    }
}

/// One `[[store.tokens]]` entry: exactly one of `token_file` (preferred) or `token`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub name: String,
    pub role: Role,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    #[serde(default)]
    pub token: Option<String>,
}

/// How long each signal is kept; whole day partitions older than this are dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub logs: Duration,
    pub traces: Duration,
    pub metrics: Duration,
}

impl Retention {
    /// The same retention for every signal.
    pub fn all(d: Duration) -> Retention {
        Retention {
            logs: d,
            traces: d,
            metrics: d,
        }
    }
}

/// The validated settings the store runs on.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    pub data_dir: PathBuf,
    pub http_addr: SocketAddr,
    pub grpc_addr: SocketAddr,
    pub retention: Retention,
    pub(crate) tokens: Tokens,
    pub tls: Option<TlsSettings>,
    pub limits: IngestLimits,
    pub(crate) rules: RulesSettings,
    pub(crate) alerting: obs_notify::NotifyConfig,
    pub(crate) heartbeats: Vec<HeartbeatConfig>,
    pub(crate) status_page: StatusPageConfig,
    pub(crate) errors: crate::errors::ErrorsConfig,
    /// Where the tokens are read again while the store runs (the config file), if anywhere.
    pub token_source: Option<TokenSource>,
}

/// Loads the current `[[store.tokens]]` (the CLI reads its config file again).
#[derive(Clone)]
pub struct TokenSource(pub std::sync::Arc<dyn Fn() -> Result<Vec<TokenConfig>, String> + Send + Sync>);

impl TokenSource {
    pub(crate) fn load(&self) -> Result<Vec<TokenConfig>, String> {
        (self.0)()
    }
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenSource")
    }
}

impl StoreConfig {
    /// Validates the section once: reads token files and refuses a non-loopback listener
    /// without auth (unless `insecure`). `default_data_dir` is used when `data_dir` is unset.
    pub fn resolve(self, default_data_dir: PathBuf) -> Result<StoreSettings, Error> {
        let tokens = Tokens::load(&self.tokens)?;
        if tokens.is_empty() && !self.insecure {
            for addr in [self.http_addr, self.grpc_addr] {
                if !addr.ip().is_loopback() {
                    return Err(Error::InsecureBind { addr });
                }
            }
        }
        let read = |path: &PathBuf, what: &str| {
            std::fs::read(path)
                .map_err(|e| Error::Tls(format!("cannot read the TLS {what} {}: {e}", path.display())))
        };
        let tls = match &self.tls {
            Some(t) => Some(TlsSettings {
                cert_pem: read(&t.cert_file, "certificate")?,
                key_pem: read(&t.key_file, "key")?,
            }),
            None => None,
        };
        if self.rules.evaluation_interval.is_zero() {
            return Err(Error::Config(
                "[store.rules] evaluation_interval must be longer than 0s (try \"1m\")".into(),
            ));
        }
        crate::uptime::check_heartbeats(&self.heartbeats).map_err(Error::Config)?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut alerting = self.alerting;
        if alerting.external_url.is_empty() {
            alerting.external_url = format!("{scheme}://{}", self.http_addr);
        }
        let rules = RulesSettings {
            files: self.rules.files,
            loki_files: self.rules.loki_files,
            evaluation_interval: self.rules.evaluation_interval,
            defaults: self.rules.defaults,
            env: Env {
                external_labels: Vec::new(),
                external_url: alerting.external_url.clone(),
            },
        };
        Ok(StoreSettings {
            rules,
            alerting,
            heartbeats: self.heartbeats,
            status_page: self.status_page,
            errors: self.errors,
            token_source: None,
            tls,
            data_dir: self.data_dir.unwrap_or(default_data_dir),
            http_addr: self.http_addr,
            grpc_addr: self.grpc_addr,
            retention: Retention {
                logs: self.logs_retention.unwrap_or(self.retention),
                traces: self.traces_retention.unwrap_or(self.retention),
                metrics: self.metrics_retention.unwrap_or(self.retention),
            },
            tokens,
            limits: IngestLimits {
                max_label_name_length: self.max_label_name_length,
                max_label_value_length: self.max_label_value_length,
                max_label_names_per_series: self.max_label_names_per_series,
                max_label_names_per_metric_series: self.max_label_names_per_metric_series,
                max_streams_per_push: self.max_streams_per_push,
            },
        })
    }
}

fn deserialize_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    deserialize_duration(d).map(Some)
}

/// Reads a human duration such as "30d" or "12h 30m".
pub(crate) fn deserialize_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| {
        serde::de::Error::custom(format!("invalid duration {text:?}: {e} (try \"30d\" or \"12h\")"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<StoreConfig, toml::de::Error> {
        toml::from_str(text)
    }

    #[test]
    fn defaults_match_the_documented_ports() {
        let cfg = parse("").unwrap();
        assert_eq!(cfg.http_addr.to_string(), "127.0.0.1:9700");
        assert_eq!(cfg.grpc_addr.to_string(), "127.0.0.1:9701");
        assert_eq!(cfg.retention, Duration::from_secs(30 * 86400));
    }

    #[test]
    fn retention_takes_human_durations_and_rejects_nonsense() {
        assert_eq!(
            parse("retention = \"7d\"").unwrap().retention,
            Duration::from_secs(7 * 86400)
        );
        let per = parse("retention = \"7d\"\ntraces_retention = \"2d\"")
            .unwrap()
            .resolve("/tmp".into())
            .unwrap();
        assert_eq!(per.retention.logs, Duration::from_secs(7 * 86400));
        assert_eq!(per.retention.traces, Duration::from_secs(2 * 86400));
        let err = parse("retention = \"seven days\"").unwrap_err().to_string();
        assert!(err.contains("invalid duration \"seven days\""), "{err}");
    }

    #[test]
    fn non_loopback_without_tokens_is_refused_unless_insecure() {
        let cfg = parse("http_addr = \"0.0.0.0:9700\"").unwrap();
        let err = cfg.clone().resolve("/tmp".into()).unwrap_err();
        assert!(matches!(err, Error::InsecureBind { .. }), "{err}");
        assert!(err.to_string().contains("--insecure"));
        let insecure = StoreConfig {
            insecure: true,
            ..cfg
        };
        assert!(insecure.resolve("/tmp".into()).is_ok());
    }

    #[test]
    fn non_loopback_with_a_token_is_allowed() {
        let cfg = parse(
            "http_addr = \"0.0.0.0:9700\"\n[[tokens]]\nname = \"grafana\"\nrole = \"query\"\ntoken = \"s3cr3t-s3cr3t\"\n",
        )
        .unwrap();
        assert!(cfg.resolve("/tmp".into()).is_ok());
    }
}
