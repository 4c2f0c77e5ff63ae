//! The backup scheduler: jobs and drills on their cron schedules.
//!
//! [`Planner`] is the whole policy, with time passed in (tests drive it with any clock):
//! - a task is due when its schedule fired since the last fire handled (kept in [`State`]);
//!   fires missed while obs was down collapse into one run at start; a job seen for the
//!   first time waits for its next fire;
//! - at most one task per repository runs at a time; a due task whose repository is busy
//!   stays due and starts when the repository is free;
//! - a failed task is retried after 1, 2, 4, … minutes (at most an hour) until it succeeds
//!   or its next scheduled fire comes first.
//!
//! [`run`] is the loop around it: it starts due tasks as tokio tasks, records outcomes in
//! the state file, reports them (report.rs), publishes the gauges every minute, and stops
//! when told (running tasks finish first).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

use crate::config::{BackupConfig, JobConfig};
use crate::jobs::{run_drill, run_job};
use crate::report::{drill_log, gauges, job_log, Reporter};
use crate::state::State;

/// A unit of work for the scheduler.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Task {
    Backup(String),
    Drill(String),
}

impl Task {
    pub(crate) fn job(&self) -> &str {
        match self {
            Task::Backup(j) | Task::Drill(j) => j,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Retry {
    at: DateTime<Utc>,
    attempts: u32,
}

/// The scheduling policy (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct Planner {
    retries: HashMap<Task, Retry>,
    busy: HashSet<String>,
    running: HashSet<Task>,
}

fn backoff(attempts: u32) -> chrono::Duration {
    chrono::Duration::minutes(1i64 << attempts.saturating_sub(1).min(6)).min(chrono::Duration::hours(1))
}

/// The next fire of a task's schedule after `t`.
fn next_fire(job: &JobConfig, task: &Task, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    match task {
        Task::Backup(_) => job.schedule.next_after(job.timezone, t),
        Task::Drill(_) => job.drill.as_ref()?.schedule.next_after(job.timezone, t),
    }
}

fn tasks_of(job: &JobConfig) -> Vec<Task> {
    let name = job.name.get_ref().clone();
    let mut t = vec![Task::Backup(name.clone())];
    if job.drill.is_some() {
        t.push(Task::Drill(name));
    }
    t
}

impl Planner {
    /// Tasks to start now; marks them running and their repositories busy.
    pub(crate) fn due(&mut self, cfg: &BackupConfig, state: &mut State, now: DateTime<Utc>) -> Vec<Task> {
        let mut out = Vec::new();
        for job in &cfg.jobs {
            let repo = job.repository.get_ref();
            for task in tasks_of(job) {
                let s = state.job(task.job());
                let fired = match task {
                    Task::Backup(_) => &mut s.backup_fired,
                    Task::Drill(_) => &mut s.drill_fired,
                };
                let Some(last) = *fired else {
                    *fired = Some(now); // first sight: wait for the next fire
                    continue;
                };
                let scheduled = next_fire(job, &task, last).is_some_and(|t| t <= now);
                let retry = self.retries.get(&task).is_some_and(|r| r.at <= now);
                if !(scheduled || retry) || self.running.contains(&task) || self.busy.contains(repo) {
                    continue;
                }
                if scheduled {
                    *fired = Some(now);
                }
                self.busy.insert(repo.clone());
                self.running.insert(task.clone());
                out.push(task);
            }
        }
        out
    }

    /// Records the end of a task: frees its repository; on failure schedules a retry.
    pub(crate) fn finished(&mut self, cfg: &BackupConfig, task: &Task, success: bool, now: DateTime<Utc>) {
        self.running.remove(task);
        let Some(job) = cfg.jobs.iter().find(|j| j.name.get_ref() == task.job()) else {
            return;
        };
        self.busy.remove(job.repository.get_ref());
        if success {
            self.retries.remove(task);
            return;
        }
        let attempts = self.retries.get(task).map_or(1, |r| r.attempts + 1);
        let at = now + backoff(attempts);
        if next_fire(job, task, now).is_some_and(|next| next <= at) {
            self.retries.remove(task); // the schedule comes first
        } else {
            self.retries.insert(task.clone(), Retry { at, attempts });
        }
    }

    /// When something next becomes due (a fire or a retry), if ever.
    pub(crate) fn next_wake(
        &self,
        cfg: &BackupConfig,
        state: &State,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let fires = cfg.jobs.iter().flat_map(|job| {
            tasks_of(job).into_iter().filter_map(move |task| {
                let s = state.jobs.get(task.job());
                let last = match task {
                    Task::Backup(_) => s.and_then(|s| s.backup_fired),
                    Task::Drill(_) => s.and_then(|s| s.drill_fired),
                };
                next_fire(job, &task, last.unwrap_or(now))
            })
        });
        fires.chain(self.retries.values().map(|r| r.at)).min()
    }

    /// Stores each job's next backup and drill time (retry or fire) in `state`.
    pub(crate) fn record_next(&self, cfg: &BackupConfig, state: &mut State, now: DateTime<Utc>) {
        for job in &cfg.jobs {
            for task in tasks_of(job) {
                let s = state.job(task.job());
                s.repo = job.repository.get_ref().clone();
                let last = match task {
                    Task::Backup(_) => s.backup_fired,
                    Task::Drill(_) => s.drill_fired,
                };
                let fire = next_fire(job, &task, last.unwrap_or(now));
                if let Task::Backup(_) = task {
                    let first = next_fire(job, &task, now);
                    let second = first.and_then(|f| next_fire(job, &task, f));
                    if let (Some(a), Some(b)) = (first, second) {
                        s.interval_secs = Some((b - a).num_milliseconds() as f64 / 1000.0);
                    }
                }
                let next = match (fire, self.retries.get(&task).map(|r| r.at)) {
                    (Some(f), Some(r)) => Some(f.min(r)),
                    (f, r) => f.or(r),
                };
                match task {
                    Task::Backup(_) => s.next_backup = next,
                    Task::Drill(_) => s.next_drill = next,
                }
            }
        }
    }

    /// When `task` will be retried, if it failed (the tests look).
    #[cfg(test)]
    pub(crate) fn retry_at(&self, task: &Task) -> Option<DateTime<Utc>> {
        self.retries.get(task).map(|r| r.at)
    }
}

/// Runs the scheduler until `shutdown` turns true. `data_dir` holds the state file, the
/// report spool and the drills' scratch space.
pub async fn run(cfg: BackupConfig, data_dir: PathBuf, mut shutdown: watch::Receiver<bool>) {
    let cfg = Arc::new(cfg);
    let state = Arc::new(Mutex::new(State::load(&data_dir)));
    let planner = Arc::new(Mutex::new(Planner::default()));
    let (done_tx, mut done_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut tasks = tokio::task::JoinSet::new();
    let mut last_publish = None::<tokio::time::Instant>;
    loop {
        let now = Utc::now();
        let due = {
            let mut st = state.lock().expect("state lock");
            let mut p = planner.lock().expect("planner lock");
            let due = p.due(&cfg, &mut st, now);
            p.record_next(&cfg, &mut st, now);
            drop(p);
            if let Err(e) = st.save(&data_dir) {
                tracing::error!("cannot save the backup state: {e}");
            }
            due
        };
        for task in due {
            let (cfg, state, planner, dir, done) = (
                cfg.clone(),
                state.clone(),
                planner.clone(),
                data_dir.clone(),
                done_tx.clone(),
            );
            tasks.spawn(async move {
                let success = execute(&cfg, &task, &state, &dir).await;
                planner
                    .lock()
                    .expect("planner lock")
                    .finished(&cfg, &task, success, Utc::now());
                let _ = done.send(());
            });
        }
        if last_publish.is_none_or(|t| t.elapsed() >= Duration::from_secs(60)) {
            publish(&cfg, &state, &data_dir).await;
            last_publish = Some(tokio::time::Instant::now());
        }
        let wake = {
            let st = state.lock().expect("state lock");
            planner
                .lock()
                .expect("planner lock")
                .next_wake(&cfg, &st, Utc::now())
        };
        let until_wake = wake
            .map(|w| (w - Utc::now()).to_std().unwrap_or_default())
            .unwrap_or(Duration::from_secs(60))
            .min(Duration::from_secs(60));
        tokio::select! {
            _ = tokio::time::sleep(until_wake) => {}
            _ = done_rx.recv() => {}
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    while tasks.join_next().await.is_some() {}
    publish(&cfg, &state, &data_dir).await;
}

/// Runs one task, records and reports it; returns whether it succeeded.
async fn execute(cfg: &BackupConfig, task: &Task, state: &Mutex<State>, dir: &std::path::Path) -> bool {
    let Some(job) = cfg.jobs.iter().find(|j| j.name.get_ref() == task.job()) else {
        return true;
    };
    let (success, log) = match task {
        Task::Backup(_) => {
            tracing::info!(job = task.job(), "backup starting");
            let run = run_job(cfg, job).await;
            state.lock().expect("state lock").record_run(&run);
            (run.success, job_log(&run))
        }
        Task::Drill(_) => {
            tracing::info!(job = task.job(), "restore drill starting");
            let run = run_drill(cfg, job, &dir.join("drills")).await;
            state.lock().expect("state lock").record_drill(&run);
            (run.success, drill_log(&run))
        }
    };
    if success {
        tracing::info!(job = task.job(), "{}", log.line);
    } else {
        tracing::error!(job = task.job(), "{}", log.line);
    }
    if let Err(e) = state.lock().expect("state lock").save(dir) {
        tracing::error!("cannot save the backup state: {e}");
    }
    if let Some(store) = &job.report_to {
        let g = job_gauges(state, task.job());
        if let Err(e) = Reporter::new(store, dir).send(g, vec![log]).await {
            tracing::warn!("{e}");
        }
    }
    success
}

/// The current gauges of one job.
fn job_gauges(state: &Mutex<State>, job: &str) -> Vec<crate::report::Gauge> {
    let mut all = gauges(&state.lock().expect("state lock"), Utc::now());
    all.retain(|g| g.job == job);
    all
}

/// Sends every job's gauges to its store.
async fn publish(cfg: &BackupConfig, state: &Mutex<State>, dir: &std::path::Path) {
    let mut by_store: HashMap<String, Vec<crate::report::Gauge>> = HashMap::new();
    for job in &cfg.jobs {
        if let Some(store) = &job.report_to {
            by_store
                .entry(store.clone())
                .or_default()
                .extend(job_gauges(state, job.name.get_ref()));
        }
    }
    for (store, g) in by_store {
        if g.is_empty() {
            continue;
        }
        if let Err(e) = Reporter::new(&store, dir).send(g, Vec::new()).await {
            tracing::warn!("{e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cfg(text: &str) -> BackupConfig {
        let cfg: BackupConfig = toml::from_str(text).unwrap();
        cfg.validate().unwrap();
        cfg
    }

    const TWO_JOBS: &str = r#"
[[repositories]]
name = "r"
url = "/tmp/r"

[[jobs]]
name = "nightly"
repository = "r"
paths = ["/etc"]
schedule = "0 0 3 * * *"
timezone = "UTC"
[jobs.drill]
schedule = "0 30 3 * * *"

[[jobs]]
name = "hourly"
repository = "r"
paths = ["/srv"]
schedule = "0 0 * * * *"
timezone = "UTC"
"#;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, m, 0).unwrap()
    }

    #[test]
    fn cron_next_fire_honours_the_time_zone() {
        let text = TWO_JOBS.replacen("timezone = \"UTC\"", "timezone = \"Europe/Berlin\"", 1);
        let c = cfg(&text);
        let job = &c.jobs[0];
        // 03:00 in Berlin (UTC+1 in November) is 02:00 UTC.
        assert_eq!(job.schedule.next_after(job.timezone, t(0, 0)), Some(t(2, 0)));
        let c = cfg(TWO_JOBS);
        assert_eq!(
            c.jobs[0].schedule.next_after(c.jobs[0].timezone, t(0, 0)),
            Some(t(3, 0))
        );
    }

    #[test]
    fn new_jobs_wait_for_their_next_fire_then_run_once() {
        let c = cfg(TWO_JOBS);
        let mut state = State::default();
        let mut p = Planner::default();
        assert!(
            p.due(&c, &mut state, t(1, 30)).is_empty(),
            "first sight runs nothing"
        );
        assert!(p.due(&c, &mut state, t(1, 59)).is_empty());
        assert_eq!(p.next_wake(&c, &state, t(1, 59)), Some(t(2, 0)));
        assert_eq!(p.due(&c, &mut state, t(2, 0)), [Task::Backup("hourly".into())]);
        p.finished(&c, &Task::Backup("hourly".into()), true, t(2, 5));
        p.record_next(&c, &mut state, t(2, 5));
        assert_eq!(state.jobs["hourly"].next_backup, Some(t(3, 0)));
        assert_eq!(state.jobs["hourly"].interval_secs, Some(3600.0));
        assert_eq!(state.jobs["nightly"].interval_secs, Some(86_400.0));
        assert_eq!(state.jobs["nightly"].next_drill, Some(t(3, 30)));
        assert!(
            p.due(&c, &mut state, t(2, 10)).is_empty(),
            "ran once for the 02:00 fire"
        );
    }

    #[test]
    fn missed_fires_after_downtime_run_once_at_start() {
        let c = cfg(TWO_JOBS);
        let mut state = State::default();
        let mut p = Planner::default();
        p.due(&c, &mut state, t(1, 0));
        // Down from 01:00 to 07:10: five hourly fires and the nightly backup and drill missed.
        let mut p = Planner::default();
        let due = p.due(&c, &mut state, t(7, 10));
        // One task per repository at a time: both jobs use "r".
        assert_eq!(due, [Task::Backup("nightly".into())]);
        p.finished(&c, &due[0], true, t(7, 20));
        let due = p.due(&c, &mut state, t(7, 20));
        assert_eq!(due, [Task::Drill("nightly".into())]);
        p.finished(&c, &due[0], true, t(7, 25));
        assert_eq!(p.due(&c, &mut state, t(7, 25)), [Task::Backup("hourly".into())]);
        p.finished(&c, &Task::Backup("hourly".into()), true, t(7, 26));
        assert!(
            p.due(&c, &mut state, t(7, 30)).is_empty(),
            "each missed schedule ran once"
        );
    }

    #[test]
    fn no_overlap_while_a_task_runs() {
        let c = cfg(TWO_JOBS);
        let mut state = State::default();
        let mut p = Planner::default();
        p.due(&c, &mut state, t(1, 0));
        assert_eq!(p.due(&c, &mut state, t(2, 0)), [Task::Backup("hourly".into())]);
        // Still running at the next fire: not started twice, and the nightly job waits too.
        assert!(p.due(&c, &mut state, t(3, 0)).is_empty());
        p.finished(&c, &Task::Backup("hourly".into()), true, t(3, 1));
        let due = p.due(&c, &mut state, t(3, 1));
        assert_eq!(due.len(), 1, "{due:?}");
    }

    #[test]
    fn failures_retry_with_backoff_until_the_next_fire() {
        let c = cfg(TWO_JOBS);
        let mut state = State::default();
        let mut p = Planner::default();
        let nightly = Task::Backup("nightly".into());
        state.job("nightly").backup_fired = Some(t(2, 0));
        state.job("nightly").drill_fired = Some(t(5, 0));
        state.job("hourly").backup_fired = Some(t(5, 0));
        assert_eq!(p.due(&c, &mut state, t(3, 0)), std::slice::from_ref(&nightly));
        p.finished(&c, &nightly, false, t(3, 0));
        assert_eq!(p.retry_at(&nightly), Some(t(3, 1)));
        assert!(p.due(&c, &mut state, t(3, 0)).is_empty());
        assert_eq!(p.due(&c, &mut state, t(3, 1)), std::slice::from_ref(&nightly));
        p.finished(&c, &nightly, false, t(3, 1));
        assert_eq!(p.retry_at(&nightly), Some(t(3, 3)), "1, 2, 4 … minutes");
        p.due(&c, &mut state, t(3, 3));
        p.finished(&c, &nightly, false, t(3, 3));
        assert_eq!(p.retry_at(&nightly), Some(t(3, 7)));
        p.due(&c, &mut state, t(3, 7));
        p.finished(&c, &nightly, true, t(3, 8));
        assert_eq!(p.retry_at(&nightly), None, "success ends the retries");
        // Backoff is capped at an hour, and never runs past the next scheduled fire.
        assert_eq!(backoff(20), chrono::Duration::hours(1));
        let hourly = Task::Backup("hourly".into());
        state.job("hourly").backup_fired = Some(t(5, 0));
        assert!(p.due(&c, &mut state, t(6, 0)).contains(&hourly));
        for _ in 0..6 {
            p.finished(&c, &hourly, false, t(6, 59));
        }
        assert_eq!(p.retry_at(&hourly), None, "the 07:00 fire comes before any retry");
    }
}
