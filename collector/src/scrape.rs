//! Prometheus scraping: `[[collector.scrape]]` jobs with static targets and/or a
//! Prometheus `file_sd` JSON file (re-read every interval), each target scraped every
//! `interval_secs` over HTTP and its text exposition parsed into OTLP metrics.
//!
//! As Prometheus does, every scrape also yields `up` (1 or 0), `scrape_duration_seconds` and
//! `scrape_samples_scraped`; when a target stops answering or leaves the file, its series get
//! a staleness marker (an OTLP point flagged "no recorded value"), so queries stop showing
//! them at once instead of after the 5-minute lookback. Resource `service.name = <job>` and
//! `service.instance.id = <target>` become `job` and `instance` in the store; `file_sd`
//! labels become labels of every series. Samples named `…_total` are sent as counters,
//! everything else as gauges (names are kept as scraped).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{number_data_point, DataPointFlags, NumberDataPoint};
use serde::Deserialize;
use tokio::sync::watch;

use crate::config::ScrapeJob;
use crate::otlp::{string_kv, MetricsBuilder};
use crate::spool::Spool;

/// One parsed sample: metric name, labels, value.
pub(crate) type Series = (String, Vec<(String, String)>);

/// Parses the Prometheus text exposition format (version 0.0.4). Comments, `# TYPE` and
/// `# HELP` lines are skipped; a malformed line is an error naming it.
pub(crate) fn parse_text(text: &str) -> Result<Vec<(Series, f64)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        let (name, rest) = match line.find(['{', ' ', '\t']) {
            Some(i) => line.split_at(i),
            None => return Err(bad("no value")),
        };
        let mut labels = Vec::new();
        let mut rest = rest;
        if let Some(body) = rest.strip_prefix('{') {
            let mut chars = body.char_indices().peekable();
            let end;
            loop {
                while chars.next_if(|(_, c)| *c == ',' || c.is_whitespace()).is_some() {}
                match chars.peek() {
                    Some((i, '}')) => {
                        end = *i;
                        break;
                    }
                    None => return Err(bad("unclosed label set")),
                    _ => {}
                }
                let key: String =
                    std::iter::from_fn(|| chars.next_if(|(_, c)| *c != '=').map(|(_, c)| c)).collect();
                if chars.next().is_none() || chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(bad("a label value must be quoted"));
                }
                let mut value = String::new();
                loop {
                    match chars.next() {
                        Some((_, '\\')) => match chars.next() {
                            Some((_, 'n')) => value.push('\n'),
                            Some((_, c)) => value.push(c),
                            None => return Err(bad("unfinished escape")),
                        },
                        Some((_, '"')) => break,
                        Some((_, c)) => value.push(c),
                        None => return Err(bad("unclosed label value")),
                    }
                }
                labels.push((key.trim().to_string(), value));
            }
            rest = &body[end + 1..];
        }
        let value = rest.split_whitespace().next().ok_or_else(|| bad("no value"))?;
        let value = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().map_err(|_| bad("the value is not a number"))?,
        };
        out.push(((name.to_string(), labels), value));
    }
    Ok(out)
}

#[derive(Deserialize)]
struct FileSdGroup {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// The targets of a job now: static ones, then those in its `file_sd` file.
fn targets(job: &ScrapeJob) -> Vec<(String, BTreeMap<String, String>)> {
    let mut out: Vec<_> = job.targets.iter().map(|t| (t.clone(), BTreeMap::new())).collect();
    if let Some(f) = &job.file_sd {
        match std::fs::read(f).map(|b| serde_json::from_slice::<Vec<FileSdGroup>>(&b)) {
            Ok(Ok(groups)) => {
                for g in groups {
                    out.extend(g.targets.into_iter().map(|t| (t, g.labels.clone())));
                }
            }
            Ok(Err(e)) => {
                tracing::warn!(file = %f.display(), error = %e, "file_sd is not Prometheus file_sd JSON; keeping static targets")
            }
            Err(e) => tracing::warn!(file = %f.display(), error = %e, "cannot read file_sd"),
        }
    }
    out
}

/// Samples (or staleness markers, for `None` values) of one target as an OTLP request.
fn to_otlp(
    job: &str,
    target: &str,
    samples: Vec<(Series, Option<f64>)>,
    now_ns: u64,
) -> ExportMetricsServiceRequest {
    let mut metrics = MetricsBuilder::default();
    for ((name, labels), value) in samples {
        let point = NumberDataPoint {
            attributes: labels.iter().map(|(k, v)| string_kv(k, v)).collect(),
            time_unix_nano: now_ns,
            value: Some(number_data_point::Value::AsDouble(value.unwrap_or(f64::NAN))),
            flags: if value.is_none() {
                DataPointFlags::NoRecordedValueMask as u32
            } else {
                0
            },
            ..Default::default()
        };
        let counter = name.ends_with("_total");
        metrics.push(name, counter, point);
    }
    metrics.request(vec![
        string_kv("service.name", job),
        string_kv("service.instance.id", target),
    ])
}

/// GETs a target's metrics page (ureq on a blocking thread) and parses it.
async fn scrape_once(agent: &ureq::Agent, url: &str) -> Result<Vec<(Series, f64)>, String> {
    let (agent, url) = (agent.clone(), url.to_string());
    tokio::task::spawn_blocking(move || {
        let mut resp = agent
            .get(&url)
            .header("accept", "text/plain;version=0.0.4")
            .call()
            .map_err(|e| e.to_string())?;
        if resp.status() != 200 {
            return Err(format!("HTTP {}", resp.status()));
        }
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| e.to_string())?;
        parse_text(&text)
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Runs one job until shutdown.
pub(crate) async fn run(job: ScrapeJob, spool: Arc<Spool>, shutdown: watch::Receiver<bool>) {
    let interval = Duration::from_secs(job.interval_secs.max(1));
    let timeout = interval.min(Duration::from_secs(10));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .build()
        .into();
    // Series each target sent last time, to mark stale what disappears.
    let mut last: HashMap<String, HashSet<Series>> = HashMap::new();
    let mut ticker = crate::otlp::Ticker::new(interval, shutdown);
    while ticker.next().await {
        let now_ns = crate::now_ns();
        let current = targets(&job);
        let mut requests = Vec::new();
        let live: HashSet<&str> = current.iter().map(|(t, _)| t.as_str()).collect();
        for gone in last
            .keys()
            .filter(|t| !live.contains(t.as_str()))
            .cloned()
            .collect::<Vec<_>>()
        {
            let series = last.remove(&gone).unwrap_or_default();
            let stale = series.into_iter().map(|s| (s, None)).collect();
            requests.push(to_otlp(&job.job, &gone, stale, now_ns));
        }
        for (target, extra) in &current {
            let url = format!("http://{target}{}", job.path);
            let started = Instant::now();
            let result = scrape_once(&agent, &url).await;
            let took = started.elapsed().as_secs_f64();
            let extra: Vec<(String, String)> = extra.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let mut samples: Vec<(Series, Option<f64>)> = Vec::new();
            let seen = last.entry(target.clone()).or_default();
            let up = match result {
                Ok(scraped) => {
                    let n = scraped.len();
                    let mut now: HashSet<Series> = HashSet::new();
                    for ((name, mut labels), v) in scraped {
                        labels.extend(extra.iter().cloned());
                        now.insert((name.clone(), labels.clone()));
                        samples.push(((name, labels), Some(v)));
                    }
                    samples.extend(seen.difference(&now).cloned().map(|s| (s, None)));
                    *seen = now;
                    samples.push((("scrape_samples_scraped".into(), extra.clone()), Some(n as f64)));
                    1.0
                }
                Err(e) => {
                    tracing::debug!(target = %target, error = %e, "scrape failed");
                    samples.extend(seen.drain().map(|s| (s, None)));
                    0.0
                }
            };
            samples.push((("up".into(), extra.clone()), Some(up)));
            samples.push((("scrape_duration_seconds".into(), extra), Some(took)));
            requests.push(to_otlp(&job.job, target, samples, now_ns));
        }
        crate::otlp::spool_metrics(&spool, requests, "scraped metrics").await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_format_samples_labels_and_escapes() {
        let text = "# HELP x y\n# TYPE http_requests_total counter\nhttp_requests_total{method=\"GET\",path=\"/a\\\"b\"} 12 1700000000000\nup 1\nlat_bucket{le=\"+Inf\"} 3\ntemp -Inf\n";
        let s = parse_text(text).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].0 .0, "http_requests_total");
        assert_eq!(
            s[0].0 .1,
            [("method".into(), "GET".into()), ("path".into(), "/a\"b".into())]
        );
        assert_eq!(s[0].1, 12.0);
        assert_eq!(s[2].0 .1, [("le".to_string(), "+Inf".to_string())]);
        assert_eq!(s[3].1, f64::NEG_INFINITY);
        let err = parse_text("ok 1\nbroken{a=b} 1\n").unwrap_err();
        assert!(err.starts_with("line 2: a label value must be quoted"), "{err}");
    }
}
