//! The status page's data, computed from the stored series with PromQL.
//!
//! A probe is up at an instant when any vantage point sees it up
//! (`max by (probe) (probe_success{job="obs-probe"})`): one node whose uplink fails does not
//! make the service down; it makes it "degraded" while the others still see it up. Its
//! uptime over 24 h / 7 d / 30 d and the 90 daily bars are those of the vantage point that
//! saw it up the most (`max by (probe) (avg_over_time(probe_success[24h]))`): a real outage
//! is seen from everywhere, a broken uplink only from one node. This reads each raw sample
//! once, where a subquery over "up from anywhere" would evaluate thousands of steps. A
//! heartbeat is up while its last push said up and it is not late (`obs_push_up`).
//! Incidents are the runs of "down from everywhere" over the last 7 days, at 1 m steps.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::{Heartbeats, StatusPageConfig};
use crate::ingest::Engine;
use crate::promql::{self, Options, QueryValue};
use crate::tsdb::Labels;

const PROBE_SERIES: &str = r#"probe_success{job="obs-probe"}"#;
const HEARTBEAT_SERIES: &str = r#"obs_push_up{job="obs-push"}"#;
const DAY_MS: i64 = 86_400_000;
/// Daily bars shown.
pub(crate) const DAYS: i64 = 90;
/// How far back incidents are listed.
const INCIDENT_DAYS: i64 = 7;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Status {
    pub title: String,
    /// Unix seconds.
    pub generated_at: i64,
    /// `up`, `degraded` or `down`: the worst of the services.
    pub state: &'static str,
    pub services: Vec<Service>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Vantage {
    pub host_name: String,
    pub up: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub(crate) struct Uptime {
    /// Percentages; `None` without data.
    #[serde(rename = "24h")]
    pub day: Option<f64>,
    #[serde(rename = "7d")]
    pub week: Option<f64>,
    #[serde(rename = "30d")]
    pub month: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Incident {
    /// Unix seconds.
    pub start: i64,
    /// `None` while it lasts.
    pub end: Option<i64>,
    pub duration_secs: i64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Service {
    /// `probe` or `heartbeat`.
    pub kind: &'static str,
    pub name: String,
    /// What is probed (the URL, `host:port`, ...); empty for heartbeats.
    pub target: String,
    /// `up`, `degraded`, `down` or `no data`.
    pub state: &'static str,
    pub vantage_points: Vec<Vantage>,
    pub uptime: Uptime,
    pub response_time_ms: Option<f64>,
    /// Unix seconds.
    pub certificate_expires: Option<i64>,
    /// Heartbeats: the last push (Unix seconds) and its message.
    pub last_seen: Option<i64>,
    pub message: Option<String>,
    /// Availability per day in percent, oldest first, the last ending now.
    pub days: Vec<Option<f64>>,
    pub incidents: Vec<Incident>,
}

type Result<T> = std::result::Result<T, String>;
/// A range query's series: labels and points.
type Rows = Vec<(Arc<Labels>, Vec<(i64, f64)>)>;

fn opts() -> Options {
    Options::default()
}

/// An instant query's samples as (labels, value).
fn instant(engine: &Engine, q: &str, t: i64) -> Result<Vec<(Arc<Labels>, f64)>> {
    let expr = promql::parse(q).map_err(|e| format!("{q}: {e}"))?;
    match promql::instant(engine.tsdb(), &expr, t, &opts())
        .map_err(|e| format!("{q}: {e}"))?
        .value
    {
        QueryValue::Vector(v) => Ok(v.into_iter().map(|s| (s.metric, s.v)).collect()),
        _ => Ok(Vec::new()),
    }
}

/// A range query's series as (labels, points).
fn range(engine: &Engine, q: &str, start: i64, end: i64, step: i64) -> Result<Rows> {
    let expr = promql::parse(q).map_err(|e| format!("{q}: {e}"))?;
    match promql::range(engine.tsdb(), &expr, start, end, step, &opts())
        .map_err(|e| format!("{q}: {e}"))?
        .value
    {
        QueryValue::Matrix(m) => Ok(m.into_iter().map(|s| (s.metric, s.points)).collect()),
        _ => Ok(Vec::new()),
    }
}

fn by<T>(rows: Vec<(Arc<Labels>, T)>, key: &str) -> BTreeMap<String, T> {
    rows.into_iter()
        .filter_map(|(l, v)| Some((l.get(key)?.to_string(), v)))
        .collect()
}

/// History of one kind of service: uptimes, daily bars, incidents, by name.
#[derive(Debug, Default)]
struct History {
    uptime: BTreeMap<String, Uptime>,
    days: BTreeMap<String, Vec<Option<f64>>>,
    incidents: BTreeMap<String, Vec<Incident>>,
}

fn history(engine: &Engine, series: &str, key: &str, now: i64) -> Result<History> {
    let mut h = History::default();
    let availability = |window: &str| format!("max by ({key}) (avg_over_time({series}[{window}])) * 100");
    for window in ["24h", "7d", "30d"] {
        let q = availability(window);
        for (name, v) in by(instant(engine, &q, now)?, key) {
            let u = h.uptime.entry(name).or_default();
            *match window {
                "24h" => &mut u.day,
                "7d" => &mut u.week,
                _ => &mut u.month,
            } = Some(v);
        }
    }
    let first = now - (DAYS - 1) * DAY_MS;
    for (name, points) in by(range(engine, &availability("1d"), first, now, DAY_MS)?, key) {
        let mut days = vec![None; DAYS as usize];
        for (t, v) in points {
            let i = ((t - first) / DAY_MS) as usize;
            if let Some(d) = days.get_mut(i) {
                *d = Some(v);
            }
        }
        h.days.insert(name, days);
    }
    let step = 60_000;
    let signal = format!("max by ({key}) ({series})");
    for (name, points) in by(
        range(engine, &signal, now - INCIDENT_DAYS * DAY_MS, now, step)?,
        key,
    ) {
        h.incidents.insert(name, incidents(&points, step));
    }
    Ok(h)
}

/// Runs of points below 1 (down), newest first; a gap in the data ends a run.
fn incidents(points: &[(i64, f64)], step: i64) -> Vec<Incident> {
    let mut out = Vec::new();
    let mut run: Option<(i64, i64)> = None;
    for &(t, v) in points {
        run = match (run, v < 1.0) {
            (Some((s, last)), true) if t - last <= step => Some((s, t)),
            (Some(r), true) => {
                out.push(r);
                Some((t, t))
            }
            (None, true) => Some((t, t)),
            (Some(r), false) => {
                out.push(r);
                None
            }
            (None, false) => None,
        };
    }
    let ongoing = run.filter(|(_, last)| points.last().is_some_and(|(t, _)| t == last));
    let mut incidents: Vec<Incident> = out
        .into_iter()
        .chain(run.filter(|r| Some(*r) != ongoing))
        .map(|(s, e)| Incident {
            start: s / 1000,
            end: Some((e + step) / 1000),
            duration_secs: (e + step - s) / 1000,
        })
        .chain(ongoing.map(|(s, e)| Incident {
            start: s / 1000,
            end: None,
            duration_secs: (e - s) / 1000,
        }))
        .collect();
    incidents.sort_by_key(|i| std::cmp::Reverse(i.start));
    incidents
}

/// Computes the page at `now` (Unix ms). Blocking: runs the queries.
pub(crate) fn compute(
    engine: &Engine,
    beats: &Heartbeats,
    cfg: &StatusPageConfig,
    now: i64,
) -> Result<Status> {
    let shown = |name: &str| cfg.probes.is_empty() || cfg.probes.iter().any(|p| p == name);
    let mut services = Vec::new();

    let mut probes = history(engine, PROBE_SERIES, "probe", now)?;
    let mut vantage: BTreeMap<String, (String, Vec<Vantage>)> = BTreeMap::new();
    for (l, v) in instant(
        engine,
        r#"last_over_time(probe_success{job="obs-probe"}[5m])"#,
        now,
    )? {
        let (Some(probe), Some(host)) = (l.get("probe"), l.get("host_name")) else {
            continue;
        };
        let e = vantage
            .entry(probe.to_string())
            .or_insert_with(|| (l.get("instance").unwrap_or_default().to_string(), Vec::new()));
        e.1.push(Vantage {
            host_name: host.to_string(),
            up: v >= 1.0,
        });
    }
    let response = by(
        instant(
            engine,
            r#"avg by (probe) (avg_over_time(probe_duration_seconds{job="obs-probe"}[1h])) * 1000"#,
            now,
        )?,
        "probe",
    );
    let certs = by(
        instant(
            engine,
            r#"min by (probe) (last_over_time(probe_ssl_earliest_cert_expiry{job="obs-probe"}[1h]))"#,
            now,
        )?,
        "probe",
    );
    let mut names: Vec<String> = probes.uptime.keys().chain(vantage.keys()).cloned().collect();
    names.sort();
    names.dedup();
    for name in names.into_iter().filter(|n| shown(n)) {
        let (target, mut points) = vantage.remove(&name).unwrap_or_default();
        points.sort_by(|a, b| a.host_name.cmp(&b.host_name));
        let ups = points.iter().filter(|p| p.up).count();
        let state = match (points.len(), ups) {
            (0, _) => "no data",
            (n, u) if u == n => "up",
            (_, 0) => "down",
            _ => "degraded",
        };
        services.push(Service {
            kind: "probe",
            target,
            state,
            vantage_points: points,
            uptime: probes.uptime.remove(&name).unwrap_or_default(),
            response_time_ms: response.get(&name).copied(),
            certificate_expires: certs.get(&name).map(|t| *t as i64),
            last_seen: None,
            message: None,
            days: probes.days.remove(&name).unwrap_or_default(),
            incidents: probes.incidents.remove(&name).unwrap_or_default(),
            name,
        });
    }

    let mut hb = history(engine, HEARTBEAT_SERIES, "name", now)?;
    for (name, beat) in beats.snapshot().into_iter().filter(|(n, _)| shown(n)) {
        let late = beats
            .declared(&name)
            .is_some_and(|d| now - beat.last_seen_ms > (d.period + d.grace).as_millis() as i64);
        let state = match (beat.pushed, beat.up && !late) {
            (_, false) => "down",
            (false, true) => "no data",
            (true, true) => "up",
        };
        services.push(Service {
            kind: "heartbeat",
            target: String::new(),
            state,
            vantage_points: Vec::new(),
            uptime: hb.uptime.remove(&name).unwrap_or_default(),
            response_time_ms: None,
            certificate_expires: None,
            last_seen: beat.pushed.then_some(beat.last_seen_ms / 1000),
            message: (!beat.msg.is_empty()).then(|| beat.msg.clone()),
            days: hb.days.remove(&name).unwrap_or_default(),
            incidents: hb.incidents.remove(&name).unwrap_or_default(),
            name,
        });
    }
    let worst = |s: &str| services.iter().any(|svc| svc.state == s);
    let state = if worst("down") {
        "down"
    } else if worst("degraded") {
        "degraded"
    } else {
        "up"
    };
    Ok(Status {
        title: cfg.title.clone(),
        generated_at: now / 1000,
        state,
        services,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incidents_are_runs_of_down() {
        let m = 60_000;
        let pts: Vec<(i64, f64)> = [1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0]
            .iter()
            .enumerate()
            .map(|(i, v)| (i as i64 * m, *v))
            .collect();
        let got = incidents(&pts, m);
        assert_eq!(got.len(), 3);
        // Newest first: the last run is still going on.
        assert_eq!((got[0].start, got[0].end, got[0].duration_secs), (420, None, 60));
        assert_eq!(
            (got[1].start, got[1].end, got[1].duration_secs),
            (240, Some(300), 60)
        );
        assert_eq!(
            (got[2].start, got[2].end, got[2].duration_secs),
            (60, Some(180), 120)
        );
        // A gap in the data splits a run.
        let gap = [(0, 0.0), (m, 0.0), (10 * m, 0.0), (11 * m, 1.0)];
        assert_eq!(incidents(&gap, m).len(), 2);
    }
}
