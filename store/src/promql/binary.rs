//! Binary operators: arithmetic, comparisons (with and without `bool`), set operators, and
//! vector matching (`on`/`ignoring`, `group_left`/`group_right`, `fill`).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use promql_parser::parser::token::TokenType;
use promql_parser::parser::token::*;
use promql_parser::parser::{BinModifier, BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::eval::Evaluator;
use super::{Error, Result, Sample, Value};
use crate::tsdb::{Labels, METRIC_NAME};

pub(super) fn eval(ev: &mut Evaluator, b: &BinaryExpr, t: i64) -> Result<Value> {
    let lhs = ev.eval(&b.lhs, t)?;
    let rhs = ev.eval(&b.rhs, t)?;
    let return_bool = b.modifier.as_ref().is_some_and(|m| m.return_bool);
    let op = b.op;
    match (lhs, rhs) {
        (Value::Scalar(l), Value::Scalar(r)) => {
            let (v, keep) = elem(op, l, r);
            Ok(Value::Scalar(if op.is_comparison_operator() {
                keep as u8 as f64
            } else {
                v
            }))
        }
        (Value::Vector(l), Value::Scalar(r)) => {
            Ok(Value::Vector(vector_scalar(op, l, r, false, return_bool)))
        }
        (Value::Scalar(l), Value::Vector(r)) => Ok(Value::Vector(vector_scalar(op, r, l, true, return_bool))),
        (Value::Vector(l), Value::Vector(r)) => {
            let default = BinModifier::default();
            let m = b.modifier.as_ref().unwrap_or(&default);
            if op.is_set_operator() {
                Ok(Value::Vector(set_op(op, l, r, m)))
            } else {
                vector_vector(op, l, r, m, return_bool).map(Value::Vector)
            }
        }
        (l, r) => Err(Error::Execution(format!(
            "binary operator \"{op}\" not allowed between {} and {}",
            l.type_name(),
            r.type_name()
        ))),
    }
}

/// Applies `op`; comparisons return the left value and whether the comparison held.
pub(super) fn elem(op: TokenType, l: f64, r: f64) -> (f64, bool) {
    match op.id() {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_POW => (l.powf(r), true),
        T_MOD => (l % r, true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => (f64::NAN, false),
    }
}

/// `v op s` for an element `v` of a vector (`s op v` when `swap`); `None` when a
/// comparison drops it.
pub(super) fn vector_scalar_value(
    op: TokenType,
    v: f64,
    s: f64,
    swap: bool,
    return_bool: bool,
) -> Option<f64> {
    let (l, r) = if swap { (s, v) } else { (v, s) };
    let (mut value, keep) = elem(op, l, r);
    if op.is_comparison_operator() && swap {
        // A comparison keeps the vector's value even with the scalar on the left.
        value = v;
    }
    if return_bool {
        Some(keep as u8 as f64)
    } else {
        keep.then_some(value)
    }
}

/// Whether a binary operation's result loses the metric name.
pub(super) fn drops_name(op: TokenType, input_drops: bool, return_bool: bool) -> bool {
    input_drops || !op.is_comparison_operator() || return_bool
}

fn vector_scalar(op: TokenType, v: Vec<Sample>, s: f64, swap: bool, return_bool: bool) -> Vec<Sample> {
    v.into_iter()
        .filter_map(|smp| {
            let value = vector_scalar_value(op, smp.v, s, swap, return_bool)?;
            Some(Sample {
                v: value,
                drop_name: drops_name(op, smp.drop_name, return_bool),
                ..smp
            })
        })
        .collect()
}

/// The match signature of a series: its labels after `on`/`ignoring` (and without the
/// metric name unless `on` lists it).
pub(super) fn signature(m: &Labels, matching: &Option<LabelModifier>) -> String {
    match matching {
        Some(LabelModifier::Include(on)) => m.keep(&on.labels).key(),
        Some(LabelModifier::Exclude(ign)) => {
            let mut drop: Vec<&str> = ign.labels.iter().map(String::as_str).collect();
            drop.push(METRIC_NAME);
            m.without(&drop).key()
        }
        None => m.without_name().key(),
    }
}

fn match_labels(m: &Labels, matching: &Option<LabelModifier>) -> Labels {
    match matching {
        Some(LabelModifier::Include(on)) => m.keep(&on.labels),
        Some(LabelModifier::Exclude(ign)) => {
            let mut drop: Vec<&str> = ign.labels.iter().map(String::as_str).collect();
            drop.push(METRIC_NAME);
            m.without(&drop)
        }
        None => m.without_name(),
    }
}

fn set_op(op: TokenType, lhs: Vec<Sample>, rhs: Vec<Sample>, m: &BinModifier) -> Vec<Sample> {
    match op.id() {
        T_LAND => {
            let right: HashSet<String> = rhs.iter().map(|s| signature(&s.metric, &m.matching)).collect();
            lhs.into_iter()
                .filter(|s| right.contains(&signature(&s.metric, &m.matching)))
                .collect()
        }
        T_LUNLESS => {
            let right: HashSet<String> = rhs.iter().map(|s| signature(&s.metric, &m.matching)).collect();
            lhs.into_iter()
                .filter(|s| !right.contains(&signature(&s.metric, &m.matching)))
                .collect()
        }
        _ => {
            let left: HashSet<String> = lhs.iter().map(|s| signature(&s.metric, &m.matching)).collect();
            let mut out = lhs;
            out.extend(
                rhs.into_iter()
                    .filter(|s| !left.contains(&signature(&s.metric, &m.matching))),
            );
            out
        }
    }
}

fn include_labels(card: &VectorMatchCardinality) -> &[String] {
    match card {
        VectorMatchCardinality::ManyToOne(l) | VectorMatchCardinality::OneToMany(l) => &l.labels,
        _ => &[],
    }
}

/// The result's labels: the "many" side's, reduced by `on`/`ignoring` for one-to-one
/// matching, plus `group_x` labels copied from the "one" side.
pub(super) fn result_metric(many: &Labels, one: &Labels, m: &BinModifier) -> Labels {
    let mut out = many.clone();
    if matches!(m.card, VectorMatchCardinality::OneToOne) {
        match &m.matching {
            Some(LabelModifier::Include(on)) => out = out.keep(&on.labels),
            Some(LabelModifier::Exclude(ign)) => out = out.without(&ign.labels),
            None => {}
        }
    }
    for name in include_labels(&m.card) {
        out.set(name, one.get(name).unwrap_or(""));
    }
    out
}

fn vector_vector(
    op: TokenType,
    lhs: Vec<Sample>,
    rhs: Vec<Sample>,
    m: &BinModifier,
    return_bool: bool,
) -> Result<Vec<Sample>> {
    let one_to_many = matches!(m.card, VectorMatchCardinality::OneToMany(_));
    let fill = &m.fill_values;
    let no_fill = fill.lhs.is_none() && fill.rhs.is_none();
    if (lhs.is_empty() || rhs.is_empty()) && no_fill {
        return Ok(Vec::new());
    }
    // Work as many-to-one: `many` is matched against the unique `one` side.
    let (many, one) = if one_to_many { (rhs, lhs) } else { (lhs, rhs) };
    // `fill_left` fills the "many" side and `fill_right` the "one" side, also for
    // `group_right` (what Prometheus's own tests expect).
    let (fill_many, fill_one) = (fill.lhs, fill.rhs);
    let mut one_sigs: HashMap<String, usize> = HashMap::with_capacity(one.len());
    for (i, s) in one.iter().enumerate() {
        let sig = signature(&s.metric, &m.matching);
        if let Some(&j) = one_sigs.get(&sig) {
            let side = if one_to_many { "left" } else { "right" };
            let mut pair = [s.metric.go_string(), one[j].metric.go_string()];
            pair.sort();
            return Err(Error::Execution(format!(
                "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                match_labels(&s.metric, &m.matching).go_string(),
                pair[0],
                pair[1]
            )));
        }
        one_sigs.insert(sig, i);
    }
    let one_to_one = matches!(m.card, VectorMatchCardinality::OneToOne);
    let mut matched: HashMap<String, HashSet<Labels>> = HashMap::new();
    let mut one_used = vec![false; one.len()];
    let mut out = Vec::new();
    let mut emit = |many_s: &Sample,
                    one_s: &Sample,
                    out: &mut Vec<Sample>,
                    sig: String,
                    check: bool|
     -> Result<()> {
        let metric = result_metric(&many_s.metric, &one_s.metric, m);
        // Ambiguous matches are errors even when the comparison would filter them out.
        if check {
            let seen = matched.entry(sig).or_default();
            if one_to_one {
                if !seen.is_empty() {
                    return Err(Error::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                    ));
                }
            } else if seen.contains(&metric) {
                return Err(Error::Execution(
                    "multiple matches for labels: grouping labels must ensure unique matches".into(),
                ));
            }
            seen.insert(metric.clone());
        }
        let (l, r) = if one_to_many {
            (one_s.v, many_s.v)
        } else {
            (many_s.v, one_s.v)
        };
        let (mut value, keep) = elem(op, l, r);
        if return_bool {
            value = keep as u8 as f64;
        } else if !keep {
            return Ok(());
        }
        out.push(Sample {
            metric: Arc::new(metric),
            t: many_s.t,
            v: value,
            drop_name: drops_name(op, many_s.drop_name, return_bool),
        });
        Ok(())
    };
    for s in &many {
        let sig = signature(&s.metric, &m.matching);
        match one_sigs.get(&sig) {
            Some(&i) => {
                one_used[i] = true;
                emit(s, &one[i], &mut out, sig, true)?;
            }
            None => {
                if let Some(f) = fill_one {
                    let filler = Sample {
                        metric: Arc::new(match_labels(&s.metric, &m.matching)),
                        t: s.t,
                        v: f,
                        drop_name: false,
                    };
                    emit(s, &filler, &mut out, sig, false)?;
                }
            }
        }
    }
    if let Some(f) = fill_many {
        for (i, s) in one.iter().enumerate() {
            if !one_used[i] {
                let filler = Sample {
                    metric: Arc::new(match_labels(&s.metric, &m.matching)),
                    t: s.t,
                    v: f,
                    drop_name: false,
                };
                emit(&filler, s, &mut out, String::new(), false)?;
            }
        }
    }
    Ok(out)
}
