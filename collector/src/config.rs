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
    /// Bearer token apps must send to the receiver; required on a non-loopback address.
    pub otlp_token_file: Option<PathBuf>,
    /// Collect node_exporter-like host metrics from /proc and /sys.
    pub host_metrics: bool,
    /// Seconds between host metric collections.
    pub host_metrics_interval_secs: u64,
    /// `host.name` on everything this collector sends [default: the kernel's hostname].
    pub host_name: Option<String>,
    /// Request compression to the store: `zstd`, `gzip` or `none`.
    pub compression: String,
    /// PEM CA certificate for an `https://` store with a private CA.
    pub ca_file: Option<PathBuf>,
    /// Spooled data per request to the store, in KiB: bigger requests ship faster over a
    /// slow link, smaller ones bound what a crash can send twice.
    pub max_request_kib: usize,
    /// Requests to the store on the wire at once (each waits for the store's fsync).
    pub max_in_flight: usize,
    /// The disk spool's size bound in MiB: past it, writers wait, then the oldest data goes.
    pub spool_max_mib: u64,
    /// How long a full spool holds sources back before dropping its oldest segment.
    pub spool_full_wait_secs: u64,
    pub files: Vec<FileSource>,
    /// Tail every Docker container's json-file log under this directory
    /// (e.g. `/var/lib/docker/containers`), labelled with the container's name and image.
    pub docker_containers_dir: Option<PathBuf>,
    /// Tail Kubernetes pod logs (CRI format) under this directory (e.g. `/var/log/pods`),
    /// labelled with namespace, pod and container.
    pub kubernetes_pods_dir: Option<PathBuf>,
    /// Prometheus targets to scrape.
    pub scrape: Vec<ScrapeJob>,
    /// Follow the systemd journal.
    pub journald: Option<Journald>,
    /// Further destinations that get everything the store gets (each at its own pace).
    pub forward: Vec<Forward>,
    /// Tell the operator when the store cannot be reached.
    pub alerting: Option<Alerting>,
    /// Checks of services from this node (HTTP, TCP, DNS, ICMP).
    pub probes: Vec<crate::probe::Probe>,
}

/// `[collector.alerting]`: after `store_down_notify_after` without a delivery to the store,
/// one message through a receiver (the store's receiver types), and one when it is back.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Alerting {
    /// How long deliveries must fail before the message (default 10m).
    #[serde(default = "ten_minutes", deserialize_with = "duration")]
    pub store_down_notify_after: std::time::Duration,
    /// Which receiver (needed only when there are several).
    pub receiver: Option<String>,
    #[serde(default)]
    pub receivers: Vec<obs_notify::ReceiverConfig>,
}

fn ten_minutes() -> std::time::Duration {
    std::time::Duration::from_secs(600)
}

fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e} (try \"10m\")")))
}

/// One `[[collector.forward]]`: another destination for what the collector ships, for users
/// who scale out to existing engines or keep a second store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forward {
    /// Names the destination in metrics and logs, and its cursor in the spool
    /// (`ack.<name>`): letters, digits, `-` and `_`.
    pub name: String,
    /// `otlp`: `http(s)://host:4317`; `otlp-http`: the base URL (`/v1/logs` etc. are
    /// appended); `loki`: the push URL (`…/loki/api/v1/push`); `remote-write`: the
    /// remote_write URL (`…/api/v1/write`).
    pub url: String,
    pub protocol: Protocol,
    /// Bearer token sent with every request.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// PEM CA certificate for an `https://` URL with a private CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Request compression for `otlp`: `zstd`, `gzip` or `none`.
    #[serde(default = "default_forward_compression")]
    pub compression: String,
}

fn default_forward_compression() -> String {
    "gzip".to_string()
}

/// What a forward destination speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// OTLP/gRPC: logs, metrics and traces (another obs store, an OpenTelemetry Collector…).
    Otlp,
    /// OTLP/HTTP with protobuf bodies: logs, metrics and traces.
    OtlpHttp,
    /// Loki's push API: logs only.
    Loki,
    /// Prometheus remote_write 1.0: metrics only.
    RemoteWrite,
}

/// Checks every `[[collector.forward]]`: names fit for a file name and a label value, and
/// unique; URLs with a scheme.
pub fn check_forwards(forwards: &[Forward]) -> Result<(), String> {
    let mut names = std::collections::HashSet::new();
    for f in forwards {
        f.check()?;
        if !names.insert(f.name.as_str()) {
            return Err(format!(
                "two [[collector.forward]] entries are named {:?}; each needs its own name",
                f.name
            ));
        }
    }
    Ok(())
}

impl Forward {
    fn check(&self) -> Result<(), String> {
        let ok = !self.name.is_empty()
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(format!(
                "forward name {:?}: use letters, digits, '-' and '_'",
                self.name
            ));
        }
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err(format!(
                "forward {}: url {:?} must start with http:// or https://",
                self.name, self.url
            ));
        }
        Ok(())
    }
}

/// `[collector.journald]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Journald {
    /// A journal directory other than the system journal's.
    #[serde(default)]
    pub directory: Option<PathBuf>,
    /// Only these units (`journalctl --unit`).
    #[serde(default)]
    pub units: Vec<String>,
    /// Where to start the first time (later starts continue after the saved cursor).
    #[serde(default = "end")]
    pub start_at: StartAt,
    #[serde(default = "default_journalctl")]
    pub journalctl: String,
}

fn end() -> StartAt {
    StartAt::End
}

fn default_journalctl() -> String {
    "journalctl".into()
}

/// One `[[collector.scrape]]` job.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrapeJob {
    /// The `job` label.
    pub job: String,
    /// `host:port` targets.
    #[serde(default)]
    pub targets: Vec<String>,
    /// A Prometheus file_sd JSON file (`[{"targets": [...], "labels": {...}}]`), re-read
    /// every interval.
    #[serde(default)]
    pub file_sd: Option<PathBuf>,
    #[serde(default = "default_scrape_interval")]
    pub interval_secs: u64,
    #[serde(default = "default_metrics_path")]
    pub path: String,
}

fn default_scrape_interval() -> u64 {
    15
}

fn default_metrics_path() -> String {
    "/metrics".into()
}

impl CollectorConfig {
    /// The file sources, with the container log directories as sources of their format.
    pub fn all_file_sources(&self) -> Vec<FileSource> {
        let mut out = self.files.clone();
        let dirs = [
            (&self.docker_containers_dir, "*/*-json.log*", Format::Docker),
            (&self.kubernetes_pods_dir, "*/*/*.log*", Format::Cri),
        ];
        for (dir, pattern, format) in dirs {
            if let Some(d) = dir {
                let mut src = FileSource::from_glob(d.join(pattern).to_string_lossy().into_owned());
                src.format = format;
                src.exclude = vec!["*.gz".into()];
                out.push(src);
            }
        }
        out
    }
}

impl Default for CollectorConfig {
    fn default() -> Self {
        CollectorConfig {
            store: DEFAULT_STORE_URL.to_string(),
            data_dir: None,
            token_file: None,
            otlp_grpc_addr: DEFAULT_OTLP_GRPC_ADDR.parse().expect("valid default address"),
            otlp_http_addr: DEFAULT_OTLP_HTTP_ADDR.parse().expect("valid default address"),
            otlp_token_file: None,
            host_metrics: true,
            host_metrics_interval_secs: 15,
            host_name: None,
            compression: "zstd".to_string(),
            ca_file: None,
            max_request_kib: 512,
            max_in_flight: 4,
            spool_max_mib: 1024,
            spool_full_wait_secs: 30,
            files: Vec::new(),
            docker_containers_dir: None,
            kubernetes_pods_dir: None,
            scrape: Vec::new(),
            journald: None,
            forward: Vec::new(),
            alerting: None,
            probes: Vec::new(),
        }
    }
}

/// One `[[collector.files]]` entry: log files to tail.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSource {
    /// Glob patterns, rescanned for new files.
    pub paths: Vec<String>,
    /// Glob patterns of files not to read, even if `paths` matches them.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Labels added to every line from these files (indexed as stream labels by the
    /// store). `service_name` sets the OTLP `service.name`.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Where to start in files found at the first start, with no saved position. Files
    /// that appear later are always read from the beginning.
    #[serde(default)]
    pub start_at: StartAt,
    /// Longer lines are cut to this many bytes and counted (`obs_collector_lines_truncated_total`).
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Read gzip'd files the globs match (logrotate's `compress`), decompressed; a file read
    /// partly before it was compressed goes on where it stopped. Off: they are skipped.
    #[serde(default)]
    pub read_gzip: bool,
    /// Join continuation lines (stack traces) to the line that starts an event.
    #[serde(default)]
    pub multiline: Option<Multiline>,
    /// Parse each line's fields into attributes.
    #[serde(default)]
    pub parse: Option<Parse>,
    /// How lines are framed: `plain`, or a container runtime's `docker` / `cri` format.
    #[serde(default)]
    pub format: Format,
    /// Prometheus-style rules on each file's labels (`filename`, `labels`, container
    /// labels), applied when the file is opened; `keep` / `drop` decide whether it is read.
    #[serde(default)]
    pub relabel: Vec<crate::relabel::RelabelRule>,
    /// Lines matching any of these regexes are not shipped (counted).
    #[serde(default)]
    pub drop_lines: Vec<String>,
    /// If set, only lines matching one of these regexes are shipped (the rest counted).
    #[serde(default)]
    pub keep_lines: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Plain,
    Docker,
    Cri,
}

impl FileSource {
    /// A source for one `--file GLOB` flag, with every default.
    pub fn from_glob(glob: String) -> FileSource {
        FileSource {
            paths: vec![glob],
            exclude: Vec::new(),
            labels: Default::default(),
            start_at: StartAt::default(),
            max_line_bytes: default_max_line_bytes(),
            read_gzip: false,
            multiline: None,
            parse: None,
            format: Format::Plain,
            relabel: Vec::new(),
            drop_lines: Vec::new(),
            keep_lines: Vec::new(),
        }
    }
}

fn default_max_line_bytes() -> usize {
    256 * 1024
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    #[default]
    Beginning,
    End,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Parse {
    Json,
    Logfmt,
}

/// `multiline = { start = '^\d{4}-', timeout_ms = 1000 }`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Multiline {
    /// A regex matching the first line of an event; other lines continue the event.
    pub start: String,
    /// An event with no new line for this long is sent as it is.
    #[serde(default = "default_multiline_timeout")]
    pub timeout_ms: u64,
}

fn default_multiline_timeout() -> u64 {
    1000
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
    fn forwards_need_distinct_safe_names_and_a_url_scheme() {
        let parse = |t: &str| toml::from_str::<CollectorConfig>(t).map(|c| check_forwards(&c.forward));
        let fwd = |name: &str, url: &str| {
            format!("[[forward]]\nname = \"{name}\"\nurl = \"{url}\"\nprotocol = \"loki\"\n")
        };
        assert_eq!(
            parse(&fwd("loki-1", "http://l:3100/loki/api/v1/push")).unwrap(),
            Ok(())
        );
        let err = parse(&fwd("../x", "http://l")).unwrap().unwrap_err();
        assert!(err.contains("letters, digits"), "{err}");
        let err = parse(&fwd("l", "l:3100")).unwrap().unwrap_err();
        assert!(err.contains("http://"), "{err}");
        let twice = format!("{}{}", fwd("a", "http://x"), fwd("a", "http://y"));
        let err = parse(&twice).unwrap().unwrap_err();
        assert!(err.contains("named \"a\""), "{err}");
        let bad = "[[forward]]\nname = \"a\"\nurl = \"http://x\"\nprotocol = \"kafka\"\n";
        assert!(parse(bad)
            .unwrap_err()
            .to_string()
            .contains("unknown variant `kafka`"));
    }

    #[test]
    fn file_sources_reject_unknown_keys() {
        let err = toml::from_str::<CollectorConfig>("[[files]]\npath = [\"/var/log/*.log\"]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `path`"), "{err}");
    }
}
