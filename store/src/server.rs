//! Binding and serving: [`Store::bind`] opens the data dir (replaying the WAL into the
//! indexes) and the listeners (so callers learn the real addresses, e.g. with port 0); then
//! [`BoundStore::serve`] runs until the shutdown future resolves, lets in-flight requests
//! finish, and commits the indexes one last time.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::grpc;
use crate::ingest::Engine;
use crate::logql::Limits;
use crate::metrics::Metrics;
use crate::rules::Rules;
use crate::{Error, StoreSettings};

/// How long a stopping store waits for in-flight requests before closing them.
const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Entry point of the store.
#[derive(Debug)]
pub struct Store;

/// A store whose data is open and whose listeners are bound; call [`BoundStore::serve`].
#[derive(Debug)]
pub struct BoundStore {
    settings: StoreSettings,
    engine: Engine,
    http: TcpListener,
    http_addr: SocketAddr,
    grpc: TcpListener,
    grpc_addr: SocketAddr,
}

impl Store {
    pub async fn bind(settings: StoreSettings) -> Result<BoundStore, Error> {
        std::fs::create_dir_all(&settings.data_dir).map_err(|source| Error::DataDir {
            path: settings.data_dir.clone(),
            source,
        })?;
        let (data_dir, retention) = (settings.data_dir.clone(), settings.retention);
        let (limits, errors) = (settings.limits, settings.errors.clone());
        let (engine, report) =
            tokio::task::spawn_blocking(move || Engine::open_with(&data_dir, retention, errors))
                .await
                .map_err(|e| Error::Open(e.to_string()))?
                .map_err(|e| Error::Open(e.to_string()))?;
        let engine = engine.with_limits(limits);
        tracing::info!(
            records = report.records,
            segments = report.segments,
            torn_bytes = report.torn_bytes,
            quarantined = report.quarantined.len(),
            "wal replayed"
        );
        let http = TcpListener::bind(settings.http_addr)
            .await
            .map_err(|source| Error::Bind {
                addr: settings.http_addr,
                source,
            })?;
        let http_addr = http.local_addr().map_err(Error::Serve)?;
        let grpc = TcpListener::bind(settings.grpc_addr)
            .await
            .map_err(|source| Error::Bind {
                addr: settings.grpc_addr,
                source,
            })?;
        let grpc_addr = grpc.local_addr().map_err(Error::Serve)?;
        Ok(BoundStore {
            settings,
            engine,
            http,
            http_addr,
            grpc,
            grpc_addr,
        })
    }
}

impl BoundStore {
    /// The address the HTTP API really listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The address OTLP/gRPC ingest really listens on.
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn settings(&self) -> &StoreSettings {
        &self.settings
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish and commits.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), Error> {
        let notifier =
            obs_notify::Notifier::open(&self.settings.alerting, &self.settings.data_dir.join("notify"))
                .map_err(|e| Error::Config(e.to_string()))?
                .map(std::sync::Arc::new);
        let rules = Rules::new(self.settings.rules.clone(), self.engine.clone(), notifier.clone());
        let r = rules.clone();
        tokio::task::spawn_blocking(move || r.reload())
            .await
            .map_err(|e| Error::Open(format!("loading the rules failed: {e}")))?;
        let heartbeats = crate::uptime::Heartbeats::open(
            self.settings.heartbeats.clone(),
            &self.settings.data_dir,
            self.engine.clone(),
            crate::uptime::now_ms(),
        );
        let state = AppState {
            heartbeats: heartbeats.clone(),
            status_page: crate::uptime::StatusPage::new(self.settings.status_page.clone()),
            metrics: Metrics::new(),
            engine: self.engine.clone(),
            limits: Limits::default(),
            rules: rules.clone(),
            notifier: notifier.clone(),
        };
        let reloader = tokio::spawn(reload_on_sighup(rules.clone()));
        let token_reloader = tokio::spawn(reload_tokens(
            self.settings.tokens.clone(),
            self.settings.token_source.clone(),
        ));
        let (notify_stop, notify_rx) = tokio::sync::watch::channel(false);
        let notifying = tokio::spawn(run_notifier(notifier.clone(), notify_rx.clone()));
        let heartbeat = match &self.settings.alerting.heartbeat {
            Some(cfg) => Some(obs_notify::Heartbeat::new(cfg).map_err(|e| Error::Config(e.to_string()))?),
            None => None,
        };
        let heartbeating = tokio::spawn(run_heartbeat(
            heartbeat,
            rules.clone(),
            state.metrics.clone(),
            notify_rx,
        ));
        let (own_stop, own_rx) = tokio::sync::watch::channel(false);
        let beating = tokio::spawn(heartbeats.run(own_rx.clone()));
        let own = tokio::spawn(crate::metrics::record_own(
            state.metrics.clone(),
            self.engine.clone(),
            rules.clone(),
            notifier.clone(),
            self.http_addr.to_string(),
            own_rx,
        ));
        let app = api::router(state, &self.settings.tokens);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|s| *s).await;
        };
        let committer = tokio::spawn(self.engine.clone().run_committer(stop_rx.clone()));
        let tokens = self.settings.tokens.clone();
        let grpc = tonic::service::Routes::new(grpc::logs_service(self.engine.clone(), tokens.clone()))
            .add_service(grpc::trace_service(self.engine.clone(), tokens.clone()))
            .add_service(grpc::metrics_service(self.engine.clone(), tokens));
        if self.settings.tls.is_some() {
            // Pick ring explicitly: with other crates enabling aws-lc-rs too, rustls cannot
            // choose a default provider on its own. Fails harmlessly if one is installed.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &self.settings.tls {
            let identity = tonic::transport::Identity::from_pem(&tls.cert_pem, &tls.key_pem);
            builder = builder
                .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
                .map_err(|e| Error::Tls(format!("invalid TLS certificate or key: {e}")))?;
        }
        let grpc_server = builder.add_routes(grpc).serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(self.grpc),
            stopped(stop_rx.clone()),
        );
        let scheme = if self.settings.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let http_task = match &self.settings.tls {
            None => {
                let http = axum::serve(self.http, app).with_graceful_shutdown(stopped(stop_rx.clone()));
                tokio::spawn(async move { http.await })
            }
            Some(tls) => {
                let config = axum_server::tls_rustls::RustlsConfig::from_pem(
                    tls.cert_pem.clone(),
                    tls.key_pem.clone(),
                )
                .await
                .map_err(|e| Error::Tls(format!("invalid TLS certificate or key: {e}")))?;
                let listener = self.http.into_std().map_err(Error::Serve)?;
                let handle = axum_server::Handle::new();
                let server = axum_server::from_tcp_rustls(listener, config)
                    .map_err(Error::Serve)?
                    .handle(handle.clone());
                let rx = stop_rx.clone();
                tokio::spawn(async move {
                    stopped(rx).await;
                    handle.graceful_shutdown(Some(std::time::Duration::from_secs(10)));
                });
                tokio::spawn(async move { server.serve(app.into_make_service()).await })
            }
        };
        let grpc_task = tokio::spawn(grpc_server);
        tracing::info!(addr = %self.http_addr, scheme, data_dir = %self.settings.data_dir.display(), "store http listening");
        tracing::info!(addr = %self.grpc_addr, tls = self.settings.tls.is_some(), "store otlp/grpc listening");
        shutdown.await;
        reloader.abort();
        token_reloader.abort();
        let _ = own_stop.send(true);
        let _ = own.await;
        let _ = beating.await;
        rules.stop().await;
        let _ = notify_stop.send(true);
        let _ = notifying.await;
        let _ = heartbeating.await;
        let _ = stop_tx.send(true);
        // Drain in-flight requests, but not forever: a client that keeps a connection or a
        // stream open (a tail, an HTTP/2 connection nobody closes) must not hold the store.
        let (http_abort, grpc_abort) = (http_task.abort_handle(), grpc_task.abort_handle());
        let drained = tokio::time::timeout(DRAIN_TIMEOUT, async { (http_task.await, grpc_task.await) }).await;
        let _ = committer.await;
        match drained {
            Ok((served, grpc_served)) => {
                served
                    .map_err(|e| Error::Serve(std::io::Error::other(e)))?
                    .map_err(Error::Serve)?;
                grpc_served
                    .map_err(|e| Error::Serve(std::io::Error::other(e)))?
                    .map_err(|e| Error::Serve(std::io::Error::other(e)))?;
            }
            Err(_) => {
                tracing::warn!(
                    timeout_secs = DRAIN_TIMEOUT.as_secs(),
                    "requests still open after the drain timeout were closed"
                );
                http_abort.abort();
                grpc_abort.abort();
            }
        }
        let engine = self.engine.clone();
        match tokio::task::spawn_blocking(move || engine.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "final commit failed; the wal is replayed at the next start")
            }
            Err(e) => {
                tracing::error!(error = %e, "final commit panicked; the wal is replayed at the next start")
            }
        }
        tracing::info!(data_dir = %self.engine.data_dir().display(), "store stopped");
        Ok(())
    }
}

/// Reads the rule files again on every SIGHUP, as Prometheus does.
/// How often the tokens are read again from their source (the config file).
const TOKEN_RELOAD: std::time::Duration = std::time::Duration::from_secs(2);

/// Reads the tokens from `source` every [`TOKEN_RELOAD`] and swaps them in when they changed
/// (`obs token create|revoke` edit the config: no restart). A source that fails to load, or
/// that would leave no token at all (and so open the store), keeps the current tokens; the
/// error is logged once.
async fn reload_tokens(tokens: crate::auth::Tokens, source: Option<crate::config::TokenSource>) {
    let Some(source) = source else { return };
    let mut tick = tokio::time::interval(TOKEN_RELOAD);
    let mut last_error = String::new();
    loop {
        tick.tick().await;
        let s = source.clone();
        let loaded = tokio::task::spawn_blocking(move || s.load()).await;
        let result = match loaded {
            Ok(Ok(configs)) => crate::auth::Tokens::load(&configs).map_err(|e| e.to_string()),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(e.to_string()),
        };
        match result {
            Ok(new) if new.is_empty() && !tokens.is_empty() => {
                let e = "the config now has no tokens; keeping the current ones (a store with no token is open to anyone)".to_string();
                if e != last_error {
                    tracing::error!("{e}");
                    last_error = e;
                }
            }
            Ok(new) => {
                last_error.clear();
                if !tokens.same(&new) {
                    tokens.replace(&new);
                    let names: Vec<String> = tokens
                        .names()
                        .into_iter()
                        .map(|(n, r)| format!("{n} ({r:?})"))
                        .collect();
                    tracing::info!(tokens = %names.join(", "), "tokens reloaded");
                }
            }
            Err(e) => {
                if e != last_error {
                    tracing::error!(error = %e, "cannot reload the tokens; keeping the current ones");
                    last_error = e;
                }
            }
        }
    }
}

async fn reload_on_sighup(rules: Rules) {
    let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; reload rules with POST /-/reload");
        return;
    };
    while hup.recv().await.is_some() {
        let r = rules.clone();
        match tokio::task::spawn_blocking(move || r.reload()).await {
            Ok(errors) if errors.is_empty() => tracing::info!("rules reloaded"),
            Ok(errors) => tracing::warn!(
                files_with_errors = errors.len(),
                "rules reloaded; files with errors keep their previous rules"
            ),
            Err(e) => tracing::error!(error = %e, "rule reload failed"),
        }
    }
}

/// Queues due notifications and attempts deliveries every second until `stop`.
/// Calls the heartbeat URL every interval while rule evaluation is healthy.
async fn run_heartbeat(
    heartbeat: Option<obs_notify::Heartbeat>,
    rules: Rules,
    metrics: Metrics,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use std::sync::atomic::Ordering;
    let Some(hb) = heartbeat.map(std::sync::Arc::new) else {
        return;
    };
    let mut tick = tokio::time::interval(hb.interval);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let [sent, failed, withheld] = &*metrics.heartbeats;
        if let Err(why) = rules.healthy(chrono::Utc::now().timestamp_millis()) {
            withheld.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(reason = %why, "heartbeat withheld: rule evaluation is not healthy");
            continue;
        }
        let h = hb.clone();
        let r = tokio::task::spawn_blocking(move || h.ping("obs store: rule evaluation healthy")).await;
        match r {
            Ok(Ok(_)) => {
                sent.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Err(e)) => {
                failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "heartbeat not delivered");
            }
            Err(_) => {}
        }
    }
}

async fn run_notifier(
    notifier: Option<std::sync::Arc<obs_notify::Notifier>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let Some(notifier) = notifier else { return };
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let n = notifier.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let now = chrono::Utc::now();
            if let Err(e) = n.flush(now) {
                tracing::error!(error = %e, "notifications could not be queued; will try again");
            }
            n.deliver(now);
        })
        .await;
    }
}
