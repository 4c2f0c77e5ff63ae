//! `obs errors [--service S] [--since 24h] [--status unresolved]`, `obs errors show ID`,
//! `obs errors resolve|ignore|unresolve ID`: the store's `/api/v1/errors` as tables (or JSON).

use std::time::Duration;

use anyhow::bail;
use serde_json::Value;

use crate::cli::{ErrorsArgs, ErrorsCommand, Output};
use crate::client::StoreClient;
use crate::query::sparkline;

pub(crate) fn run(args: ErrorsArgs) -> anyhow::Result<()> {
    let client = StoreClient::new(&args.client, Duration::from_secs(30))?;
    let output = args.client.output;
    match args.command {
        None => {
            let since = if args.since == "all" {
                ""
            } else {
                args.since.as_str()
            };
            let limit = args.limit.to_string();
            let mut query = vec![("status", args.status.as_str()), ("limit", limit.as_str())];
            if !since.is_empty() {
                humantime::parse_duration(since)
                    .map_err(|e| anyhow::anyhow!("--since {since:?}: {e} (try 24h, 7d or all)"))?;
                query.push(("since", since));
            }
            if let Some(s) = &args.service {
                query.push(("service", s));
            }
            let data = answer(client.get("/api/v1/errors", &query)?)?;
            match output {
                Output::Json | Output::Raw => println!("{}", serde_json::to_string_pretty(&data)?),
                Output::Human => print!("{}", table(data.as_array().map_or(&[], Vec::as_slice), now_s())),
            }
        }
        Some(ErrorsCommand::Show { id }) => {
            let data = answer(client.get(&format!("/api/v1/errors/{}", path_part(&id)), &[])?)?;
            match output {
                Output::Json | Output::Raw => println!("{}", serde_json::to_string_pretty(&data)?),
                Output::Human => print!("{}", show(&data, now_s())),
            }
        }
        Some(cmd) => {
            let (id, action) = match cmd {
                ErrorsCommand::Resolve { id } => (id, "resolve"),
                ErrorsCommand::Ignore { id } => (id, "ignore"),
                ErrorsCommand::Unresolve { id } => (id, "unresolve"),
                ErrorsCommand::Show { .. } => unreachable!("handled above"),
            };
            let path = format!("/api/v1/errors/{}/{action}", path_part(&id));
            let data = answer(client.send_json("POST", &path, None)?)?;
            match output {
                Output::Json | Output::Raw => println!("{}", serde_json::to_string_pretty(&data)?),
                Output::Human => println!(
                    "{} is now {}: {}",
                    data["id"].as_str().unwrap_or(&id),
                    data["status"].as_str().unwrap_or("?"),
                    data["title"].as_str().unwrap_or("")
                ),
            }
        }
    }
    Ok(())
}

/// An id as one URL path segment (ids are hex; anything else is escaped).
fn path_part(id: &str) -> String {
    form_urlencoded::byte_serialize(id.as_bytes()).collect()
}

fn now_s() -> i64 {
    chrono::Utc::now().timestamp()
}

/// The `data` of a store answer, or an error with the store's message.
fn answer((status, body): (u16, String)) -> anyhow::Result<Value> {
    let v: Value = serde_json::from_str(&body).unwrap_or_default();
    if status != 200 {
        let msg = v["error"].as_str().unwrap_or(body.trim());
        match status {
            401 | 403 => {
                bail!("the store refused the token ({status}): {msg} (pass --token-file, or set OBS_TOKEN)")
            }
            _ => bail!("the store answered {status}: {msg}"),
        }
    }
    Ok(v["data"].clone())
}

/// "3m ago", "5h ago", "2d ago".
fn ago(rfc3339: &str, now: i64) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(rfc3339) else {
        return "-".into();
    };
    let s = (now - t.timestamp()).max(0);
    match s {
        0..60 => format!("{s}s ago"),
        60..3600 => format!("{}m ago", s / 60),
        3600..86400 => format!("{}h ago", s / 3600),
        _ => format!("{}d ago", s / 86400),
    }
}

fn last_24h(issue: &Value) -> String {
    let counts: Vec<f64> = issue["last_24h"]
        .as_array()
        .map(|a| a.iter().map(|v| v.as_f64().unwrap_or(0.0)).collect())
        .unwrap_or_default();
    if counts.iter().all(|c| *c == 0.0) {
        return " ".repeat(counts.len());
    }
    // Hours without events show as the lowest bar, not as the middle one of a flat line.
    let mut with_floor = counts.clone();
    with_floor.push(0.0);
    let line = sparkline(&with_floor, with_floor.len());
    line.chars().take(counts.len()).collect()
}

/// The human table of issues.
pub(crate) fn table(issues: &[Value], now: i64) -> String {
    if issues.is_empty() {
        return "no issues match (try --status all or --since 7d)\n".into();
    }
    let mut out = format!(
        "{:<12}  {:<10}  {:>7}  {:>5}  {:<24}  {:<8}  {:<8}  {:<16}  {}\n",
        "ID", "STATUS", "EVENTS", "USERS", "LAST 24H", "FIRST", "LAST", "SERVICE", "TITLE"
    );
    for i in issues {
        let s = |k: &str| i[k].as_str().unwrap_or("").to_string();
        let mut status = s("status");
        if i["regression"].as_bool() == Some(true) && status == "unresolved" {
            status = "regressed".into();
        }
        out.push_str(&format!(
            "{:<12}  {:<10}  {:>7}  {:>5}  {:<24}  {:<8}  {:<8}  {:<16}  {}\n",
            s("id"),
            status,
            i["count"].as_u64().unwrap_or(0),
            i["users"].as_u64().unwrap_or(0),
            last_24h(i),
            ago(&s("first_seen"), now),
            ago(&s("last_seen"), now),
            s("service"),
            s("title")
        ));
    }
    out
}

/// `obs errors show`: the issue, its frames and its occurrences with commands to see more.
pub(crate) fn show(i: &Value, now: i64) -> String {
    let s = |k: &str| i[k].as_str().unwrap_or("").to_string();
    let mut out = format!("{}  {}\n\n", s("id"), s("title"));
    let mut status = s("status");
    if i["regression"].as_bool() == Some(true) {
        status.push_str(" (regressed after a resolve)");
    }
    let rows = [
        ("service", s("service")),
        ("status", status),
        ("type", s("type")),
        ("culprit", s("culprit")),
        ("level", s("level")),
        (
            "events",
            format!(
                "{} ({} users)",
                i["count"].as_u64().unwrap_or(0),
                i["users"].as_u64().unwrap_or(0)
            ),
        ),
        (
            "first seen",
            format!("{} ({})", s("first_seen"), ago(&s("first_seen"), now)),
        ),
        (
            "last seen",
            format!("{} ({})", s("last_seen"), ago(&s("last_seen"), now)),
        ),
        ("last 24h", last_24h(i)),
    ];
    for (k, v) in rows.iter().filter(|(_, v)| !v.trim().is_empty()) {
        out.push_str(&format!("  {k:<11} {v}\n"));
    }
    let frames = i["frames"].as_array().map_or(&[][..], Vec::as_slice);
    if !frames.is_empty() {
        out.push_str("\nFrames, innermost first (* in-app):\n");
        for f in frames {
            let (m, func) = (
                f["module"].as_str().unwrap_or(""),
                f["function"].as_str().unwrap_or(""),
            );
            let line = f["line"].as_u64().map(|l| format!(":{l}")).unwrap_or_default();
            let mark = if f["in_app"].as_bool() == Some(true) {
                "*"
            } else {
                " "
            };
            let at = if func.is_empty() {
                String::new()
            } else {
                format!(" in {func}")
            };
            out.push_str(&format!("  {mark} {m}{line}{at}\n"));
        }
    }
    let occurrences = i["occurrences"].as_array().map_or(&[][..], Vec::as_slice);
    if !occurrences.is_empty() {
        out.push_str("\nLast occurrences, newest first:\n");
    }
    for o in occurrences {
        let g = |k: &str| o[k].as_str().unwrap_or("").to_string();
        let mut where_ = vec![g("source")];
        for k in ["host", "release", "environment"] {
            if !g(k).is_empty() {
                where_.push(format!("{k}={}", g(k)));
            }
        }
        out.push_str(&format!(
            "  {}  {}\n    {}\n",
            g("time"),
            where_.join("  "),
            g("message")
        ));
        if let Some(logs) = o["logs"].as_str() {
            let t = chrono::DateTime::parse_from_rfc3339(&g("time"))
                .map(|t| t.timestamp())
                .unwrap_or(now);
            out.push_str(&format!(
                "    logs:  obs query logs '{logs}' --from {} --to {}\n",
                t - 60,
                t + 60
            ));
        }
        if !g("trace_id").is_empty() {
            out.push_str(&format!("    trace: obs query traces {}\n", g("trace_id")));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_show_counts_sparklines_and_ages() {
        let now = 1_764_928_800; // 2025-12-05T10:00:00Z
        let mut hours = vec![0; 24];
        hours[23] = 4;
        hours[20] = 1;
        let issue = serde_json::json!({
            "id": "3d38f2db31c5", "status": "unresolved", "regression": true, "count": 5, "users": 2,
            "last_24h": hours, "first_seen": "2025-12-05T07:00:00Z", "last_seen": "2025-12-05T09:59:00Z",
            "service": "inventory", "title": "panic: runtime error: index out of range",
            "frames": [{"module": "main", "function": "lookup", "line": 12, "in_app": true}],
            "occurrences": [{"time": "2025-12-05T09:59:00Z", "source": "log", "host": "node-a",
                "message": "runtime error", "logs": "{service_name=\"inventory\"} | error_issue=\"3d38f2db31c5\"",
                "trace_id": "0af7651916cd43dd8448eb211c80319c"}],
        });
        let t = table(std::slice::from_ref(&issue), now);
        let row = t.lines().nth(1).unwrap();
        assert!(row.starts_with("3d38f2db31c5  regressed"), "{t}");
        assert!(row.contains("3h ago") && row.contains("1m ago"), "{t}");
        assert!(
            row.ends_with('█'.to_string().as_str()) || row.contains('█'),
            "{t}"
        );
        let s = show(&issue, now);
        assert!(s.contains("* main:12 in lookup"), "{s}");
        assert!(s.contains("obs query logs '{service_name=\"inventory\"} | error_issue=\"3d38f2db31c5\"' --from 1764928680 --to 1764928800"), "{s}");
        assert!(
            s.contains("trace: obs query traces 0af7651916cd43dd8448eb211c80319c"),
            "{s}"
        );
        assert_eq!(
            table(&[], now),
            "no issues match (try --status all or --since 7d)\n"
        );
    }
}
