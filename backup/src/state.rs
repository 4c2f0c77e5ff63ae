//! What the scheduler remembers between runs (`backup-state.json` in its data dir): per job,
//! the last run, the last successful run, the last drill, and which schedule fire times have
//! been handled (so missed runs after downtime are run once at start). Written atomically
//! (temporary file, fsync, rename); an unreadable file is moved aside and reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::jobs::{DrillRun, JobRun};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct State {
    pub jobs: BTreeMap<String, JobState>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct JobState {
    /// The job's repository name (a label of its gauges).
    #[serde(default)]
    pub repo: String,
    pub last_run: Option<JobRun>,
    pub last_success: Option<JobRun>,
    pub last_drill: Option<DrillRun>,
    /// The latest backup fire time handled (run, or skipped as not yet due at first sight).
    pub backup_fired: Option<DateTime<Utc>>,
    pub drill_fired: Option<DateTime<Utc>>,
    /// When the scheduler will next run the backup and the drill (for `obs status`).
    #[serde(default)]
    pub next_backup: Option<DateTime<Utc>>,
    #[serde(default)]
    pub next_drill: Option<DateTime<Utc>>,
    /// Seconds between two scheduled backups (the alert "last good backup older than twice
    /// its schedule" compares with it).
    #[serde(default)]
    pub interval_secs: Option<f64>,
}

impl State {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("backup-state.json")
    }

    /// Reads the state; a missing file is an empty state, a damaged one is renamed to
    /// `*.corrupt` (and the error logged) so that the scheduler starts rather than loops.
    pub fn load(dir: &Path) -> State {
        let path = State::path(dir);
        match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice(&bytes) {
                Ok(state) => state,
                Err(e) => {
                    let aside = path.with_extension("json.corrupt");
                    tracing::error!(
                        "{} is damaged ({e}); moved to {}",
                        path.display(),
                        aside.display()
                    );
                    let _ = std::fs::rename(&path, aside);
                    State::default()
                }
            },
            Err(_) => State::default(),
        }
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        use std::io::Write;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let path = State::path(dir);
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        f.write_all(&serde_json::to_vec_pretty(self).expect("state serializes"))
            .and_then(|()| f.sync_all())
            .map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }

    pub fn job(&mut self, name: &str) -> &mut JobState {
        self.jobs.entry(name.to_string()).or_default()
    }

    pub fn record_run(&mut self, run: &JobRun) {
        let s = self.job(&run.job);
        s.repo = run.repo.clone();
        s.last_run = Some(run.clone());
        if run.success {
            s.last_success = Some(run.clone());
        }
    }

    pub fn record_drill(&mut self, run: &DrillRun) {
        let s = self.job(&run.job);
        s.repo = run.repo.clone();
        s.last_drill = Some(run.clone());
    }
}
