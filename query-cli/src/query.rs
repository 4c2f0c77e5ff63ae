//! `obs query …`: reads the store's Prometheus, Loki and Tempo APIs and prints the answers
//! for people (coloured log lines, tables, sparklines, span trees) or for scripts
//! (`--output json`: the result data; `--output raw`: the body as the store sent it).
//! Errors are the store's own message.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail};
use serde_json::Value;

use crate::cli::{Output, QueryCommand, RangeArgs, StoreClientArgs};
use crate::client::StoreClient;

/// Seconds since the epoch from RFC 3339 or a number.
fn parse_time(s: &str) -> anyhow::Result<f64> {
    if let Ok(n) = s.parse::<f64>() {
        return Ok(n);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
        .map_err(|_| anyhow!("bad time {s:?}: use RFC 3339 (2026-11-23T10:00:00Z) or Unix seconds"))
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

fn range(r: &RangeArgs) -> anyhow::Result<(f64, f64)> {
    let end = r.to.as_deref().map(parse_time).transpose()?.unwrap_or_else(now);
    let start = match &r.from {
        Some(f) => parse_time(f)?,
        None => end - r.since.as_secs_f64(),
    };
    Ok((start, end))
}

/// A GET against the store; the JSON body, or the store's error message.
fn get(client: &StoreClientArgs, path: &str, params: &[(&str, String)]) -> anyhow::Result<(Value, String)> {
    let query: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, body) = StoreClient::new(client, Duration::from_secs(120))?.get(path, &query)?;
    let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        let msg = value["error"]
            .as_str()
            .or(value["message"].as_str())
            .unwrap_or(body.trim());
        bail!("{msg}");
    }
    Ok((value, body))
}

fn colour() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn paint(code: &str, text: &str) -> String {
    if colour() {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

fn labels_text(m: &serde_json::Map<String, Value>, skip_name: bool) -> String {
    let parts: Vec<String> = m
        .iter()
        .filter(|(k, _)| !(skip_name && *k == "__name__"))
        .map(|(k, v)| format!("{k}={:?}", v.as_str().unwrap_or_default()))
        .collect();
    let name = if skip_name {
        m.get("__name__").and_then(Value::as_str).unwrap_or("")
    } else {
        ""
    };
    format!("{name}{{{}}}", parts.join(", "))
}

fn time_text(secs: f64) -> String {
    chrono::DateTime::from_timestamp_millis((secs * 1000.0) as i64)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_default()
}

/// ▁▂▃▄▅▆▇█ for the values (NaN and gaps as spaces), at most `width` wide.
pub(crate) fn sparkline(values: &[f64], width: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let step = values.len().div_ceil(width.max(1)).max(1);
    let points: Vec<f64> = values
        .chunks(step)
        .map(|c| c.iter().copied().fold(f64::NAN, f64::max))
        .collect();
    let (lo, hi) = points
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    points
        .iter()
        .map(|&v| {
            if !v.is_finite() {
                ' '
            } else if hi <= lo {
                BARS[3]
            } else {
                BARS[(((v - lo) / (hi - lo)) * 7.0).round() as usize]
            }
        })
        .collect()
}

fn print_vector(result: &[Value]) {
    let rows: Vec<(String, String)> = result
        .iter()
        .map(|r| {
            let labels = r["metric"]
                .as_object()
                .map(|m| labels_text(m, true))
                .unwrap_or_default();
            (labels, r["value"][1].as_str().unwrap_or_default().to_string())
        })
        .collect();
    let width = rows
        .iter()
        .map(|(l, _)| l.chars().count())
        .max()
        .unwrap_or(6)
        .max(6);
    println!("{:<width$}  value", "series");
    for (l, v) in rows {
        println!("{l:<width$}  {v}");
    }
}

fn print_matrix(result: &[Value]) {
    for r in result {
        let labels = r["metric"]
            .as_object()
            .map(|m| labels_text(m, true))
            .unwrap_or_default();
        let values: Vec<f64> = r["values"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p[1].as_str().and_then(|s| s.parse().ok()).unwrap_or(f64::NAN))
            .collect();
        let last = values.last().map(|v| v.to_string()).unwrap_or_default();
        println!("{labels}\n  {}  last {last}", sparkline(&values, 60));
    }
}

fn print_data(data: &Value) {
    let result = data["result"].as_array().cloned().unwrap_or_default();
    match data["resultType"].as_str() {
        Some("vector") => print_vector(&result),
        Some("matrix") => print_matrix(&result),
        Some("scalar") | Some("string") => println!("{}", data["result"][1].as_str().unwrap_or_default()),
        Some("streams") => print_streams(&result),
        _ => println!("{data}"),
    }
}

fn print_streams(result: &[Value]) {
    let mut lines: Vec<(i128, String, String)> = Vec::new();
    for s in result {
        let labels = s["stream"]
            .as_object()
            .map(|m| labels_text(m, false))
            .unwrap_or_default();
        for v in s["values"].as_array().into_iter().flatten() {
            let ts: i128 = v[0].as_str().and_then(|t| t.parse().ok()).unwrap_or(0);
            lines.push((ts, labels.clone(), v[1].as_str().unwrap_or_default().to_string()));
        }
    }
    lines.sort_by_key(|l| l.0);
    for (ts, labels, line) in lines {
        let t = time_text(ts as f64 / 1e9);
        println!("{} {} {line}", paint("2", &t), paint("36", &labels));
    }
}

fn emit(output: Output, value: &Value, body: &str, human: impl FnOnce(&Value)) {
    match output {
        Output::Raw => println!("{body}"),
        Output::Json => println!("{}", serde_json::to_string_pretty(&value["data"]).expect("json")),
        Output::Human => human(&value["data"]),
    }
}

/// Runs one `obs query` command.
pub(crate) fn run(cmd: QueryCommand) -> anyhow::Result<()> {
    match cmd {
        QueryCommand::Logs {
            query,
            range: r,
            limit,
            follow,
            client,
        } => {
            let (start, end) = range(&r)?;
            let ns = |s: f64| format!("{}", (s * 1e9) as i128);
            let params = [
                ("query", query.clone()),
                ("start", ns(start)),
                ("end", ns(end)),
                ("limit", limit.to_string()),
                ("direction", "backward".to_string()),
            ];
            let (v, body) = get(&client, "/loki/api/v1/query_range", &params)?;
            emit(client.output, &v, &body, print_data);
            if follow {
                tail(&client, &query, end)?;
            }
        }
        QueryCommand::Metrics {
            query,
            at,
            range: r,
            step,
            client,
        } => {
            let (v, body) = if r.since.is_some() || r.from.is_some() {
                let end = r.to.as_deref().map(parse_time).transpose()?.unwrap_or_else(now);
                let start = match (&r.from, r.since) {
                    (Some(f), _) => parse_time(f)?,
                    (None, Some(d)) => end - d.as_secs_f64(),
                    (None, None) => unreachable!("checked above"),
                };
                let step = step.map_or(((end - start) / 120.0).max(1.0), |s| s.as_secs_f64());
                let params = [
                    ("query", query),
                    ("start", start.to_string()),
                    ("end", end.to_string()),
                    ("step", step.to_string()),
                ];
                get(&client, "/api/v1/query_range", &params)?
            } else {
                let time = at.as_deref().map(parse_time).transpose()?.unwrap_or_else(now);
                get(
                    &client,
                    "/api/v1/query",
                    &[("query", query), ("time", time.to_string())],
                )?
            };
            for w in v["warnings"].as_array().into_iter().flatten() {
                eprintln!("warning: {}", w.as_str().unwrap_or_default());
            }
            emit(client.output, &v, &body, print_data);
        }
        QueryCommand::Labels { name, logs, client } => {
            let path = match (&name, logs) {
                (None, false) => "/api/v1/labels".to_string(),
                (Some(n), false) => format!("/api/v1/label/{n}/values"),
                (None, true) => "/loki/api/v1/labels".to_string(),
                (Some(n), true) => format!("/loki/api/v1/label/{n}/values"),
            };
            let (v, body) = get(&client, &path, &[])?;
            emit(client.output, &v, &body, |d| {
                for x in d.as_array().into_iter().flatten() {
                    println!("{}", x.as_str().unwrap_or_default());
                }
            });
        }
        QueryCommand::Series { selector, client } => {
            let (v, body) = get(&client, "/api/v1/series", &[("match[]", selector)])?;
            emit(client.output, &v, &body, |d| {
                for s in d.as_array().into_iter().flatten() {
                    println!(
                        "{}",
                        s.as_object().map(|m| labels_text(m, true)).unwrap_or_default()
                    );
                }
            });
        }
        QueryCommand::Traces {
            id,
            search,
            range: r,
            client,
        } => match (id, search) {
            (Some(id), _) => {
                let (v, body) = get(&client, &format!("/api/traces/{id}"), &[])?;
                match client.output {
                    Output::Raw => println!("{body}"),
                    Output::Json => println!("{}", serde_json::to_string_pretty(&v)?),
                    Output::Human => print_trace(&v),
                }
            }
            (None, Some(q)) => {
                let (start, end) = range(&r)?;
                let params = [
                    ("q", q),
                    ("start", (start as i64).to_string()),
                    ("end", (end as i64 + 1).to_string()),
                ];
                let (v, body) = get(&client, "/api/search", &params)?;
                match client.output {
                    Output::Raw => println!("{body}"),
                    Output::Json => println!("{}", serde_json::to_string_pretty(&v["traces"])?),
                    Output::Human => print_search(&v),
                }
            }
            (None, None) => bail!("give a trace id or --search"),
        },
    }
    Ok(())
}

fn print_search(v: &Value) {
    println!(
        "{:<34} {:<20} {:<28} {:>10}",
        "trace id", "service", "root span", "duration"
    );
    for t in v["traces"].as_array().into_iter().flatten() {
        println!(
            "{:<34} {:<20} {:<28} {:>8}ms",
            t["traceID"].as_str().unwrap_or_default(),
            t["rootServiceName"].as_str().unwrap_or_default(),
            t["rootTraceName"].as_str().unwrap_or_default(),
            t["durationMs"].as_u64().unwrap_or_default()
        );
    }
}

/// One span of an OTLP JSON trace, with its service.
struct Span {
    id: String,
    parent: String,
    name: String,
    service: String,
    start: u128,
    end: u128,
    error: bool,
}

fn print_trace(v: &Value) {
    let mut spans = Vec::new();
    let batches = v["batches"]
        .as_array()
        .or(v["resourceSpans"].as_array())
        .or(v["trace"]["resourceSpans"].as_array())
        .cloned()
        .unwrap_or_default();
    for b in &batches {
        let service = b["resource"]["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == "service.name")
            .and_then(|a| a["value"]["stringValue"].as_str())
            .unwrap_or("?")
            .to_string();
        let scopes = b["scopeSpans"]
            .as_array()
            .or(b["instrumentationLibrarySpans"].as_array())
            .cloned()
            .unwrap_or_default();
        for s in scopes
            .iter()
            .flat_map(|s| s["spans"].as_array().cloned().unwrap_or_default())
        {
            let num = |k: &str| {
                s[k].as_str()
                    .and_then(|t| t.parse().ok())
                    .or(s[k].as_u64().map(u128::from))
                    .unwrap_or(0)
            };
            spans.push(Span {
                id: s["spanId"].as_str().unwrap_or_default().to_string(),
                parent: s["parentSpanId"].as_str().unwrap_or_default().to_string(),
                name: s["name"].as_str().unwrap_or_default().to_string(),
                service: service.clone(),
                start: num("startTimeUnixNano"),
                end: num("endTimeUnixNano"),
                error: s["status"]["code"] == 2 || s["status"]["code"] == "STATUS_CODE_ERROR",
            });
        }
    }
    spans.sort_by_key(|s| s.start);
    let ids: std::collections::HashSet<&str> = spans.iter().map(|s| s.id.as_str()).collect();
    let mut children: BTreeMap<&str, Vec<&Span>> = BTreeMap::new();
    let mut roots = Vec::new();
    for s in &spans {
        if s.parent.is_empty() || !ids.contains(s.parent.as_str()) {
            roots.push(s);
        } else {
            children.entry(s.parent.as_str()).or_default().push(s);
        }
    }
    let t0 = spans.iter().map(|s| s.start).min().unwrap_or(0);
    fn show(s: &Span, depth: usize, t0: u128, children: &BTreeMap<&str, Vec<&Span>>) {
        let ms = |ns: u128| ns as f64 / 1e6;
        let mark = if s.error {
            paint("31", " ERROR")
        } else {
            String::new()
        };
        println!(
            "{:indent$}{} {} {:.2}ms (+{:.2}ms){mark}",
            "",
            paint("1", &s.name),
            paint("36", &format!("[{}]", s.service)),
            ms(s.end.saturating_sub(s.start)),
            ms(s.start.saturating_sub(t0)),
            indent = depth * 2
        );
        for c in children.get(s.id.as_str()).into_iter().flatten() {
            show(c, depth + 1, t0, children);
        }
    }
    for r in roots {
        show(r, 0, t0, &children);
    }
    println!("{} spans", spans.len());
}

/// `--follow`: prints lines from the store's tail WebSocket as they arrive, from `since`.
fn tail(client: &StoreClientArgs, query: &str, since: f64) -> anyhow::Result<()> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let output = client.output;
    let client = StoreClient::new(client, Duration::from_secs(120))?;
    let store = client.base();
    let Some(rest) = store.strip_prefix("http://") else {
        bail!("--follow needs a plain http:// store URL (TLS tailing is not supported yet)");
    };
    let mut url = format!("ws://{rest}/loki/api/v1/tail?");
    url.push_str(
        &form_urlencoded::Serializer::new(String::new())
            .append_pair("query", query)
            .append_pair("start", &format!("{}", (since * 1e9) as i128 + 1))
            .finish(),
    );
    let mut request = url.into_client_request()?;
    if let Some(t) = client.token() {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {t}").parse()?);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let (mut ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .map_err(|e| anyhow!("cannot follow {store}: {e}"))?;
        while let Some(msg) = ws.next().await {
            let msg = msg.map_err(|e| anyhow!("the tail connection broke: {e}"))?;
            let Ok(text) = msg.to_text() else { continue };
            let Ok(v) = serde_json::from_str::<Value>(text) else {
                continue;
            };
            match output {
                Output::Human => print_streams(v["streams"].as_array().map_or(&[][..], Vec::as_slice)),
                Output::Json | Output::Raw => println!("{text}"),
            }
            use std::io::Write;
            std::io::stdout().flush()?;
        }
        Ok(())
    })
}
