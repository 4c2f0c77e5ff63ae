//! Classic (bucket-series) histograms: `histogram_quantile`, `histogram_quantiles` and
//! `histogram_fraction` over `_bucket{le=…}` series, with Prometheus's bucket clean-up
//! (sorting, merging equal bounds, forcing counts monotonic).

use std::cmp::Ordering;
use std::sync::Arc;

use promql_parser::parser::Expr;

use super::eval::Evaluator;
use super::functions::warn_quantile;
use super::{Error, Result, Sample, Value};
use crate::tsdb::labels::is_valid_label_name;
use crate::tsdb::Labels;

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

pub(super) fn histogram_quantile(ev: &mut Evaluator, args: &[&Expr], t: i64) -> Result<Value> {
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
pub(super) fn histogram_quantiles(ev: &mut Evaluator, args: &[&Expr], t: i64) -> Result<Value> {
    let v = ev.eval_vector(args[0], t)?;
    let label = ev.eval_string(args[1], t)?;
    if !is_valid_label_name(&label) {
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
            let mut text = crate::tsdb::labels::format_float(q);
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

pub(super) fn histogram_fraction(ev: &mut Evaluator, args: &[&Expr], t: i64) -> Result<Value> {
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
