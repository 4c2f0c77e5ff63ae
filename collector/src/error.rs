//! The collector's errors, by what the operator has to fix; each message says what to do.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the collector cannot start (or a config check fails).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config is wrong; the message names the section and field.
    #[error("{0}")]
    Config(String),
    /// A file the config names cannot be read.
    #[error("cannot read the {what} {}: {source}; check the path and that the collector may read it", path.display())]
    Read {
        what: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The data dir (positions, spool) cannot be used.
    #[error(
        "cannot use the data dir {}: {source}; check that it is writable by the collector and has free space (--data-dir, [collector] data_dir)",
        path.display()
    )]
    DataDir { path: PathBuf, source: std::io::Error },
    /// A receiver cannot listen.
    #[error("cannot listen on {addr} ({what}): {source}; another process may hold the port: set [collector] otlp_grpc_addr / otlp_http_addr")]
    Listen {
        addr: SocketAddr,
        what: &'static str,
        source: std::io::Error,
    },
}

/// A config error, from any message.
pub(crate) fn config(msg: impl Into<String>) -> Error {
    Error::Config(msg.into())
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
