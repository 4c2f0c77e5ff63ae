use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong in the store, with messages that say what to do next.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "refusing to listen on {addr} without auth tokens: add [[store.tokens]] to the config, \
         or pass --insecure if every host that can reach it is trusted"
    )]
    InsecureBind { addr: SocketAddr },
    #[error("cannot read token file {path} for token {name:?}: {source}; check the path in [[store.tokens]] and that the store may read it")]
    TokenFile {
        name: String,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid token {name:?}: {reason}")]
    InvalidToken { name: String, reason: String },
    #[error("cannot listen on {addr}: {source} (is another obs store running? pick another address with --http-addr)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create data dir {path}: {source}; check that its parent exists and is writable by the store (--data-dir, [store] data_dir)")]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error(
        "{0}; check [store.tls] cert_file and key_file (PEM: the certificate chain, and its private key)"
    )]
    Tls(String),
    #[error(
        "cannot open the store's data: {0}. If a file is damaged, restore the data dir from its backup \
         (README: disaster recovery); if the disk is full or read-only, fix that and start again"
    )]
    Open(String),
    #[error("invalid [store] config: {0}")]
    Config(String),
    #[error("http server failed: {0}")]
    Serve(std::io::Error),
}
