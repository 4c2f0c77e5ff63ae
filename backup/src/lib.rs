//! `obs-backup`: encrypted, deduplicated, compressed backups to S3-compatible storage (or a
//! local directory), with retention, check, restore and scheduled restore drills.
//!
//! ```text
//! create:  paths, --stdin-from -> archiver.rs (walk, parent snapshot for unchanged files)
//!          -> chunker.rs (FastCDC) -> keyed BLAKE3 ids -> dedup against repo::index
//!          -> zstd -> AEAD (repo::crypto) -> repo::pack (random order) -> object_store
//!          -> tree.rs objects -> snapshot.rs record
//! restore: snapshot -> plan (restore.rs) -> parallel blob reads, verified -> files + metadata
//! check:   structure (index vs packs vs trees) ; --read-data: every pack hashed and decrypted
//! forget:  retention.rs policy -> delete snapshot records ; prune.rs: repack, delete unused
//! ```
//!
//! [`Repository`] is the open repository; the repository layout is documented in
//! `repo/mod.rs`. [`BackupConfig`] is the `[backup]` section of the obs config file.

mod archiver;
pub mod check;
pub mod chunker;
mod config;
mod error;
pub mod forget;
pub mod jobs;
mod progress;
pub mod prune;
pub mod repo;
pub mod report;
pub mod restore;
mod saver;
pub mod schedule;
pub mod snapshot;
pub mod state;
pub mod tree;

pub use archiver::{create, CreateOptions, StdinCommand};
pub use config::{
    BackupConfig, ConfigError, DrillConfig, JobConfig, KeepPolicy, RepositoryConfig, Sample, Schedule,
    StdinSource, TimeZone,
};
pub use error::{Error, Result};
pub use repo::{InitOptions, Repository};
pub use restore::{restore, RestoreOptions, RestoreSummary};
