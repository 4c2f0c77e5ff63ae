//! Push heartbeats: cron jobs and backups on machines without a collector report in with
//! `GET|POST /api/v1/push/<name>?status=up|down&msg=...` (ingest role).
//!
//! Each push is written through the WAL like any sample: `obs_push_last_seen_timestamp_seconds`
//! and `obs_push_status` (1 up, 0 down) with labels `job="obs-push"` and `name`, plus one log
//! line `{service_name="obs-push", name="..."}` with the message. The heartbeats' last state
//! is kept in `<data_dir>/heartbeats.json` (written whole through a temporary file and a
//! rename) and recorded again every 15 s, so a heartbeat that stopped is still a current
//! series the built-in `HeartbeatMissing` rule compares with its deadline: declared ones
//! (`[[store.heartbeats]]`) also get `obs_push_deadline_seconds` (period + grace). A declared
//! heartbeat that never pushed counts from when it was first declared. `obs_push_up` (1 when
//! the last push said up and, for a declared heartbeat, is not late) is what the status page
//! counts uptime from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ingest::Engine;
use crate::model::{LogBatch, LogEntry, LogStream};
use crate::tsdb::{SampleBatch, SeriesSamples};

use super::HeartbeatConfig;

/// Distinct heartbeat names kept (declared ones always are): a token holder cannot grow
/// the state without bound.
pub(crate) const MAX_NAMES: usize = 1000;
/// Longest message kept, in bytes.
pub(crate) const MAX_MSG: usize = 1024;
/// How often every heartbeat's state is written again.
const RECORD_EVERY: Duration = Duration::from_secs(15);

/// One heartbeat's last state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Beat {
    /// Unix milliseconds of the last push (or of the first declaration, before any push).
    pub last_seen_ms: i64,
    pub up: bool,
    pub msg: String,
    /// Whether it ever pushed.
    pub pushed: bool,
}

/// The heartbeats, their config and their state file.
#[derive(Debug, Clone)]
pub(crate) struct Heartbeats {
    declared: Arc<Vec<HeartbeatConfig>>,
    state: Arc<Mutex<BTreeMap<String, Beat>>>,
    /// Held while the state file is written, so writes land in push order.
    writing: Arc<tokio::sync::Mutex<()>>,
    file: PathBuf,
    engine: Engine,
}

/// A name fit for a URL path and a label value: letters, digits, `.`, `-`, `_`.
pub(crate) fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

impl Heartbeats {
    /// Loads the state file (a corrupt one is moved aside and reported), adding declared
    /// heartbeats not seen before as of `now_ms`.
    pub(crate) fn open(
        declared: Vec<HeartbeatConfig>,
        data_dir: &Path,
        engine: Engine,
        now_ms: i64,
    ) -> Heartbeats {
        let file = data_dir.join("heartbeats.json");
        let mut state: BTreeMap<String, Beat> = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                let aside = file.with_extension("json.corrupt");
                tracing::error!(file = %file.display(), moved_to = %aside.display(), error = %e, "the heartbeat state is corrupt; starting afresh");
                let _ = std::fs::rename(&file, &aside);
                BTreeMap::new()
            }),
            Err(_) => BTreeMap::new(),
        };
        for d in &declared {
            state.entry(d.name.clone()).or_insert(Beat {
                last_seen_ms: now_ms,
                up: true,
                msg: String::new(),
                pushed: false,
            });
        }
        Heartbeats {
            declared: Arc::new(declared),
            state: Arc::new(Mutex::new(state)),
            writing: Arc::default(),
            file,
            engine,
        }
    }

    pub(crate) fn declared(&self, name: &str) -> Option<&HeartbeatConfig> {
        self.declared.iter().find(|d| d.name == name)
    }

    /// Every heartbeat's state, by name.
    pub(crate) fn snapshot(&self) -> BTreeMap<String, Beat> {
        self.state.lock().expect("heartbeat lock").clone()
    }

    /// Records a push: state, samples and a log line, all durable when this returns.
    pub(crate) async fn push(&self, name: &str, up: bool, msg: &str, now_ms: i64) -> Result<(), PushError> {
        if !valid_name(name) {
            return Err(PushError::BadName);
        }
        let msg = crate::model::truncate(msg.trim(), MAX_MSG).to_string();
        let beat = Beat {
            last_seen_ms: now_ms,
            up,
            msg: msg.clone(),
            pushed: true,
        };
        let writing = self.writing.lock().await;
        let state = {
            let mut state = self.state.lock().expect("heartbeat lock");
            if !state.contains_key(name) && state.len() >= MAX_NAMES {
                return Err(PushError::TooMany);
            }
            state.insert(name.to_string(), beat.clone());
            serde_json::to_vec_pretty(&*state).expect("heartbeat state serializes")
        };
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || write_atomically(&file, &state))
            .await
            .map_err(|e| PushError::Store(e.to_string()))?
            .map_err(|e| PushError::Store(format!("cannot write the heartbeat state: {e}")))?;
        drop(writing);
        self.engine
            .ingest_samples(self.samples(&[(name.to_string(), beat)], now_ms))
            .await
            .map_err(|e| PushError::Store(e.to_string()))?;
        let line = match (up, msg.is_empty()) {
            (true, true) => "up".to_string(),
            (false, true) => "down".to_string(),
            (true, false) => format!("up: {msg}"),
            (false, false) => format!("down: {msg}"),
        };
        let labels = [("service_name", "obs-push"), ("name", name)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let level = if up { "info" } else { "error" };
        let batch = LogBatch {
            streams: vec![LogStream {
                labels,
                entries: vec![LogEntry {
                    ts_ns: now_ms * 1_000_000,
                    line,
                    metadata: vec![("detected_level".into(), level.into())],
                }],
            }],
        };
        self.engine
            .ingest_logs(batch)
            .await
            .map_err(|e| PushError::Store(e.to_string()))?;
        Ok(())
    }

    /// The series of these heartbeats at `t_ms`.
    fn samples(&self, beats: &[(String, Beat)], t_ms: i64) -> SampleBatch {
        let series = |metric: &str, name: &str, v: f64| SeriesSamples {
            labels: vec![
                ("__name__".into(), metric.into()),
                ("job".into(), "obs-push".into()),
                ("name".into(), name.into()),
            ],
            samples: vec![(t_ms, v)],
        };
        let mut out = Vec::new();
        for (name, b) in beats {
            out.push(series(
                "obs_push_last_seen_timestamp_seconds",
                name,
                b.last_seen_ms as f64 / 1000.0,
            ));
            out.push(series("obs_push_status", name, if b.up { 1.0 } else { 0.0 }));
            let mut up = b.up;
            if let Some(d) = self.declared(name) {
                let deadline = (d.period + d.grace).as_secs_f64();
                out.push(series("obs_push_deadline_seconds", name, deadline));
                up &= (t_ms - b.last_seen_ms) as f64 / 1000.0 <= deadline;
            }
            out.push(series("obs_push_up", name, if up { 1.0 } else { 0.0 }));
        }
        SampleBatch { series: out }
    }

    /// Writes every heartbeat's state again every 15 s until `stop`.
    pub(crate) async fn run(self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(RECORD_EVERY);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let beats: Vec<(String, Beat)> = self.snapshot().into_iter().collect();
            if beats.is_empty() {
                continue;
            }
            let batch = self.samples(&beats, super::now_ms());
            if let Err(e) = self.engine.ingest_samples(batch).await {
                tracing::warn!(error = %e, "recording the heartbeats failed");
            }
        }
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// Why a push was refused.
#[derive(Debug)]
pub(crate) enum PushError {
    BadName,
    TooMany,
    Store(String),
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushError::BadName => write!(
                f,
                "a heartbeat name is 1 to 64 letters, digits, '.', '-' or '_' (e.g. /api/v1/push/nightly-backup)"
            ),
            PushError::TooMany => write!(
                f,
                "there are already {MAX_NAMES} heartbeats; declare the ones you use in [[store.heartbeats]]"
            ),
            PushError::Store(e) => write!(f, "the push could not be stored: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_url_and_label_safe() {
        assert!(valid_name("nightly-backup.nas_1"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("a b"));
        assert!(!valid_name(&"x".repeat(65)));
    }
}
