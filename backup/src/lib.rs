//! `obs-backup`: encrypted, deduplicated, compressed backups to S3-compatible storage (or a
//! local directory), with retention, check, restore and scheduled restore drills.
//!
//! ```text
//! create:  paths, --stdin-from -> archiver.rs (walk, parent snapshot for unchanged files)
//!          -> parallel.rs (files read on every core, trees finished in walk order)
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
mod check;
mod chunker;
mod config;
mod error;
mod forget;
mod jobs;
mod parallel;
mod progress;
mod prune;
mod repo;
mod report;
mod restore;
mod saver;
mod schedule;
mod snapshot;
mod state;
mod tree;

pub use archiver::{create, CreateOptions, StdinCommand};
pub use check::{check, Affected, CheckReport, DamagedPack, ReadData};
pub use forget::{apply_policy, forget, Decision, ForgetOptions};
pub use jobs::{run_drill, run_job, DrillRun, JobRun};
pub use prune::{prune, PruneOptions, PrunePlan};
pub use repo::crypto::KdfParams;
pub use repo::{BlobType, Id};
pub use report::{drill_log, gauges, job_log, Gauge, LogLine, Reporter};
pub use schedule::run as run_schedule;
pub use snapshot::{components, Snapshot, Summary};
pub use state::{JobState, State};
pub use tree::{walk, ChunkRef, Node, NodeKind};

/// Internals the benches and the cross-process tests reach (feature `testing`; not an API).
#[cfg(feature = "testing")]
pub mod testing {
    pub use crate::repo::index::Index;
    pub use crate::repo::lock;
    pub use crate::repo::pack::PackedBlob;
}
pub use config::{
    BackupConfig, ConfigError, DrillConfig, JobConfig, KeepPolicy, RepositoryConfig, Sample, Schedule,
    StdinSource, TimeZone,
};
pub use error::{Error, Result};
pub use repo::{InitOptions, Repository};
pub use restore::{restore, RestoreOptions, RestoreSummary};
