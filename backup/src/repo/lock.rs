//! Repository locks: `locks/<id>` objects, shared (backup, restore, check) or exclusive
//! (prune, forget).
//!
//! Taking a lock: write our lock object (a new name, create-only PUT), then list the others.
//! If one conflicts (either side exclusive) and is not stale, delete ours and retry until
//! `--retry-lock` runs out. A holder rewrites its lock every 5 minutes (new object, then the
//! old one deleted); a lock not refreshed for 30 minutes, or left by a dead process on this
//! host, is stale: ignored, and removed by the next exclusive locker or `obs backup unlock`.
//! Before a backup writes its snapshot it checks that its own lock is still fresh, so a
//! prune that removed it as stale can never delete data the snapshot needs.

// Public for the benches and cross-process tests (feature `testing`), crate-wide otherwise.
#![cfg_attr(not(feature = "testing"), allow(unreachable_pub, dead_code))]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::{hostname, Id, Repository};
use crate::error::{Error, Result};

const REFRESH: Duration = Duration::from_secs(5 * 60);
const STALE: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockInfo {
    pub time: DateTime<Utc>,
    pub exclusive: bool,
    pub host: String,
    pub pid: u32,
    pub command: String,
    /// Makes every lock object's name unique.
    nonce: u64,
}

impl LockInfo {
    fn new(exclusive: bool, command: &str) -> LockInfo {
        LockInfo {
            time: Utc::now(),
            exclusive,
            host: hostname(),
            pid: std::process::id(),
            command: command.to_string(),
            nonce: rand::random(),
        }
    }

    /// Not refreshed for 30 minutes, or its process on this host is gone.
    pub fn is_stale(&self) -> bool {
        let age = Utc::now().signed_duration_since(self.time);
        if age.to_std().map(|a| a > STALE).unwrap_or(false) {
            return true;
        }
        self.host == hostname()
            && self.pid != std::process::id()
            && nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid as i32), None)
                == Err(nix::errno::Errno::ESRCH)
    }

    fn describe(&self) -> String {
        format!(
            "{} lock held by `{}` on {} (pid {}) since {}",
            if self.exclusive { "an exclusive" } else { "a" },
            self.command,
            self.host,
            self.pid,
            self.time.format("%Y-%m-%d %H:%M:%S UTC")
        )
    }
}

/// A held lock; refreshed in the background until [`LockGuard::release`].
#[derive(Debug)]
pub struct LockGuard {
    repo: Arc<Repository>,
    current: Arc<Mutex<Id>>,
    refresher: tokio::task::JoinHandle<()>,
}

impl Repository {
    /// All lock objects with their content (unreadable ones are skipped).
    pub async fn locks(&self) -> Result<Vec<(Id, LockInfo)>> {
        let mut out = Vec::new();
        for (id, _) in self.list_ids("locks").await? {
            match self.load_object::<LockInfo>("locks", &id).await {
                Ok(info) => out.push((id, info)),
                Err(e) if e.is_not_found() => {}
                Err(e) => tracing::warn!("skipping unreadable lock {id}: {e}"),
            }
        }
        Ok(out)
    }

    /// Removes stale locks (all locks with `all`); returns how many.
    pub async fn unlock(&self, all: bool) -> Result<usize> {
        let mut removed = 0;
        for (id, info) in self.locks().await? {
            if all || info.is_stale() {
                self.delete(&lock_path(&id)).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn lock_path(id: &Id) -> Path {
    Path::from(format!("locks/{id}"))
}

/// Takes a lock, waiting up to `retry` for conflicting ones to go.
pub async fn lock(
    repo: &Arc<Repository>,
    exclusive: bool,
    command: &str,
    retry: Duration,
) -> Result<LockGuard> {
    let started = tokio::time::Instant::now();
    loop {
        let ours = repo
            .save_object("locks", &LockInfo::new(exclusive, command))
            .await?;
        let mut conflict = None;
        for (id, info) in repo.locks().await? {
            if id == ours || !(exclusive || info.exclusive) {
                continue;
            }
            if info.is_stale() {
                tracing::warn!("ignoring stale {}", info.describe());
                if exclusive {
                    repo.delete(&lock_path(&id)).await?;
                }
                continue;
            }
            conflict = Some(info);
            break;
        }
        let Some(other) = conflict else {
            let current = Arc::new(Mutex::new(ours));
            let refresher = tokio::spawn(refresh(
                repo.clone(),
                current.clone(),
                exclusive,
                command.to_string(),
            ));
            return Ok(LockGuard {
                repo: repo.clone(),
                current,
                refresher,
            });
        };
        repo.delete(&lock_path(&ours)).await?;
        if started.elapsed() >= retry {
            return Err(Error::Locked(format!(
                "repository {} is locked: {}; wait for it to finish (or pass --retry-lock 10m), \
                 and if that process is gone run `obs backup unlock`",
                repo.url(),
                other.describe()
            )));
        }
        let pause = Duration::from_millis(500 + rand::random::<u64>() % 1500);
        tokio::time::sleep(
            pause.min(
                retry
                    .saturating_sub(started.elapsed())
                    .max(Duration::from_millis(50)),
            ),
        )
        .await;
    }
}

async fn refresh(repo: Arc<Repository>, current: Arc<Mutex<Id>>, exclusive: bool, command: String) {
    loop {
        tokio::time::sleep(REFRESH).await;
        match repo
            .save_object("locks", &LockInfo::new(exclusive, &command))
            .await
        {
            Ok(new) => {
                let old = std::mem::replace(&mut *current.lock().expect("lock id"), new);
                if let Err(e) = repo.delete(&lock_path(&old)).await {
                    tracing::warn!("could not remove the previous lock object: {e}");
                }
            }
            Err(e) => tracing::warn!("could not refresh the repository lock: {e}"),
        }
    }
}

impl LockGuard {
    /// Fails when our lock object is gone or stale (someone may have pruned meanwhile).
    pub async fn check_held(&self) -> Result<()> {
        let id = *self.current.lock().expect("lock id");
        match self.repo.load_object::<LockInfo>("locks", &id).await {
            Ok(info) if !info.is_stale() => Ok(()),
            Ok(_) | Err(_) => Err(Error::Locked(format!(
                "our lock on {} expired or was removed while we worked (was the machine \
                 asleep?); nothing was committed, run the command again",
                self.repo.url()
            ))),
        }
    }

    pub async fn release(self) -> Result<()> {
        self.refresher.abort();
        let id = *self.current.lock().expect("lock id");
        self.repo.delete(&lock_path(&id)).await
    }
}
