//! Finding errors in what the store receives: a log line or a span becomes zero or more
//! [`ErrorEvent`]s, each with its issue id. Pure functions of the record, so the WAL replay
//! finds exactly what ingest found.
//!
//! A log line is an error when it carries OpenTelemetry's `exception.type` /
//! `exception.message` / `exception.stacktrace` attributes (metadata `exception_type`, ...),
//! is a Sentry event (`sentry_event_id` metadata, see `sentry.rs`), holds a stack trace
//! (`stack.rs`) at a level that is not below error, or is at error level or above without one.
//! A span holds one per event named `exception`.

use opentelemetry_proto::tonic::trace::v1::ResourceSpans;
use prost::Message;

use super::fingerprint::{self, first_line, truncate, Frame, Grouping};
use super::{sentry, stack};
use crate::model::{detect_level, Labels, LogEntry, SpanRecord};

/// The structured metadata ingest adds to a log line that is an error: its issue id.
pub(crate) const ISSUE_KEY: &str = "error_issue";
/// Longest message kept with an occurrence, in bytes.
const MAX_MESSAGE: usize = 1024;
/// Frames kept with an issue (the newest occurrence's, innermost first).
const MAX_FRAMES: usize = 50;

/// Where an occurrence came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Source {
    Log,
    Span,
    Sentry,
}

/// One occurrence of an error, with what grouping made of it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ErrorEvent {
    pub issue: String,
    pub type_name: String,
    pub title: String,
    pub culprit: String,
    /// The message's first line as it was, at most [`MAX_MESSAGE`] bytes.
    pub message: String,
    pub frames: Vec<Frame>,
    /// Where and when it happened.
    pub cx: Context,
}

/// What an event is made of before grouping.
pub(crate) struct Parts {
    pub type_name: String,
    pub message: String,
    pub frames: Vec<Frame>,
    pub causes: Vec<String>,
    pub sdk_fingerprint: Option<Vec<String>>,
}

/// Context an event is found in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Context {
    pub service: String,
    pub source: Source,
    pub level: String,
    pub ts_ns: i64,
    pub trace_id: String,
    pub span_id: String,
    pub host: String,
    pub release: String,
    pub environment: String,
    /// Whoever was affected (an id, e-mail, user name or IP), if known.
    pub user: Option<String>,
    /// The log stream's selector (logs and Sentry events).
    pub stream: String,
}

/// Groups `parts` found in `cx`.
pub(crate) fn event(parts: Parts, cx: Context) -> ErrorEvent {
    let issue = fingerprint::issue_id(&Grouping {
        service: &cx.service,
        type_name: &parts.type_name,
        message: &parts.message,
        frames: &parts.frames,
        causes: &parts.causes,
        sdk_fingerprint: parts.sdk_fingerprint.as_deref(),
    });
    let mut frames = parts.frames;
    frames.truncate(MAX_FRAMES);
    ErrorEvent {
        issue,
        title: fingerprint::title(&parts.type_name, &parts.message),
        culprit: fingerprint::culprit(&frames),
        message: truncate(first_line(&parts.message), MAX_MESSAGE).to_string(),
        type_name: parts.type_name,
        frames,
        cx,
    }
}

fn is_error_level(level: &str) -> bool {
    ["error", "critical", "fatal", "emergency", "alert"]
        .iter()
        .any(|l| l.eq_ignore_ascii_case(level))
}

/// Levels at which a stack trace is not an error (a warning that logs a handled exception).
fn is_low_level(level: &str) -> bool {
    ["info", "debug", "warn", "trace", "warning", "notice"]
        .iter()
        .any(|l| l.eq_ignore_ascii_case(level))
}

/// The service of a stream.
pub(crate) fn service_of(labels: &Labels) -> String {
    ["service_name", "service", "app", "job"]
        .iter()
        .find_map(|k| labels.get(*k))
        .cloned()
        .unwrap_or_else(|| "unknown_service".into())
}

/// `{a="b", c="d"}`, quoted as LogQL reads it.
pub(crate) fn selector(labels: &Labels) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

/// The error in one log line, if it is one. Cheap for the lines that are not: a known level
/// below error ends it, and a line without one has its level detected as Loki would show it,
/// or given (`code`: its `level` column code, `logs.rs`).
pub(crate) fn from_log(labels: &Labels, entry: &LogEntry, code: Option<u8>) -> Option<ErrorEvent> {
    let detect = || match code {
        Some(c) if c > 0 => crate::logs::LEVELS[usize::from(c - 1).min(crate::logs::LEVELS.len() - 1)],
        _ => detect_level(&entry.line),
    };
    let meta = |key: &str| {
        entry
            .metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .or_else(|| labels.get(key).map(String::as_str))
    };
    let (mut sentry_event, mut exception, mut known_level) = (false, false, None);
    for (k, v) in &entry.metadata {
        match k.as_str() {
            "sentry_event_id" => sentry_event = true,
            "exception_type" | "exception_message" => exception = true,
            "level" => known_level = Some(v.as_str()),
            "detected_level" => known_level = known_level.or(Some(v.as_str())),
            _ => {}
        }
    }
    let known_level = labels.get("level").map(String::as_str).or(known_level);
    let cx = |level: String| Context {
        service: service_of(labels),
        source: Source::Log,
        level,
        ts_ns: entry.ts_ns,
        trace_id: meta("trace_id").unwrap_or("").to_string(),
        span_id: meta("span_id").unwrap_or("").to_string(),
        host: ["host_name", "host", "hostname", "instance", "node"]
            .iter()
            .find_map(|k| meta(k))
            .unwrap_or("")
            .to_string(),
        release: meta("service_version").unwrap_or("").to_string(),
        environment: meta("deployment_environment_name")
            .or_else(|| meta("deployment_environment"))
            .unwrap_or("")
            .to_string(),
        user: meta("enduser_id").map(str::to_string),
        stream: selector(labels),
    };
    if sentry_event {
        let (parts, mut cx2) = sentry::parts_from_line(&entry.line)?;
        let base = cx(cx2.level.clone());
        cx2.service = base.service;
        cx2.stream = base.stream;
        cx2.ts_ns = entry.ts_ns;
        return Some(event(parts, cx2));
    }
    if exception {
        let type_name = meta("exception_type").unwrap_or("");
        let message = meta("exception_message").unwrap_or("");
        let trace = stack::parse(meta("exception_stacktrace").unwrap_or(""));
        let (frames, causes) = trace.map(|t| (t.frames, t.causes)).unwrap_or_default();
        let parts = Parts {
            type_name: type_name.to_string(),
            message: if message.is_empty() {
                entry.line.clone()
            } else {
                message.to_string()
            },
            frames,
            causes,
            sdk_fingerprint: None,
        };
        let level = known_level.map_or_else(|| detect().to_string(), str::to_ascii_lowercase);
        return Some(event(parts, cx(level)));
    }
    let level = match known_level {
        Some(l) if is_low_level(l) => return None,
        Some(l) => l.to_ascii_lowercase(),
        None => match detect() {
            l if is_low_level(l) => return None,
            l => l.to_string(),
        },
    };
    if is_low_level(&level) {
        return None;
    }
    let may_hold_trace = entry.line.contains('\n') || entry.line.contains("' panicked at ");
    if may_hold_trace {
        if let Some(t) = stack::parse(&entry.line) {
            let parts = Parts {
                type_name: t.type_name,
                message: t.message,
                frames: t.frames,
                causes: t.causes,
                sdk_fingerprint: None,
            };
            return Some(event(parts, cx(level)));
        }
    }
    if is_error_level(&level) {
        let parts = Parts {
            type_name: String::new(),
            message: message_of(&entry.line),
            frames: Vec::new(),
            causes: Vec::new(),
            sdk_fingerprint: None,
        };
        return Some(event(parts, cx(level)));
    }
    None
}

/// The message of a JSON or logfmt line (`msg`, `message`, `error`, `err`), else the line.
fn message_of(line: &str) -> String {
    const KEYS: [&str; 4] = ["msg", "message", "error", "err"];
    if line.starts_with('{') {
        if let Ok(serde_json::Value::Object(o)) = serde_json::from_str::<serde_json::Value>(line) {
            if let Some(m) = KEYS.iter().find_map(|k| o.get(*k).and_then(|v| v.as_str())) {
                return m.to_string();
            }
        }
        return line.to_string();
    }
    for key in KEYS {
        let pat = format!("{key}=");
        let found = line
            .match_indices(&pat)
            .find(|(at, _)| *at == 0 || line.as_bytes()[at - 1] == b' ');
        if let Some((at, _)) = found {
            let rest = &line[at + pat.len()..];
            if let Some(quoted) = rest.strip_prefix('"') {
                // Up to the closing quote that is not escaped.
                let mut end = quoted.len();
                let mut escaped = false;
                for (i, c) in quoted.char_indices() {
                    match c {
                        '\\' if !escaped => escaped = true,
                        '"' if !escaped => {
                            end = i;
                            break;
                        }
                        _ => escaped = false,
                    }
                }
                return quoted[..end].replace("\\\"", "\"");
            }
            return rest.split(' ').next().unwrap_or("").to_string();
        }
    }
    line.to_string()
}

/// The `exception` events of one span.
pub(crate) fn from_span(span: &SpanRecord) -> Vec<ErrorEvent> {
    if memchr::memmem::find(&span.otlp, b"exception").is_none() {
        return Vec::new();
    }
    let Ok(rs) = ResourceSpans::decode(span.otlp.as_slice()) else {
        return Vec::new();
    };
    let resource = |key: &str| {
        rs.resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == key)
            .map(crate::convert::attr)
            .unwrap_or_default()
    };
    let mut found = Vec::new();
    for s in rs.scope_spans.iter().flat_map(|ss| &ss.spans) {
        for ev in s.events.iter().filter(|e| e.name == "exception") {
            let attr = |key: &str| {
                ev.attributes
                    .iter()
                    .chain(&s.attributes)
                    .find(|kv| kv.key == key)
                    .map(crate::convert::attr)
                    .unwrap_or_default()
            };
            let trace = stack::parse(&attr("exception.stacktrace"));
            let (frames, causes) = trace.map(|t| (t.frames, t.causes)).unwrap_or_default();
            let parts = Parts {
                type_name: attr("exception.type"),
                message: attr("exception.message"),
                frames,
                causes,
                sdk_fingerprint: None,
            };
            let env = resource("deployment.environment.name");
            let cx = Context {
                service: span.service.clone(),
                source: Source::Span,
                level: "error".into(),
                ts_ns: i64::try_from(ev.time_unix_nano)
                    .unwrap_or(span.start_ns)
                    .max(span.start_ns),
                trace_id: span.trace_id.clone(),
                span_id: span.span_id.clone(),
                host: resource("host.name"),
                release: resource("service.version"),
                environment: if env.is_empty() {
                    resource("deployment.environment")
                } else {
                    env
                },
                user: Some(attr("enduser.id")).filter(|u| !u.is_empty()),
                stream: String::new(),
            };
            found.push(event(parts, cx));
        }
    }
    found
}
