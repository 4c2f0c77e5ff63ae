//! Sentry SDK ingest: `POST /api/<project>/envelope/` and `/api/<project>/store/`, so an app
//! that has a Sentry SDK points its DSN at the store (`http://TOKEN@store:9700/1`) and changes
//! nothing else. The DSN's public key is checked as an ingest token (from `X-Sentry-Auth`,
//! the `sentry_key` query parameter or a bearer token).
//!
//! Each event becomes one log line `{service_name, source="sentry", level}`: the event's JSON
//! (exceptions with frames, breadcrumbs, tags, user, contexts, release, environment; the
//! installed-module list and debug images left out), with structured metadata
//! `sentry_event_id`, `sentry_project`, `exception_type`, `trace_id`, `span_id`,
//! `service_version` (release), `deployment_environment_name`, `enduser_id`, `host_name`
//! (server_name). It goes through the WAL like any log line, and grouping reads it back from
//! the line ([`parts_from_line`]). Other item types (transactions, sessions, attachments,
//! client reports...) are acknowledged and dropped, counted by type: an SDK must never retry
//! them forever.
//!
//! The service is `[store.errors] sentry_projects`' name for the project, else the event's
//! `service.name` / `service` tag, else `sentry-<project>`.

use serde_json::Value;

use super::extract::{Context, Parts, Source};
use super::fingerprint::Frame;
use crate::model::{Labels, LogEntry};

/// Longest event line kept: past it breadcrumbs and frame variables go, then the event is
/// refused.
pub(crate) const MAX_EVENT_BYTES: usize = 256 * 1024;
/// Item types counted on `obs_sentry_items_dropped_total{type}`; others count as `other`.
pub(crate) const DROPPED_TYPES: [&str; 9] = [
    "transaction",
    "session",
    "sessions",
    "attachment",
    "client_report",
    "profile",
    "replay_event",
    "check_in",
    "other",
];

/// An envelope's items: (type, payload).
pub(crate) fn envelope_items(body: &[u8]) -> Result<Vec<(String, &[u8])>, String> {
    let mut rest = body;
    let header = take_line(&mut rest);
    serde_json::from_slice::<Value>(header).map_err(|e| format!("the envelope header is not JSON: {e}"))?;
    let mut items = Vec::new();
    while !rest.iter().all(u8::is_ascii_whitespace) {
        let line = take_line(&mut rest);
        let h: Value = serde_json::from_slice(line)
            .map_err(|e| format!("item {} header is not JSON: {e}", items.len()))?;
        let kind = h["type"].as_str().unwrap_or("").to_string();
        let payload = match h["length"].as_u64() {
            Some(len) => {
                let len = usize::try_from(len).unwrap_or(usize::MAX);
                if len > rest.len() {
                    return Err(format!(
                        "item {} says length {len} but {} bytes are left",
                        items.len(),
                        rest.len()
                    ));
                }
                let (p, r) = rest.split_at(len);
                rest = r.strip_prefix(b"\n").unwrap_or(r);
                p
            }
            None => take_line(&mut rest),
        };
        items.push((kind, payload));
    }
    Ok(items)
}

fn take_line<'a>(rest: &mut &'a [u8]) -> &'a [u8] {
    match memchr::memchr(b'\n', rest) {
        Some(i) => {
            let line = &rest[..i];
            *rest = &rest[i + 1..];
            line
        }
        None => std::mem::take(rest),
    }
}

/// Sentry's level names to the store's.
fn level(event: &Value) -> &'static str {
    match event["level"].as_str().unwrap_or("error") {
        "fatal" => "critical",
        "warning" => "warn",
        "info" => "info",
        "debug" => "debug",
        _ => "error",
    }
}

fn tag<'a>(event: &'a Value, name: &str) -> Option<&'a str> {
    match &event["tags"] {
        Value::Object(m) => m.get(name).and_then(Value::as_str),
        Value::Array(pairs) => pairs
            .iter()
            .find(|p| p[0].as_str() == Some(name))
            .and_then(|p| p[1].as_str()),
        _ => None,
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// The exceptions of an event, oldest cause first (as Sentry orders them).
fn exceptions(event: &Value) -> &[Value] {
    match &event["exception"] {
        Value::Object(o) => o
            .get("values")
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice),
        Value::Array(a) => a,
        _ => &[],
    }
}

fn message(event: &Value) -> String {
    for v in [&event["logentry"], &event["message"]] {
        match v {
            Value::String(s) if !s.is_empty() => return s.clone(),
            Value::Object(o) => {
                for k in ["formatted", "message"] {
                    if let Some(s) = o.get(k).and_then(Value::as_str).filter(|s| !s.is_empty()) {
                        return s.to_string();
                    }
                }
            }
            _ => {}
        }
    }
    String::new()
}

/// A Sentry event (the JSON of a line written by [`to_log`]) as grouping sees it.
pub(crate) fn parts_from_line(line: &str) -> Option<(Parts, Context)> {
    let event: Value = serde_json::from_str(line).ok()?;
    let values = exceptions(&event);
    let (type_name, msg, frames) = match values.last() {
        Some(last) => {
            let frames = last["stacktrace"]["frames"]
                .as_array()
                .map_or(&[][..], Vec::as_slice)
                .iter()
                .rev()
                .map(frame)
                .collect();
            let value = str_of(last, "value").to_string();
            let msg = if value.is_empty() { message(&event) } else { value };
            (str_of(last, "type").to_string(), msg, frames)
        }
        None => {
            let frames = event["threads"]["values"]
                .as_array()
                .and_then(|t| t.iter().find_map(|t| t["stacktrace"]["frames"].as_array()))
                .map_or(Vec::new(), |f| f.iter().rev().map(frame).collect());
            (String::new(), message(&event), frames)
        }
    };
    let causes = values
        .iter()
        .rev()
        .skip(1)
        .map(|v| str_of(v, "type").to_string())
        .collect();
    let sdk_fingerprint = event["fingerprint"].as_array().map(|a| {
        a.iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect()
    });
    let user = &event["user"];
    let user = ["id", "email", "username", "ip_address"]
        .iter()
        .find_map(|k| match &user[*k] {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
    let trace = &event["contexts"]["trace"];
    let parts = Parts {
        type_name,
        message: msg,
        frames,
        causes,
        sdk_fingerprint,
    };
    let cx = Context {
        service: String::new(),
        source: Source::Sentry,
        level: level(&event).to_string(),
        ts_ns: 0,
        trace_id: str_of(trace, "trace_id").to_string(),
        span_id: str_of(trace, "span_id").to_string(),
        host: str_of(&event, "server_name").to_string(),
        release: str_of(&event, "release").to_string(),
        environment: str_of(&event, "environment").to_string(),
        user,
        stream: String::new(),
    };
    Some((parts, cx))
}

fn frame(f: &Value) -> Frame {
    let module = [str_of(f, "module"), str_of(f, "filename"), str_of(f, "abs_path")]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or("");
    let path = [str_of(f, "abs_path"), str_of(f, "filename")].join(" ");
    let in_app = f["in_app"].as_bool().unwrap_or_else(|| {
        ![
            "site-packages",
            "dist-packages",
            "node_modules",
            "/vendor/",
            ".cargo/registry",
            "/lib/python",
        ]
        .iter()
        .any(|p| path.contains(p))
    });
    Frame {
        module: module.to_string(),
        function: str_of(f, "function").to_string(),
        line: f["lineno"].as_u64().and_then(|l| u32::try_from(l).ok()),
        in_app,
    }
}

/// Unix nanoseconds of an event's `timestamp` (seconds as a number, or RFC 3339).
fn timestamp_ns(event: &Value) -> Option<i64> {
    match &event["timestamp"] {
        Value::Number(n) => n.as_f64().map(|s| (s * 1e9) as i64),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .and_then(|t| t.timestamp_nanos_opt()),
        _ => None,
    }
}

/// One event of `project` as a log line (see the module doc); `service` from the config's
/// project names, if there.
pub(crate) fn to_log(
    project: &str,
    service: Option<&str>,
    mut event: Value,
    now_ns: i64,
) -> Result<(Labels, LogEntry), String> {
    let Some(obj) = event.as_object_mut() else {
        return Err("the event is not a JSON object".into());
    };
    obj.remove("modules");
    obj.remove("debug_meta");
    let event_id = match obj.get("event_id").and_then(Value::as_str) {
        Some(id) => id.to_string(),
        None => {
            let id = format!(
                "{:032x}",
                xxhash_rust::xxh3::xxh3_128(format!("{now_ns}{project}").as_bytes())
            );
            obj.insert("event_id".into(), Value::String(id.clone()));
            id
        }
    };
    let mut line = serde_json::to_string(&event).map_err(|e| e.to_string())?;
    if line.len() > MAX_EVENT_BYTES {
        shrink(&mut event);
        line = serde_json::to_string(&event).map_err(|e| e.to_string())?;
        if line.len() > MAX_EVENT_BYTES {
            return Err(format!(
                "event {event_id} is {} bytes without breadcrumbs and frame variables; at most {MAX_EVENT_BYTES} are kept",
                line.len()
            ));
        }
    }
    let service = service
        .map(str::to_string)
        .or_else(|| {
            tag(&event, "service.name")
                .or_else(|| tag(&event, "service"))
                .map(str::to_string)
        })
        .unwrap_or_else(|| format!("sentry-{project}"));
    let labels: Labels = [
        ("service_name".to_string(), service),
        ("source".to_string(), "sentry".to_string()),
        ("level".to_string(), level(&event).to_string()),
    ]
    .into();
    let (parts, cx) = parts_from_line(&line).ok_or("the event cannot be read back")?;
    let mut metadata = vec![
        ("sentry_event_id".to_string(), event_id),
        ("sentry_project".to_string(), project.to_string()),
    ];
    let mut add = |k: &str, v: String| {
        if !v.is_empty() {
            metadata.push((k.to_string(), v));
        }
    };
    add("exception_type", parts.type_name);
    add("trace_id", cx.trace_id);
    add("span_id", cx.span_id);
    add("service_version", cx.release);
    add("deployment_environment_name", cx.environment);
    add("enduser_id", cx.user.unwrap_or_default());
    add("host_name", cx.host);
    Ok((
        labels,
        LogEntry {
            ts_ns: timestamp_ns(&event).unwrap_or(now_ns),
            line,
            metadata,
        },
    ))
}

/// Drops what can go from an oversized event: breadcrumbs and frame variables.
fn shrink(event: &mut Value) {
    let Some(obj) = event.as_object_mut() else { return };
    obj.remove("breadcrumbs");
    let strip = |v: &mut Value| {
        if let Some(frames) = v["stacktrace"]["frames"].as_array_mut() {
            for f in frames.iter_mut().filter_map(Value::as_object_mut) {
                for k in ["vars", "pre_context", "post_context"] {
                    f.remove(k);
                }
            }
        }
    };
    if let Some(Value::Object(exc)) = obj.get_mut("exception") {
        if let Some(Value::Array(values)) = exc.get_mut("values") {
            values.iter_mut().for_each(strip);
        }
    }
    if let Some(Value::Object(threads)) = obj.get_mut("threads") {
        if let Some(Value::Array(values)) = threads.get_mut("values") {
            values.iter_mut().for_each(strip);
        }
    }
}

/// The DSN key of a request: `X-Sentry-Auth: Sentry sentry_key=KEY, ...`, `?sentry_key=KEY`,
/// or `Authorization: Bearer KEY`.
pub(crate) fn dsn_key(headers: &axum::http::HeaderMap, query: &str) -> Option<String> {
    let from_auth = |v: &str| {
        v.trim_start_matches("Sentry ")
            .split(',')
            .find_map(|kv| kv.trim().strip_prefix("sentry_key=").map(str::to_string))
    };
    headers
        .get("x-sentry-auth")
        .and_then(|v| v.to_str().ok())
        .and_then(from_auth)
        .or_else(|| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "sentry_key")
                .map(|(_, v)| v.into_owned())
        })
        .or_else(|| {
            headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer ").map(str::to_string))
        })
}
