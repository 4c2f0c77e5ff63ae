//! Command-line arguments (clap derive). Every command and subcommand has `--help`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "obs",
    version,
    about = "Observability and backup for a small self-hosted fleet",
    long_about = "Observability and backup for a small self-hosted fleet.\n\n\
        Run `obs up` on one machine to start a store, a collector and the backup scheduler on \
        embedded defaults; run `obs collector --store URL` on every other node.",
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run store + collector + backup scheduler on this machine (all-in-one mode)
    Up(UpArgs),
    /// Run the store: ingest, storage and the Prometheus/Loki/Tempo query APIs
    Store(StoreArgs),
    /// Run the collector: tail logs, scrape metrics, receive OTLP, ship to the store
    Collector(CollectorArgs),
    /// Encrypted, deduplicated backups and restore drills
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Query logs, metrics and traces from the store
    #[command(subcommand)]
    Query(QueryCommand),
    /// Fleet health at a glance: collectors, store, backups (non-zero exit when unhealthy)
    Status(StatusArgs),
    /// Work with config files
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the version
    Version,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Config file; without one, embedded defaults are used
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Root of all data (store, collector spool, backup state) [default: ./obs-data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Config file (its [store] section); flags override it
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Where the WAL and indexes live [default: $XDG_DATA_HOME/obs/store]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// HTTP API address [default: 127.0.0.1:9700]
    #[arg(long)]
    pub http_addr: Option<SocketAddr>,
    /// OTLP/gRPC ingest address [default: 127.0.0.1:9701]
    #[arg(long)]
    pub grpc_addr: Option<SocketAddr>,
    /// Allow listening on a non-loopback address without auth tokens
    #[arg(long)]
    pub insecure: bool,
}

#[derive(Debug, Args)]
pub struct CollectorArgs {
    /// Config file (its [collector] section); flags override it
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The store's OTLP/gRPC endpoint [default: http://127.0.0.1:9701]
    #[arg(long)]
    pub store: Option<String>,
    /// Spool and checkpoint directory
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Log files to tail (glob); repeatable
    #[arg(long = "file")]
    pub files: Vec<String>,
    /// File holding the bearer token for the store (role ingest)
    #[arg(long)]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Output {
    /// Human-readable tables and text
    #[default]
    Human,
    /// JSON for scripts
    Json,
}

/// Where the repository is and how to open it.
#[derive(Debug, Args)]
pub struct RepoArgs {
    /// Repository: s3://bucket/prefix (endpoint and keys from AWS_* variables) or a local path
    #[arg(long, env = "OBS_BACKUP_REPO")]
    pub repo: Option<String>,
    /// File holding the repository password [default: $OBS_BACKUP_PASSWORD]
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Create a new repository (refuses to overwrite an existing one)
    Init(RepoArgs),
    /// Back up files and directories (and command output) into a new snapshot
    Create {
        #[command(flatten)]
        repo: RepoArgs,
        /// Files and directories to back up
        paths: Vec<PathBuf>,
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[arg(long = "exclude")]
        excludes: Vec<String>,
    },
    /// List snapshots
    Snapshots(RepoArgs),
    /// Restore a snapshot (or `latest`) under a target directory
    Restore {
        #[command(flatten)]
        repo: RepoArgs,
        snapshot: String,
        #[arg(long)]
        target: PathBuf,
    },
    /// Verify the repository's structure (and, with --read-data, its content)
    Check {
        #[command(flatten)]
        repo: RepoArgs,
        #[arg(long)]
        read_data: bool,
    },
    /// Remove snapshots by retention policy
    Forget(RepoArgs),
    /// Delete data no snapshot references
    Prune(RepoArgs),
    /// Run configured jobs and drills on their schedules
    Schedule {
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Run one configured job now
    Run { job: String },
    /// Run one configured job's restore drill now
    Drill { job: String },
}

#[derive(Debug, Args)]
pub struct StoreClientArgs {
    /// Store HTTP URL
    #[arg(long, default_value = "http://127.0.0.1:9700")]
    pub store: String,
    /// File holding a bearer token (role query) [default: $OBS_TOKEN]
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum QueryCommand {
    /// Query logs with LogQL
    Logs {
        query: String,
        #[command(flatten)]
        client: StoreClientArgs,
    },
    /// Query metrics with PromQL
    Metrics {
        query: String,
        #[command(flatten)]
        client: StoreClientArgs,
    },
    /// Show a trace by id
    Traces {
        id: String,
        #[command(flatten)]
        client: StoreClientArgs,
    },
    /// List label names, or the values of one label
    Labels {
        name: Option<String>,
        #[command(flatten)]
        client: StoreClientArgs,
    },
    /// List series matching a selector
    Series {
        selector: String,
        #[command(flatten)]
        client: StoreClientArgs,
    },
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: StoreClientArgs,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate a config file; exit 2 with the line at fault when it is bad
    Check { file: PathBuf },
}
