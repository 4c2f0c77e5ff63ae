//! The crate's error type. Messages are lowercase and, at the user boundary, say what to do.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no repository at {0}: create one with `obs backup init`")]
    NoRepository(String),
    #[error("a repository already exists at {0}; refusing to overwrite it")]
    AlreadyExists(String),
    #[error("wrong password for repository {0}: check OBS_BACKUP_PASSWORD or --password-file")]
    WrongPassword(String),
    #[error("{what} is damaged: {why}; run `obs backup check --read-data` for a full report")]
    Corrupt { what: String, why: String },
    #[error("unsupported repository format: {0}")]
    Format(String),
    #[error("repository storage: {0}")]
    Storage(#[from] object_store::Error),
    #[error("{0}")]
    Locked(String),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// Bad input from the user: an unknown snapshot, a bad pattern, a bad option.
    #[error("{0}")]
    Usage(String),
    /// The work could not be done (a `--stdin-from` command failed, a verify mismatch).
    #[error("{0}")]
    Failed(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// True when the error means "the object is not there".
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Storage(object_store::Error::NotFound { .. }))
    }
}
