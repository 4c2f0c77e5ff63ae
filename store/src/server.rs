//! Binding and serving: [`Store::bind`] opens the data dir and the listeners (so callers
//! learn the real addresses, e.g. with port 0), then [`BoundStore::serve`] runs until the
//! shutdown future resolves and in-flight requests finish.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::api::{self, AppState};
use crate::metrics::Metrics;
use crate::{Error, StoreSettings};

/// Entry point of the store.
#[derive(Debug)]
pub struct Store;

/// A store whose listeners are bound; call [`BoundStore::serve`] to run it.
#[derive(Debug)]
pub struct BoundStore {
    settings: StoreSettings,
    http: TcpListener,
    http_addr: SocketAddr,
}

impl Store {
    pub async fn bind(settings: StoreSettings) -> Result<BoundStore, Error> {
        std::fs::create_dir_all(&settings.data_dir).map_err(|source| Error::DataDir {
            path: settings.data_dir.clone(),
            source,
        })?;
        let http = TcpListener::bind(settings.http_addr)
            .await
            .map_err(|source| Error::Bind {
                addr: settings.http_addr,
                source,
            })?;
        let http_addr = http.local_addr().map_err(Error::Serve)?;
        Ok(BoundStore {
            settings,
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

    /// Serves until `shutdown` resolves, then lets in-flight requests finish.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<(), Error> {
        let state = AppState {
            metrics: Metrics::new(),
        };
        let app = api::router(state, &self.settings.tokens);
        tracing::info!(addr = %self.http_addr, data_dir = %self.settings.data_dir.display(), "store http listening");
        axum::serve(self.http, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(Error::Serve)?;
        tracing::info!("store stopped");
        Ok(())
    }
}
