//! `obs rules test`: rule unit tests in promtool's format, run as `promtool test rules` runs
//! them, so the test files people keep for promtool pass or fail here the same way.
//!
//! ```text
//! test file --serde--> rule_files (loaded as the store loads them), tests: [group]
//! per group: input_series (series notation, promql/notation.rs) -> memory
//!   for ts = start, start + evaluation_interval, … up to the last eval_time:
//!     every rule group evaluates at ts over the input up to ts (its output is stored too)
//!     alert_rule_test whose eval_time falls in [ts, ts + interval): firing alerts compared
//!   promql_expr_test: each expr at its eval_time over everything, compared with exp_samples
//! ```
//!
//! Alerts count as restored from the start (as in promtool), so `ALERTS` series exist.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Deserialize;

use super::alert::State;
use super::file::{self, parse_duration, Group, Lang, Query};
use super::group::{Env, GroupState, Health, Source};
use super::manager::{last_sample, prom_rows};
use crate::promql::notation;
use crate::tsdb::{Labels, Matcher, Querier, RawSeries, SeriesList};

/// The outcome of one test file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestReport {
    pub file: String,
    /// What failed, in promtool's words; empty when every test passed.
    pub failures: Vec<String>,
}

impl TestReport {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// promtool's report: `Unit Testing:  FILE` then `SUCCESS` or `FAILED:` and the failures.
    pub fn render(&self) -> String {
        let mut out = format!("Unit Testing:  {}\n", self.file);
        if self.passed() {
            out.push_str("  SUCCESS\n");
        } else {
            out.push_str("  FAILED:\n");
            for f in &self.failures {
                let _ = writeln!(out, "{f}");
            }
        }
        out
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    rule_files: Vec<String>,
    #[serde(default, deserialize_with = "file::scalar")]
    evaluation_interval: Option<String>,
    #[serde(default)]
    group_eval_order: Vec<String>,
    #[serde(default)]
    fuzzy_compare: bool,
    #[serde(default)]
    tests: Vec<TestGroup>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct TestGroup {
    #[serde(default, deserialize_with = "file::scalar")]
    interval: Option<String>,
    #[serde(default)]
    input_series: Vec<InputSeries>,
    #[serde(default)]
    alert_rule_test: Vec<AlertTest>,
    #[serde(default)]
    promql_expr_test: Vec<ExprTest>,
    #[serde(default)]
    external_labels: BTreeMap<String, String>,
    #[serde(default)]
    external_url: String,
    #[serde(default)]
    name: String,
    #[serde(default, deserialize_with = "file::scalar")]
    start_timestamp: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputSeries {
    series: String,
    #[serde(default, deserialize_with = "file::scalar")]
    values: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertTest {
    #[serde(deserialize_with = "file::scalar")]
    eval_time: Option<String>,
    alertname: String,
    #[serde(default)]
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExpAlert {
    #[serde(default)]
    exp_labels: BTreeMap<String, String>,
    #[serde(default)]
    exp_annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExprTest {
    expr: String,
    #[serde(deserialize_with = "file::scalar")]
    eval_time: Option<String>,
    #[serde(default)]
    exp_samples: Vec<ExpSample>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpSample {
    #[serde(default)]
    labels: String,
    #[serde(default)]
    value: f64,
    #[serde(default)]
    histogram: String,
}

/// Runs the rule unit tests in `path`.
pub fn run_test_file(path: &Path) -> TestReport {
    let file = path.display().to_string();
    let failures = match std::fs::read_to_string(path) {
        Ok(text) => run_text(&text, path.parent().unwrap_or(Path::new("."))),
        Err(e) => vec![format!("    cannot read the test file: {e}")],
    };
    TestReport { file, failures }
}

fn run_text(text: &str, dir: &Path) -> Vec<String> {
    let tf: TestFile = match serde_saphyr::from_str::<Option<TestFile>>(text) {
        Ok(Some(tf)) => tf,
        Ok(None) => return Vec::new(),
        Err(e) => {
            return vec![format!(
                "    {}",
                e.without_snippet().to_string().lines().next().unwrap_or("")
            )]
        }
    };
    let eval_interval = match tf
        .evaluation_interval
        .as_deref()
        .map(|s| parse_duration("evaluation_interval", s))
    {
        None => 60_000,
        Some(Ok(d)) if !d.is_zero() => d.as_millis() as i64,
        Some(Ok(_)) => return vec!["    evaluation_interval must be longer than 0s".into()],
        Some(Err(e)) => return vec![format!("    {e}")],
    };
    let mut groups = Vec::new();
    for pattern in &tf.rule_files {
        let full = dir.join(pattern);
        let paths: Vec<PathBuf> = match glob::glob(&full.to_string_lossy()) {
            Ok(found) => found.flatten().collect(),
            Err(e) => return vec![format!("    {pattern}: {e}")],
        };
        if paths.is_empty() {
            return vec![format!("    {}: no such rule file", full.display())];
        }
        for p in paths {
            match file::load_file(&p, Lang::PromQL) {
                Ok(g) => groups.extend(g),
                Err(errs) => return errs.iter().map(|e| format!("    {e}")).collect(),
            }
        }
    }
    if !tf.group_eval_order.is_empty() {
        let pos = |g: &Group| {
            tf.group_eval_order
                .iter()
                .position(|n| *n == g.name)
                .unwrap_or(usize::MAX)
        };
        if let Some(missing) = groups.iter().find(|g| pos(g) == usize::MAX) {
            return vec![format!("    group {:?} is not in group_eval_order", missing.name)];
        }
        groups.sort_by_key(pos);
    }
    let mut failures = Vec::new();
    for (i, tg) in tf.tests.iter().enumerate() {
        let errs = run_group(tg, &groups, eval_interval, tf.fuzzy_compare);
        if !errs.is_empty() && !tg.name.is_empty() {
            failures.push(format!("    name: {},", tg.name));
        } else if !errs.is_empty() && tf.tests.len() > 1 {
            failures.push(format!("    test {}:", i + 1));
        }
        failures.extend(errs);
    }
    failures
}

/// The test's data and the rules' output, queried as promtool's test storage is.
#[derive(Default)]
struct Memory {
    series: Mutex<Vec<RawSeries>>,
    /// Rules see input only up to the time they are evaluated at.
    till: AtomicI64,
    /// Native histogram series: PromQL here is float-only, so these are only read by a test
    /// expression that selects them as they are (see [`histograms_selected`]).
    histograms: Vec<(Labels, Vec<(i64, notation::Histogram)>)>,
}

impl Memory {
    fn add(&self, labels: Labels, t: i64, v: f64) {
        let mut all = self.series.lock().expect("memory lock");
        let s = match all.iter_mut().position(|s| *s.labels == labels) {
            Some(i) => &mut all[i],
            None => {
                all.push(RawSeries {
                    labels: Arc::new(labels),
                    samples: Vec::new(),
                });
                all.last_mut().expect("just pushed")
            }
        };
        match s.samples.binary_search_by_key(&t, |p| p.0) {
            Ok(i) => s.samples[i].1 = v,
            Err(i) => s.samples.insert(i, (t, v)),
        }
    }
}

impl Querier for Memory {
    fn select(&self, matchers: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<RawSeries>, String> {
        let list = SeriesList(self.series.lock().expect("memory lock").clone());
        list.select(matchers, mint, maxt.min(self.till.load(Ordering::Relaxed)))
    }
}

impl Source for Memory {
    fn query(&self, q: &Query, t: i64) -> Result<Vec<(Labels, f64)>, String> {
        match q {
            Query::Prom(e) => prom_rows(self, e, t),
            Query::Log(_) => Err("LogQL rules cannot be unit-tested".into()),
        }
    }
    fn last_sample(&self, labels: &Labels, mint: i64, maxt: i64) -> Option<(i64, f64)> {
        last_sample(self, labels, mint, maxt)
    }
}

/// Go's `time.Duration` text for whole milliseconds: `0s`, `1m0s`, `2m59.999s`, `24h0m0s`.
pub(crate) fn go_duration(ms: i64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    if ms < 1000 {
        return format!("{sign}{ms}ms");
    }
    let (h, m, s, frac) = (ms / 3_600_000, (ms / 60_000) % 60, (ms / 1000) % 60, ms % 1000);
    let secs = if frac == 0 {
        format!("{s}s")
    } else {
        format!("{s}.{}s", format!("{frac:03}").trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => format!("{sign}{secs}"),
        (0, m) => format!("{sign}{m}m{secs}"),
        (h, m) => format!("{sign}{h}h{m}m{secs}"),
    }
}

fn time_of(field: &str, v: &Option<String>) -> Result<i64, String> {
    match v {
        None => Ok(0),
        Some(s) => parse_duration(field, s).map(|d| d.as_millis() as i64),
    }
}

fn start_of(v: &Option<String>) -> Result<i64, String> {
    let Some(s) = v else { return Ok(0) };
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1000.0).round() as i64);
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("start_timestamp {s:?}: {e}"))
}

fn run_group(tg: &TestGroup, groups: &[Group], eval_interval: i64, fuzzy: bool) -> Vec<String> {
    let interval = match time_of("interval", &tg.interval) {
        Ok(0) => eval_interval,
        Ok(i) => i,
        Err(e) => return vec![format!("    {e}")],
    };
    let mint = match start_of(&tg.start_timestamp) {
        Ok(t) => t,
        Err(e) => return vec![format!("    {e}")],
    };
    let mut mem = Memory::default();
    for s in &tg.input_series {
        let labels = match notation::metric(&s.series) {
            Ok(l) => l,
            Err(e) => return vec![format!("    {e}")],
        };
        let points = match notation::points(s.values.as_deref().unwrap_or("")) {
            Ok(p) => p,
            Err(e) => return vec![format!("    series {:?}: {e}", s.series)],
        };
        let mut hist = Vec::new();
        for (k, p) in points.into_iter().enumerate() {
            let t = mint + k as i64 * interval;
            match p {
                notation::Point::Float(v) => mem.add(labels.clone(), t, v),
                notation::Point::Histogram(h) => hist.push((t, h)),
                notation::Point::Missing => {}
            }
        }
        if !hist.is_empty() {
            mem.histograms.push((labels, hist));
        }
    }
    let env = Env {
        external_labels: tg.external_labels.clone().into_iter().collect(),
        external_url: tg.external_url.clone(),
    };
    let mut alert_tests: BTreeMap<i64, Vec<&AlertTest>> = BTreeMap::new();
    for t in &tg.alert_rule_test {
        match time_of("eval_time", &t.eval_time) {
            Ok(at) => alert_tests.entry(at).or_default().push(t),
            Err(e) => return vec![format!("    {e}")],
        }
    }
    let mut expr_times = Vec::new();
    for t in &tg.promql_expr_test {
        match time_of("eval_time", &t.eval_time) {
            Ok(at) => expr_times.push(at),
            Err(e) => return vec![format!("    {e}")],
        }
    }
    let max_eval = alert_tests.keys().chain(&expr_times).copied().max().unwrap_or(0);
    let mut states: Vec<GroupState> = groups
        .iter()
        .map(|g| {
            let mut s = GroupState::new(g.clone(), eval_interval);
            s.set_restored();
            s
        })
        .collect();
    let mut errs = Vec::new();
    let mut ts = mint;
    while ts <= mint + max_eval {
        mem.till.store(ts, Ordering::Relaxed);
        let mut eval_errs = Vec::new();
        for g in &mut states {
            g.eval(ts, ts, &mem, &env, &mut |batch| {
                for s in batch {
                    let labels = Labels::new(s.labels);
                    for (t, v) in s.samples {
                        mem.add(labels.clone(), t, v);
                    }
                }
                Ok(())
            });
            for r in g.rules.iter().filter(|r| r.health == Health::Err) {
                eval_errs.push(format!(
                    "    rule: {}, time: {}, err: {}",
                    r.rule.name(),
                    go_duration(ts),
                    r.last_error
                ));
            }
        }
        if !eval_errs.is_empty() {
            errs.extend(eval_errs);
            return errs;
        }
        let due: Vec<i64> = alert_tests
            .range(ts - mint..ts - mint + eval_interval)
            .map(|(t, _)| *t)
            .collect();
        for at in due {
            for test in &alert_tests[&at] {
                errs.extend(check_alerts(test, at, &states));
            }
        }
        ts += eval_interval;
    }
    mem.till.store(i64::MAX, Ordering::Relaxed);
    for (test, at) in tg.promql_expr_test.iter().zip(expr_times) {
        errs.extend(check_expr(test, at, mint, &mem, fuzzy));
    }
    errs
}

type Expected = Vec<(Labels, Labels)>;

fn check_alerts(test: &AlertTest, at: i64, states: &[GroupState]) -> Vec<String> {
    let mut got: Expected = states
        .iter()
        .flat_map(|g| g.rules.iter())
        .filter(|r| r.rule.name() == test.alertname && matches!(r.rule.kind, file::Kind::Alert(_)))
        .flat_map(|r| r.alerts.values())
        .filter(|a| a.state == State::Firing)
        .map(|a| (a.labels.clone(), Labels::new(a.annotations.clone())))
        .collect();
    let mut exp: Expected = test
        .exp_alerts
        .iter()
        .map(|a| {
            let mut l = Labels::new(a.exp_labels.clone().into_iter().collect());
            l.set("alertname", &test.alertname);
            (l, Labels::new(a.exp_annotations.clone().into_iter().collect()))
        })
        .collect();
    got.sort();
    exp.sort();
    if got == exp {
        return Vec::new();
    }
    let show = |v: &Expected| {
        let items: Vec<String> = v
            .iter()
            .enumerate()
            .map(|(i, (l, a))| {
                format!(
                    "\n            {i}:\n              Labels:{}\n              Annotations:{}",
                    l.go_string(),
                    a.go_string()
                )
            })
            .collect();
        format!("[{}\n        ]", items.join(""))
    };
    vec![format!(
        "    alertname: {}, time: {}, \n        exp:{}, \n        got:{}",
        test.alertname,
        go_duration(at),
        show(&exp),
        show(&got)
    )]
}

fn check_expr(test: &ExprTest, at: i64, mint: i64, mem: &Memory, fuzzy: bool) -> Vec<String> {
    let ctx = format!("    expr: {:?}, time: {}", test.expr, go_duration(at));
    let got = match crate::promql::parse(&test.expr)
        .map_err(|e| e.to_string())
        .and_then(|e| prom_rows(mem, &e, mint + at))
    {
        Ok(g) => g,
        Err(e) => return vec![format!("{ctx}, err: {e}")],
    };
    let mut exp = Vec::new();
    let mut exp_hist = Vec::new();
    for s in &test.exp_samples {
        let labels = if s.labels.trim().is_empty() {
            Ok(Labels::default())
        } else {
            notation::metric(&s.labels)
        };
        let labels = match labels {
            Ok(l) => l,
            Err(e) => return vec![format!("{ctx}, err: labels {:?}: {e}", s.labels)],
        };
        if s.histogram.is_empty() {
            exp.push((labels, s.value));
            continue;
        }
        match notation::Histogram::parse(&s.histogram) {
            Ok(h) => exp_hist.push((labels, h)),
            Err(e) => return vec![format!("{ctx}, err: {e}")],
        }
    }
    let mut got_hist = histograms_selected(mem, &test.expr, mint + at);
    got_hist.sort_by(|a, b| a.0.cmp(&b.0));
    exp_hist.sort_by(|a, b| a.0.cmp(&b.0));
    let hist_equal = got_hist.len() == exp_hist.len()
        && got_hist
            .iter()
            .zip(&exp_hist)
            .all(|(g, e)| g.0 == e.0 && g.1.same(&e.1));
    if !hist_equal {
        let show = |v: &[(Labels, notation::Histogram)]| {
            v.iter()
                .map(|(l, h)| format!("{} {h}", l.go_string()))
                .collect::<Vec<_>>()
                .join(" ")
        };
        return vec![format!(
            "{ctx},\n        exp: [{}]\n        got: [{}]",
            show(&exp_hist),
            show(&got_hist)
        )];
    }
    let mut got = got;
    got.sort_by(|a, b| a.0.cmp(&b.0));
    exp.sort_by(|a, b| a.0.cmp(&b.0));
    let same = |a: f64, b: f64| {
        a == b || (a.is_nan() && b.is_nan()) || (fuzzy && (a - b).abs() <= 1e-9 * a.abs().max(b.abs()))
    };
    let equal = got.len() == exp.len() && got.iter().zip(&exp).all(|(g, e)| g.0 == e.0 && same(g.1, e.1));
    if equal {
        return Vec::new();
    }
    let show = |v: &[(Labels, f64)]| {
        let items: Vec<String> = v
            .iter()
            .map(|(l, x)| format!("{} {}", l.go_string(), crate::tsdb::labels::format_float(*x)))
            .collect();
        format!("[{}]", items.join(" "))
    };
    vec![format!(
        "{ctx},\n        exp: {}\n        got: {}",
        show(&exp),
        show(&got)
    )]
}

/// The native histogram samples a test expression reads when it is a plain series selector
/// (the only use of histograms the runner supports): each matching histogram series' latest
/// sample in the 5-minute lookback. Samples after a series' first carry Prometheus's
/// `not_reset` hint (or `reset` where the count dropped), as its TSDB gives them back.
fn histograms_selected(mem: &Memory, expr: &str, t: i64) -> Vec<(Labels, notation::Histogram)> {
    if mem.histograms.is_empty() {
        return Vec::new();
    }
    if !matches!(
        promql_parser::parser::parse(expr),
        Ok(promql_parser::parser::Expr::VectorSelector(_))
    ) {
        return Vec::new();
    }
    let matchers = crate::promql::selector_matchers(expr).unwrap_or_default();
    let mut out = Vec::new();
    for (labels, samples) in &mem.histograms {
        if !matchers.iter().any(|m| crate::tsdb::matches_all(labels, m)) {
            continue;
        }
        let Some(i) = samples.iter().rposition(|(st, _)| *st <= t && *st > t - 300_000) else {
            continue;
        };
        let mut h = samples[i].1.clone();
        if i > 0 && h.counter_reset_hint == "unknown" {
            let reset = h.count < samples[i - 1].1.count;
            h.counter_reset_hint = if reset { "reset" } else { "not_reset" }.into();
        }
        out.push((labels.clone(), h));
    }
    out
}

#[cfg(test)]
mod tests;
