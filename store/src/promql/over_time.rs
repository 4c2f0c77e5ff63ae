//! Functions over range vectors (`rate`, `increase`, `deriv`, `*_over_time`, …), evaluated
//! series by series over the samples in each window.

use promql_parser::parser::Expr;

use super::eval::Evaluator;
use super::functions::{absent_sample, kahan_inc, quantile, warn_quantile};
use super::{Error, Result, Sample, Value};

const RANGE_FUNCTIONS: &[&str] = &[
    "rate",
    "increase",
    "delta",
    "irate",
    "idelta",
    "deriv",
    "predict_linear",
    "resets",
    "changes",
    "avg_over_time",
    "sum_over_time",
    "count_over_time",
    "present_over_time",
    "last_over_time",
    "first_over_time",
    "min_over_time",
    "max_over_time",
    "quantile_over_time",
    "stddev_over_time",
    "stdvar_over_time",
    "mad_over_time",
    "ts_of_last_over_time",
    "ts_of_first_over_time",
    "ts_of_min_over_time",
    "ts_of_max_over_time",
    "double_exponential_smoothing",
    "absent_over_time",
];

/// Functions over a range vector, evaluated series by series.
pub(super) fn range_call(ev: &mut Evaluator, name: &str, args: &[&Expr], t: i64) -> Result<Value> {
    // The range vector is the first argument except for quantile_over_time(φ, m).
    let (range_idx, scalar_idx) = match name {
        "quantile_over_time" => (1, Some(0)),
        "predict_linear" => (0, Some(1)),
        _ => (0, None),
    };
    if !is_range_function(name) || args.len() <= range_idx {
        return Err(Error::Execution(format!("function \"{name}\" is not supported")));
    }
    let param = match scalar_idx {
        Some(i) => ev.eval_scalar(args[i], t)?,
        None => f64::NAN,
    };
    let extra: Vec<f64> = if name == "double_exponential_smoothing" {
        vec![ev.eval_scalar(args[1], t)?, ev.eval_scalar(args[2], t)?]
    } else {
        Vec::new()
    };
    let arg = ev.range_arg(args[range_idx], t)?;
    if name == "absent_over_time" {
        return Ok(Value::Vector(if arg.series.is_empty() {
            absent_sample(args[0], t)
        } else {
            Vec::new()
        }));
    }
    if name == "quantile_over_time" {
        warn_quantile(ev, param);
    }
    if matches!(name, "rate" | "increase") {
        for s in &arg.series {
            // Each label set is checked once per query, not at every step.
            if ev.first_sight(&s.metric) {
                note_counter_name(ev, &s.metric);
            }
        }
    }
    if name == "double_exponential_smoothing" {
        check_smoothing(extra[0], extra[1])?;
    }
    let keep_name = keeps_name(name);
    let mut out = Vec::with_capacity(arg.series.len());
    for s in &arg.series {
        let v = match series_fn(name, &s.points, arg.range, arg.end, param, &extra, t) {
            Some(v) => v,
            None => continue,
        };
        out.push(Sample {
            metric: s.metric.clone(),
            t,
            v,
            drop_name: if keep_name { s.drop_name } else { true },
        });
    }
    Ok(Value::Vector(out))
}

/// Whether `name` is a function of a range vector this module evaluates.
pub(super) fn is_range_function(name: &str) -> bool {
    RANGE_FUNCTIONS.contains(&name)
}

/// `last_over_time` and `first_over_time` return samples of the series, name and all.
pub(super) fn keeps_name(name: &str) -> bool {
    matches!(name, "last_over_time" | "first_over_time")
}

/// `rate`/`increase` of a series whose name says it is no counter earn an info annotation.
pub(super) fn note_counter_name(ev: &mut Evaluator, metric: &crate::tsdb::Labels) {
    let metric = metric.metric_name().unwrap_or("");
    if !metric.is_empty()
        && !["_total", "_sum", "_count", "_bucket"]
            .iter()
            .any(|suf| metric.ends_with(suf))
    {
        ev.annotations.info(format!(
            "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"{metric}\""
        ));
    }
}

/// The factors of `double_exponential_smoothing` must lie strictly between 0 and 1.
pub(super) fn check_smoothing(sf: f64, tf: f64) -> Result<()> {
    if sf <= 0.0 || sf >= 1.0 {
        return Err(Error::Execution(format!(
            "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
        )));
    }
    if tf <= 0.0 || tf >= 1.0 {
        return Err(Error::Execution(format!(
            "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
        )));
    }
    Ok(())
}

/// The function `name` of the points `p` of one series in the window `(end - range, end]`,
/// evaluated at `t`; `None` when it has no value there.
pub(super) fn series_fn(
    name: &str,
    p: &[(i64, f64)],
    range: i64,
    end: i64,
    param: f64,
    extra: &[f64],
    t: i64,
) -> Option<f64> {
    if p.is_empty() {
        return None;
    }
    let vals = || p.iter().map(|x| x.1);
    Some(match name {
        "rate" => extrapolated_rate(p, range, end, true, true, true)?,
        "increase" => extrapolated_rate(p, range, end, true, false, true)?,
        "delta" => extrapolated_rate(p, range, end, false, false, false)?,
        "irate" | "idelta" => {
            if p.len() < 2 {
                return None;
            }
            let (last, prev) = (p[p.len() - 1], p[p.len() - 2]);
            let is_rate = name == "irate";
            let mut v = if is_rate && last.1 < prev.1 {
                last.1
            } else {
                last.1 - prev.1
            };
            let dt = last.0 - prev.0;
            if dt == 0 {
                return None;
            }
            if is_rate {
                v /= dt as f64 / 1000.0;
            }
            v
        }
        "deriv" => {
            if p.len() < 2 {
                return None;
            }
            linear_regression(p, p[0].0).0
        }
        "predict_linear" => {
            if p.len() < 2 {
                return None;
            }
            let (slope, intercept) = linear_regression(p, t);
            slope * param + intercept
        }
        "resets" => p.windows(2).filter(|w| w[1].1 < w[0].1).count() as f64,
        "changes" => p
            .windows(2)
            .filter(|w| !(w[0].1 == w[1].1 || w[0].1.is_nan() && w[1].1.is_nan()))
            .count() as f64,
        "avg_over_time" => mean(vals()),
        "sum_over_time" => {
            let (s, c) = vals().fold((0.0, 0.0), |(s, c), x| kahan_inc(x, s, c));
            s + c
        }
        "count_over_time" => p.len() as f64,
        "present_over_time" => 1.0,
        "last_over_time" => p[p.len() - 1].1,
        "first_over_time" => p[0].1,
        "min_over_time" => vals().fold(f64::NAN, |m, x| if x < m || m.is_nan() { x } else { m }),
        "max_over_time" => vals().fold(f64::NAN, |m, x| if x > m || m.is_nan() { x } else { m }),
        "quantile_over_time" => quantile(param, vals().collect()),
        "stddev_over_time" => variance(vals()).sqrt(),
        "stdvar_over_time" => variance(vals()),
        "mad_over_time" if vals().any(f64::is_nan) => f64::NAN,
        "mad_over_time" => {
            let median = quantile(0.5, vals().collect());
            quantile(0.5, vals().map(|x| (x - median).abs()).collect())
        }
        "ts_of_last_over_time" => p[p.len() - 1].0 as f64 / 1000.0,
        "ts_of_first_over_time" => p[0].0 as f64 / 1000.0,
        "ts_of_min_over_time" | "ts_of_max_over_time" => {
            let max = name == "ts_of_max_over_time";
            let mut best = p[0];
            for &x in &p[1..] {
                let better = if max { x.1 >= best.1 } else { x.1 <= best.1 };
                if better || best.1.is_nan() {
                    best = x;
                }
            }
            best.0 as f64 / 1000.0
        }
        "double_exponential_smoothing" => {
            if p.len() < 2 {
                return None;
            }
            let (sf, tf) = (extra[0], extra[1]);
            let (mut s0, mut s1, mut b) = (0.0, p[0].1, p[1].1 - p[0].1);
            for (i, x) in p.iter().enumerate().skip(1) {
                if i > 1 {
                    b = tf * (s1 - s0) + (1.0 - tf) * b;
                }
                let next = sf * x.1 + (1.0 - sf) * (s1 + b);
                s0 = s1;
                s1 = next;
            }
            s1
        }
        _ => return None,
    })
}

fn mean(vals: impl Iterator<Item = f64>) -> f64 {
    let mut m = Mean::default();
    vals.for_each(|f| m.add(f));
    m.value()
}

/// A running average as Prometheus computes it: a compensated sum while it stays finite,
/// then an incremental mean, so the average of huge values does not overflow.
#[derive(Clone, Default)]
pub(super) struct Mean {
    count: f64,
    sum: f64,
    c: f64,
    mean: f64,
    incremental: bool,
}

impl Mean {
    pub(super) fn add(&mut self, f: f64) {
        self.count += 1.0;
        if self.count == 1.0 {
            self.sum = f;
            return;
        }
        if !self.incremental {
            let (ns, nc) = kahan_inc(f, self.sum, self.c);
            if !ns.is_infinite() {
                (self.sum, self.c) = (ns, nc);
                return;
            }
            self.incremental = true;
            self.mean = self.sum / (self.count - 1.0);
            self.c /= self.count - 1.0;
        }
        if self.mean.is_infinite() {
            if f.is_infinite() && (self.mean > 0.0) == (f > 0.0) {
                return;
            }
            if !f.is_infinite() && !f.is_nan() {
                return;
            }
        }
        let q = (self.count - 1.0) / self.count;
        (self.mean, self.c) = kahan_inc(f / self.count, q * self.mean, q * self.c);
    }

    pub(super) fn value(&self) -> f64 {
        if self.incremental {
            self.mean + self.c
        } else {
            self.sum / self.count + self.c / self.count
        }
    }
}

fn variance(vals: impl Iterator<Item = f64>) -> f64 {
    let (mut count, mut mean, mut cmean, mut aux, mut caux) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for f in vals {
        count += 1.0;
        let delta = f - (mean + cmean);
        (mean, cmean) = kahan_inc(delta / count, mean, cmean);
        (aux, caux) = kahan_inc(delta * (f - (mean + cmean)), aux, caux);
    }
    (aux + caux) / count
}

/// Least-squares slope and the intercept at `intercept_time` (ms), with compensated sums.
fn linear_regression(p: &[(i64, f64)], intercept_time: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy, mut sxy, mut cxy, mut sx2, mut cx2) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    let init_y = p[0].1;
    let mut const_y = true;
    for (i, &(ts, v)) in p.iter().enumerate() {
        if const_y && i > 0 && v != init_y {
            const_y = false;
        }
        n += 1.0;
        let x = (ts - intercept_time) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init_y.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init_y);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// `rate`, `increase` and `delta`: the change over the samples in the window, extrapolated
/// towards the window's edges (not further than half a sample interval, and for counters
/// not below zero).
/// `rate` (or `increase`) of a counter's window, told whether the window may hold a reset
/// (a caller that counted them can skip looking).
pub(super) fn counter_rate(
    p: &[(i64, f64)],
    range: i64,
    end: i64,
    rate: bool,
    may_reset: bool,
) -> Option<f64> {
    extrapolated_rate(p, range, end, true, rate, may_reset)
}

fn extrapolated_rate(
    p: &[(i64, f64)],
    range: i64,
    end: i64,
    counter: bool,
    rate: bool,
    may_reset: bool,
) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (range_start, range_end) = (end - range, end);
    let (first, last) = (p[0], p[p.len() - 1]);
    let mut result = last.1 - first.1;
    if counter && may_reset {
        let mut prev = first.1;
        for &(_, v) in &p[1..] {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    let mut to_start = (first.0 - range_start) as f64 / 1000.0;
    let mut to_end = (range_end - last.0) as f64 / 1000.0;
    let sampled = (last.0 - first.0) as f64 / 1000.0;
    let avg = sampled / (p.len() - 1) as f64;
    let threshold = avg * 1.1;
    if to_start >= threshold {
        to_start = avg / 2.0;
    }
    if counter && result > 0.0 && first.1 >= 0.0 {
        let to_zero = sampled * (first.1 / result);
        if to_zero < to_start {
            to_start = to_zero;
        }
    }
    if to_end >= threshold {
        to_end = avg / 2.0;
    }
    let mut factor = (sampled + to_start + to_end) / sampled;
    if rate {
        factor /= range as f64 / 1000.0;
    }
    Some(result * factor)
}
