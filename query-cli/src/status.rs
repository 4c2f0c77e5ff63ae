//! `obs status`: health at a glance, from the store: its disk use, free space and retention
//! (its own `/metrics`), each collector (from the `obs_collector_*` metrics every collector
//! ships about itself: last seen, spool, drops, last delivery) and each backup job (from the
//! `obs_backup_*` gauges the scheduler reports). Exits 1 when the store's disk is 95% full, a
//! collector has not reported for 5 minutes or dropped data in the last hour, or a job's last
//! run or drill failed, or while a critical alert fires (firing alerts are listed).

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::cli::{Output, StatusArgs};
use crate::client::StoreClient;

/// One job's gauges by metric name.
type Job = BTreeMap<String, f64>;

/// GET a path of the store: (status, body).
fn get(args: &StatusArgs, path: &str, query: &[(&str, &str)]) -> anyhow::Result<(u16, String)> {
    StoreClient::new(&args.client, Duration::from_secs(30))?.get(path, query)
}

/// An instant PromQL query: (labels, value) per series.
fn query(args: &StatusArgs, promql: &str) -> anyhow::Result<Vec<(serde_json::Value, f64)>> {
    let (status, body) = get(args, "/api/v1/query", &[("query", promql)])?;
    let v: serde_json::Value = serde_json::from_str(&body)
        .with_context(|| format!("{} did not answer like a Prometheus API", args.client.store))?;
    if status != 200 {
        bail!(
            "the store answered {status}: {}",
            v["error"].as_str().unwrap_or(body.trim())
        );
    }
    Ok(v["data"]["result"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r["metric"].clone(), r["value"][1].as_str()?.parse().ok()?)))
        .collect())
}

/// The store's own gauges from its `/metrics` (Prometheus text), by `name` or
/// `name{labels}` as written there.
fn store_gauges(args: &StatusArgs) -> anyhow::Result<Job> {
    let (status, body) = get(args, "/metrics", &[])?;
    if status != 200 {
        bail!("the store's /metrics answered {status}: {}", body.trim());
    }
    Ok(body
        .lines()
        .filter(|l| l.starts_with("obs_store_"))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.to_string(), value.parse().ok()?))
        })
        .collect())
}

fn fetch(args: &StatusArgs) -> anyhow::Result<BTreeMap<(String, String), Job>> {
    let mut jobs: BTreeMap<(String, String), Job> = BTreeMap::new();
    for (m, value) in query(args, "{__name__=~\"obs_backup_.+\"}")? {
        let (Some(name), Some(job)) = (m["__name__"].as_str(), m["job"].as_str()) else {
            continue;
        };
        let repo = m["repo"].as_str().unwrap_or_default().to_string();
        jobs.entry((job.to_string(), repo))
            .or_default()
            .insert(name.to_string(), value);
    }
    Ok(jobs)
}

/// Collectors seen in the last day, by host: what each last reported about itself.
fn collectors(args: &StatusArgs) -> anyhow::Result<BTreeMap<String, Job>> {
    let sel = "job=\"obs-collector\"";
    let queries = [
        (
            "seen",
            format!("last_over_time(obs_collector_report_timestamp_seconds{{{sel}}}[1d])"),
        ),
        (
            "delivered",
            format!("last_over_time(obs_collector_last_delivery_timestamp_seconds{{{sel}}}[1d])"),
        ),
        (
            "spool",
            format!("last_over_time(obs_collector_spool_bytes{{{sel}}}[1d])"),
        ),
        (
            "lag",
            format!("last_over_time(obs_collector_file_lag_bytes{{{sel}}}[1d])"),
        ),
        (
            "dropped_1h",
            format!("increase(obs_collector_spool_dropped_records_total{{{sel}}}[1h])"),
        ),
    ];
    let mut out: BTreeMap<String, Job> = BTreeMap::new();
    for (key, q) in queries {
        for (m, v) in query(args, &q)? {
            let host = m["instance"].as_str().unwrap_or("?").to_string();
            out.entry(host).or_default().insert(key.to_string(), v);
        }
    }
    Ok(out)
}

fn bytes(b: Option<f64>) -> String {
    match b {
        None => "-".into(),
        Some(b) if b < 1024.0 => format!("{b} B"),
        Some(b) if b < 1024.0 * 1024.0 => format!("{:.1} KiB", b / 1024.0),
        Some(b) if b < 1024.0 * 1024.0 * 1024.0 => format!("{:.1} MiB", b / 1024.0 / 1024.0),
        Some(b) => format!("{:.1} GiB", b / 1024.0 / 1024.0 / 1024.0),
    }
}

fn ago(secs: f64) -> String {
    let d = Duration::from_secs(secs.max(0.0) as u64);
    humantime::format_duration(d)
        .to_string()
        .split(' ')
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

fn when(ts: Option<f64>, now: f64) -> String {
    match ts {
        None => "-".to_string(),
        Some(t) if t >= now => format!("in {}", ago(t - now)),
        Some(t) => format!("{} ago", ago(now - t)),
    }
}

fn verdict(v: Option<f64>) -> &'static str {
    match v {
        Some(1.0) => "ok",
        Some(_) => "FAILED",
        None => "-",
    }
}

/// Prints the status; fails (exit 1) when something is unhealthy.
pub(crate) fn run(args: StatusArgs) -> anyhow::Result<()> {
    let store = store_gauges(&args)?;
    let collectors = collectors(&args)?;
    let jobs = fetch(&args)?;
    let client = StoreClient::new(&args.client, Duration::from_secs(30))?;
    let firing: Vec<crate::rules::Alert> = crate::rules::fetch(&client)?
        .into_iter()
        .filter(|a| a.state == "firing")
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs_f64();
    let mut problems = Vec::new();
    let (avail, size) = (
        store.get("obs_store_disk_avail_bytes").copied(),
        store.get("obs_store_disk_size_bytes").copied(),
    );
    if let (Some(avail), Some(size)) = (avail, size) {
        if size > 0.0 && avail / size * 100.0 < args.min_disk_free {
            problems.push(format!(
                "store: disk almost full ({} free of {}); shorten retention or add disk",
                bytes(Some(avail)),
                bytes(Some(size))
            ));
        }
    }
    for (host, c) in &collectors {
        if let Some(seen) = c.get("seen").filter(|s| now - **s > 300.0) {
            problems.push(format!("collector {host}: not seen for {}", ago(now - seen)));
        }
        if let Some(d) = c.get("dropped_1h").filter(|d| **d > 0.0) {
            problems.push(format!(
                "collector {host}: spool full, dropped {d:.0} records in the last hour"
            ));
        }
    }
    for ((job, _), g) in &jobs {
        if g.get("obs_backup_last_run_success") == Some(&0.0) {
            problems.push(format!("backup job {job}: last run failed"));
        }
        if g.get("obs_backup_drill_success") == Some(&0.0) {
            problems.push(format!("backup job {job}: last restore drill failed"));
        }
    }
    for a in firing
        .iter()
        .filter(|a| a.labels.get("severity").map(String::as_str) == Some("critical"))
    {
        let name = a.labels.get("alertname").map(String::as_str).unwrap_or("?");
        let summary = a.annotations.get("summary").map(String::as_str).unwrap_or("");
        problems.push(format!("critical alert {name} is firing: {summary}"));
    }
    match args.client.output {
        Output::Json | Output::Raw => {
            let list: Vec<_> = jobs
                .iter()
                .map(|((job, repo), g)| serde_json::json!({"job": job, "repo": repo, "gauges": g}))
                .collect();
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"store": store, "collectors": collectors, "backup_jobs": list, "firing_alerts": firing, "problems": problems})
                )?
            );
        }
        Output::Human => {
            print_store(&args.client.store, &store);
            println!("collectors");
            if collectors.is_empty() {
                println!("  none have reported yet");
            } else {
                println!(
                    "  {:<20} {:<14} {:<16} {:<12} {:<12} {:<10}",
                    "host", "last seen", "last delivery", "spool", "file lag", "dropped 1h"
                );
                for (host, c) in &collectors {
                    println!(
                        "  {:<20} {:<14} {:<16} {:<12} {:<12} {:<10}",
                        host,
                        when(c.get("seen").copied(), now),
                        when(c.get("delivered").copied().filter(|d| *d > 0.0), now),
                        bytes(c.get("spool").copied()),
                        bytes(c.get("lag").copied()),
                        c.get("dropped_1h").map_or("-".into(), |d| format!("{d:.0}")),
                    );
                }
            }
            println!("backup jobs");
            if jobs.is_empty() {
                println!("  none have reported yet");
            } else {
                println!(
                    "  {:<14} {:<12} {:<16} {:<8} {:<10} {:<14} {:<14}",
                    "job", "repo", "last success", "last run", "last drill", "snapshot age", "next run"
                );
                for ((job, repo), g) in &jobs {
                    println!(
                        "  {:<14} {:<12} {:<16} {:<8} {:<10} {:<14} {:<14}",
                        job,
                        repo,
                        when(g.get("obs_backup_last_success_timestamp_seconds").copied(), now),
                        verdict(g.get("obs_backup_last_run_success").copied()),
                        verdict(g.get("obs_backup_drill_success").copied()),
                        g.get("obs_backup_snapshot_age_seconds")
                            .map_or("-".to_string(), |a| ago(*a)),
                        when(g.get("obs_backup_next_run_timestamp_seconds").copied(), now),
                    );
                }
            }
            println!("firing alerts");
            if firing.is_empty() {
                println!("  none");
            } else {
                for line in crate::rules::table(&firing).lines() {
                    println!("  {line}");
                }
            }
            for p in &problems {
                println!("problem: {p}");
            }
        }
    }
    if !problems.is_empty() {
        bail!("{} problem(s) found", problems.len());
    }
    Ok(())
}

fn print_store(url: &str, g: &Job) {
    let b = |name: &str| bytes(g.get(name).copied());
    println!("store {url}");
    println!(
        "  disk use   logs {} · traces {} · metrics {} · WAL {}",
        b("obs_store_log_index_bytes"),
        b("obs_store_trace_index_bytes"),
        b("obs_store_metric_block_bytes"),
        b("obs_store_wal_bytes")
    );
    if let (Some(avail), Some(size)) = (
        g.get("obs_store_disk_avail_bytes"),
        g.get("obs_store_disk_size_bytes"),
    ) {
        println!(
            "  disk free  {} of {} ({:.0}%)",
            bytes(Some(*avail)),
            bytes(Some(*size)),
            100.0 * avail / size.max(1.0)
        );
    }
    let keep = |signal: &str| {
        g.get(&format!("obs_store_retention_seconds{{signal=\"{signal}\"}}"))
            .map_or("-".to_string(), |s| ago(*s))
    };
    println!(
        "  retention  logs {} · traces {} · metrics {}",
        keep("logs"),
        keep("traces"),
        keep("metrics")
    );
}
