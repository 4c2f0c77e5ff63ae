//! `obs up` and `obs store`: start the components on a tokio runtime and stop them cleanly on
//! Ctrl-C or SIGTERM (the store drains in-flight requests before exiting).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use obs_store::{BoundStore, Store};
use tokio::sync::watch;

use crate::cli::{CollectorArgs, StoreArgs, UpArgs};
use crate::config::{self, Config};

fn load_or_embedded(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(match path {
        Some(p) => config::load(p)?,
        None => Config::embedded(),
    })
}

/// The store reads its tokens again from the config file while it runs (`obs token create`
/// and `revoke` edit it).
fn token_source(path: Option<&Path>) -> Option<obs_store::TokenSource> {
    let path = path?.to_path_buf();
    Some(obs_store::TokenSource(std::sync::Arc::new(move || {
        config::load(&path)
            .map(|c| c.store.tokens)
            .map_err(|e| e.to_string())
    })))
}

/// `$XDG_DATA_HOME/obs`, else `~/.local/share/obs`, else `./obs-data`.
pub(crate) fn default_data_root() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .map(|d| d.join("obs"))
        .unwrap_or_else(|| PathBuf::from("./obs-data"))
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// A shutdown signal every component can wait on; fired by Ctrl-C or SIGTERM.
fn shutdown_on_signals() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops obs");
                    std::future::pending::<()>().await
                }
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        tracing::info!("shutting down");
        let _ = tx.send(true);
    });
    rx
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

pub(crate) fn store(args: StoreArgs) -> anyhow::Result<()> {
    let mut cfg = load_or_embedded(args.config.as_deref())?.store;
    if let Some(d) = args.data_dir {
        cfg.data_dir = Some(d);
    }
    if let Some(a) = args.http_addr {
        cfg.http_addr = a;
    }
    if let Some(a) = args.grpc_addr {
        cfg.grpc_addr = a;
    }
    cfg.insecure |= args.insecure;
    let mut settings = cfg.resolve(default_data_root().join("store"))?;
    settings.token_source = token_source(args.config.as_deref());
    runtime()?.block_on(async {
        let shutdown = shutdown_on_signals();
        let store = Store::bind(settings).await?;
        store.serve(stopped(shutdown)).await?;
        Ok(())
    })
}

/// `obs collector`: the config's `[collector]` section with the flags on top.
pub(crate) fn collector(args: CollectorArgs) -> anyhow::Result<()> {
    obs_collector::limit_malloc_arenas();
    let mut cfg = load_or_embedded(args.config.as_deref())?.collector;
    if let Some(s) = args.store {
        cfg.store = s;
    }
    if let Some(t) = args.token_file {
        cfg.token_file = Some(t);
    }
    cfg.files
        .extend(args.files.into_iter().map(obs_collector::FileSource::from_glob));
    let data_dir = args
        .data_dir
        .or_else(|| cfg.data_dir.clone())
        .unwrap_or_else(|| default_data_root().join("collector"));
    runtime()?.block_on(async {
        let shutdown = shutdown_on_signals();
        Ok(obs_collector::run(cfg, data_dir, shutdown, true).await?)
    })
}

pub(crate) fn up(args: UpArgs) -> anyhow::Result<()> {
    let cfg = load_or_embedded(args.config.as_deref())?;
    let mut store_cfg = cfg.store;
    if args.data_dir.is_some() || store_cfg.data_dir.is_none() {
        let root = args.data_dir.unwrap_or_else(|| PathBuf::from("./obs-data"));
        store_cfg.data_dir = Some(root.join("store"));
    }
    let mut settings = store_cfg.resolve(PathBuf::new())?;
    settings.token_source = token_source(args.config.as_deref());
    let jobs = cfg.backup.jobs.len();
    let root = settings
        .data_dir
        .parent()
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let backup_dir = root.join("backup");
    let collector_dir = cfg
        .collector
        .data_dir
        .clone()
        .unwrap_or_else(|| root.join("collector"));
    let rt = runtime()?;
    let result = rt.block_on(async {
        let shutdown = shutdown_on_signals();
        let store = Store::bind(settings).await?;
        print_banner(&store, &cfg.collector, jobs);
        // The local collector ships to this store, over loopback whatever it listens on.
        let mut collector_cfg = cfg.collector.clone();
        collector_cfg.store = format!("http://127.0.0.1:{}", store.grpc_addr().port());
        let collector_stop = shutdown.clone();
        let collector = tokio::spawn(async move {
            if let Err(e) = obs_collector::run(collector_cfg, collector_dir, collector_stop, false).await {
                tracing::error!("the collector could not start: {e:#}");
            }
        });
        let scheduler = (jobs > 0).then(|| {
            tokio::spawn(obs_backup::run_schedule(
                cfg.backup.clone(),
                backup_dir,
                shutdown.clone(),
            ))
        });
        store.serve(stopped(shutdown)).await?;
        // The scheduler and the collector stop at their next step; a step that hangs (an
        // upload to an unreachable S3, a delivery to the stopped store) must not hold obs up.
        let mut rest = vec![collector];
        rest.extend(scheduler);
        let aborts: Vec<_> = rest.iter().map(|t| t.abort_handle()).collect();
        let all = futures::future::join_all(rest);
        if tokio::time::timeout(STOP_TIMEOUT, all).await.is_err() {
            eprintln!(
                "obs up: the collector or the backup scheduler did not stop within {}s; stopped them",
                STOP_TIMEOUT.as_secs()
            );
            aborts.iter().for_each(|a| a.abort());
        }
        println!("obs up: stopped cleanly");
        Ok(())
    });
    // Blocking work cannot be aborted (a file read, an upload): dropping the runtime would
    // wait for it without end.
    rt.shutdown_timeout(STOP_TIMEOUT);
    result
}

/// How long `obs up` waits for the collector and the scheduler once the store has stopped.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// `obs backup schedule`: the backup scheduler alone.
pub(crate) fn schedule(args: crate::cli::JobsArgs) -> anyhow::Result<()> {
    let cfg = config::load(&args.config)?.backup;
    if cfg.jobs.is_empty() {
        anyhow::bail!(obs_backup::Error::Usage(format!(
            "{} has no [[backup.jobs]]: nothing to schedule",
            args.config.display()
        )));
    }
    let dir = args
        .data_dir
        .unwrap_or_else(|| default_data_root().join("backup"));
    runtime()?.block_on(async {
        let shutdown = shutdown_on_signals();
        println!(
            "obs backup schedule: {} job(s), state in {} (Ctrl-C or SIGTERM stops)",
            cfg.jobs.len(),
            dir.display()
        );
        obs_backup::run_schedule(cfg, dir, shutdown).await;
        Ok(())
    })
}

fn print_banner(store: &BoundStore, collector: &obs_collector::CollectorConfig, backup_jobs: usize) {
    let url = format!("http://{}", store.http_addr());
    let data = store.settings().data_dir.display();
    println!("obs up: running (Ctrl-C or SIGTERM stops everything)");
    println!("  store      {url}  data in {data}");
    println!(
        "             send: OTLP/gRPC {} | OTLP/HTTP {url}/v1/{{logs,traces,metrics}} | Loki push {url}/loki/api/v1/push",
        store.grpc_addr()
    );
    println!("             Prometheus remote_write {url}/api/v1/write");
    println!(
        "  collector  host metrics {}, {} file source(s), OTLP for apps on {} (gRPC) and http://{} (HTTP, /metrics)",
        if collector.host_metrics { "on" } else { "off" },
        collector.files.len(),
        collector.otlp_grpc_addr,
        collector.otlp_http_addr
    );
    match backup_jobs {
        0 => println!("  backup     no jobs configured"),
        n => println!("  backup     {n} job(s) on their schedules; `obs backup run|drill JOB` runs one now"),
    }
    println!("Grafana data sources (Connections > Data sources > Add):");
    println!("  Loki        {url}");
    println!("  Tempo       {url}");
    println!("  Prometheus  {url}");
}
