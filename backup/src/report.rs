//! Backup health into the store: `obs_backup_*` gauges by Prometheus remote_write and one
//! structured log line per run by Loki push, both to the job's `report_to` store.
//!
//! Gauges are derived from the [`State`] (labels `job`, `repo`) and sent again every minute
//! by the scheduler, so they stay visible to instant queries (5-minute lookback) and the
//! snapshot age keeps growing between runs. When the store cannot be reached, what was to
//! be sent is appended to `report-spool.jsonl` (bounded, oldest dropped with a warning) and
//! delivered, with its original timestamps, before anything newer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::jobs::{DrillRun, JobRun};
use crate::state::State;

/// Spool entries kept at most.
const SPOOL_LIMIT: usize = 10_000;

#[derive(Clone, PartialEq, Message)]
struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, Message)]
struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, Message)]
struct Label {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, Message)]
struct Sample {
    #[prost(double, tag = "1")]
    value: f64,
    #[prost(int64, tag = "2")]
    timestamp: i64,
}

/// One gauge value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gauge {
    pub name: String,
    pub job: String,
    pub repo: String,
    pub value: f64,
    pub time_ms: i64,
}

/// One log line with its stream labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    pub job: String,
    pub repo: String,
    pub level: String,
    pub time_ns: i64,
    pub line: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Batch {
    gauges: Vec<Gauge>,
    logs: Vec<LogLine>,
}

/// The gauges for every job in `state`, as of `now`.
pub fn gauges(state: &State, now: DateTime<Utc>) -> Vec<Gauge> {
    let mut out = Vec::new();
    let t = now.timestamp_millis();
    for (job, s) in &state.jobs {
        let repo = s.repo.clone();
        let mut g = |name: &str, value: f64| {
            out.push(Gauge {
                name: name.to_string(),
                job: job.clone(),
                repo: repo.clone(),
                value,
                time_ms: t,
            })
        };
        if let Some(r) = &s.last_run {
            g("obs_backup_last_run_success", if r.success { 1.0 } else { 0.0 });
            g("obs_backup_duration_seconds", r.duration_secs);
            g("obs_backup_bytes_added", r.bytes_added as f64);
        }
        if let Some(r) = &s.last_success {
            let end = r.started.timestamp_millis() as f64 / 1000.0 + r.duration_secs;
            g("obs_backup_last_success_timestamp_seconds", end);
            let age = (now - r.started).num_milliseconds().max(0) as f64 / 1000.0;
            g("obs_backup_snapshot_age_seconds", age);
        }
        if let Some(t) = s.next_backup {
            g("obs_backup_next_run_timestamp_seconds", t.timestamp() as f64);
        }
        if let Some(i) = s.interval_secs {
            g("obs_backup_interval_seconds", i);
        }
        if let Some(t) = s.next_drill {
            g(
                "obs_backup_drill_next_run_timestamp_seconds",
                t.timestamp() as f64,
            );
        }
        if let Some(d) = &s.last_drill {
            g("obs_backup_drill_success", if d.success { 1.0 } else { 0.0 });
            g("obs_backup_drill_duration_seconds", d.duration_secs);
            g(
                "obs_backup_drill_last_timestamp_seconds",
                d.started.timestamp() as f64,
            );
            if let Some(snap) = d.snapshot_time {
                g(
                    "obs_backup_drill_snapshot_age_seconds",
                    (d.started - snap).num_seconds() as f64,
                );
            }
        }
    }
    out
}

/// A log line: `fields` plus `msg` and `success`, at error level when it failed.
fn log_line(
    job: &str,
    repo: &str,
    started: DateTime<Utc>,
    success: bool,
    msg: &str,
    mut fields: serde_json::Value,
) -> LogLine {
    fields["msg"] = msg.into();
    fields["success"] = success.into();
    LogLine {
        job: job.to_string(),
        repo: repo.to_string(),
        level: if success { "info" } else { "error" }.to_string(),
        time_ns: started.timestamp_nanos_opt().unwrap_or_default(),
        line: fields.to_string(),
    }
}

/// The log line for a backup run.
pub fn job_log(run: &JobRun) -> LogLine {
    let msg = if run.success {
        "backup succeeded"
    } else {
        "backup failed"
    };
    let fields = serde_json::json!({
        "event": "backup", "error": run.error, "snapshot": run.snapshot,
        "duration_seconds": run.duration_secs, "files": run.files, "bytes_added": run.bytes_added,
        "forgotten": run.forgotten,
    });
    log_line(&run.job, &run.repo, run.started, run.success, msg, fields)
}

/// The log line for a drill.
pub fn drill_log(run: &DrillRun) -> LogLine {
    let msg = if run.success {
        "restore drill succeeded"
    } else {
        "restore drill failed"
    };
    let fields = serde_json::json!({
        "event": "drill", "error": run.error, "snapshot": run.snapshot,
        "duration_seconds": run.duration_secs, "files": run.files, "bytes": run.bytes,
    });
    log_line(&run.job, &run.repo, run.started, run.success, msg, fields)
}

/// Sends reports to one store, spooling what cannot be delivered.
#[derive(Debug, Clone)]
pub struct Reporter {
    store: String,
    token: Option<String>,
    spool: PathBuf,
}

impl Reporter {
    /// `store` is the store's HTTP URL; the token comes from `OBS_TOKEN` when set.
    pub fn new(store: &str, spool_dir: &Path) -> Reporter {
        Reporter {
            store: store.trim_end_matches('/').to_string(),
            token: std::env::var("OBS_TOKEN").ok().filter(|t| !t.is_empty()),
            spool: spool_dir.join("report-spool.jsonl"),
        }
    }

    /// Delivers the spool and then `gauges` and `logs`; on failure keeps them for later.
    pub async fn send(&self, gauges: Vec<Gauge>, logs: Vec<LogLine>) -> Result<()> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.send_blocking(Batch { gauges, logs }))
            .await
            .map_err(|e| Error::Failed(format!("report task failed: {e}")))?
    }

    fn send_blocking(&self, batch: Batch) -> Result<()> {
        let mut pending = self.read_spool();
        if !batch.gauges.is_empty() || !batch.logs.is_empty() {
            pending.push(batch);
        }
        let mut delivered = 0;
        let mut failure = None;
        for b in &pending {
            match self.deliver(b) {
                Ok(()) => delivered += 1,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let rest = &pending[delivered..];
        self.write_spool(rest)?;
        match failure {
            None => Ok(()),
            Some(e) => Err(Error::Failed(format!(
                "could not report to {} ({e}); {} report(s) spooled for later",
                self.store,
                rest.len()
            ))),
        }
    }

    fn read_spool(&self) -> Vec<Batch> {
        let Ok(text) = std::fs::read_to_string(&self.spool) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn write_spool(&self, batches: &[Batch]) -> Result<()> {
        if batches.is_empty() {
            return match std::fs::remove_file(&self.spool) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(&self.spool, e)),
                _ => Ok(()),
            };
        }
        let skip = batches.len().saturating_sub(SPOOL_LIMIT);
        if skip > 0 {
            tracing::warn!("report spool full: dropping the {skip} oldest report(s)");
        }
        let text: String = batches[skip..]
            .iter()
            .map(|b| serde_json::to_string(b).expect("batch serializes") + "\n")
            .collect();
        if let Some(dir) = self.spool.parent() {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let tmp = self.spool.with_extension("jsonl.tmp");
        std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &self.spool).map_err(|e| Error::io(&self.spool, e))
    }

    fn post(
        &self,
        path: &str,
        content_type: &str,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> std::result::Result<(), String> {
        let mut headers = vec![("content-type", content_type)];
        headers.extend(encoding.map(|enc| ("content-encoding", enc)));
        let url = format!("{}{path}", self.store);
        let timeout = Duration::from_secs(30);
        match post_to_store(&url, self.token.as_deref(), &headers, &body, timeout)? {
            (200..=299, _) => Ok(()),
            (status, text) => Err(format!("{path} answered {status}: {}", text.trim())),
        }
    }

    fn deliver(&self, batch: &Batch) -> std::result::Result<(), String> {
        if !batch.gauges.is_empty() {
            let timeseries = batch
                .gauges
                .iter()
                .map(|g| {
                    let mut labels = vec![
                        Label {
                            name: "__name__".into(),
                            value: g.name.clone(),
                        },
                        Label {
                            name: "job".into(),
                            value: g.job.clone(),
                        },
                        Label {
                            name: "repo".into(),
                            value: g.repo.clone(),
                        },
                    ];
                    labels.retain(|l| !l.value.is_empty());
                    TimeSeries {
                        labels,
                        samples: vec![Sample {
                            value: g.value,
                            timestamp: g.time_ms,
                        }],
                    }
                })
                .collect();
            let body = WriteRequest { timeseries }.encode_to_vec();
            let body = snap::raw::Encoder::new()
                .compress_vec(&body)
                .map_err(|e| e.to_string())?;
            self.post("/api/v1/write", "application/x-protobuf", Some("snappy"), body)?;
        }
        if !batch.logs.is_empty() {
            let streams: Vec<_> = batch
                .logs
                .iter()
                .map(|l| {
                    serde_json::json!({
                        "stream": {"service_name": "obs-backup", "job": l.job, "repo": l.repo, "level": l.level},
                        "values": [[l.time_ns.to_string(), l.line]],
                    })
                })
                .collect();
            let body = serde_json::to_vec(&serde_json::json!({ "streams": streams })).expect("json");
            self.post("/loki/api/v1/push", "application/json", None, body)?;
        }
        Ok(())
    }
}

/// POSTs `body` to the store at `url` with its bearer token: (status, body) whatever the
/// status; an error only when the store cannot be reached.
pub(crate) fn post_to_store(
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> std::result::Result<(u16, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into();
    let mut req = agent.post(url);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let mut resp = req.send(body).map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    Ok((status, resp.body_mut().read_to_string().unwrap_or_default()))
}
