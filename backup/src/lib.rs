//! `obs-backup`: encrypted, deduplicated, compressed backups to S3-compatible storage (or a
//! local directory), with retention, check, restore and scheduled restore drills.
//!
//! Data flow (built by the backup issues; today this crate holds its config section):
//!
//! ```text
//! job (paths, stdin_from commands) -> FastCDC chunks -> keyed BLAKE3 ids -> dedup
//!   -> zstd -> AEAD -> packs -> object_store ; snapshot + tree objects ; retention/prune
//! drill: latest snapshot -> restore to scratch -> verify hashes + verify command -> report
//! ```
//!
//! [`BackupConfig`] is the `[backup]` section of the obs config file;
//! [`BackupConfig::validate`] checks what serde cannot (names unique, references resolve).

mod config;

pub use config::{
    BackupConfig, ConfigError, DrillConfig, JobConfig, KeepPolicy, RepositoryConfig, Sample, Schedule,
    StdinSource,
};
