//! PromQL functions: the dispatcher and the instant-vector functions (math, dates, labels,
//! sorting, `absent`, …). Range functions live in `over_time.rs`, classic histograms in
//! `histogram.rs`. Numeric details (extrapolation, Kahan sums, regression, bucket
//! interpolation) follow Prometheus so results match it to the last bit where tests can tell.

use std::cmp::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Datelike, Timelike};
use promql_parser::parser::{Call, Expr};

use super::eval::Evaluator;
use super::{histogram, over_time};
use super::{Error, Result, Sample, Value};
use crate::tsdb::labels::is_valid_label_name;
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
        "histogram_quantile" => histogram::histogram_quantile(ev, &args, t),
        "histogram_fraction" => histogram::histogram_fraction(ev, &args, t),
        "histogram_quantiles" => histogram::histogram_quantiles(ev, &args, t),
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
            over_time::range_call(ev, name, &args, t)
        }
    }
}

/// Go's `math.Max`: NaN wins (Rust's `f64::max` ignores NaN).
pub(super) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: NaN wins.
pub(super) fn go_min(a: f64, b: f64) -> f64 {
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

pub(super) fn unparen(e: &Expr) -> &Expr {
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

pub(super) fn math_fn(name: &str) -> Option<fn(f64) -> f64> {
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
pub(super) fn absent_sample(arg: &Expr, t: i64) -> Vec<Sample> {
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

/// `s` with `dst` set to `value` (or removed when empty). Setting `__name__` explicitly
/// keeps it: a name dropping earlier in the expression is then undone.
fn relabel(s: Sample, dst: &str, value: &str) -> Sample {
    let mut m = (*s.metric).clone();
    m.set(dst, value);
    let drop_name = if dst == METRIC_NAME { false } else { s.drop_name };
    Sample {
        metric: Arc::new(m),
        drop_name,
        ..s
    }
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
    if !is_valid_label_name(&dst) {
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
            relabel(s, &dst, &res)
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
    if !is_valid_label_name(&dst) {
        return Err(Error::Execution(format!(
            "invalid destination label name in label_join(): {dst}"
        )));
    }
    let out = v
        .into_iter()
        .map(|s| {
            let joined: Vec<&str> = srcs.iter().map(|n| s.metric.get(n).unwrap_or("")).collect();
            let joined = joined.join(&sep);
            relabel(s, &dst, &joined)
        })
        .collect();
    Ok(Value::Vector(out))
}
