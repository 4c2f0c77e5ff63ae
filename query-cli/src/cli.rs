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
    /// Fleet health at a glance: collectors, store, backups, firing alerts (non-zero exit when unhealthy)
    Status(StatusArgs),
    /// Alerting and recording rules: check and unit-test rule files, write the built-in pack
    #[command(subcommand)]
    Rules(RulesCommand),
    /// The alerts that are pending or firing in the store
    Alerts(AlertsArgs),
    /// Error issues: exceptions from logs, traces and Sentry SDKs, grouped (newest first)
    Errors(ErrorsArgs),
    /// Uptime probes ([[collector.probes]]): run one now to debug its check
    #[command(subcommand)]
    Probe(ProbeCommand),
    /// Work with config files
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Grafana set-up: data sources and dashboards for the store
    #[command(subcommand)]
    Grafana(GrafanaCommand),
    /// Install a store, collector or backup scheduler as a hardened systemd service (as root)
    Install(InstallArgs),
    /// Stop and remove an installed service; its data stays unless --purge
    Uninstall(UninstallArgs),
    /// The store's access tokens: create (enrol a node), list, revoke; no restart needed
    #[command(subcommand)]
    Token(TokenCommand),
    /// Print shell completions: `obs completions bash > /etc/bash_completion.d/obs`
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Write man pages (obs.1, obs-store.1, ...) into a directory
    Man {
        /// Directory to write them to
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Print the version
    Version,
}

/// What `obs install` sets up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Service {
    /// `obs store`: ingest, storage and the query APIs
    Store,
    /// `obs collector`: logs, metrics and probes of this node, shipped to the store
    Collector,
    /// `obs backup schedule`: this node's scheduled backups and restore drills
    Backup,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    #[arg(value_enum)]
    pub service: Service,
    /// Config file to install as /etc/obs/obs.toml [default: one written for the service]
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// Collector: the store's OTLP/gRPC URL, e.g. https://store.mesh:9701
    #[arg(long)]
    pub store: Option<String>,
    /// Collector: the ingest token file (from `obs token create` on the store), installed 0600
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Backup: the repository password file, installed 0600
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// The obs binary the unit runs [default: this one]
    #[arg(long)]
    pub bin: Option<PathBuf>,
    /// Print the files and commands instead of doing anything
    #[arg(long)]
    pub dry_run: bool,
    /// Write into this directory instead of / (an image being built); no user, no systemctl
    #[arg(long)]
    pub root: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    #[arg(value_enum)]
    pub service: Service,
    /// Also delete the service's data directory (/var/lib/obs/SERVICE)
    #[arg(long)]
    pub purge: bool,
    /// Print the commands instead of doing anything
    #[arg(long)]
    pub dry_run: bool,
}

/// A token's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenRole {
    /// Push data (collectors, apps, Sentry SDKs)
    Ingest,
    /// Read data (Grafana, `obs query`)
    Query,
    /// Everything, including resolve, silences, snapshots
    Admin,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a random token, write it to a file (mode 0600) and add it to the store's config
    Create {
        /// Its name, e.g. the node it is for
        name: String,
        #[arg(long, value_enum)]
        role: TokenRole,
        /// The store's config file
        #[arg(long, default_value = "/etc/obs/obs.toml")]
        store_config: PathBuf,
        /// Where the token file goes [default: tokens/ next to the config]
        #[arg(long)]
        dir: Option<PathBuf>,
        /// That directory as the store sees it, when it differs (a container's mount)
        #[arg(long)]
        dir_in_store: Option<PathBuf>,
        /// Also print the secret
        #[arg(long)]
        print: bool,
    },
    /// List the store's tokens: names, roles and files (never the secrets)
    List {
        #[arg(long, default_value = "/etc/obs/obs.toml")]
        store_config: PathBuf,
        #[arg(long, value_enum, default_value_t)]
        output: Output,
    },
    /// Remove a token from the store's config and delete its file; refused from then on
    Revoke {
        name: String,
        #[arg(long, default_value = "/etc/obs/obs.toml")]
        store_config: PathBuf,
    },
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

#[derive(Debug, Subcommand)]
pub enum ProbeCommand {
    /// Run one probe now and print each phase's time and each condition's result
    Run(ProbeRunArgs),
}

#[derive(Debug, Args)]
pub struct ProbeRunArgs {
    /// The probe's name in [[collector.probes]]
    pub name: String,
    /// Config file holding the probe
    #[arg(long, short, default_value = "obs.toml")]
    pub config: PathBuf,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Output {
    /// Human-readable tables and text
    #[default]
    Human,
    /// JSON for scripts
    Json,
    /// The store's answer as it came (query commands); same as json elsewhere
    Raw,
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
    /// Wait this long for another process's lock before giving up (e.g. 10m)
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    pub retry_lock: std::time::Duration,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Create a new repository (refuses to overwrite an existing one)
    Init(RepoArgs),
    /// Back up files and directories (and command output) into a new snapshot
    Create(CreateArgs),
    /// List snapshots
    Snapshots(RepoArgs),
    /// List the files in a snapshot
    Ls {
        #[command(flatten)]
        repo: RepoArgs,
        /// Snapshot id (or a unique prefix), or `latest`
        snapshot: String,
        /// Only entries at or below this path
        path: Option<PathBuf>,
    },
    /// Show what changed between two snapshots
    Diff {
        #[command(flatten)]
        repo: RepoArgs,
        snapshot_a: String,
        snapshot_b: String,
    },
    /// Restore a snapshot (or `latest`) under a target directory
    Restore(RestoreArgs),
    /// Verify the repository's structure (and, with --read-data, every byte of content)
    Check {
        #[command(flatten)]
        repo: RepoArgs,
        /// Download every pack and decrypt and hash its content
        #[arg(long, conflicts_with = "read_data_subset")]
        read_data: bool,
        /// Read only part of the data: a share (10%) or a slice (2/5, by pack id)
        #[arg(long, value_name = "N%|N/T")]
        read_data_subset: Option<String>,
    },
    /// Remove snapshots by retention policy (restic's --keep-* rules)
    Forget(ForgetArgs),
    /// Delete data no snapshot references; repack partly used packs
    Prune {
        #[command(flatten)]
        repo: RepoArgs,
        /// Print the plan, change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Remove stale locks (left by crashed processes)
    Unlock {
        #[command(flatten)]
        repo: RepoArgs,
        /// Remove every lock, stale or not (only when no obs process uses the repository)
        #[arg(long)]
        remove_all: bool,
    },
    /// Run configured jobs and drills on their schedules (until Ctrl-C or SIGTERM)
    Schedule(JobsArgs),
    /// Run one configured job now
    Run {
        /// Job name from the [[backup.jobs]] section
        job: String,
        #[command(flatten)]
        jobs: JobsArgs,
    },
    /// Run one configured job's restore drill now
    Drill {
        /// Job name from the [[backup.jobs]] section
        job: String,
        #[command(flatten)]
        jobs: JobsArgs,
    },
}

/// Where configured jobs come from and where their state lives.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Config file with [[backup.repositories]] and [[backup.jobs]]
    #[arg(long, short)]
    pub config: PathBuf,
    /// State, report spool and drill scratch space [default: $XDG_DATA_HOME/obs/backup]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t)]
    pub output: Output,
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Files and directories to back up
    pub paths: Vec<PathBuf>,
    /// Tag the snapshot (repeatable)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Record this host name instead of the machine's
    #[arg(long)]
    pub host: Option<String>,
    /// Skip matching paths (glob; with a `/` it matches the full path, else the name)
    #[arg(long = "exclude")]
    pub excludes: Vec<String>,
    /// Back up the standard output of this shell command (fails the backup if it fails)
    #[arg(long, requires = "stdin_filename")]
    pub stdin_from: Option<String>,
    /// File name for --stdin-from output in the snapshot
    #[arg(long)]
    pub stdin_filename: Option<String>,
    /// Cap upload bandwidth, in KiB/s
    #[arg(long, value_name = "KiB/s")]
    pub limit_upload: Option<u64>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Snapshot id (or a unique prefix), or `latest`
    pub snapshot: String,
    /// Directory to restore into; /etc/hosts is restored to TARGET/etc/hosts
    #[arg(long)]
    pub target: PathBuf,
    /// Restore only this path of the snapshot (repeatable)
    #[arg(long = "include")]
    pub includes: Vec<PathBuf>,
    /// Re-read every restored file and check it against the snapshot
    #[arg(long)]
    pub verify: bool,
}

#[derive(Debug, Args)]
pub struct ForgetArgs {
    #[command(flatten)]
    pub repo: RepoArgs,
    /// Keep the N newest snapshots
    #[arg(long)]
    pub keep_last: Option<u32>,
    /// Keep the newest snapshot of each of the last N hours
    #[arg(long)]
    pub keep_hourly: Option<u32>,
    /// Keep the newest snapshot of each of the last N days
    #[arg(long)]
    pub keep_daily: Option<u32>,
    /// Keep the newest snapshot of each of the last N weeks
    #[arg(long)]
    pub keep_weekly: Option<u32>,
    /// Keep the newest snapshot of each of the last N months
    #[arg(long)]
    pub keep_monthly: Option<u32>,
    /// Keep the newest snapshot of each of the last N years
    #[arg(long)]
    pub keep_yearly: Option<u32>,
    /// Keep every snapshot younger than this before the newest (e.g. 7d)
    #[arg(long, value_parser = humantime::parse_duration)]
    pub keep_within: Option<std::time::Duration>,
    /// Only consider snapshots with this tag (repeatable)
    #[arg(long = "tag")]
    pub tags: Vec<String>,
    /// Only consider snapshots of this host (repeatable)
    #[arg(long = "host")]
    pub hosts: Vec<String>,
    /// Run prune afterwards
    #[arg(long)]
    pub prune: bool,
    /// Print what would be removed, change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct StoreClientArgs {
    /// Store HTTP URL
    #[arg(long, default_value = "http://127.0.0.1:9700", global = true)]
    pub store: String,
    /// File holding a bearer token (role query) [default: $OBS_TOKEN]
    #[arg(long, global = true)]
    pub token_file: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t, global = true)]
    pub output: Output,
}

#[derive(Debug, Subcommand)]
pub enum QueryCommand {
    /// Query logs with LogQL (newest last); metric queries print a table
    Logs {
        /// e.g. '{service_name="api"} |= "error"'
        query: String,
        #[command(flatten)]
        range: RangeArgs,
        /// At most this many lines
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// Keep printing new lines as they arrive (Ctrl-C stops)
        #[arg(long, short)]
        follow: bool,
        #[command(flatten)]
        client: StoreClientArgs,
    },
    /// Query metrics with PromQL: an instant table, or sparklines over a range
    Metrics {
        /// e.g. 'rate(node_cpu_seconds_total[5m])'
        query: String,
        /// Evaluate at this time (RFC 3339 or Unix seconds) [default: now]
        #[arg(long, conflicts_with_all = ["since", "from"])]
        at: Option<String>,
        #[command(flatten)]
        range: OptionalRangeArgs,
        /// Resolution of a range query
        #[arg(long, value_parser = humantime::parse_duration)]
        step: Option<std::time::Duration>,
        #[command(flatten)]
        client: StoreClientArgs,
    },
    /// Show a trace by id as a span tree, or search traces with TraceQL
    Traces {
        /// Trace id (hex)
        #[arg(required_unless_present = "search")]
        id: Option<String>,
        /// TraceQL, e.g. '{ resource.service.name = "api" && duration > 1s }'
        #[arg(long, conflicts_with = "id")]
        search: Option<String>,
        #[command(flatten)]
        range: RangeArgs,
        #[command(flatten)]
        client: StoreClientArgs,
    },
    /// List metric label names, or the values of one label (--logs: log stream labels)
    Labels {
        name: Option<String>,
        /// Log stream labels (Loki API) instead of metric labels
        #[arg(long)]
        logs: bool,
        #[command(flatten)]
        client: StoreClientArgs,
    },
    /// List metric series matching a selector
    Series {
        /// e.g. 'up{job="node"}'
        selector: String,
        #[command(flatten)]
        client: StoreClientArgs,
    },
}

/// A time range ending now by default.
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// How far back from now
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1h", conflicts_with = "from")]
    pub since: std::time::Duration,
    /// Start (RFC 3339 or Unix seconds)
    #[arg(long)]
    pub from: Option<String>,
    /// End (RFC 3339 or Unix seconds) [default: now]
    #[arg(long)]
    pub to: Option<String>,
}

/// A time range that is only used when given.
#[derive(Debug, Args)]
pub struct OptionalRangeArgs {
    /// Query a range this far back from now (with --step)
    #[arg(long, value_parser = humantime::parse_duration)]
    pub since: Option<std::time::Duration>,
    /// Range start (RFC 3339 or Unix seconds)
    #[arg(long)]
    pub from: Option<String>,
    /// Range end (RFC 3339 or Unix seconds) [default: now]
    #[arg(long)]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: StoreClientArgs,
    /// Report a problem when the store's disk has less than this share free, in percent
    /// (0 turns the check off)
    #[arg(long, value_name = "PERCENT", default_value_t = 5.0)]
    pub min_disk_free: f64,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check rule files as the store loads them; prints `file:line:col: message` and exits 2
    /// when one is bad
    Check {
        /// Prometheus rule files (or Loki ruler files with --loki)
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The files are Loki ruler files: `expr` is LogQL
        #[arg(long)]
        loki: bool,
    },
    /// Run rule unit tests written for `promtool test rules`; exits 1 when one fails
    Test {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Print the built-in rule pack, or write it to a file to edit
    Defaults {
        /// Write to this file instead of standard output
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(flatten)]
    pub client: StoreClientArgs,
    #[command(subcommand)]
    pub command: Option<AlertsCommand>,
}

#[derive(Debug, Args)]
pub struct ErrorsArgs {
    #[command(flatten)]
    pub client: StoreClientArgs,
    /// Only issues of this service (its service_name)
    #[arg(long)]
    pub service: Option<String>,
    /// Only issues seen within this long, e.g. 24h, 7d, or "all"
    #[arg(long, default_value = "24h")]
    pub since: String,
    /// unresolved, resolved, ignored or all
    #[arg(long, default_value = "unresolved")]
    pub status: String,
    /// At most this many issues
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    #[command(subcommand)]
    pub command: Option<ErrorsCommand>,
}

#[derive(Debug, Subcommand)]
pub enum ErrorsCommand {
    /// One issue: its frames, its last occurrences and where to find their logs and traces
    Show {
        /// Issue id (or its first characters, at least 4)
        id: String,
    },
    /// Mark an issue resolved; it comes back as a regression if it happens again (admin token)
    Resolve { id: String },
    /// Stop showing an issue as unresolved; it keeps counting (admin token)
    Ignore { id: String },
    /// Mark a resolved or ignored issue unresolved again (admin token)
    Unresolve { id: String },
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Mute alerts matching label matchers for a while (admin token)
    Silence {
        /// e.g. 'alertname="DiskFull",host_name="nas"'
        matchers: String,
        /// How long, e.g. 2h
        #[arg(long = "for", value_parser = humantime::parse_duration, default_value = "1h")]
        duration: std::time::Duration,
        /// Why (shown with the silence)
        #[arg(long, default_value = "")]
        comment: String,
        /// Who (shown with the silence) [default: $USER]
        #[arg(long)]
        author: Option<String>,
    },
    /// List the silences
    Silences,
    /// End a silence now
    Unsilence { id: String },
    /// Send a test message to a receiver of the config's [store.alerting] and print its answer
    Test {
        receiver: String,
        /// The config file with the receiver
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Parse and validate a config file; exit 2 with the line at fault when it is bad
    Check { file: PathBuf },
}

#[derive(Debug, Subcommand)]
pub enum GrafanaCommand {
    /// Write provisioning files: Prometheus, Loki and Tempo data sources on the store (with
    /// logs-to-trace and trace-to-logs links) and node, logs and backup dashboards
    Provision(GrafanaProvisionArgs),
}

#[derive(Debug, Args)]
pub struct GrafanaProvisionArgs {
    /// Directory to write datasources/ and dashboards/ into (Grafana's provisioning dir)
    #[arg(long)]
    pub out: PathBuf,
    /// The store's HTTP URL as Grafana's server reaches it
    #[arg(long, default_value = "http://127.0.0.1:9700")]
    pub store: String,
    /// Send `Authorization: Bearer ${VAR}`; Grafana reads the token (role query) from this
    /// environment variable when it starts, so it is never written into the files
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
    /// Where Grafana will find the dashboards, if not at OUT/dashboards (e.g. a container path)
    #[arg(long)]
    pub dashboards_path: Option<PathBuf>,
}
