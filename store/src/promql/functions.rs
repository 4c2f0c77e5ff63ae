//! PromQL functions. Range functions (`rate`, `*_over_time`, …) get the samples of each
//! series inside the window and the window itself; instant functions map sample values.
//! Numeric details (extrapolation, Kahan sums, regression, bucket interpolation) follow
//! Prometheus so results match it to the last bit where tests can tell.

use std::cmp::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Timelike};
use promql_parser::parser::{Call, Expr};

use super::eval::{Evaluator, RangeArg};
use super::{Error, Result, Sample, Series, Value};
use crate::tsdb::{Labels, MatchOp, METRIC_NAME};

/// Kahan–Neumaier step: adds `inc` to `sum` carrying the lost low bits in `c`.
pub(super) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

/// The φ-quantile of `values` by linear interpolation between ranks (NaN sorts first).
pub(super) fn quantile(q: f64, mut values: Vec<f64>) -> f64 {
    if values.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    values.sort_by(|a, b| {
        b.is_nan()
            .cmp(&a.is_nan())
            .then(a.partial_cmp(b).unwrap_or(Ordering::Equal))
    });
    let n = values.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    values[lower as usize] * (1.0 - weight) + values[upper as usize] * weight
}

pub(super) fn call(ev: &mut Evaluator, c: &Call, t: i64) -> Result<Value> {
    let name = c.func.name;
    let args: Vec<&Expr> = c.args.args.iter().map(|a| a.as_ref()).collect();
    match name {
        "time" => Ok(Value::Scalar(t as f64 / 1000.0)),
        "start" => Ok(Value::Scalar(ev.start as f64 / 1000.0)),
        "end" => Ok(Value::Scalar(ev.end as f64 / 1000.0)),
        "step" => Ok(Value::Scalar(ev.step as f64 / 1000.0)),
        "range" => Ok(Value::Scalar((ev.end - ev.start) as f64 / 1000.0)),
        "min_of" | "max_of" => {
            let (a, b) = (ev.eval_scalar(args[0], t)?, ev.eval_scalar(args[1], t)?);
            Ok(Value::Scalar(if name == "min_of" {
                go_min(a, b)
            } else {
                go_max(a, b)
            }))
        }
        "pi" => Ok(Value::Scalar(std::f64::consts::PI)),
        "vector" => {
            let v = ev.eval_scalar(args[0], t)?;
            Ok(Value::Vector(vec![Sample {
                metric: Arc::new(Labels::default()),
                t,
                v,
                drop_name: false,
            }]))
        }
        "scalar" => {
            let v = ev.eval_vector(args[0], t)?;
            Ok(Value::Scalar(if v.len() == 1 { v[0].v } else { f64::NAN }))
        }
        "absent" => {
            let v = ev.eval_vector(args[0], t)?;
            Ok(Value::Vector(if v.is_empty() {
                absent_sample(args[0], t)
            } else {
                Vec::new()
            }))
        }
        "timestamp" => {
            let direct = matches!(unparen(args[0]), Expr::VectorSelector(_));
            let v = ev.eval_vector(args[0], t)?;
            Ok(Value::Vector(
                v.into_iter()
                    .map(|s| {
                        let st = if direct { s.t } else { t };
                        Sample {
                            v: st as f64 / 1000.0,
                            drop_name: true,
                            ..s
                        }
                    })
                    .collect(),
            ))
        }
        "sort" | "sort_desc" => {
            let mut v = ev.eval_vector(args[0], t)?;
            let desc = name == "sort_desc";
            v.sort_by(|a, b| {
                a.v.is_nan().cmp(&b.v.is_nan()).then_with(|| {
                    let o = a.v.partial_cmp(&b.v).unwrap_or(Ordering::Equal);
                    if desc {
                        o.reverse()
                    } else {
                        o
                    }
                })
            });
            Ok(Value::Vector(v))
        }
        "sort_by_label" | "sort_by_label_desc" => {
            let mut v = ev.eval_vector(args[0], t)?;
            let mut names = Vec::new();
            for a in &args[1..] {
                names.push(ev.eval_string(a, t)?);
            }
            let desc = name == "sort_by_label_desc";
            v.sort_by(|a, b| {
                let mut o = Ordering::Equal;
                for n in &names {
                    o = o.then_with(|| {
                        natural_cmp(a.metric.get(n).unwrap_or(""), b.metric.get(n).unwrap_or(""))
                    });
                }
                let o = o.then_with(|| a.metric.cmp(&b.metric));
                if desc {
                    o.reverse()
                } else {
                    o
                }
            });
            Ok(Value::Vector(v))
        }
        "label_replace" => label_replace(ev, &args, t),
        "label_join" => label_join(ev, &args, t),
        "histogram_quantile" => histogram_quantile(ev, &args, t),
        "histogram_fraction" => histogram_fraction(ev, &args, t),
        "histogram_quantiles" => histogram_quantiles(ev, &args, t),
        "clamp" | "clamp_min" | "clamp_max" => {
            let v = ev.eval_vector(args[0], t)?;
            let (lo, hi) = match name {
                "clamp" => (ev.eval_scalar(args[1], t)?, ev.eval_scalar(args[2], t)?),
                "clamp_min" => (ev.eval_scalar(args[1], t)?, f64::NAN),
                _ => (f64::NAN, ev.eval_scalar(args[1], t)?),
            };
            if name == "clamp" && hi < lo {
                return Ok(Value::Vector(Vec::new()));
            }
            Ok(map_values(v, |x| match name {
                "clamp" => go_max(lo, go_min(hi, x)),
                "clamp_min" => go_max(lo, x),
                _ => go_min(hi, x),
            }))
        }
        "round" => {
            let v = ev.eval_vector(args[0], t)?;
            let to = if args.len() > 1 {
                ev.eval_scalar(args[1], t)?
            } else {
                1.0
            };
            let inv = 1.0 / to;
            Ok(map_values(v, |x| (x * inv + 0.5).floor() / inv))
        }
        "days_in_month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour" | "minute" | "month"
        | "year" => {
            let v = if args.is_empty() {
                vec![Sample {
                    metric: Arc::new(Labels::default()),
                    t,
                    v: t as f64 / 1000.0,
                    drop_name: false,
                }]
            } else {
                ev.eval_vector(args[0], t)?
            };
            Ok(map_values(v, |x| date_part(name, x)))
        }
        _ => {
            if let Some(f) = math_fn(name) {
                let v = ev.eval_vector(args[0], t)?;
                return Ok(map_values(v, f));
            }
            range_call(ev, name, &args, t)
        }
    }
}

/// Go's `math.Max`: NaN wins (Rust's `f64::max` ignores NaN).
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: NaN wins.
fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Prometheus's warning for a φ outside [0, 1] (the result is then ±Inf).
pub(super) fn warn_quantile(ev: &mut Evaluator, q: f64) {
    if !(0.0..=1.0).contains(&q) {
        ev.annotations.warn(format!(
            "PromQL warning: quantile value should be between 0 and 1, got {q}"
        ));
    }
}

fn unparen(e: &Expr) -> &Expr {
    match e {
        Expr::Paren(p) => unparen(&p.expr),
        e => e,
    }
}

fn map_values(v: Vec<Sample>, f: impl Fn(f64) -> f64) -> Value {
    Value::Vector(
        v.into_iter()
            .map(|s| Sample {
                v: f(s.v),
                drop_name: true,
                ..s
            })
            .collect(),
    )
}

fn math_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sgn" => |x: f64| {
            if x < 0.0 {
                -1.0
            } else if x > 0.0 {
                1.0
            } else {
                x
            }
        },
        "acos" => f64::acos,
        "acosh" => f64::acosh,
        "asin" => f64::asin,
        "asinh" => f64::asinh,
        "atan" => f64::atan,
        "atanh" => f64::atanh,
        "cos" => f64::cos,
        "cosh" => f64::cosh,
        "sin" => f64::sin,
        "sinh" => f64::sinh,
        "tan" => f64::tan,
        "tanh" => f64::tanh,
        "deg" => |x: f64| x * 180.0 / std::f64::consts::PI,
        "rad" => |x: f64| x * std::f64::consts::PI / 180.0,
        _ => return None,
    })
}

fn date_part(name: &str, secs: f64) -> f64 {
    if !secs.is_finite() {
        return f64::NAN;
    }
    let Some(d) = DateTime::from_timestamp(secs as i64, 0) else {
        return f64::NAN;
    };
    (match name {
        "day_of_month" => d.day(),
        "day_of_week" => d.weekday().num_days_from_sunday(),
        "day_of_year" => d.ordinal(),
        "hour" => d.hour(),
        "minute" => d.minute(),
        "month" => d.month(),
        "year" => d.year() as u32,
        _ => {
            let (y, m) = (d.year(), d.month());
            let next = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            let first = chrono::NaiveDate::from_ymd_opt(y, m, 1).expect("valid date");
            let first_next = chrono::NaiveDate::from_ymd_opt(next.0, next.1, 1).expect("valid date");
            (first_next - first).num_days() as u32
        }
    }) as f64
}

/// Compares strings so that digit runs compare as numbers (`a2` < `a10`).
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() && !b.is_empty() {
        if a[0].is_ascii_digit() && b[0].is_ascii_digit() {
            let na = a.iter().take_while(|c| c.is_ascii_digit()).count();
            let nb = b.iter().take_while(|c| c.is_ascii_digit()).count();
            let (da, db) = (trim_zeros(&a[..na]), trim_zeros(&b[..nb]));
            let o = da.len().cmp(&db.len()).then(da.cmp(db));
            if o != Ordering::Equal {
                return o;
            }
            a = &a[na..];
            b = &b[nb..];
        } else {
            if a[0] != b[0] {
                return a[0].cmp(&b[0]);
            }
            a = &a[1..];
            b = &b[1..];
        }
    }
    a.len().cmp(&b.len())
}

fn trim_zeros(d: &[u8]) -> &[u8] {
    let z = d.iter().take_while(|c| **c == b'0').count();
    &d[z..]
}

/// `absent(x{a="b"})`: one sample labelled from the selector's equality matchers.
fn absent_sample(arg: &Expr, t: i64) -> Vec<Sample> {
    let matchers = match unparen(arg) {
        Expr::VectorSelector(vs) => Some(&vs.matchers.matchers),
        Expr::MatrixSelector(ms) => Some(&ms.vs.matchers.matchers),
        _ => None,
    };
    let mut labels = Labels::default();
    if let Some(ms) = matchers {
        let mut has = std::collections::HashSet::new();
        for m in ms {
            if m.name == METRIC_NAME {
                continue;
            }
            if matches!(m.op, MatchOp::Equal) && !has.contains(&m.name) {
                labels.set(&m.name, &m.value);
                has.insert(m.name.clone());
            } else {
                labels.remove(&m.name);
            }
        }
    }
    vec![Sample {
        metric: Arc::new(labels),
        t,
        v: 1.0,
        drop_name: false,
    }]
}

fn valid_label(s: &str) -> bool {
    super::aggregate::valid_label_name(s)
}

fn label_replace(ev: &mut Evaluator, args: &[&Expr], t: i64) -> Result<Value> {
    let v = ev.eval_vector(args[0], t)?;
    let dst = ev.eval_string(args[1], t)?;
    let repl = ev.eval_string(args[2], t)?;
    let src = ev.eval_string(args[3], t)?;
    let re_src = ev.eval_string(args[4], t)?;
    let re = regex::Regex::new(&format!("^(?s:{re_src})$")).map_err(|e| {
        Error::Execution(format!(
            "invalid regular expression in label_replace(): {re_src}: {e}"
        ))
    })?;
    if !valid_label(&dst) {
        return Err(Error::Execution(format!(
            "invalid destination label name in label_replace(): {dst}"
        )));
    }
    let out = v
        .into_iter()
        .map(|s| {
            let val = s.metric.get(&src).unwrap_or("");
            let Some(caps) = re.captures(val) else { return s };
            let mut res = String::new();
            caps.expand(&repl, &mut res);
            let mut m = (*s.metric).clone();
            m.set(&dst, &res);
            let drop_name = if dst == METRIC_NAME { false } else { s.drop_name };
            Sample {
                metric: Arc::new(m),
                drop_name,
                ..s
            }
        })
        .collect();
    Ok(Value::Vector(out))
}

fn label_join(ev: &mut Evaluator, args: &[&Expr], t: i64) -> Result<Value> {
    let v = ev.eval_vector(args[0], t)?;
    let dst = ev.eval_string(args[1], t)?;
    let sep = ev.eval_string(args[2], t)?;
    let mut srcs = Vec::new();
    for a in &args[3..] {
        srcs.push(ev.eval_string(a, t)?);
    }
    if !valid_label(&dst) {
        return Err(Error::Execution(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let out = v
        .into_iter()
        .map(|s| {
            let joined: Vec<&str> = srcs.iter().map(|n| s.metric.get(n).unwrap_or("")).collect();
            let mut m = (*s.metric).clone();
            m.set(&dst, &joined.join(&sep));
            let drop_name = if dst == METRIC_NAME { false } else { s.drop_name };
            Sample {
                metric: Arc::new(m),
                drop_name,
                ..s
            }
        })
        .collect();
    Ok(Value::Vector(out))
}

#[derive(Clone, Copy)]
struct Bucket {
    upper: f64,
    count: f64,
}

/// Groups classic histogram buckets by series (labels without `le`), warning about
/// buckets whose `le` is missing or not a number.
fn classic_groups(ev: &mut Evaluator, v: Vec<Sample>) -> Vec<(Labels, Vec<Bucket>)> {
    let mut index: std::collections::HashMap<Labels, usize> = std::collections::HashMap::new();
    let mut groups: Vec<(Labels, Vec<Bucket>)> = Vec::new();
    for s in v {
        let le = s.metric.get("le").unwrap_or("");
        let upper = match parse_le(le) {
            Some(u) => u,
            None => {
                ev.annotations.warn(format!(
                    "PromQL warning: bucket label \"le\" is missing or has a malformed value of \"{le}\" for metric name \"{}\"",
                    s.metric.metric_name().unwrap_or("")
                ));
                continue;
            }
        };
        let key = s.metric.without(&["le"]);
        let i = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((key, Vec::new()));
            groups.len() - 1
        });
        groups[i].1.push(Bucket { upper, count: s.v });
    }
    groups
}

fn histogram_quantile(ev: &mut Evaluator, args: &[&Expr], t: i64) -> Result<Value> {
    let q = ev.eval_scalar(args[0], t)?;
    let v = ev.eval_vector(args[1], t)?;
    warn_quantile(ev, q);
    let mut out = Vec::new();
    for (metric, buckets) in classic_groups(ev, v) {
        let (v, forced) = bucket_quantile(q, buckets);
        if forced {
            ev.annotations.info(format!(
                "PromQL info: input to histogram_quantile needed to be fixed for monotonicity (see https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) for metric name \"{}\"",
                metric.metric_name().unwrap_or("")
            ));
        }
        out.push(Sample {
            metric: Arc::new(metric),
            t,
            v,
            drop_name: true,
        });
    }
    Ok(Value::Vector(out))
}

/// `histogram_quantiles(v, "label", φ1, φ2, …)`: one series per quantile, labelled with it.
fn histogram_quantiles(ev: &mut Evaluator, args: &[&Expr], t: i64) -> Result<Value> {
    let v = ev.eval_vector(args[0], t)?;
    let label = ev.eval_string(args[1], t)?;
    if !valid_label(&label) {
        return Err(Error::Execution(format!("invalid quantile label name {label:?}")));
    }
    let mut qs = Vec::new();
    for a in &args[2..] {
        let q = ev.eval_scalar(a, t)?;
        warn_quantile(ev, q);
        qs.push(q);
    }
    let mut out = Vec::new();
    for (metric, buckets) in classic_groups(ev, v) {
        for &q in &qs {
            let (v, _) = bucket_quantile(q, buckets.clone());
            let mut m = metric.clone();
            let mut text = super::aggregate::format_value(q);
            if text.bytes().all(|c| c.is_ascii_digit() || c == b'-') {
                text.push_str(".0");
            }
            m.set(&label, &text);
            out.push(Sample {
                metric: Arc::new(m),
                t,
                v,
                drop_name: true,
            });
        }
    }
    Ok(Value::Vector(out))
}

fn histogram_fraction(ev: &mut Evaluator, args: &[&Expr], t: i64) -> Result<Value> {
    let lower = ev.eval_scalar(args[0], t)?;
    let upper = ev.eval_scalar(args[1], t)?;
    let v = ev.eval_vector(args[2], t)?;
    let out = classic_groups(ev, v)
        .into_iter()
        .map(|(metric, buckets)| Sample {
            metric: Arc::new(metric),
            t,
            v: bucket_fraction(lower, upper, buckets),
            drop_name: true,
        })
        .collect();
    Ok(Value::Vector(out))
}

/// Sorts buckets by bound and merges buckets with the same bound; `None` without `+Inf`.
fn normalize_buckets(mut b: Vec<Bucket>) -> Option<Vec<Bucket>> {
    b.sort_by(|x, y| x.upper.partial_cmp(&y.upper).unwrap_or(Ordering::Equal));
    if b.last().is_none_or(|l| l.upper != f64::INFINITY) {
        return None;
    }
    let mut merged: Vec<Bucket> = Vec::with_capacity(b.len());
    for x in b {
        match merged.last_mut() {
            Some(last) if last.upper == x.upper => last.count += x.count,
            _ => merged.push(x),
        }
    }
    Some(merged)
}

/// The share of observations between `lower` and `upper`, interpolating linearly inside
/// finite buckets (the first bucket starts at 0 when its bound is positive). The
/// observations of a bucket of infinite width are taken to sit at its infinite end.
fn bucket_fraction(lower: f64, upper: f64, b: Vec<Bucket>) -> f64 {
    let Some(b) = normalize_buckets(b) else {
        return f64::NAN;
    };
    let count = b[b.len() - 1].count;
    if count == 0.0 || lower.is_nan() || upper.is_nan() {
        return f64::NAN;
    }
    if lower >= upper {
        return 0.0;
    }
    // Observations at or below `v`.
    let rank = |v: f64| -> f64 {
        let mut prev = 0.0;
        for (i, x) in b.iter().enumerate() {
            let lb = if i > 0 {
                b[i - 1].upper
            } else if x.upper > 0.0 {
                0.0
            } else {
                f64::NEG_INFINITY
            };
            if v <= lb {
                return prev;
            }
            if v < x.upper {
                if lb.is_infinite() {
                    return x.count;
                }
                if x.upper.is_infinite() {
                    return prev;
                }
                return prev + (x.count - prev) * (v - lb) / (x.upper - lb);
            }
            prev = x.count;
        }
        count
    };
    (rank(upper) - rank(lower)) / count
}

fn parse_le(s: &str) -> Option<f64> {
    match s.trim() {
        "+Inf" | "Inf" | "+inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "" => None,
        x => x.parse().ok(),
    }
}

/// Prometheus's `almost.Equal`: relative difference below `eps`.
pub(super) fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    const MIN_NORMAL: f64 = f64::MIN_POSITIVE;
    if a.is_nan() && b.is_nan() || a == b {
        return true;
    }
    let abs_sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || abs_sum < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / abs_sum.min(f64::MAX) < eps
}

/// The φ-quantile of a classic histogram; also says whether counts had to be forced
/// monotonic.
fn bucket_quantile(q: f64, b: Vec<Bucket>) -> (f64, bool) {
    if q.is_nan() {
        return (f64::NAN, false);
    }
    if q < 0.0 {
        return (f64::NEG_INFINITY, false);
    }
    if q > 1.0 {
        return (f64::INFINITY, false);
    }
    let Some(mut b) = normalize_buckets(b) else {
        return (f64::NAN, false);
    };
    let mut forced = false;
    let mut prev = b[0].count;
    for x in b.iter_mut().skip(1) {
        let cur = x.count;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, 1e-12) {
            x.count = prev;
            continue;
        }
        if cur < prev {
            x.count = prev;
            forced = true;
            continue;
        }
        prev = cur;
    }
    if b.len() < 2 {
        return (f64::NAN, forced);
    }
    let observations = b[b.len() - 1].count;
    if observations == 0.0 {
        return (f64::NAN, forced);
    }
    let mut rank = q * observations;
    let n = b.len() - 1;
    let i = b[..n].partition_point(|x| x.count < rank);
    if i == n {
        return (b[n - 1].upper, forced);
    }
    if i == 0 && b[0].upper <= 0.0 {
        return (b[0].upper, forced);
    }
    let (mut start, end, mut count) = (0.0, b[i].upper, b[i].count);
    if i > 0 {
        start = b[i - 1].upper;
        count -= b[i - 1].count;
        rank -= b[i - 1].count;
    }
    (start + (end - start) * (rank / count), forced)
}

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
fn range_call(ev: &mut Evaluator, name: &str, args: &[&Expr], t: i64) -> Result<Value> {
    // The range vector is the first argument except for quantile_over_time(φ, m).
    let (range_idx, scalar_idx) = match name {
        "quantile_over_time" => (1, Some(0)),
        "predict_linear" => (0, Some(1)),
        _ => (0, None),
    };
    if !RANGE_FUNCTIONS.contains(&name) || args.len() <= range_idx {
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
            let metric = s.metric.metric_name().unwrap_or("");
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
    }
    if name == "double_exponential_smoothing" {
        let (sf, tf) = (extra[0], extra[1]);
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
    }
    let keep_name = matches!(name, "last_over_time" | "first_over_time");
    let mut out = Vec::with_capacity(arg.series.len());
    for s in &arg.series {
        let v = match series_fn(name, s, &arg, param, &extra, t) {
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

fn series_fn(name: &str, s: &Series, arg: &RangeArg, param: f64, extra: &[f64], t: i64) -> Option<f64> {
    let p = &s.points;
    if p.is_empty() {
        return None;
    }
    let vals = || p.iter().map(|x| x.1);
    Some(match name {
        "rate" => extrapolated_rate(p, arg, true, true)?,
        "increase" => extrapolated_rate(p, arg, true, false)?,
        "delta" => extrapolated_rate(p, arg, false, false)?,
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
#[derive(Default)]
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
fn extrapolated_rate(p: &[(i64, f64)], arg: &RangeArg, counter: bool, rate: bool) -> Option<f64> {
    if p.len() < 2 {
        return None;
    }
    let (range_start, range_end) = (arg.end - arg.range, arg.end);
    let (first, last) = (p[0], p[p.len() - 1]);
    let mut result = last.1 - first.1;
    if counter {
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
        factor /= arg.range as f64 / 1000.0;
    }
    Some(result * factor)
}
