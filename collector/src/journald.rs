//! journald: follows the journal with `journalctl -o json -f` (the system journal, or
//! `directory` for another one, e.g. what systemd-journal-remote writes) and spools its
//! entries as OTLP logs.
//!
//! Mapping: `MESSAGE` is the body, `__REALTIME_TIMESTAMP` the time, `PRIORITY` the severity
//! (0–2 fatal, 3 error, 4 warn, 5–6 info, 7 debug); resource `host.name` = `_HOSTNAME`,
//! `service.name` = `SYSLOG_IDENTIFIER` (else the unit without `.service`), and the unit as
//! the stream label `unit`; `_PID`, `_TRANSPORT`, `_COMM` and `SYSLOG_IDENTIFIER` are kept as
//! attributes. The cursor of the last entry is saved in `<data>/journald.cursor` once its
//! batch is fsynced in the spool, and the next start continues after it
//! (`--after-cursor`): nothing skipped, nothing read twice.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;
use tokio::io::AsyncBufReadExt;
use tokio::sync::watch;

use crate::config::{Journald, StartAt};
use crate::otlp::string_kv;
use crate::spool::{Kind, Spool};

const BATCH: usize = 1000;

/// A journal field as text: a string, or bytes (journalctl prints binary as a number array).
fn field(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(a) => {
            let bytes: Vec<u8> = a.iter().filter_map(|b| b.as_u64().map(|b| b as u8)).collect();
            Some(String::from_utf8_lossy(&bytes).into_owned())
        }
        _ => None,
    }
}

fn severity(priority: Option<&str>) -> (i32, &'static str) {
    match priority.and_then(|p| p.parse::<u8>().ok()) {
        Some(0..=2) => (21, "FATAL"),
        Some(3) => (17, "ERROR"),
        Some(4) => (13, "WARN"),
        Some(5 | 6) => (9, "INFO"),
        Some(7) => (5, "DEBUG"),
        _ => (0, ""),
    }
}

/// (resource key, record, cursor) of one `journalctl -o json` line.
pub(crate) fn entry(line: &str, default_host: &str) -> Option<((String, String, String), LogRecord, String)> {
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).ok()?;
    let get = |k: &str| v.get(k).and_then(field);
    let cursor = get("__CURSOR")?;
    let unit = get("_SYSTEMD_UNIT").unwrap_or_default();
    let ident = get("SYSLOG_IDENTIFIER");
    let service = ident
        .clone()
        .unwrap_or_else(|| unit.strip_suffix(".service").unwrap_or(&unit).to_string());
    let host = get("_HOSTNAME").unwrap_or_else(|| default_host.to_string());
    let (severity_number, severity_text) = severity(get("PRIORITY").as_deref());
    let mut attributes = Vec::new();
    for (k, name) in [("_PID", "pid"), ("_TRANSPORT", "transport"), ("_COMM", "comm")] {
        if let Some(v) = get(k) {
            attributes.push(string_kv(name, &v));
        }
    }
    if let Some(i) = &ident {
        attributes.push(string_kv("syslog_identifier", i));
    }
    let time_ns = get("__REALTIME_TIMESTAMP")
        .and_then(|t| t.parse::<u64>().ok())
        .map_or(0, |us| us * 1000);
    let record = LogRecord {
        time_unix_nano: time_ns,
        observed_time_unix_nano: crate::now_ns(),
        severity_number,
        severity_text: severity_text.to_string(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(get("MESSAGE").unwrap_or_default())),
        }),
        attributes,
        ..Default::default()
    };
    Some(((host, service, unit), record, cursor))
}

fn request(groups: BTreeMap<(String, String, String), Vec<LogRecord>>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: groups
            .into_iter()
            .map(|((host, service, unit), records)| {
                let mut attributes = vec![
                    string_kv("host.name", &host),
                    string_kv("obs.index_labels", "unit"),
                ];
                if !service.is_empty() {
                    attributes.push(string_kv("service.name", &service));
                }
                if !unit.is_empty() {
                    attributes.push(string_kv("unit", &unit));
                }
                ResourceLogs {
                    resource: Some(Resource {
                        attributes,
                        ..Default::default()
                    }),
                    scope_logs: vec![ScopeLogs {
                        log_records: records,
                        ..Default::default()
                    }],
                    ..Default::default()
                }
            })
            .collect(),
    }
}

/// Follows the journal until shutdown; restarts `journalctl` (after 5 s) if it exits.
pub(crate) async fn run(
    cfg: Journald,
    host: String,
    spool: Arc<Spool>,
    data_dir: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) {
    let cursor_file = data_dir.join("journald.cursor");
    loop {
        let cursor = std::fs::read_to_string(&cursor_file)
            .ok()
            .filter(|c| !c.trim().is_empty());
        let mut cmd = tokio::process::Command::new(&cfg.journalctl);
        cmd.args(["-o", "json", "-f", "--no-pager"]);
        if let Some(d) = &cfg.directory {
            cmd.arg("--directory").arg(d);
        }
        match (&cursor, cfg.start_at) {
            (Some(c), _) => cmd.arg(format!("--after-cursor={}", c.trim())),
            (None, StartAt::Beginning) => cmd.arg("--lines=all"),
            (None, StartAt::End) => cmd.arg("--lines=0"),
        };
        for u in &cfg.units {
            cmd.arg(format!("--unit={u}"));
        }
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        match cmd.spawn() {
            Ok(mut child) => {
                let stdout = child.stdout.take().expect("piped stdout");
                if follow(stdout, &host, &spool, &cursor_file, &mut shutdown).await {
                    let _ = child.kill().await;
                    return;
                }
                let status = child.wait().await;
                tracing::warn!(?status, "journalctl exited; restarting it in 5 s");
            }
            Err(e) => {
                tracing::error!(error = %e, command = %cfg.journalctl, "cannot run journalctl; retrying in 5 s")
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// Reads entries, spooling them in batches; true if stopped by shutdown.
async fn follow(
    stdout: tokio::process::ChildStdout,
    host: &str,
    spool: &Arc<Spool>,
    cursor_file: &std::path::Path,
    shutdown: &mut watch::Receiver<bool>,
) -> bool {
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let mut groups: BTreeMap<(String, String, String), Vec<LogRecord>> = BTreeMap::new();
    let mut pending = 0usize;
    let mut last_cursor = None;
    loop {
        let next = tokio::select! {
            l = lines.next_line() => Some(l),
            _ = tokio::time::sleep(Duration::from_millis(200)), if pending > 0 => None,
            _ = shutdown.changed() => return true,
        };
        match next {
            Some(Ok(Some(line))) => {
                if let Some((key, record, cursor)) = entry(&line, host) {
                    groups.entry(key).or_default().push(record);
                    pending += 1;
                    last_cursor = Some(cursor);
                }
                if pending < BATCH {
                    continue;
                }
            }
            Some(Ok(None)) | Some(Err(_)) => {
                flush(&mut groups, &mut pending, &mut last_cursor, spool, cursor_file).await;
                return false;
            }
            None => {}
        }
        flush(&mut groups, &mut pending, &mut last_cursor, spool, cursor_file).await;
    }
}

/// Spools the batch, waits until it is durable, then saves the cursor.
async fn flush(
    groups: &mut BTreeMap<(String, String, String), Vec<LogRecord>>,
    pending: &mut usize,
    last_cursor: &mut Option<String>,
    spool: &Arc<Spool>,
    cursor_file: &std::path::Path,
) {
    if *pending == 0 {
        return;
    }
    let body = request(std::mem::take(groups)).encode_to_vec();
    let cursor = last_cursor.take().unwrap_or_default();
    *pending = 0;
    let (spool, file) = (spool.clone(), cursor_file.to_path_buf());
    let done = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        let pos = spool.append(Kind::Logs, &body)?;
        spool.sync_to(pos)?;
        crate::files::write_atomic(&file, cursor.as_bytes())
    })
    .await;
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "cannot spool journal entries or save the cursor"),
        Err(e) => tracing::error!(error = %e, "journald batch task stopped"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_json_maps_to_a_record() {
        let line = r#"{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1795428000000001","PRIORITY":"3","_HOSTNAME":"n1","_SYSTEMD_UNIT":"nginx.service","SYSLOG_IDENTIFIER":"nginx","_PID":"42","MESSAGE":[104,105]}"#;
        let ((host, service, unit), rec, cursor) = entry(line, "me").unwrap();
        assert_eq!(
            (host.as_str(), service.as_str(), unit.as_str()),
            ("n1", "nginx", "nginx.service")
        );
        assert_eq!(cursor, "s=1;i=2");
        assert_eq!(rec.time_unix_nano, 1_795_428_000_000_001_000);
        assert_eq!(rec.severity_text, "ERROR");
        assert!(matches!(rec.body.unwrap().value, Some(any_value::Value::StringValue(s)) if s == "hi"));
        assert!(entry("{}", "me").is_none(), "an entry needs a cursor");
    }
}
