//! One group's evaluation: its rules in order at one timestamp, each rule's output written
//! (through the caller's sink) before the next rule runs, so later rules see it.
//!
//! Per rule: run the query at `ts - query_offset`; a recording rule names the result and
//! adds its labels; an alerting rule templates each element into an alert and steps the
//! alerts ([`super::alert::step`]), writing `ALERTS` and `ALERTS_FOR_STATE`. Series a rule
//! wrote last time and not this time get a stale marker. A rule whose query fails is marked
//! `err` with the message and writes nothing; the rest of the group still runs.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use super::alert::{self, Alert, Candidate, State};
use super::file::{Group, Kind, Query, Rule};
use super::template;
use crate::tsdb::{stale_nan, Labels, SeriesSamples, METRIC_NAME};

/// What rule evaluation reads: queries, and the last `ALERTS_FOR_STATE` sample of a series.
pub(crate) trait Source {
    /// The instant-vector (or scalar, as one unlabelled element) result of `q` at `t` (ms).
    fn query(&self, q: &Query, t: i64) -> Result<Vec<(Labels, f64)>, String>;
    /// The last sample of the series `labels` in `[mint, maxt]`.
    fn last_sample(&self, labels: &Labels, mint: i64, maxt: i64) -> Option<(i64, f64)>;
}

/// What labels and annotations can use beyond the alert itself.
#[derive(Clone, Debug, Default)]
pub(crate) struct Env {
    pub(crate) external_labels: Vec<(String, String)>,
    pub(crate) external_url: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Health {
    Unknown,
    Ok,
    Err,
}

impl Health {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Health::Unknown => "unknown",
            Health::Ok => "ok",
            Health::Err => "err",
        }
    }
}

/// A rule and what its evaluations left.
#[derive(Clone, Debug)]
pub(crate) struct RuleState {
    pub(crate) rule: Arc<Rule>,
    pub(crate) health: Health,
    pub(crate) last_error: String,
    /// Wall-clock time of the last evaluation (ms) and how long it took (s).
    pub(crate) last_eval: Option<i64>,
    pub(crate) eval_seconds: f64,
    pub(crate) alerts: HashMap<Labels, Alert>,
    /// Series written by the last evaluation (stale-marked when they disappear).
    prev_series: HashSet<Labels>,
    /// Whether `for` state was restored (or needs none): until then no `ALERTS` are written.
    pub(crate) restored: bool,
}

/// A group and its rules' states.
#[derive(Clone, Debug)]
pub(crate) struct GroupState {
    pub(crate) group: Group,
    pub(crate) interval_ms: i64,
    pub(crate) rules: Vec<RuleState>,
    pub(crate) last_eval: Option<i64>,
    pub(crate) eval_seconds: f64,
    /// Evaluations skipped because the previous one overran its interval.
    pub(crate) missed: u64,
}

/// Alerts whose `for` is shorter than this are not restored after a restart (Prometheus's
/// `rules.alert.for-grace-period`), and restored alerts get at least this long to fire.
pub(crate) const FOR_GRACE_MS: i64 = 10 * 60 * 1000;
/// Only `ALERTS_FOR_STATE` this recent is used to restore (`rules.alert.for-outage-tolerance`).
pub(crate) const OUTAGE_TOLERANCE_MS: i64 = 60 * 60 * 1000;

impl GroupState {
    pub(crate) fn new(group: Group, default_interval_ms: i64) -> GroupState {
        let interval_ms = group
            .interval
            .map(|d| d.as_millis() as i64)
            .unwrap_or(default_interval_ms)
            .max(1);
        let rules = group
            .rules
            .iter()
            .map(|r| RuleState {
                rule: r.clone(),
                health: Health::Unknown,
                last_error: String::new(),
                last_eval: None,
                eval_seconds: 0.0,
                alerts: HashMap::new(),
                prev_series: HashSet::new(),
                restored: false,
            })
            .collect();
        GroupState {
            group,
            interval_ms,
            rules,
            last_eval: None,
            eval_seconds: 0.0,
            missed: 0,
        }
    }

    /// Takes over the state of the same group before a reload: rules are matched by
    /// position, name and query, as Prometheus matches them.
    pub(crate) fn take_state(&mut self, old: &GroupState) {
        let mut old_rules: HashMap<(String, String), Vec<&RuleState>> = HashMap::new();
        for r in &old.rules {
            old_rules
                .entry((r.rule.name().to_string(), r.rule.expr.clone()))
                .or_default()
                .push(r);
        }
        for r in &mut self.rules {
            let key = (r.rule.name().to_string(), r.rule.expr.clone());
            let Some(list) = old_rules.get_mut(&key) else {
                continue;
            };
            if list.is_empty() {
                continue;
            }
            let o = list.remove(0);
            r.health = o.health;
            r.last_error = o.last_error.clone();
            r.last_eval = o.last_eval;
            r.eval_seconds = o.eval_seconds;
            r.alerts = o.alerts.clone();
            r.prev_series = o.prev_series.clone();
            r.restored = o.restored;
        }
        self.last_eval = old.last_eval;
        self.eval_seconds = old.eval_seconds;
        self.missed = old.missed;
    }

    /// Marks every rule as restored (nothing to restore: first start with no history, or
    /// a rule unit test).
    pub(crate) fn set_restored(&mut self) {
        for r in &mut self.rules {
            r.restored = true;
        }
    }

    /// Stale markers at `t` for every series the group wrote last (it is being removed).
    pub(crate) fn stale_all(&self, t: i64) -> Vec<SeriesSamples> {
        self.rules
            .iter()
            .flat_map(|r| r.prev_series.iter())
            .map(|l| SeriesSamples {
                labels: l.clone().into_pairs(),
                samples: vec![(t, stale_nan())],
            })
            .collect()
    }

    /// Evaluates every rule at `ts` (ms); `sink` receives each rule's samples before the
    /// next rule runs and says whether they were stored.
    pub(crate) fn eval(
        &mut self,
        ts: i64,
        now_ms: i64,
        src: &dyn Source,
        env: &Env,
        sink: &mut dyn FnMut(Vec<SeriesSamples>) -> Result<(), String>,
    ) {
        let started = Instant::now();
        let t = ts - self.group.query_offset.as_millis() as i64;
        let limit = self.group.limit;
        for r in &mut self.rules {
            let rule_started = Instant::now();
            let out = match &r.rule.kind {
                Kind::Record(name) => record(&r.rule, name, src, t, limit),
                Kind::Alert(_) => alerting(r, src, env, ts, t, limit),
            };
            let result =
                out.and_then(|series| {
                    let mut written = HashSet::with_capacity(series.len());
                    let mut batch: Vec<SeriesSamples> = series
                        .into_iter()
                        .map(|(labels, v)| {
                            written.insert(labels.clone());
                            SeriesSamples {
                                labels: labels.into_pairs(),
                                samples: vec![(t, v)],
                            }
                        })
                        .collect();
                    batch.extend(r.prev_series.iter().filter(|l| !written.contains(*l)).map(|l| {
                        SeriesSamples {
                            labels: l.clone().into_pairs(),
                            samples: vec![(t, stale_nan())],
                        }
                    }));
                    if !batch.is_empty() {
                        sink(batch)?;
                    }
                    r.prev_series = written;
                    Ok(())
                });
            match result {
                Ok(()) => {
                    r.health = Health::Ok;
                    r.last_error.clear();
                }
                Err(e) => {
                    r.health = Health::Err;
                    r.last_error = e;
                }
            }
            r.last_eval = Some(now_ms);
            r.eval_seconds = rule_started.elapsed().as_secs_f64();
        }
        self.last_eval = Some(now_ms);
        self.eval_seconds = started.elapsed().as_secs_f64();
    }

    /// Prometheus's `RestoreForState` at `now` (ms): pending alerts of rules with a long
    /// `for` take back the time they had already spent pending before a restart.
    pub(crate) fn restore(&mut self, now: i64, src: &dyn Source) {
        for r in &mut self.rules {
            let hold = r.rule.hold.as_millis() as i64;
            if !matches!(r.rule.kind, Kind::Alert(_)) || hold < FOR_GRACE_MS {
                r.restored = true;
                continue;
            }
            for a in r.alerts.values_mut() {
                let mut series = a.labels.clone();
                series.set(METRIC_NAME, "ALERTS_FOR_STATE");
                let Some((down_at, v)) = src.last_sample(&series, now - OUTAGE_TOLERANCE_MS, now) else {
                    continue;
                };
                if let Some(at) = alert::restored_active_at(now, hold, FOR_GRACE_MS, down_at, v) {
                    a.active_at = at;
                }
            }
            r.restored = true;
        }
    }
}

fn record(
    rule: &Rule,
    name: &str,
    src: &dyn Source,
    t: i64,
    limit: usize,
) -> Result<Vec<(Labels, f64)>, String> {
    let rows = src.query(&rule.query, t)?;
    let mut out = Vec::with_capacity(rows.len());
    let mut seen = HashSet::with_capacity(rows.len());
    for (mut labels, v) in rows {
        labels.set(METRIC_NAME, name);
        for (k, val) in &rule.labels {
            labels.set(k, val);
        }
        if !seen.insert(labels.clone()) {
            return Err("vector contains metrics with the same labelset after applying rule labels".into());
        }
        out.push((labels, v));
    }
    if limit > 0 && out.len() > limit {
        return Err(format!("exceeded limit of {limit} with {} series", out.len()));
    }
    Ok(out)
}

fn alerting(
    r: &mut RuleState,
    src: &dyn Source,
    env: &Env,
    ts: i64,
    t: i64,
    limit: usize,
) -> Result<Vec<(Labels, f64)>, String> {
    let rule = r.rule.clone();
    let rows = src.query(&rule.query, t)?;
    let query = |text: &str| -> Result<Vec<template::Sample>, String> {
        let q = super::file::parse_query(text, super::file::Lang::PromQL)?;
        Ok(src
            .query(&q, t)?
            .into_iter()
            .map(|(l, v)| template::Sample {
                labels: Arc::new(l.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
                value: v,
            })
            .collect())
    };
    let mut candidates = Vec::with_capacity(rows.len());
    let mut seen = HashSet::with_capacity(rows.len());
    for (labels, value) in rows {
        let pairs: Vec<(String, String)> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let ctx = template::Context {
            labels: &pairs,
            external_labels: &env.external_labels,
            external_url: &env.external_url,
            value,
            query: &query,
        };
        let mut out = labels.without_name();
        for (k, v) in &rule.labels {
            out.set(k, &template::expand(v, &ctx));
        }
        out.set("alertname", rule.name());
        let annotations = rule
            .annotations
            .iter()
            .map(|(k, v)| (k.clone(), template::expand(v, &ctx)))
            .collect();
        if !seen.insert(out.clone()) {
            return Err("vector contains metrics with the same labelset after applying alert labels".into());
        }
        candidates.push(Candidate {
            labels: out,
            annotations,
            value,
        });
    }
    let live = alert::step(
        &mut r.alerts,
        candidates,
        ts,
        rule.hold.as_millis() as i64,
        rule.keep_firing_for.as_millis() as i64,
    );
    if limit > 0 && live > limit {
        r.alerts.clear();
        return Err(format!("exceeded limit of {limit} with {live} alerts"));
    }
    if !r.restored {
        return Ok(Vec::new());
    }
    let mut series = Vec::new();
    for a in r.alerts.values().filter(|a| a.state != State::Inactive) {
        let mut l = a.labels.clone();
        l.set(METRIC_NAME, "ALERTS");
        l.set("alertstate", a.state.as_str());
        series.push((l, 1.0));
        let mut f = a.labels.clone();
        f.set(METRIC_NAME, "ALERTS_FOR_STATE");
        series.push((f, (a.active_at / 1000) as f64));
    }
    Ok(series)
}

#[cfg(test)]
mod tests;
