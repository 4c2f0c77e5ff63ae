//! `obs-collector`: runs on every node and ships its logs, metrics and traces to the store.
//!
//! Data flow:
//!
//! ```text
//! files / containers (files.rs, containers.rs) ─┐  parse.rs: multiline, json/logfmt,
//! journald (journald.rs)                        ├─ severity, static labels
//! host metrics (host.rs), scrape (scrape.rs)    │
//! OTLP receiver 4317/4318 (receiver.rs)        │
//! probes (probe/: HTTP, TCP, DNS, ICMP checks) ─┘
//!   -> spool (spool/: checksummed segments, fsync on an interval; sources checkpoint
//!      their positions and the receiver answers only after the fsync)
//!   -> export.rs (OTLP/gRPC, pass-through codec, backoff forever) -> spool ack
//!   -> and per [[collector.forward]], its own cursor: export.rs over gRPC, or forward.rs
//!      (OTLP/HTTP, Loki push, remote_write via remote_write.rs)
//! ```
//!
//! The collector's own counters (metrics.rs) are served on the receiver's `/metrics` and
//! shipped to the store like any other metric.
//!
//! [`CollectorConfig`] is the `[collector]` section of the obs config file.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

mod alerting;
mod config;
mod containers;
mod error;
mod export;
mod files;
mod forward;
mod grpc;
mod gz;
mod host;
mod journald;
mod logenc;
mod metrics;
mod otlp;
mod parse;
mod probe;
mod receiver;
mod relabel;
mod remote_write;
mod scrape;
mod spool;

pub(crate) fn now_secs() -> u64 {
    now_ns() / 1_000_000_000
}

/// Keeps glibc malloc to its one main arena in a process that is only a collector. glibc
/// gives each allocating thread its own arena (up to 8 per core), and the tailer, the
/// shipper and tokio's blocking threads each kept megabytes of freed buffers in theirs:
/// 40-56 MiB peak RSS under load instead of 30 (`benches/scripts/collector-throughput`;
/// two arenas gave 35-38), for no measurable speed gain. mimalloc as the global allocator
/// was tried too: 52-60 MiB. No-op on other C libraries.
#[allow(unsafe_code)]
pub fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator tunable and is thread-safe; it is called once,
    // before the collector starts its threads.
    unsafe {
        nix::libc::mallopt(nix::libc::M_ARENA_MAX, 1);
    }
}

/// Wall-clock time in Unix nanoseconds (0 before 1970), the unit of OTLP timestamps.
pub(crate) fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

pub use alerting::check as check_alerting;
pub use config::{
    check_forwards, Alerting, CollectorConfig, FileSource, Format, Forward, Journald, Multiline, Parse,
    Protocol, ScrapeJob, StartAt, DEFAULT_OTLP_GRPC_ADDR, DEFAULT_OTLP_HTTP_ADDR, DEFAULT_STORE_URL,
};
pub use error::{Error, Result};
pub use export::ExportStats;
pub use files::{check as check_files, FileStats};
pub use host::collect as host_metrics;
pub use probe::{
    check_probes, run_once as probe_once, Checked as CheckedProbe, ConditionResult, IpProtocol,
    Outcome as ProbeOutcome, Probe,
};
pub use relabel::RelabelRule;

/// Everything a running collector counts, for `/metrics` and the store.
#[derive(Debug, Default)]
pub struct Stats {
    pub files: Arc<files::FileStats>,
    pub export: Arc<export::ExportStats>,
    /// Per `[[collector.forward]]`, by name.
    pub forwards: Vec<(String, Arc<export::ExportStats>)>,
}

fn read_token(file: Option<&PathBuf>, what: &str) -> Result<Option<String>> {
    file.map(|f| {
        std::fs::read_to_string(f).map_err(|source| Error::Read {
            what: format!("{what} token file"),
            path: f.clone(),
            source,
        })
    })
    .transpose()
}

/// The store's route (consumer 0) and one per forward, in config order.
fn routes(cfg: &CollectorConfig, stats: &Stats) -> Result<Vec<export::Route>> {
    let max_request_bytes = cfg.max_request_kib.saturating_mul(1024);
    let store = grpc::Exporter::new(&export::ExportConfig {
        endpoint: cfg.store.clone(),
        token: read_token(cfg.token_file.as_ref(), "store")?,
        compression: cfg.compression.clone(),
        ca_file: cfg.ca_file.clone(),
    })?;
    let mut routes = vec![export::Route {
        consumer: 0,
        name: "store".into(),
        sink: export::Sink::Grpc(store),
        max_request_bytes,
        max_in_flight: cfg.max_in_flight,
        stats: stats.export.clone(),
    }];
    for (i, f) in cfg.forward.iter().enumerate() {
        let token = read_token(f.token_file.as_ref(), &format!("forward {}", f.name))?;
        let sink = match f.protocol {
            Protocol::Otlp => export::Sink::Grpc(
                grpc::Exporter::new(&export::ExportConfig {
                    endpoint: f.url.clone(),
                    token,
                    compression: f.compression.clone(),
                    ca_file: f.ca_file.clone(),
                })
                .map_err(|e| error::config(format!("forward {}: {e}", f.name)))?,
            ),
            _ => export::Sink::Http(forward::HttpSink::new(f, token.as_deref())?),
        };
        routes.push(export::Route {
            consumer: i + 1,
            name: f.name.clone(),
            sink,
            max_request_bytes,
            max_in_flight: cfg.max_in_flight,
            stats: stats.forwards[i].1.clone(),
        });
    }
    Ok(routes)
}

/// Runs the collector until `shutdown` fires: sources into the spool under `data_dir`, the
/// shipper out of it. Returns an error only for what stops it from starting. With
/// `receiver_required` false (as in `obs up`, whose store takes OTLP itself), an OTLP
/// receiver port already in use is a warning, not an error.
pub async fn run(
    cfg: CollectorConfig,
    data_dir: PathBuf,
    mut shutdown: watch::Receiver<bool>,
    receiver_required: bool,
) -> Result<()> {
    let stats = Arc::new(Stats {
        forwards: cfg
            .forward
            .iter()
            .map(|f| (f.name.clone(), Arc::default()))
            .collect(),
        ..Stats::default()
    });
    config::check_forwards(&cfg.forward).map_err(Error::Config)?;
    if let Some(a) = &cfg.alerting {
        alerting::check(a).map_err(Error::Config)?;
    }
    let probes = probe::check_probes(&cfg.probes).map_err(Error::Config)?;
    let routes = routes(&cfg, &stats)?;
    let data_dir_error = |source| Error::DataDir {
        path: data_dir.clone(),
        source,
    };
    std::fs::create_dir_all(&data_dir).map_err(data_dir_error)?;
    let spool_cfg = spool::SpoolConfig {
        max_bytes: cfg.spool_max_mib.max(64) << 20,
        full_wait: Duration::from_secs(cfg.spool_full_wait_secs),
        consumers: cfg.forward.iter().map(|f| f.name.clone()).collect(),
        ..Default::default()
    };
    let fs = spool::OsFs::new(&data_dir.join("spool")).map_err(data_dir_error)?;
    let spool = Arc::new(spool::Spool::open(Arc::new(fs), spool_cfg).map_err(data_dir_error)?);
    spool.sync_in_background(spool::SYNC_EVERY);
    let host = cfg.host_name.clone().unwrap_or_else(files::host_name);
    let receiver_token = read_token(cfg.otlp_token_file.as_ref(), "OTLP receiver")?;
    let receiver = match receiver::start(
        cfg.otlp_grpc_addr,
        cfg.otlp_http_addr,
        receiver_token,
        spool.clone(),
        stats.clone(),
        shutdown.clone(),
    )
    .await
    {
        Ok(r) => Some(r),
        Err(e) if !receiver_required => {
            tracing::warn!("OTLP receiver not started: {e:#}");
            None
        }
        Err(e) => return Err(e),
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    let file_sources = cfg.all_file_sources();
    if !file_sources.is_empty() {
        let tailer = files::FileTailer::new(
            &file_sources,
            &host,
            spool.clone(),
            &data_dir,
            stats.files.clone(),
        )?
        .with_batch_bytes(cfg.max_request_kib.saturating_mul(1024));
        let stop = stop.clone();
        threads.push(tokio::task::spawn_blocking(move || tailer.run(stop)));
    }
    let host_metrics = cfg.host_metrics.then(|| {
        let every = Duration::from_secs(cfg.host_metrics_interval_secs.max(1));
        tokio::spawn(host::run(spool.clone(), host.clone(), every, shutdown.clone()))
    });
    let scrapers: Vec<_> = cfg
        .scrape
        .iter()
        .map(|job| tokio::spawn(scrape::run(job.clone(), spool.clone(), shutdown.clone())))
        .collect();
    let probes = probe::spawn(probes, host.clone(), spool.clone(), shutdown.clone());
    let journal = cfg.journald.clone().map(|j| {
        tokio::spawn(journald::run(
            j,
            host.clone(),
            spool.clone(),
            data_dir.clone(),
            shutdown.clone(),
        ))
    });
    let own = tokio::spawn(metrics::run(
        stats.clone(),
        spool.clone(),
        host.clone(),
        Duration::from_secs(cfg.host_metrics_interval_secs.max(1)),
        shutdown.clone(),
    ));
    let watcher = cfg.alerting.clone().map(|a| {
        let (stats, spool, dir, shutdown) = (
            stats.export.clone(),
            spool.clone(),
            data_dir.clone(),
            shutdown.clone(),
        );
        let names = (host.clone(), cfg.store.clone());
        tokio::spawn(async move { alerting::run(a, names, stats, spool, &dir, shutdown).await })
    });
    let shippers: Vec<_> = routes
        .into_iter()
        .map(|r| tokio::spawn(export::ship(spool.clone(), r, shutdown.clone())))
        .collect();
    tracing::info!(store = %cfg.store, files = file_sources.len(), host = %host, spool = %data_dir.join("spool").display(), "collector running");
    let _ = shutdown.wait_for(|s| *s).await;
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.await;
    }
    if let Some(h) = host_metrics {
        let _ = h.await;
    }
    let _ = own.await;
    if let Some(w) = watcher {
        let _ = w.await;
    }
    if let Some(j) = journal {
        let _ = j.await;
    }
    for s in scrapers.into_iter().chain(probes) {
        let _ = s.await;
    }
    if let Some(r) = receiver {
        let _ = r.await;
    }
    for s in shippers {
        let _ = s.await;
    }
    if let Err(e) = spool.sync() {
        tracing::error!(error = %e, "cannot sync the spool at shutdown");
    }
    Ok(())
}
