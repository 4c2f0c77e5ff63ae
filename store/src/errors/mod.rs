//! Error tracking: exceptions in logs, spans and Sentry events grouped into issues.
//!
//! ```text
//! ingest (async, per request)   extract.rs: log line / span -> ErrorEvent (stack.rs parses
//!                               traces; fingerprint.rs groups) ; sentry.rs: SDK events ->
//!                               log lines. An error line gets metadata error_issue=<id>.
//!   -> WAL append -> apply (WAL thread, sequence order) -> Tracker::observe(seq, events)
//!   -> <data>/errors/issues.json, written at most every 10 s and at close and snapshot
//! replay: records after the file's `wal_seq` are extracted again (tagged log lines, spans
//!         holding "exception") and observed; the WAL keeps them until the file covers them.
//! read:   api.rs /api/v1/errors[/<id>] ; /metrics: obs_error_events_total{service_name, issue}
//! ```
//!
//! **Format** of `issues.json` (version 1): `{"format": 1, "wal_seq": N, "issues": [Issue...],
//! "other": {service: events}, "dropped": N}`, written whole through a temporary file and a
//! rename. Each issue keeps the grouping version that made it (`version`), its last
//! [`KEEP_OCCURRENCES`] occurrences, the frames of the newest, hourly counts of its last 24
//! hours of events and up to [`MAX_USERS`] hashed user ids. A corrupt file is moved aside
//! (`issues.json.corrupt`) and reported; tracking starts again from the WAL that is left.
//!
//! Bounds: at most `max_issues` issues (events of further new fingerprints are counted as
//! `dropped` and under their service's `issue="other"`); `metric_issues_per_service` issues
//! per service get their own `issue` label, the rest count under `issue="other"`. Issues not
//! seen within the logs retention period are deleted with the logs.

mod api;
pub(crate) mod extract;
pub(crate) mod fingerprint;
pub(crate) mod sentry;
mod stack;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub(crate) use api::{admin_router, query_router, sentry_router};
use extract::{ErrorEvent, Source};
use fingerprint::Frame;

use crate::model::{LogBatch, SpanBatch};

/// Occurrences kept per issue.
pub(crate) const KEEP_OCCURRENCES: usize = 5;
/// Distinct users counted per issue.
pub(crate) const MAX_USERS: usize = 1000;
/// How often a changed state is written out.
const PERSIST_EVERY: Duration = Duration::from_secs(10);
/// How long a new or regressed issue shows on `obs_error_issue_noticed_timestamp_seconds`.
const NOTICED_FOR_MS: i64 = 3_600_000;
/// New or regressed issues per service on that metric.
const NOTICED_PER_SERVICE: usize = 20;

/// `[store.errors]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ErrorsConfig {
    /// Group errors at all.
    pub enabled: bool,
    /// Issues kept in all.
    pub max_issues: usize,
    /// Issues per service with their own `issue` label on `obs_error_events_total`.
    pub metric_issues_per_service: usize,
    /// Sentry project id -> service name.
    pub sentry_projects: BTreeMap<String, String>,
}

impl Default for ErrorsConfig {
    fn default() -> Self {
        ErrorsConfig {
            enabled: true,
            max_issues: 10_000,
            metric_issues_per_service: 50,
            sentry_projects: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    Unresolved,
    Resolved,
    Ignored,
}

impl Status {
    pub(crate) fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "unresolved" => Status::Unresolved,
            "resolved" => Status::Resolved,
            "ignored" => Status::Ignored,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Unresolved => "unresolved",
            Status::Resolved => "resolved",
            Status::Ignored => "ignored",
        }
    }
}

/// One occurrence, as an issue keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Occurrence {
    pub ts_ns: i64,
    pub source: Source,
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trace_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub span_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub release: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub environment: String,
    /// The log stream's selector (logs and Sentry events).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stream: String,
}

/// A group of occurrences with one fingerprint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Issue {
    pub id: String,
    /// The grouping version that made it.
    pub version: u8,
    pub service: String,
    pub type_name: String,
    pub title: String,
    pub culprit: String,
    pub level: String,
    pub first_seen_ns: i64,
    pub last_seen_ns: i64,
    pub count: u64,
    pub status: Status,
    /// Wall-clock Unix ms of the last status change (resolve, ignore, regression).
    pub status_changed_ms: i64,
    /// Wall-clock Unix ms when the store created it, or saw it come back after a resolve.
    pub noticed_ms: i64,
    /// Whether `noticed_ms` was a regression.
    pub regression: bool,
    /// The newest occurrence's frames, innermost first.
    pub frames: Vec<Frame>,
    /// Oldest first.
    pub occurrences: VecDeque<Occurrence>,
    /// (Unix hour, events), oldest first; the last 24 hours of events seen.
    pub hourly: Vec<(i64, u32)>,
    /// Hashes of the users affected, sorted; at most [`MAX_USERS`].
    pub users: Vec<u64>,
    /// Whether it has its own `issue` label on `obs_error_events_total`.
    pub metric: bool,
}

impl Issue {
    fn new(ev: &ErrorEvent, now_ms: i64, metric: bool) -> Issue {
        Issue {
            id: ev.issue.clone(),
            version: fingerprint::VERSION,
            service: ev.cx.service.clone(),
            type_name: ev.type_name.clone(),
            title: ev.title.clone(),
            culprit: ev.culprit.clone(),
            level: ev.cx.level.clone(),
            first_seen_ns: ev.cx.ts_ns,
            last_seen_ns: ev.cx.ts_ns,
            count: 0,
            status: Status::Unresolved,
            status_changed_ms: now_ms,
            noticed_ms: now_ms,
            regression: false,
            frames: Vec::new(),
            occurrences: VecDeque::new(),
            hourly: Vec::new(),
            users: Vec::new(),
            metric,
        }
    }

    /// Counts `ev`; a resolved issue seen after its resolve becomes unresolved again.
    fn add(&mut self, ev: ErrorEvent, now_ms: i64) {
        self.count += 1;
        self.first_seen_ns = self.first_seen_ns.min(ev.cx.ts_ns);
        if self.status == Status::Resolved && ev.cx.ts_ns / 1_000_000 > self.status_changed_ms {
            self.status = Status::Unresolved;
            self.status_changed_ms = now_ms;
            self.noticed_ms = now_ms;
            self.regression = true;
        }
        let hour = ev.cx.ts_ns.div_euclid(3_600_000_000_000);
        match self.hourly.binary_search_by_key(&hour, |(h, _)| *h) {
            Ok(i) => self.hourly[i].1 += 1,
            Err(i) => self.hourly.insert(i, (hour, 1)),
        }
        let newest = self.hourly.last().map_or(hour, |(h, _)| *h);
        self.hourly.retain(|(h, _)| *h > newest - 24);
        if let Some(user) = &ev.cx.user {
            let h = xxhash_rust::xxh3::xxh3_64(user.as_bytes());
            if let Err(i) = self.users.binary_search(&h) {
                if self.users.len() < MAX_USERS {
                    self.users.insert(i, h);
                }
            }
        }
        if ev.cx.ts_ns >= self.last_seen_ns || self.frames.is_empty() {
            self.last_seen_ns = ev.cx.ts_ns;
            self.frames = ev.frames;
            self.level = ev.cx.level;
        }
        let at = self.occurrences.partition_point(|o| o.ts_ns <= ev.cx.ts_ns);
        self.occurrences.insert(
            at,
            Occurrence {
                ts_ns: ev.cx.ts_ns,
                source: ev.cx.source,
                message: ev.message,
                trace_id: ev.cx.trace_id,
                span_id: ev.cx.span_id,
                host: ev.cx.host,
                release: ev.cx.release,
                environment: ev.cx.environment,
                stream: ev.cx.stream,
            },
        );
        while self.occurrences.len() > KEEP_OCCURRENCES {
            self.occurrences.pop_front();
        }
    }

    /// Events per hour over the 24 hours ending with the one holding `now_ms`, oldest first.
    pub(crate) fn last_24h(&self, now_ms: i64) -> [u32; 24] {
        let now_hour = (now_ms * 1_000_000).div_euclid(3_600_000_000_000);
        let mut out = [0; 24];
        for (h, n) in &self.hourly {
            let ago = now_hour - h;
            if (0..24).contains(&ago) {
                out[23 - ago as usize] += n;
            }
        }
        out
    }
}

/// What is on disk.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Saved {
    format: u32,
    wal_seq: u64,
    issues: Vec<Issue>,
    other: BTreeMap<String, u64>,
    dropped: u64,
}

#[derive(Debug, Default)]
struct State {
    /// The last WAL record observed.
    wal_seq: u64,
    /// `wal_seq` of the state on disk.
    persisted_seq: u64,
    issues: BTreeMap<String, Issue>,
    other: BTreeMap<String, u64>,
    dropped: u64,
    /// Issues per service with their own metric label (every service with issues is here).
    labelled: BTreeMap<String, usize>,
    /// Changes made (events observed, statuses set, issues expired), and how many of them the
    /// file holds.
    changes: u64,
    saved_changes: u64,
    last_write: Option<Instant>,
}

impl State {
    fn count_labelled(&mut self) {
        self.labelled.clear();
        for i in self.issues.values() {
            *self.labelled.entry(i.service.clone()).or_default() += usize::from(i.metric);
        }
    }
}

/// The issues, their state file, and counters.
#[derive(Debug)]
pub(crate) struct Tracker {
    config: ErrorsConfig,
    file: PathBuf,
    state: Mutex<State>,
    /// Held while the file is written, so writes land in order.
    writing: Mutex<()>,
    /// Sentry envelope items dropped, by [`sentry::DROPPED_TYPES`].
    pub(crate) sentry_dropped: [AtomicU64; sentry::DROPPED_TYPES.len()],
}

pub(crate) fn now_ms() -> i64 {
    crate::api::params::now_ns() / 1_000_000
}

impl Tracker {
    /// Opens `<data>/errors/issues.json` (a corrupt one is moved aside and reported).
    pub(crate) fn open(data_dir: &Path, config: ErrorsConfig) -> std::io::Result<Tracker> {
        let dir = data_dir.join("errors");
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("issues.json");
        let saved: Saved = match std::fs::read(&file) {
            Ok(bytes) => match serde_json::from_slice::<Saved>(&bytes) {
                Ok(s) if s.format == 1 => s,
                Ok(s) => {
                    return Err(std::io::Error::other(format!(
                        "{} is format {}; this obs reads format 1 (upgrade obs, or move the file away to start the issues afresh)",
                        file.display(),
                        s.format
                    )))
                }
                Err(e) => {
                    let aside = file.with_extension("json.corrupt");
                    tracing::error!(file = %file.display(), moved_to = %aside.display(), error = %e, "the error issues file is corrupt; moved aside, issues start again from the WAL");
                    std::fs::rename(&file, &aside)?;
                    Saved::default()
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Saved::default(),
            Err(e) => return Err(e),
        };
        let mut state = State {
            wal_seq: saved.wal_seq,
            persisted_seq: saved.wal_seq,
            issues: saved.issues.into_iter().map(|i| (i.id.clone(), i)).collect(),
            other: saved.other,
            dropped: saved.dropped,
            changes: 0,
            saved_changes: 0,
            last_write: None,
            labelled: BTreeMap::new(),
        };
        state.count_labelled();
        Ok(Tracker {
            config,
            file,
            state: Mutex::new(state),
            writing: Mutex::new(()),
            sentry_dropped: Default::default(),
        })
    }

    pub(crate) fn config(&self) -> &ErrorsConfig {
        &self.config
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Finds the errors in a batch about to be written, and tags each error line with its
    /// issue (replacing any `error_issue` a client sent).
    /// (`levels`: the batch's [`level_codes`](crate::logs::level_codes).)
    pub(crate) fn annotate_logs(&self, batch: &mut LogBatch, levels: &[u8]) -> Vec<ErrorEvent> {
        let mut found = Vec::new();
        if !self.config.enabled {
            return found;
        }
        let mut codes = levels.iter().copied();
        for s in &mut batch.streams {
            for e in &mut s.entries {
                let code = codes.next();
                e.metadata.retain(|(k, _)| k != extract::ISSUE_KEY);
                if let Some(ev) = extract::from_log(&s.labels, e, code) {
                    e.metadata.push((extract::ISSUE_KEY.into(), ev.issue.clone()));
                    found.push(ev);
                }
            }
        }
        found
    }

    /// The errors in a batch of spans.
    pub(crate) fn find_in_spans(&self, batch: &SpanBatch) -> Vec<ErrorEvent> {
        if !self.config.enabled {
            return Vec::new();
        }
        batch.spans.iter().flat_map(extract::from_span).collect()
    }

    /// The last WAL record the state holds.
    pub(crate) fn wal_seq(&self) -> u64 {
        self.lock().wal_seq
    }

    /// Whether the state already holds WAL record `seq` (replay skips it).
    pub(crate) fn holds(&self, seq: u64) -> bool {
        !self.config.enabled || seq <= self.lock().wal_seq
    }

    /// The errors of a replayed log record: its tagged lines, found again.
    pub(crate) fn replayed_logs(batch: &LogBatch, levels: &[u8]) -> Vec<ErrorEvent> {
        let mut codes = levels.iter().copied();
        let mut found = Vec::new();
        for s in &batch.streams {
            for e in &s.entries {
                let code = codes.next();
                if e.metadata.iter().any(|(k, _)| k == extract::ISSUE_KEY) {
                    found.extend(extract::from_log(&s.labels, e, code));
                }
            }
        }
        found
    }

    /// Counts the errors of WAL record `seq` (once: a record the state holds is skipped).
    pub(crate) fn observe(&self, seq: u64, events: Vec<ErrorEvent>) {
        if events.is_empty() || !self.config.enabled {
            return;
        }
        let now = now_ms();
        let mut st = self.lock();
        if seq <= st.wal_seq {
            return;
        }
        st.wal_seq = seq;
        st.changes += 1;
        for ev in events {
            let st = &mut *st;
            if !st.issues.contains_key(&ev.issue) {
                if st.issues.len() >= self.config.max_issues {
                    st.dropped += 1;
                    if st.labelled.contains_key(&ev.cx.service) {
                        *st.other.entry(ev.cx.service.clone()).or_default() += 1;
                    }
                    continue;
                }
                let labelled = st.labelled.entry(ev.cx.service.clone()).or_default();
                let metric = *labelled < self.config.metric_issues_per_service;
                *labelled += usize::from(metric);
                st.issues.insert(ev.issue.clone(), Issue::new(&ev, now, metric));
            }
            let issue = st.issues.get_mut(&ev.issue).expect("inserted above");
            if !issue.metric {
                *st.other.entry(ev.cx.service.clone()).or_default() += 1;
            }
            issue.add(ev, now);
        }
    }

    /// The first WAL record the state on disk lacks, while the state in memory has it.
    pub(crate) fn keep_wal_from(&self) -> Option<u64> {
        let st = self.lock();
        (st.wal_seq > st.persisted_seq).then_some(st.persisted_seq + 1)
    }

    /// Writes the state if it changed, at most every [`PERSIST_EVERY`] unless `force`.
    pub(crate) fn persist(&self, force: bool) -> std::io::Result<()> {
        {
            let st = self.lock();
            let recent = st.last_write.is_some_and(|t| t.elapsed() < PERSIST_EVERY);
            if st.changes == st.saved_changes || (!force && recent) {
                return Ok(());
            }
        }
        self.write()
    }

    /// Writes the state whole: serialised under the lock, written and synced outside it (so
    /// the WAL thread waits only for the former), one writer at a time.
    fn write(&self) -> std::io::Result<()> {
        let _writer = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let (bytes, seq, changes) = {
            let st = self.lock();
            let saved = SavedRef {
                format: 1,
                wal_seq: st.wal_seq,
                issues: st.issues.values().collect(),
                other: &st.other,
                dropped: st.dropped,
            };
            let bytes = serde_json::to_vec(&saved).map_err(std::io::Error::other)?;
            (bytes, st.wal_seq, st.changes)
        };
        let tmp = self.file.with_extension("json.tmp");
        {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &self.file)?;
        if let Some(dir) = self.file.parent() {
            std::fs::File::open(dir)?.sync_all()?;
        }
        let mut st = self.lock();
        st.persisted_seq = seq;
        st.saved_changes = changes;
        st.last_write = Some(Instant::now());
        Ok(())
    }

    /// Issues matching `filter`, most recently seen first.
    pub(crate) fn list(&self, filter: &Filter) -> Vec<Issue> {
        let st = self.lock();
        let mut out: Vec<&Issue> = st
            .issues
            .values()
            .filter(|i| filter.service.as_ref().is_none_or(|s| &i.service == s))
            .filter(|i| filter.status.is_none_or(|s| i.status == s))
            .filter(|i| i.last_seen_ns >= filter.since_ns)
            .collect();
        out.sort_by(|a, b| b.last_seen_ns.cmp(&a.last_seen_ns).then(a.id.cmp(&b.id)));
        out.into_iter().take(filter.limit).cloned().collect()
    }

    /// The issue whose id is or starts with `id` (at least 4 characters, and unambiguous).
    pub(crate) fn get(&self, id: &str) -> Result<Issue, String> {
        let st = self.lock();
        find(&st, id).map(|i| st.issues[&i].clone())
    }

    /// Sets an issue's status (and writes the state at once).
    pub(crate) fn set_status(&self, id: &str, status: Status) -> Result<Issue, String> {
        let mut st = self.lock();
        let id = find(&st, id)?;
        let issue = st.issues.get_mut(&id).expect("found");
        issue.status = status;
        issue.status_changed_ms = now_ms();
        let issue = issue.clone();
        st.changes += 1;
        drop(st);
        self.write()
            .map_err(|e| format!("cannot write {}: {e}", self.file.display()))?;
        Ok(issue)
    }

    /// Deletes issues last seen before `cutoff_ns`; returns how many.
    pub(crate) fn drop_before(&self, cutoff_ns: i64) -> usize {
        let mut st = self.lock();
        let before = st.issues.len();
        st.issues.retain(|_, i| i.last_seen_ns >= cutoff_ns);
        let dropped = before - st.issues.len();
        if dropped > 0 {
            st.changes += 1;
            st.count_labelled();
        }
        dropped
    }

    /// Appends the error metrics to a `/metrics` text.
    pub(crate) fn render_metrics(&self, out: &mut String) {
        if !self.config.enabled {
            return;
        }
        let st = self.lock();
        let now = now_ms();
        header(out, "obs_error_events_total", "counter", "Error events grouped into issues, by service and issue (issue=\"other\": issues past the per-service label cap).");
        for i in st.issues.values().filter(|i| i.metric) {
            let _ = writeln!(
                out,
                "obs_error_events_total{{service_name=\"{}\",issue=\"{}\"}} {}",
                escape(&i.service),
                i.id,
                i.count
            );
        }
        for (service, n) in &st.other {
            let _ = writeln!(
                out,
                "obs_error_events_total{{service_name=\"{}\",issue=\"other\"}} {n}",
                escape(service)
            );
        }
        header(out, "obs_error_issue_info", "gauge", "The title and type of each issue with its own label on obs_error_events_total (value 1), for joins.");
        for i in st.issues.values().filter(|i| i.metric) {
            let _ = writeln!(
                out,
                "obs_error_issue_info{{service_name=\"{}\",issue=\"{}\",title=\"{}\",type=\"{}\",status=\"{}\"}} 1",
                escape(&i.service),
                i.id,
                escape(&i.title),
                escape(&i.type_name),
                i.status.as_str()
            );
        }
        let mut by_status: BTreeMap<(&str, &str), u64> = BTreeMap::new();
        for i in st.issues.values() {
            *by_status.entry((&i.service, i.status.as_str())).or_default() += 1;
        }
        header(out, "obs_error_issues", "gauge", "Issues by service and status.");
        for ((service, status), n) in by_status {
            let _ = writeln!(
                out,
                "obs_error_issues{{service_name=\"{}\",status=\"{status}\"}} {n}",
                escape(service)
            );
        }
        header(out, "obs_error_issue_noticed_timestamp_seconds", "gauge", "When an issue was first seen, or seen again after a resolve (reason=\"regression\"); for an hour.");
        let mut per_service: BTreeMap<&str, usize> = BTreeMap::new();
        let mut recent: Vec<&Issue> = st
            .issues
            .values()
            .filter(|i| now - i.noticed_ms < NOTICED_FOR_MS && i.status == Status::Unresolved)
            .collect();
        recent.sort_by_key(|i| std::cmp::Reverse(i.noticed_ms));
        for i in recent {
            let n = per_service.entry(&i.service).or_default();
            *n += 1;
            if *n > NOTICED_PER_SERVICE {
                continue;
            }
            let _ = writeln!(
                out,
                "obs_error_issue_noticed_timestamp_seconds{{service_name=\"{}\",issue=\"{}\",title=\"{}\",reason=\"{}\"}} {:.3}",
                escape(&i.service),
                i.id,
                escape(&i.title),
                if i.regression { "regression" } else { "new" },
                i.noticed_ms as f64 / 1000.0
            );
        }
        header(
            out,
            "obs_error_events_dropped_total",
            "counter",
            "Error events of new issues past max_issues, not tracked.",
        );
        let _ = writeln!(out, "obs_error_events_dropped_total {}", st.dropped);
        header(
            out,
            "obs_sentry_items_dropped_total",
            "counter",
            "Sentry envelope items accepted and dropped (not events), by type.",
        );
        for (kind, n) in sentry::DROPPED_TYPES.iter().zip(&self.sentry_dropped) {
            let _ = writeln!(
                out,
                "obs_sentry_items_dropped_total{{type=\"{kind}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
    }
}

#[derive(Serialize)]
struct SavedRef<'a> {
    format: u32,
    wal_seq: u64,
    issues: Vec<&'a Issue>,
    other: &'a BTreeMap<String, u64>,
    dropped: u64,
}

/// Which issues to list.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    pub service: Option<String>,
    pub status: Option<Status>,
    pub since_ns: i64,
    pub limit: usize,
}

fn find(st: &State, id: &str) -> Result<String, String> {
    if st.issues.contains_key(id) {
        return Ok(id.to_string());
    }
    if id.len() < 4 {
        return Err(format!("no issue {id:?} (give at least 4 characters of its id)"));
    }
    let mut matches = st
        .issues
        .range(id.to_string()..)
        .take_while(|(k, _)| k.starts_with(id));
    match (matches.next(), matches.next()) {
        (Some((k, _)), None) => Ok(k.clone()),
        (Some(_), Some(_)) => Err(format!(
            "{id:?} is the start of several issue ids; give more of it"
        )),
        (None, _) => Err(format!("no issue {id:?} (see `obs errors` for the ids)")),
    }
}

/// The `# HELP` and `# TYPE` lines of a metric.
fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value in the Prometheus text format.
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
