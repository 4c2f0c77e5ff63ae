//! Aggregation operators (`sum`, `avg`, `topk`, `quantile`, `count_values`, …) with
//! `by`/`without` grouping. Sums use Kahan–Neumaier compensation like Prometheus.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use promql_parser::parser::token::*;
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::eval::Evaluator;
use super::functions::{kahan_inc, quantile, warn_quantile};
use super::over_time::Mean;
use super::{Error, Result, Sample, Value};
use crate::tsdb::labels::{format_float, is_valid_label_name};
use crate::tsdb::{Labels, METRIC_NAME};

/// The running state of one group of `sum`, `avg`, `count`, `min`, `max`, `group`,
/// `stddev`, `stdvar` or `quantile`, fed one value at a time in input order.
#[derive(Clone, Default)]
pub(super) struct Acc {
    count: f64,
    value: f64,
    kahan: f64,
    mean: f64,
    avg: Mean,
    values: Vec<f64>,
}

impl Acc {
    pub(super) fn first(op: u16, f: f64) -> Acc {
        let mut a = Acc {
            count: 1.0,
            value: f,
            mean: f,
            ..Default::default()
        };
        match op {
            T_STDDEV | T_STDVAR => a.value = if f.is_finite() { 0.0 } else { f64::NAN },
            T_GROUP => a.value = 1.0,
            T_AVG => a.avg.add(f),
            T_QUANTILE => a.values.push(f),
            _ => {}
        }
        a
    }

    pub(super) fn add(&mut self, op: u16, f: f64) {
        self.count += 1.0;
        match op {
            T_SUM => (self.value, self.kahan) = kahan_inc(f, self.value, self.kahan),
            T_AVG => self.avg.add(f),
            T_MAX if self.value < f || self.value.is_nan() => self.value = f,
            T_MIN if self.value > f || self.value.is_nan() => self.value = f,
            T_STDDEV | T_STDVAR => {
                let delta = f - self.mean;
                self.mean += delta / self.count;
                self.value += delta * (f - self.mean);
            }
            T_QUANTILE => self.values.push(f),
            _ => {}
        }
    }

    /// The group's value; `param` is `quantile`'s φ.
    pub(super) fn result(&self, op: u16, param: f64) -> f64 {
        match op {
            T_SUM => self.value + self.kahan,
            T_AVG => self.avg.value(),
            T_COUNT => self.count,
            T_STDDEV => (self.value / self.count).sqrt(),
            T_STDVAR => self.value / self.count,
            T_QUANTILE => quantile(param, self.values.clone()),
            _ => self.value,
        }
    }
}

/// Whether `op` folds each group into an [`Acc`].
pub(super) fn is_accumulated(op: u16) -> bool {
    matches!(
        op,
        T_SUM | T_AVG | T_COUNT | T_MIN | T_MAX | T_GROUP | T_STDDEV | T_STDVAR | T_QUANTILE
    )
}

struct Group {
    metric: Labels,
    drop_name: bool,
    acc: Acc,
}

pub(super) fn group_labels(m: &Labels, modifier: &Option<LabelModifier>) -> Labels {
    match modifier {
        None => Labels::default(),
        Some(LabelModifier::Include(by)) => m.keep(&by.labels),
        Some(LabelModifier::Exclude(without)) => {
            let mut drop: Vec<&str> = without.labels.iter().map(String::as_str).collect();
            drop.push(METRIC_NAME);
            m.without(&drop)
        }
    }
}

fn int_param(p: f64) -> Result<i64> {
    if p.is_nan() {
        return Err(Error::Execution("Parameter value is NaN".into()));
    }
    if !(-9.223_372_036_854_775e18..9.223_372_036_854_775e18).contains(&p) {
        return Err(Error::Execution(format!("Scalar value {p} overflows int64")));
    }
    Ok(p as i64)
}

pub(super) fn eval(ev: &mut Evaluator, a: &AggregateExpr, t: i64) -> Result<Value> {
    let op = a.op.id();
    let param = match &a.param {
        None => None,
        Some(p) if op == T_COUNT_VALUES => Some(Value::String(ev.eval_string(p, t)?)),
        Some(p) => Some(Value::Scalar(ev.eval_scalar(p, t)?)),
    };
    let input = ev.eval_vector(&a.expr, t)?;
    let scalar = match &param {
        Some(Value::Scalar(v)) => *v,
        _ => f64::NAN,
    };
    if op == T_QUANTILE {
        warn_quantile(ev, scalar);
    }
    if op == T_COUNT_VALUES {
        let Some(Value::String(label)) = &param else {
            unreachable!("count_values takes a string")
        };
        if !is_valid_label_name(label) {
            return Err(Error::Execution(format!("invalid label name {label:?}")));
        }
        return Ok(Value::Vector(count_values(label, input, &a.modifier, t)));
    }
    if matches!(op, T_TOPK | T_BOTTOMK | T_LIMITK) {
        let k = int_param(scalar)?;
        return Ok(Value::Vector(select_k(op, k, input, &a.modifier)));
    }
    if op == T_LIMIT_RATIO {
        if scalar.is_nan() {
            return Err(Error::Execution("Ratio value is NaN".into()));
        }
        let mut r = scalar;
        if !(-1.0..=1.0).contains(&r) {
            let capped = r.clamp(-1.0, 1.0);
            ev.annotations.warn(format!(
                "PromQL warning: ratio value should be between -1 and 1, got {r}, capping to {capped}"
            ));
            r = capped;
        }
        return Ok(Value::Vector(limit_ratio(r, input)));
    }

    let node = a as *const AggregateExpr as usize;
    let mut index: HashMap<usize, usize> = HashMap::new();
    let mut groups: Vec<Group> = Vec::new();
    for s in input {
        let group = ev.group_of(node, &s.metric, |m| group_labels(m, &a.modifier));
        match index.get(&(Arc::as_ptr(&group) as usize)) {
            Some(&i) => {
                // Grouping by a name that is yet to be dropped: drop it if any member does.
                groups[i].drop_name |= s.drop_name;
                groups[i].acc.add(op, s.v);
            }
            None => {
                index.insert(Arc::as_ptr(&group) as usize, groups.len());
                groups.push(Group {
                    metric: (*group).clone(),
                    drop_name: s.drop_name,
                    acc: Acc::first(op, s.v),
                });
            }
        }
    }
    let out = groups
        .into_iter()
        .map(|g| {
            let drop_name = g.drop_name && g.metric.metric_name().is_some();
            Sample {
                v: g.acc.result(op, scalar),
                metric: Arc::new(g.metric),
                t,
                drop_name,
            }
        })
        .collect();
    Ok(Value::Vector(out))
}

fn count_values(label: &str, input: Vec<Sample>, modifier: &Option<LabelModifier>, t: i64) -> Vec<Sample> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Sample> = Vec::new();
    for s in input {
        let mut metric = group_labels(&s.metric, modifier);
        metric.set(label, &format_float(s.v));
        let key = metric.key();
        match index.get(&key) {
            Some(&i) => out[i].v += 1.0,
            None => {
                index.insert(key, out.len());
                out.push(Sample {
                    metric: Arc::new(metric),
                    t,
                    v: 1.0,
                    drop_name: false,
                });
            }
        }
    }
    out
}

/// `topk`/`bottomk`/`limitk`: up to `k` samples per group, keeping their own labels.
fn select_k(op: u16, k: i64, input: Vec<Sample>, modifier: &Option<LabelModifier>) -> Vec<Sample> {
    if k < 1 {
        return Vec::new();
    }
    let k = k as usize;
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut groups: Vec<Vec<Sample>> = Vec::new();
    for s in input {
        let key = group_labels(&s.metric, modifier).key();
        let i = *index.entry(key).or_insert_with(|| {
            groups.push(Vec::new());
            groups.len() - 1
        });
        groups[i].push(s);
    }
    let mut out = Vec::new();
    for mut g in groups {
        match op {
            T_TOPK => g.sort_by(|a, b| desc_nan_last(a.v, b.v)),
            T_BOTTOMK => {
                g.sort_by(|a, b| nan_last(a.v, b.v).then(a.v.partial_cmp(&b.v).unwrap_or(Ordering::Equal)))
            }
            _ => {}
        }
        g.truncate(k);
        out.extend(g);
    }
    out
}

fn nan_last(a: f64, b: f64) -> Ordering {
    a.is_nan().cmp(&b.is_nan())
}

/// Descending by value with NaN after every number (NaN never wins `topk` or `bottomk`).
fn desc_nan_last(a: f64, b: f64) -> Ordering {
    nan_last(a, b).then(b.partial_cmp(&a).unwrap_or(Ordering::Equal))
}

/// `limit_ratio(r, v)`: a deterministic sample of series by label hash; negative `r`
/// selects the complement.
fn limit_ratio(r: f64, input: Vec<Sample>) -> Vec<Sample> {
    input
        .into_iter()
        .filter(|s| {
            let h = fnv1a(s.metric.key().as_bytes()) as f64 / u64::MAX as f64;
            if r >= 0.0 {
                h < r
            } else {
                h >= 1.0 + r
            }
        })
        .collect()
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
