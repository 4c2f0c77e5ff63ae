//! `obs backup …`: turns arguments into calls to `obs-backup` and prints the results, as
//! tables for people and JSON (`--output json`) for scripts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context};
use obs_backup::{
    check, forget, prune, walk, CreateOptions, ForgetOptions, InitOptions, KeepPolicy, NodeKind,
    PruneOptions, PrunePlan, ReadData, Repository, RestoreOptions, StdinCommand,
};

use crate::cli::{BackupCommand, CreateArgs, ForgetArgs, JobsArgs, Output, RepoArgs, RestoreArgs};

/// Runs one `obs backup` command.
pub(crate) fn run(cmd: BackupCommand) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(dispatch(cmd))
}

async fn dispatch(cmd: BackupCommand) -> anyhow::Result<()> {
    match cmd {
        BackupCommand::Init(args) => init(&args).await,
        BackupCommand::Create(args) => create(args).await,
        BackupCommand::Snapshots(args) => snapshots(&args).await,
        BackupCommand::Ls { repo, snapshot, path } => ls(&repo, &snapshot, path).await,
        BackupCommand::Diff {
            repo,
            snapshot_a,
            snapshot_b,
        } => diff(&repo, &snapshot_a, &snapshot_b).await,
        BackupCommand::Restore(args) => restore(args).await,
        BackupCommand::Check {
            repo,
            read_data,
            read_data_subset,
        } => {
            let what = match (read_data, read_data_subset) {
                (true, _) => ReadData::All,
                (false, Some(s)) => s.parse().map_err(|e: String| obs_backup::Error::Usage(e))?,
                (false, None) => ReadData::None,
            };
            run_check(&repo, what).await
        }
        BackupCommand::Forget(args) => run_forget(args).await,
        BackupCommand::Prune { repo, dry_run } => run_prune(&repo, dry_run).await,
        BackupCommand::Unlock { repo, remove_all } => {
            let r = open(&repo).await?;
            let n = r.unlock(remove_all).await?;
            println!("removed {n} lock(s)");
            Ok(())
        }
        BackupCommand::Run { job, jobs } => run_configured(&job, &jobs, false).await,
        BackupCommand::Drill { job, jobs } => run_configured(&job, &jobs, true).await,
        BackupCommand::Schedule(_) => unreachable!("dispatched in lib.rs"),
    }
}

fn repo_url(args: &RepoArgs) -> anyhow::Result<String> {
    match &args.repo {
        Some(r) if !r.is_empty() => Ok(r.clone()),
        _ => Err(obs_backup::Error::Usage(
            "no repository given: pass --repo s3://bucket/prefix (or a local path) or set OBS_BACKUP_REPO"
                .to_string(),
        )
        .into()),
    }
}

fn password(args: &RepoArgs) -> anyhow::Result<Vec<u8>> {
    if let Some(file) = &args.password_file {
        let text =
            std::fs::read(file).with_context(|| format!("cannot read --password-file {}", file.display()))?;
        let trimmed = text.strip_suffix(b"\n").unwrap_or(&text);
        let trimmed = trimmed.strip_suffix(b"\r").unwrap_or(trimmed);
        return Ok(trimmed.to_vec());
    }
    match std::env::var_os("OBS_BACKUP_PASSWORD") {
        Some(p) if !p.is_empty() => Ok(p.into_encoded_bytes()),
        _ => Err(obs_backup::Error::Usage(
            "no repository password: set OBS_BACKUP_PASSWORD or pass --password-file".to_string(),
        )
        .into()),
    }
}

async fn open(args: &RepoArgs) -> anyhow::Result<Arc<Repository>> {
    Ok(Arc::new(
        Repository::open(&repo_url(args)?, &password(args)?).await?,
    ))
}

fn print_json<T: serde::Serialize>(value: &T) {
    println!("{}", serde_json::to_string_pretty(value).expect("serializes"));
}

/// 1536 → "1.5 KiB".
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

async fn init(args: &RepoArgs) -> anyhow::Result<()> {
    let url = repo_url(args)?;
    let repo = Repository::init(&url, &password(args)?, InitOptions::default()).await?;
    match args.output {
        Output::Json | Output::Raw => print_json(&serde_json::json!({"id": repo.config().id, "url": url})),
        Output::Human => {
            println!("created repository {} at {url}", repo.config().id.short());
            println!("keep the password safe: without it the backups cannot be read");
        }
    }
    Ok(())
}

async fn create(args: CreateArgs) -> anyhow::Result<()> {
    let mut repo = Repository::open(&repo_url(&args.repo)?, &password(&args.repo)?).await?;
    if let Some(kib) = args.limit_upload {
        repo.limit_upload(kib * 1024);
    }
    let stdin = match (args.stdin_from, args.stdin_filename) {
        (Some(command), Some(filename)) => vec![StdinCommand { command, filename }],
        (None, None) => Vec::new(),
        _ => bail!(obs_backup::Error::Usage(
            "--stdin-from and --stdin-filename go together".to_string()
        )),
    };
    let opts = CreateOptions {
        paths: args.paths,
        tags: args.tags,
        host: args.host,
        excludes: args.excludes,
        stdin,
        progress: matches!(args.repo.output, Output::Human),
        retry_lock: args.repo.retry_lock,
    };
    let (id, snap) = obs_backup::create(Arc::new(repo), opts).await?;
    let s = &snap.summary;
    match args.repo.output {
        Output::Json | Output::Raw => print_json(&serde_json::json!({"id": id, "snapshot": snap})),
        Output::Human => {
            for e in &s.errors {
                eprintln!("warning: skipped {e}");
            }
            println!("snapshot {} saved", id.short());
            println!(
                "files:  {} new, {} changed, {} unmodified",
                s.files_new, s.files_changed, s.files_unmodified
            );
            println!("dirs:   {}", s.dirs);
            println!(
                "added:  {} of new data ({} stored), {} processed in {:.1}s",
                human_bytes(s.data_added),
                human_bytes(s.data_added_packed),
                human_bytes(s.total_bytes),
                s.duration_secs
            );
            if !s.errors.is_empty() {
                println!(
                    "{} path(s) could not be read and are not in the snapshot",
                    s.errors.len()
                );
            }
        }
    }
    Ok(())
}

async fn snapshots(args: &RepoArgs) -> anyhow::Result<()> {
    let repo = Repository::open_without_index(&repo_url(args)?, &password(args)?).await?;
    let all = repo.snapshots().await?;
    match args.output {
        Output::Json | Output::Raw => {
            let list: Vec<_> = all
                .iter()
                .map(|(id, s)| serde_json::json!({"id": id, "short_id": id.short(), "snapshot": s}))
                .collect();
            print_json(&list);
        }
        Output::Human => {
            println!(
                "{:<8}  {:<19}  {:<16}  {:<16}  {:>10}  paths",
                "id", "time", "host", "tags", "size"
            );
            for (id, s) in &all {
                println!(
                    "{:<8}  {:<19}  {:<16}  {:<16}  {:>10}  {}",
                    id.short(),
                    s.time.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S"),
                    s.host,
                    s.tags.join(","),
                    human_bytes(s.summary.total_bytes),
                    s.paths.join(" ")
                );
            }
            println!("{} snapshot(s)", all.len());
        }
    }
    Ok(())
}

fn kind_name(kind: NodeKind) -> &'static str {
    match kind {
        NodeKind::File => "file",
        NodeKind::Dir => "dir",
        NodeKind::Symlink => "symlink",
        NodeKind::Fifo => "fifo",
        NodeKind::CharDevice => "chardev",
        NodeKind::BlockDevice => "blockdev",
        NodeKind::Socket => "socket",
    }
}

async fn ls(args: &RepoArgs, snapshot: &str, under: Option<PathBuf>) -> anyhow::Result<()> {
    let repo = open(args).await?;
    let (_, snap) = repo.find_snapshot(snapshot).await?;
    let under = under.unwrap_or_else(|| PathBuf::from("/"));
    let mut rows = Vec::new();
    walk(&repo, snap.tree, |path, node| {
        let inside = path.starts_with(&under);
        if inside {
            rows.push((path.to_path_buf(), node.clone()));
        }
        inside || under.starts_with(path)
    })
    .await?;
    match args.output {
        Output::Json | Output::Raw => {
            let list: Vec<_> = rows
                .iter()
                .map(|(p, n)| {
                    serde_json::json!({"path": p, "type": kind_name(n.kind), "size": n.size, "mode": n.mode,
                        "uid": n.uid, "gid": n.gid, "mtime_ns": n.mtime_ns, "link_target": String::from_utf8_lossy(&n.link_target)})
                })
                .collect();
            print_json(&list);
        }
        Output::Human => {
            for (p, n) in &rows {
                let mtime = chrono::DateTime::from_timestamp_nanos(n.mtime_ns).with_timezone(&chrono::Local);
                let link = if n.kind == NodeKind::Symlink {
                    format!(" -> {}", String::from_utf8_lossy(&n.link_target))
                } else {
                    String::new()
                };
                println!(
                    "{:<7} {:04o} {:>10}  {}  {}{link}",
                    kind_name(n.kind),
                    n.mode,
                    n.size,
                    mtime.format("%Y-%m-%d %H:%M:%S"),
                    p.display()
                );
            }
        }
    }
    Ok(())
}

async fn diff(args: &RepoArgs, a: &str, b: &str) -> anyhow::Result<()> {
    let repo = open(args).await?;
    let mut sides = Vec::new();
    for name in [a, b] {
        let (_, snap) = repo.find_snapshot(name).await?;
        let mut entries = BTreeMap::new();
        walk(&repo, snap.tree, |path, node| {
            entries.insert(path.to_path_buf(), node.clone());
            true
        })
        .await?;
        sides.push(entries);
    }
    let (old, new) = (&sides[0], &sides[1]);
    let mut changes = Vec::new();
    for (path, node) in old {
        match new.get(path) {
            None => changes.push(("-", path)),
            Some(n)
                if n.kind != node.kind || n.content != node.content || n.link_target != node.link_target =>
            {
                changes.push(("M", path))
            }
            Some(n)
                if n.mode != node.mode
                    || n.uid != node.uid
                    || n.gid != node.gid
                    || n.mtime_ns != node.mtime_ns =>
            {
                changes.push(("U", path))
            }
            Some(_) => {}
        }
    }
    changes.extend(new.keys().filter(|p| !old.contains_key(*p)).map(|p| ("+", p)));
    changes.sort_by(|x, y| x.1.cmp(y.1));
    match args.output {
        Output::Json | Output::Raw => {
            let list: Vec<_> = changes
                .iter()
                .map(|(c, p)| serde_json::json!({"change": c, "path": p}))
                .collect();
            print_json(&list);
        }
        Output::Human => {
            for (c, p) in &changes {
                println!("{c}  {}", p.display());
            }
            let count = |k: &str| changes.iter().filter(|(c, _)| *c == k).count();
            println!(
                "{} added, {} removed, {} modified, {} metadata only",
                count("+"),
                count("-"),
                count("M"),
                count("U")
            );
        }
    }
    Ok(())
}

async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let repo = open(&args.repo).await?;
    let (id, snap) = repo.find_snapshot(&args.snapshot).await?;
    let opts = RestoreOptions {
        target: args.target.clone(),
        includes: args.includes,
        verify: args.verify,
        progress: matches!(args.repo.output, Output::Human),
        retry_lock: args.repo.retry_lock,
        ..Default::default()
    };
    let summary = obs_backup::restore(repo, &snap, opts).await?;
    match args.repo.output {
        Output::Json | Output::Raw => print_json(&serde_json::json!({"snapshot": id, "summary": summary})),
        Output::Human => {
            for w in &summary.warnings {
                eprintln!("warning: {w}");
            }
            println!(
                "restored snapshot {} to {}: {} files, {} dirs, {} links, {} in {:.1}s{}",
                id.short(),
                args.target.display(),
                summary.files,
                summary.dirs,
                summary.links,
                human_bytes(summary.bytes),
                summary.duration_secs,
                if summary.verified { ", verified" } else { "" }
            );
        }
    }
    Ok(())
}

async fn run_check(args: &RepoArgs, what: ReadData) -> anyhow::Result<()> {
    let repo = open(args).await?;
    let report = check(repo, what, matches!(args.output, Output::Human), args.retry_lock).await?;
    match args.output {
        Output::Json | Output::Raw => print_json(&report),
        Output::Human => {
            println!(
                "{} snapshots, {} trees, {} packs, {} blobs checked; {} packs ({}) read",
                report.snapshots,
                report.trees,
                report.packs,
                report.blobs,
                report.packs_read,
                human_bytes(report.bytes_read)
            );
            for w in &report.warnings {
                println!("warning: {w}");
            }
            for e in &report.errors {
                println!("error: {e}");
            }
            for p in &report.damaged_packs {
                println!("damaged pack {}: {}", p.id, p.reason);
            }
            for a in &report.affected {
                println!("affected: snapshot {} {}", a.snapshot, a.path);
            }
            if report.is_ok() {
                println!("no errors found");
            }
        }
    }
    if !report.is_ok() {
        bail!("check found {} error(s)", report.errors.len());
    }
    Ok(())
}

async fn run_forget(args: ForgetArgs) -> anyhow::Result<()> {
    let repo = open(&args.repo).await?;
    let opts = ForgetOptions {
        policy: KeepPolicy {
            last: args.keep_last,
            hourly: args.keep_hourly,
            daily: args.keep_daily,
            weekly: args.keep_weekly,
            monthly: args.keep_monthly,
            yearly: args.keep_yearly,
            within: args.keep_within,
        },
        tags: args.tags,
        hosts: args.hosts,
        dry_run: args.dry_run,
        retry_lock: args.repo.retry_lock,
    };
    let decisions = forget(repo.clone(), opts).await?;
    let removed = decisions.iter().filter(|d| !d.keep).count();
    let plan = if args.prune && !args.dry_run {
        Some(
            prune(
                repo,
                PruneOptions {
                    dry_run: false,
                    retry_lock: args.repo.retry_lock,
                },
            )
            .await?,
        )
    } else {
        None
    };
    match args.repo.output {
        Output::Json | Output::Raw => print_json(&serde_json::json!({"decisions": decisions, "prune": plan})),
        Output::Human => {
            println!(
                "{:<8}  {:<19}  {:<16}  {:<6}  reasons",
                "id", "time", "host", "action"
            );
            for d in &decisions {
                println!(
                    "{:<8}  {:<19}  {:<16}  {:<6}  {}",
                    d.id.short(),
                    d.time.with_timezone(&chrono::Local).format("%Y-%m-%d %H:%M:%S"),
                    d.host,
                    if d.keep { "keep" } else { "remove" },
                    d.reasons.join(", ")
                );
            }
            let verb = if args.dry_run { "would remove" } else { "removed" };
            println!("{verb} {removed} of {} snapshot(s)", decisions.len());
            if let Some(p) = &plan {
                print_prune(p, false);
            }
        }
    }
    Ok(())
}

fn print_prune(p: &PrunePlan, dry_run: bool) {
    let verb = if dry_run { "would" } else { "did" };
    println!(
        "prune ({verb}): {} blobs in use, {} unused; packs: {} kept, {} repacked, {} deleted, {} unindexed deleted; {} freed",
        p.blobs_used,
        p.blobs_unused,
        p.packs_keep.len(),
        p.packs_repack.len(),
        p.packs_delete.len(),
        p.packs_unindexed.len(),
        human_bytes(p.bytes_freed)
    );
}

async fn run_prune(args: &RepoArgs, dry_run: bool) -> anyhow::Result<()> {
    let repo = open(args).await?;
    let plan = prune(
        repo,
        PruneOptions {
            dry_run,
            retry_lock: args.retry_lock,
        },
    )
    .await?;
    match args.output {
        Output::Json | Output::Raw => print_json(&plan),
        Output::Human => print_prune(&plan, dry_run),
    }
    Ok(())
}

/// `obs backup run|drill JOB`: one configured job or drill now, recorded in the state file
/// and reported to the job's store like a scheduled one.
async fn run_configured(name: &str, args: &JobsArgs, drill: bool) -> anyhow::Result<()> {
    use obs_backup::{drill_log, gauges, job_log, Reporter, State};
    let cfg = crate::config::load(&args.config)?.backup;
    let Some(job) = cfg.jobs.iter().find(|j| j.name.get_ref() == name) else {
        let known: Vec<&str> = cfg.jobs.iter().map(|j| j.name.get_ref().as_str()).collect();
        bail!(obs_backup::Error::Usage(format!(
            "no job named {name:?} in {} (jobs: {})",
            args.config.display(),
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        )));
    };
    if drill && job.drill.is_none() {
        bail!(obs_backup::Error::Usage(format!(
            "job {name:?} has no [backup.jobs.drill] section"
        )));
    }
    let dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| crate::up::default_data_root().join("backup"));
    let mut state = State::load(&dir);
    let (success, error, log, json) = if drill {
        let run = obs_backup::run_drill(&cfg, job, &dir.join("drills")).await;
        state.record_drill(&run);
        (
            run.success,
            run.error.clone(),
            drill_log(&run),
            serde_json::to_value(&run)?,
        )
    } else {
        let run = obs_backup::run_job(&cfg, job).await;
        state.record_run(&run);
        (
            run.success,
            run.error.clone(),
            job_log(&run),
            serde_json::to_value(&run)?,
        )
    };
    state.save(&dir)?;
    if let Some(store) = &job.report_to {
        let mut g = gauges(&state, chrono::Utc::now());
        g.retain(|g| g.job == name);
        if let Err(e) = Reporter::new(store, &dir).send(g, vec![log]).await {
            eprintln!("warning: {e}");
        }
    }
    match args.output {
        Output::Json | Output::Raw => print_json(&json),
        Output::Human => {
            let what = if drill { "restore drill" } else { "backup" };
            if success {
                println!("{what} of job {name}: ok");
                for key in ["snapshot", "files", "bytes", "bytes_added", "duration_secs"] {
                    if let Some(v) = json.get(key).filter(|v| !v.is_null()) {
                        println!("  {key}: {v}");
                    }
                }
            }
        }
    }
    match error {
        None => Ok(()),
        Some(e) => bail!(
            "{} of job {name} failed: {e}",
            if drill { "restore drill" } else { "backup" }
        ),
    }
}
