//! Running rule groups in the store: loading the configured files, one task per group on
//! Prometheus's schedule, writing results through the engine, reloading.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use super::file::{self, FileError, Group, Lang, Query};
use super::group::{Env, GroupState, Source};
use crate::ingest::Engine;
use crate::tsdb::{Labels, MatchOp, Matcher, Querier, SampleBatch, SeriesSamples};

/// `[store.rules]`, validated.
#[derive(Clone, Debug)]
pub(crate) struct RulesSettings {
    /// Globs of Prometheus rule files (PromQL).
    pub(crate) files: Vec<String>,
    /// Globs of Loki ruler files (LogQL).
    pub(crate) loki_files: Vec<String>,
    pub(crate) evaluation_interval: Duration,
    /// Load the built-in rule pack.
    pub(crate) defaults: bool,
    pub(crate) env: Env,
}

impl RulesSettings {
    /// No rules at all.
    #[cfg(test)]
    pub(crate) fn none() -> RulesSettings {
        RulesSettings {
            files: Vec::new(),
            loki_files: Vec::new(),
            evaluation_interval: Duration::from_secs(60),
            defaults: false,
            env: Env::default(),
        }
    }
}

/// The store's rules: the groups running now and the problems of the last load.
#[derive(Clone)]
pub(crate) struct Rules {
    inner: Arc<Inner>,
}

struct Inner {
    settings: RulesSettings,
    engine: Engine,
    /// Where firing and resolved alerts go after every evaluation, if notifications are on.
    notifier: Option<Arc<obs_notify::Notifier>>,
    state: Mutex<Loaded>,
    stats: RuleStats,
}

#[derive(Default)]
struct Loaded {
    groups: Vec<Running>,
    errors: Vec<FileError>,
    /// Whether a load has happened: groups of the first load restore their `for` state.
    started: bool,
}

struct Running {
    key: (String, String),
    /// When this group's task started (ms).
    started_ms: i64,
    state: Arc<Mutex<GroupState>>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// Counters for `/metrics`.
#[derive(Default)]
pub(crate) struct RuleStats {
    pub(crate) evaluations: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) missed: AtomicU64,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rules").finish_non_exhaustive()
    }
}

/// The files the globs name now, sorted, each once.
fn expand(globs: &[String]) -> (Vec<PathBuf>, Vec<FileError>) {
    let mut paths = Vec::new();
    let mut errors = Vec::new();
    for g in globs {
        match glob::glob(g) {
            Ok(found) => paths.extend(found.flatten()),
            Err(e) => errors.push(FileError {
                file: g.clone(),
                line: 0,
                col: 0,
                message: format!("not a valid glob: {e}"),
            }),
        }
    }
    paths.sort();
    paths.dedup();
    (paths, errors)
}

impl Rules {
    pub(crate) fn new(
        settings: RulesSettings,
        engine: Engine,
        notifier: Option<Arc<obs_notify::Notifier>>,
    ) -> Rules {
        Rules {
            inner: Arc::new(Inner {
                settings,
                engine,
                notifier,
                state: Mutex::new(Loaded::default()),
                stats: RuleStats::default(),
            }),
        }
    }

    pub(crate) fn stats(&self) -> &RuleStats {
        &self.inner.stats
    }

    /// Reads every configured file again and (re)starts the groups; a group whose file and
    /// name are unchanged keeps its alerts. A file that no longer loads keeps its previous
    /// groups running, so a bad edit does not silence alerts; its errors are returned.
    pub(crate) fn reload(&self) -> Vec<FileError> {
        let s = &self.inner.settings;
        let mut groups = Vec::new();
        let mut errors = Vec::new();
        if s.defaults {
            match file::parse("<built-in rules>", super::defaults::PACK, Lang::PromQL) {
                Ok(g) => groups.extend(g),
                Err(e) => errors.extend(e),
            }
        }
        let mut failed_files = Vec::new();
        for (globs, lang) in [(&s.files, Lang::PromQL), (&s.loki_files, Lang::LogQL)] {
            let (paths, errs) = expand(globs);
            errors.extend(errs);
            for p in paths {
                match file::load_file(&p, lang) {
                    Ok(g) => groups.extend(g),
                    Err(e) => {
                        failed_files.push(p.display().to_string());
                        errors.extend(e);
                    }
                }
            }
        }
        for e in &errors {
            tracing::error!(error = %e, "rule file not loaded");
        }
        let mut loaded = self.inner.state.lock().expect("rules lock");
        let restore = !loaded.started;
        loaded.started = true;
        let mut old: HashMap<(String, String), Running> =
            loaded.groups.drain(..).map(|r| (r.key.clone(), r)).collect();
        // Groups of files that failed to load keep running as they were.
        let mut next: Vec<Running> = Vec::new();
        let kept: Vec<(String, String)> = old
            .keys()
            .filter(|(f, _)| failed_files.contains(f))
            .cloned()
            .collect();
        for k in kept {
            next.extend(old.remove(&k));
        }
        let interval_ms = s.evaluation_interval.as_millis() as i64;
        for g in groups {
            let key = (g.file.clone(), g.name.clone());
            let mut state = GroupState::new(g, interval_ms);
            let previous = old.remove(&key);
            match &previous {
                Some(p) => {
                    state.take_state(&p.state.lock().expect("group lock"));
                    let _ = p.stop.send(true);
                }
                None if !restore => state.set_restored(),
                None => {}
            }
            next.push(self.start(key, state));
        }
        // Groups that are gone: stop them and mark what they wrote as stale.
        let now = now_ms();
        for (_, r) in old {
            let _ = r.stop.send(true);
            r.task.abort();
            let stale = r.state.lock().expect("group lock").stale_all(now);
            self.write(stale).ok();
        }
        loaded.groups = next;
        loaded.errors = errors.clone();
        errors
    }

    fn start(&self, key: (String, String), state: GroupState) -> Running {
        let state = Arc::new(Mutex::new(state));
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run_group(self.clone(), state.clone(), stop_rx));
        Running {
            key,
            started_ms: now_ms(),
            state,
            stop,
            task,
        }
    }

    /// Whether rule evaluation is healthy at `now` (ms): every group has evaluated within
    /// twice its interval plus 30 s (or started less long ago). The heartbeat is withheld
    /// otherwise; the error says which group lags.
    pub(crate) fn healthy(&self, now: i64) -> Result<(), String> {
        let loaded = self.inner.state.lock().expect("rules lock");
        for r in &loaded.groups {
            let st = r.state.lock().expect("group lock");
            let since = st.last_eval.unwrap_or(r.started_ms);
            let allowed = 2 * st.interval_ms + 30_000;
            if r.task.is_finished() || now - since > allowed {
                return Err(format!(
                    "rule group {:?} ({}) has not been evaluated for {} s (interval {} s)",
                    st.group.name,
                    st.group.file,
                    (now - since) / 1000,
                    st.interval_ms / 1000
                ));
            }
        }
        Ok(())
    }

    /// Stops every group (at shutdown, before the final commit).
    pub(crate) async fn stop(&self) {
        let groups: Vec<Running> = self
            .inner
            .state
            .lock()
            .expect("rules lock")
            .groups
            .drain(..)
            .collect();
        for g in &groups {
            let _ = g.stop.send(true);
        }
        for g in groups {
            let _ = g.task.await;
        }
    }

    /// A copy of every group's state, in file then group order.
    pub(crate) fn snapshot(&self) -> Vec<GroupState> {
        let loaded = self.inner.state.lock().expect("rules lock");
        let mut out: Vec<GroupState> = loaded
            .groups
            .iter()
            .map(|r| r.state.lock().expect("group lock").clone())
            .collect();
        out.sort_by(|a, b| (&a.group.file, &a.group.name).cmp(&(&b.group.file, &b.group.name)));
        out
    }

    /// The problems of the last load.
    pub(crate) fn errors(&self) -> Vec<FileError> {
        self.inner.state.lock().expect("rules lock").errors.clone()
    }

    /// Writes rule output through the WAL, like any pushed sample. Blocking.
    fn write(&self, series: Vec<SeriesSamples>) -> Result<(), String> {
        let engine = self.inner.engine.clone();
        let handle = tokio::runtime::Handle::current();
        handle
            .block_on(engine.ingest_samples(SampleBatch { series }))
            .map(|_| ())
            .map_err(|e| format!("writing the rule's samples failed: {e}"))
    }
}

/// Prometheus's spread of groups over their interval: a fixed offset from the group's
/// file and name.
fn offset_ms(g: &Group, interval_ms: i64) -> i64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (&g.file, &g.name).hash(&mut h);
    (h.finish() % interval_ms as u64) as i64
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The next evaluation time after `after` (ms) on the group's schedule.
fn next_slot(after: i64, interval: i64, offset: i64) -> i64 {
    let base = (after - offset).div_euclid(interval) * interval + offset;
    base + interval
}

async fn run_group(rules: Rules, state: Arc<Mutex<GroupState>>, mut stop: watch::Receiver<bool>) {
    let (interval, offset, restore) = {
        let s = state.lock().expect("group lock");
        let restore = s.rules.iter().any(|r| !r.restored);
        (s.interval_ms, offset_ms(&s.group, s.interval_ms), restore)
    };
    let mut ts = next_slot(now_ms(), interval, offset);
    let mut evaluations = 0u64;
    loop {
        let wait = Duration::from_millis((ts - now_ms()).max(0) as u64);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let (r, st) = (rules.clone(), state.clone());
        let restore_now = restore && evaluations == 1;
        let done = tokio::task::spawn_blocking(move || {
            crate::guard::deep(|| {
                let src = EngineSource(&r.inner.engine);
                let mut g = st.lock().expect("group lock");
                g.eval(ts, now_ms(), &src, &r.inner.settings.env, &mut |series| {
                    r.write(series)
                });
                let failed = g
                    .rules
                    .iter()
                    .filter(|x| x.health == super::group::Health::Err)
                    .count();
                if restore_now {
                    g.restore(now_ms(), &src);
                }
                if let Some(n) = &r.inner.notifier {
                    let now = chrono::Utc::now();
                    n.insert(to_notify(&g, ts, &r.inner.settings.env.external_url), now);
                }
                (g.rules.len() as u64, failed as u64)
            })
        })
        .await;
        if let Ok((n, failed)) = done {
            rules.inner.stats.evaluations.fetch_add(n, Ordering::Relaxed);
            rules.inner.stats.failures.fetch_add(failed, Ordering::Relaxed);
        }
        evaluations += 1;
        let (next, missed) = after_eval(ts, now_ms(), interval);
        if missed > 0 {
            state.lock().expect("group lock").missed += missed;
            rules.inner.stats.missed.fetch_add(missed, Ordering::Relaxed);
            tracing::warn!(
                missed,
                "rule group evaluation overran its interval; skipped the next slots"
            );
        }
        ts = next;
    }
}

/// After the evaluation of slot `ts` ended at `now`: the next slot to evaluate and how many
/// were skipped because the evaluation ran into them (a slot already begun is skipped).
fn after_eval(ts: i64, now: i64, interval: i64) -> (i64, u64) {
    let next = ts + interval;
    if now <= next {
        return (next, 0);
    }
    let missed = (now - next) / interval + 1;
    (next + missed * interval, missed as u64)
}

/// What the notifier is told after a group's evaluation at `ts`, as Prometheus tells
/// Alertmanager: firing alerts (valid for four intervals, so they resolve by themselves if
/// the rule goes away) and resolved ones with their end; pending alerts are not sent.
fn to_notify(g: &GroupState, ts: i64, external_url: &str) -> Vec<obs_notify::Alert> {
    let time = |ms: i64| chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default();
    let valid_for = 4 * g.interval_ms.max(60_000);
    let mut out = Vec::new();
    for r in &g.rules {
        let generator_url = format!(
            "{}/graph?g0.expr={}&g0.tab=1",
            external_url.trim_end_matches('/'),
            form_urlencoded::byte_serialize(r.rule.expr.trim().as_bytes()).collect::<String>()
        );
        for a in r.alerts.values() {
            let ends_at = match a.state {
                super::alert::State::Pending => continue,
                super::alert::State::Firing => ts + valid_for,
                super::alert::State::Inactive => match a.resolved_at {
                    Some(at) => at,
                    None => continue,
                },
            };
            out.push(obs_notify::Alert {
                labels: a
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                annotations: a.annotations.iter().cloned().collect(),
                starts_at: time(a.fired_at.unwrap_or(a.active_at)),
                ends_at: Some(time(ends_at)),
                generator_url: generator_url.clone(),
            });
        }
    }
    out
}

/// Rule queries over the store's data.
struct EngineSource<'a>(&'a Engine);

impl Source for EngineSource<'_> {
    fn query(&self, q: &Query, t: i64) -> Result<Vec<(Labels, f64)>, String> {
        match q {
            Query::Prom(expr) => prom_rows(self.0.tsdb(), expr, t),
            Query::Log(m) => {
                let limits = crate::logql::Limits::default();
                let v = crate::logql::metric::eval(self.0.logs(), m, &[t * 1_000_000], &limits)
                    .map_err(|e| e.to_string())?;
                Ok(log_rows(v))
            }
        }
    }

    fn last_sample(&self, labels: &Labels, mint: i64, maxt: i64) -> Option<(i64, f64)> {
        last_sample(self.0.tsdb(), labels, mint, maxt)
    }
}

/// A PromQL rule query's result as rows: an instant vector, or a scalar as one row.
pub(crate) fn prom_rows(
    q: &dyn Querier,
    expr: &promql_parser::parser::Expr,
    t: i64,
) -> Result<Vec<(Labels, f64)>, String> {
    let out =
        crate::promql::instant(q, expr, t, &crate::promql::Options::default()).map_err(|e| e.to_string())?;
    match out.value {
        crate::promql::QueryValue::Vector(v) => {
            Ok(v.into_iter().map(|s| ((*s.metric).clone(), s.v)).collect())
        }
        crate::promql::QueryValue::Scalar(_, v) => Ok(vec![(Labels::default(), v)]),
        _ => Err("rule result is not a vector or scalar".into()),
    }
}

/// A LogQL metric query's single-step result as rows.
fn log_rows(v: crate::logql::metric::Val) -> Vec<(Labels, f64)> {
    match v {
        crate::logql::metric::Val::Scalar(x) => vec![(Labels::default(), x)],
        crate::logql::metric::Val::Vector(series) => series
            .into_iter()
            .filter_map(|s| {
                let v = s.points.first().copied().flatten()?;
                let pairs = s
                    .labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                Some((Labels::new(pairs), v))
            })
            .collect(),
    }
}

/// The last sample of exactly the series `labels` in `[mint, maxt]`.
pub(crate) fn last_sample(q: &dyn Querier, labels: &Labels, mint: i64, maxt: i64) -> Option<(i64, f64)> {
    let matchers: Vec<Matcher> = labels
        .iter()
        .map(|(k, v)| Matcher::new(MatchOp::Equal, k, v))
        .collect();
    q.select(&matchers, mint, maxt)
        .ok()?
        .into_iter()
        .find(|s| s.labels.len() == labels.len())
        .and_then(|s| s.samples.last().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_keep_their_offset_in_the_interval_and_overruns_skip_slots() {
        // Slots are `offset + k * interval`, the first one after now.
        assert_eq!(next_slot(125_000, 60_000, 7_000), 127_000);
        assert_eq!(next_slot(127_000, 60_000, 7_000), 187_000);
        assert_eq!(next_slot(126_999, 60_000, 7_000), 127_000);
        // On time: the next slot, nothing missed.
        assert_eq!(after_eval(60_000, 60_500, 60_000), (120_000, 0));
        assert_eq!(after_eval(60_000, 120_000, 60_000), (120_000, 0));
        // Ran 10 s into the next slot: that one is skipped and counted.
        assert_eq!(after_eval(60_000, 130_000, 60_000), (180_000, 1));
        // Ran past two slots.
        assert_eq!(after_eval(60_000, 185_000, 60_000), (240_000, 2));
    }
}
