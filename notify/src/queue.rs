//! The delivery queue: a notification is a file in the queue directory before it is first
//! attempted, rewritten with its next attempt time when an attempt fails, and deleted once
//! the receiver took it, so a restart neither loses nor repeats one.
//!
//! Files are `<sequence>.json` (`Pending`), written to a temporary name, fsynced and
//! renamed. A file that cannot be read is moved to `<name>.corrupt` and reported.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::dispatch::Notification;

/// Longest wait between two attempts.
const MAX_BACKOFF_SECS: i64 = 300;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(crate) struct Pending {
    pub notification: Notification,
    pub attempts: u32,
    pub next_attempt: DateTime<Utc>,
    #[serde(default)]
    pub last_error: String,
}

#[derive(Debug)]
pub(crate) struct Queue {
    dir: PathBuf,
    next_seq: u64,
    /// Until the first `due`, every entry is due: a restart retries at once.
    reopened: bool,
}

/// Writes `data` to `path` so that a crash leaves the old or the new content.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        if let Some(dir) = path.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| format!("cannot write {}: {e}", path.display()))
}

impl Queue {
    pub(crate) fn open(dir: &Path) -> Result<Queue, String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let next_seq = Queue::ids(dir)?.last().map_or(0, |id| id + 1);
        Ok(Queue {
            dir: dir.to_path_buf(),
            next_seq,
            reopened: true,
        })
    }

    fn ids(dir: &Path) -> Result<Vec<u64>, String> {
        let rd = std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
        let mut ids: Vec<u64> = rd
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".json")?.parse().ok())
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}.json"))
    }

    /// Puts a notification on disk, to be attempted at once.
    pub(crate) fn push(&mut self, notification: Notification) -> Result<u64, String> {
        let id = self.next_seq;
        let p = Pending {
            next_attempt: notification.at,
            notification,
            attempts: 0,
            last_error: String::new(),
        };
        write_atomic(
            &self.path(id),
            &serde_json::to_vec(&p).map_err(|e| e.to_string())?,
        )?;
        self.next_seq += 1;
        Ok(id)
    }

    /// The notifications whose attempt is due at `now`, oldest first (all of them the first
    /// time after opening).
    pub(crate) fn due(&mut self, now: DateTime<Utc>) -> Vec<(u64, Pending)> {
        let all = std::mem::take(&mut self.reopened);
        let mut out = Vec::new();
        for id in Queue::ids(&self.dir).unwrap_or_default() {
            let path = self.path(id);
            let parsed = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice::<Pending>(&b).map_err(|e| e.to_string()));
            match parsed {
                Ok(p) if all || p.next_attempt <= now => out.push((id, p)),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(file = %path.display(), error = %e, "unreadable queued notification set aside as .corrupt");
                    let _ = std::fs::rename(&path, path.with_extension("json.corrupt"));
                }
            }
        }
        out
    }

    /// How many notifications wait.
    pub(crate) fn len(&self) -> usize {
        Queue::ids(&self.dir).map(|v| v.len()).unwrap_or(0)
    }

    /// The receiver took it.
    pub(crate) fn done(&self, id: u64) -> Result<(), String> {
        match std::fs::remove_file(self.path(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("cannot remove {}: {e}", self.path(id).display())),
        }
    }

    /// An attempt failed: try again later (2, 4, 8 … seconds, at most 5 minutes).
    pub(crate) fn failed(
        &self,
        id: u64,
        mut p: Pending,
        now: DateTime<Utc>,
        error: &str,
    ) -> Result<(), String> {
        p.attempts += 1;
        let wait = 1i64
            .checked_shl(p.attempts.min(20))
            .unwrap_or(MAX_BACKOFF_SECS)
            .min(MAX_BACKOFF_SECS);
        p.next_attempt = now + chrono::Duration::seconds(wait);
        p.last_error = error.to_string();
        write_atomic(
            &self.path(id),
            &serde_json::to_vec(&p).map_err(|e| e.to_string())?,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(at: DateTime<Utc>) -> Notification {
        Notification {
            receiver: "r".into(),
            group_key: "{}:{}".into(),
            group_labels: Default::default(),
            alerts: Vec::new(),
            at,
        }
    }

    #[test]
    fn queued_notifications_survive_reopening_and_back_off() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let mut q = Queue::open(dir.path()).unwrap();
        let a = q.push(note(t0)).unwrap();
        let b = q.push(note(t0)).unwrap();
        let mut q = Queue::open(dir.path()).unwrap();
        let due = q.due(t0);
        assert_eq!(due.iter().map(|d| d.0).collect::<Vec<_>>(), [a, b]);
        q.done(a).unwrap();
        q.failed(b, due[1].1.clone(), t0, "503").unwrap();
        assert!(q.due(t0).is_empty(), "b waits");
        let later = q.due(t0 + chrono::Duration::seconds(2));
        assert_eq!(later.len(), 1);
        assert_eq!(
            Queue::open(dir.path()).unwrap().due(t0).len(),
            1,
            "after a restart it is tried at once"
        );
        assert_eq!((later[0].1.attempts, later[0].1.last_error.as_str()), (1, "503"));
        let mut q = Queue::open(dir.path()).unwrap();
        assert_eq!(
            q.push(note(t0)).unwrap(),
            b + 1,
            "sequence numbers go on after a restart"
        );
        std::fs::write(dir.path().join("00000000000000000099.json"), "{").unwrap();
        assert_eq!(q.due(t0 + chrono::Duration::seconds(10)).len(), 2);
        assert!(dir.path().join("00000000000000000099.json.corrupt").exists());
    }
}
