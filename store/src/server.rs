//! Binding and serving: [`Store::bind`] opens the data dir (replaying the WAL into the
//! indexes) and the listeners (so callers learn the real addresses, e.g. with port 0); then
//! [`BoundStore::serve`] runs until the shutdown future resolves, lets in-flight requests
//! finish, and commits the indexes one last time.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::ingest::Engine;
use crate::logql::Limits;
use crate::metrics::Metrics;
use crate::{Error, StoreSettings};

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
}

impl Store {
    pub async fn bind(settings: StoreSettings) -> Result<BoundStore, Error> {
        std::fs::create_dir_all(&settings.data_dir).map_err(|source| Error::DataDir {
            path: settings.data_dir.clone(),
            source,
        })?;
        let (data_dir, retention) = (settings.data_dir.clone(), settings.retention);
        let (engine, report) = tokio::task::spawn_blocking(move || Engine::open(&data_dir, retention))
            .await
            .map_err(|e| Error::Open(e.to_string()))?
            .map_err(|e| Error::Open(e.to_string()))?;
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
        Ok(BoundStore {
            settings,
            engine,
            http,
            http_addr,
        })
    }
}

impl BoundStore {
    /// The address the HTTP API really listens on.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn settings(&self) -> &StoreSettings {
        &self.settings
    }

    /// Serves until `shutdown` resolves, then lets in-flight requests finish and commits.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), Error> {
        let state = AppState {
            metrics: Metrics::new(),
            engine: self.engine.clone(),
            limits: Limits::default(),
        };
        let app = api::router(state, &self.settings.tokens);
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let committer = tokio::spawn(self.engine.clone().run_committer(stop_rx));
        tracing::info!(addr = %self.http_addr, data_dir = %self.settings.data_dir.display(), "store http listening");
        let served = axum::serve(self.http, app).with_graceful_shutdown(shutdown).await;
        let _ = stop_tx.send(true);
        let _ = committer.await;
        served.map_err(Error::Serve)?;
        tracing::info!(data_dir = %self.engine.data_dir().display(), "store stopped");
        Ok(())
    }
}
