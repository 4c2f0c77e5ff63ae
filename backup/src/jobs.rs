//! Configured jobs and drills, run once: what `obs backup run JOB`, `obs backup drill JOB`
//! and the scheduler call. Neither returns an error: the outcome, including why it failed,
//! is a [`JobRun`] / [`DrillRun`] for the reporter and the state file.
//!
//! A job: `before` hooks → `create` (paths, excludes, `stdin_from` commands, tags plus
//! `job=<name>`) → retention (`keep`, over this job's snapshots; prune when something was
//! removed) → `after` hooks (with `OBS_BACKUP_RESULT=success|failure`).
//!
//! A drill: the job's newest snapshot → restore into a scratch directory (removed after)
//! with every chunk authenticated and re-hashed on disk (`--verify`), all files or a random
//! share plus the drill's `paths` → the `verify` command with `{restore}` replaced by the
//! scratch root → duration, files, bytes and the snapshot's age (the recovery point).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{BackupConfig, JobConfig};
use crate::error::{Error, Result};
use crate::forget::{forget, ForgetOptions};
use crate::prune::{prune, PruneOptions};
use crate::repo::Repository;
use crate::restore::{restore, RestoreOptions};
use crate::{create, CreateOptions, StdinCommand};

/// How long a job waits for another process's lock on its repository.
const LOCK_WAIT: Duration = Duration::from_secs(30 * 60);

/// The outcome of one backup run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRun {
    pub job: String,
    pub repo: String,
    pub started: DateTime<Utc>,
    pub duration_secs: f64,
    pub success: bool,
    pub error: Option<String>,
    pub snapshot: Option<String>,
    pub files: u64,
    pub bytes_added: u64,
    /// Snapshots removed by the job's retention policy.
    pub forgotten: usize,
}

/// The outcome of one restore drill.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DrillRun {
    pub job: String,
    pub repo: String,
    pub started: DateTime<Utc>,
    pub duration_secs: f64,
    pub success: bool,
    pub error: Option<String>,
    pub snapshot: Option<String>,
    pub snapshot_time: Option<DateTime<Utc>>,
    pub files: u64,
    pub bytes: u64,
}

/// The tag every snapshot of job `name` carries.
pub(crate) fn job_tag(name: &str) -> String {
    format!("job={name}")
}

/// Opens the repository a job names: its URL and password (file, or OBS_BACKUP_PASSWORD).
pub(crate) async fn open_job_repo(cfg: &BackupConfig, job: &JobConfig) -> Result<(String, Repository)> {
    let name = job.repository.get_ref();
    let repo = cfg
        .repositories
        .iter()
        .find(|r| r.name.get_ref() == name)
        .ok_or_else(|| {
            Error::Usage(format!(
                "job {:?}: no repository named {name:?}",
                job.name.get_ref()
            ))
        })?;
    let password = match &repo.password_file {
        Some(f) => {
            let text = std::fs::read(f).map_err(|e| Error::io(f, e))?;
            text.strip_suffix(b"\n").unwrap_or(&text).to_vec()
        }
        None => std::env::var_os("OBS_BACKUP_PASSWORD")
            .map(|p| p.into_encoded_bytes())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "repository {name:?} has no password_file and OBS_BACKUP_PASSWORD is not set"
                ))
            })?,
    };
    Ok((name.clone(), Repository::open(&repo.url, &password).await?))
}

fn shell(cmd: &str, env: &[(&str, &str)], what: &str) -> Result<String> {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::Failed(format!("{what} {cmd:?} could not start: {e}")))?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(text)
    } else {
        let tail: String = text
            .trim()
            .chars()
            .rev()
            .take(1000)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Err(Error::Failed(format!(
            "{what} {cmd:?} failed ({}): {tail}",
            out.status
        )))
    }
}

/// Runs job `job` once.
pub async fn run_job(cfg: &BackupConfig, job: &JobConfig) -> JobRun {
    let started = Utc::now();
    let clock = Instant::now();
    let mut run = JobRun {
        job: job.name.get_ref().clone(),
        repo: job.repository.get_ref().clone(),
        started,
        duration_secs: 0.0,
        success: false,
        error: None,
        snapshot: None,
        files: 0,
        bytes_added: 0,
        forgotten: 0,
    };
    let result = backup_once(cfg, job, &mut run).await;
    let outcome = if result.is_ok() { "success" } else { "failure" };
    let mut errors: Vec<String> = result.err().map(|e| e.to_string()).into_iter().collect();
    for cmd in &job.after {
        if let Err(e) = shell(
            cmd,
            &[("OBS_BACKUP_RESULT", outcome), ("OBS_BACKUP_JOB", &run.job)],
            "after hook",
        ) {
            errors.push(e.to_string());
        }
    }
    run.success = errors.is_empty();
    run.error = (!errors.is_empty()).then(|| errors.join("; "));
    run.duration_secs = clock.elapsed().as_secs_f64();
    run
}

async fn backup_once(cfg: &BackupConfig, job: &JobConfig, run: &mut JobRun) -> Result<()> {
    for cmd in &job.before {
        shell(cmd, &[("OBS_BACKUP_JOB", &run.job)], "before hook")?;
    }
    let (_, repo) = open_job_repo(cfg, job).await?;
    let repo = Arc::new(repo);
    let mut paths = job.paths.clone();
    if let Some(store) = &job.store_snapshot {
        let store = store.clone();
        let path = tokio::task::spawn_blocking(move || store_snapshot(&store))
            .await
            .map_err(|e| Error::Failed(format!("store snapshot task failed: {e}")))??;
        paths.push(path);
    }
    let mut tags = job.tags.clone();
    tags.push(job_tag(&run.job));
    let opts = CreateOptions {
        paths,
        tags,
        host: None,
        excludes: job.exclude.clone(),
        stdin: job
            .stdin_from
            .iter()
            .map(|s| StdinCommand {
                command: s.command.clone(),
                filename: s.filename.clone(),
            })
            .collect(),
        progress: false,
        retry_lock: LOCK_WAIT,
    };
    let (id, snap) = create(repo.clone(), opts).await?;
    run.snapshot = Some(id.to_string());
    run.files = snap.summary.total_files;
    run.bytes_added = snap.summary.data_added;
    if !snap.summary.errors.is_empty() {
        return Err(Error::Failed(format!(
            "snapshot {} saved without {} unreadable path(s): {}",
            id.short(),
            snap.summary.errors.len(),
            snap.summary.errors.join("; ")
        )));
    }
    if !job.keep.is_empty() {
        let opts = ForgetOptions {
            policy: job.keep.clone(),
            tags: vec![job_tag(&run.job)],
            retry_lock: LOCK_WAIT,
            ..Default::default()
        };
        run.forgotten = forget(repo.clone(), opts)
            .await?
            .iter()
            .filter(|d| !d.keep)
            .count();
        if run.forgotten > 0 {
            prune(
                repo,
                PruneOptions {
                    dry_run: false,
                    retry_lock: LOCK_WAIT,
                },
            )
            .await?;
        }
    }
    Ok(())
}

/// Runs job `job`'s restore drill once, in a scratch directory under `scratch`.
pub async fn run_drill(cfg: &BackupConfig, job: &JobConfig, scratch: &Path) -> DrillRun {
    let clock = Instant::now();
    let mut run = DrillRun {
        job: job.name.get_ref().clone(),
        repo: job.repository.get_ref().clone(),
        started: Utc::now(),
        duration_secs: 0.0,
        success: false,
        error: None,
        snapshot: None,
        snapshot_time: None,
        files: 0,
        bytes: 0,
    };
    let result = drill_once(cfg, job, scratch, &mut run).await;
    run.success = result.is_ok();
    run.error = result.err().map(|e| e.to_string());
    run.duration_secs = clock.elapsed().as_secs_f64();
    run
}

async fn drill_once(cfg: &BackupConfig, job: &JobConfig, scratch: &Path, run: &mut DrillRun) -> Result<()> {
    let (_, repo) = open_job_repo(cfg, job).await?;
    let repo = Arc::new(repo);
    let tag = job_tag(&run.job);
    let (id, snap) = repo
        .snapshots()
        .await?
        .into_iter()
        .rev()
        .find(|(_, s)| s.tags.contains(&tag))
        .ok_or_else(|| Error::Failed(format!("job {:?} has no snapshot to drill yet", run.job)))?;
    run.snapshot = Some(id.to_string());
    run.snapshot_time = Some(snap.time);
    std::fs::create_dir_all(scratch).map_err(|e| Error::io(scratch, e))?;
    let dir = tempfile::Builder::new()
        .prefix("drill-")
        .tempdir_in(scratch)
        .map_err(|e| Error::io(scratch, e))?;
    let drill = job.drill.as_ref();
    let sample = drill.map(|d| d.sample.0).filter(|s| *s < 1.0);
    let opts = RestoreOptions {
        target: dir.path().to_path_buf(),
        verify: true,
        retry_lock: LOCK_WAIT,
        sample,
        always: drill.map(|d| d.paths.clone()).unwrap_or_default(),
        ..Default::default()
    };
    let summary = restore(repo, &snap, opts).await?;
    run.files = summary.files;
    run.bytes = summary.bytes;
    if let Some(cmd) = drill.and_then(|d| d.verify.as_ref()) {
        let cmd = cmd.replace("{restore}", &dir.path().display().to_string());
        shell(&cmd, &[("OBS_BACKUP_JOB", &run.job)], "drill verify command")?;
    }
    Ok(())
}

/// Asks the store at `url` for a consistent snapshot of its data dir; returns its path.
fn store_snapshot(url: &str) -> Result<std::path::PathBuf> {
    let fail = |why: String| Error::Failed(format!("store snapshot from {url}: {why}"));
    let token = std::env::var("OBS_TOKEN").ok().filter(|t| !t.is_empty());
    let snapshot = format!("{}/api/v1/admin/snapshot", url.trim_end_matches('/'));
    let (status, body) =
        crate::report::post_to_store(&snapshot, token.as_deref(), &[], b"", Duration::from_secs(300))
            .map_err(fail)?;
    if status != 200 {
        return Err(fail(format!("answered {status}: {}", body.trim())));
    }
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| fail(e.to_string()))?;
    v["data"]["path"]
        .as_str()
        .map(std::path::PathBuf::from)
        .ok_or_else(|| fail(format!("no path in {body}")))
}
