//! LogQL metric queries, evaluated at a list of step times: range aggregations over lines
//! (`count_over_time`, `rate`, `bytes_*`, unwrapped `*_over_time`), vector aggregations
//! (`sum/avg/min/max/count/stddev/stdvar by|without`, `topk`, `bottomk`, `sort`), binary
//! operators with scalars and between vectors, `vector()` and `label_replace`.
//!
//! A series is its labels plus one optional value per step; a window at step `t` holds the
//! lines with `t - offset - range < ts <= t - offset`, as in Prometheus.
//!
//! Bounds, as in Loki: `max_series` applies to the query's result (so
//! `count(count_over_time({job="x"}[5m]))` over 100,000 streams answers); the series a query
//! holds on the way there are bounded by their memory (`max_intermediate_bytes`: labels and
//! one value per step each), and the lines read by `max_lines_scanned`.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};

use logql::{
    AggregationFunction, BinOp, Grouping, MetricQuery, PipelineStage, RangeAggregation, RangeFunction,
};

use super::pipeline::{anchored, Pipeline};
use super::{plan, scan_limit, Limits, QueryError};
use crate::logs::LogIndex;
use crate::model::Labels;

/// A series: labels and one value (or none) per step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Series {
    pub(crate) labels: Labels,
    pub(crate) points: Vec<Option<f64>>,
}

/// The value of a metric expression.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val {
    Scalar(f64),
    Vector(Vec<Series>),
}

/// Evaluates `q` at each of `times` (Unix ns); its result holds at most `max_series`.
pub(crate) fn eval(
    idx: &LogIndex,
    q: &MetricQuery,
    times: &[i64],
    limits: &Limits,
) -> Result<Val, QueryError> {
    let ev = Eval {
        idx,
        times,
        limits,
        held: Cell::new(0),
    };
    let v = ev.eval(q)?;
    match &v {
        Val::Vector(s) if s.len() > limits.max_series => Err(QueryError::Limit(format!(
            "maximum of series ({}) reached for a single query; aggregate with sum by (...) or narrow the selector",
            limits.max_series
        ))),
        _ => Ok(v),
    }
}

/// One query's evaluation: its inputs and the bytes of series it holds so far.
struct Eval<'a> {
    idx: &'a LogIndex,
    times: &'a [i64],
    limits: &'a Limits,
    held: Cell<usize>,
}

impl Eval<'_> {
    /// Accounts for one more series of `labels` held on the way to the result.
    fn hold(&self, labels: &Labels) -> Result<(), QueryError> {
        let bytes =
            96 + labels.iter().map(|(k, v)| k.len() + v.len() + 48).sum::<usize>() + 16 * self.times.len();
        self.held.set(self.held.get() + bytes);
        if self.held.get() > self.limits.max_intermediate_bytes {
            return Err(QueryError::Limit(format!(
                "the query holds more than {} KiB of series on the way to its result (max_intermediate_bytes); aggregate with sum by (...), narrow the selector, or use fewer steps",
                self.limits.max_intermediate_bytes >> 10
            )));
        }
        Ok(())
    }

    fn eval(&self, q: &MetricQuery) -> Result<Val, QueryError> {
        let times = self.times;
        Ok(match q {
            MetricQuery::Range(r) => Val::Vector(self.range_agg(r, None)?),
            MetricQuery::Vector(v) => {
                // `sum by (g) (count_over_time(…))` and the like: the range function adds up, so
                // lines are counted per group directly. Per-line labels (`| logfmt`) would
                // otherwise make one intermediate series per distinct label set and hit the
                // series limit, which (as in Loki) is meant for the result.
                let pushed = match &v.inner {
                    MetricQuery::Range(r)
                        if v.function == AggregationFunction::Sum && additive(r.as_ref()) =>
                    {
                        Some(self.range_agg(r, Some(v.grouping.as_ref()))?)
                    }
                    _ => None,
                };
                let inner = match pushed {
                    Some(series) => Val::Vector(series),
                    None => self.eval(&v.inner)?,
                };
                let inner = match inner {
                    Val::Vector(s) => s,
                    Val::Scalar(_) => {
                        return Err(QueryError::BadRequest("vector aggregation over a scalar".into()))
                    }
                };
                Val::Vector(vector_agg(
                    v.function,
                    v.param,
                    v.grouping.as_ref(),
                    inner,
                    times.len(),
                )?)
            }
            MetricQuery::Binary(b) => {
                let l = self.eval(&b.left)?;
                let r = self.eval(&b.right)?;
                binary(b, l, r)?
            }
            MetricQuery::Literal(v) => Val::Scalar(*v),
            MetricQuery::VectorLiteral(v) => Val::Vector(vec![Series {
                labels: Labels::new(),
                points: vec![Some(*v); times.len()],
            }]),
            MetricQuery::LabelReplace(lr) => {
                let Val::Vector(mut series) = self.eval(&lr.inner)? else {
                    return Err(QueryError::BadRequest("label_replace over a scalar".into()));
                };
                let re = anchored(&lr.regex)?;
                for s in &mut series {
                    let src = s.labels.get(&lr.src_label).cloned().unwrap_or_default();
                    if let Some(caps) = re.captures(&src) {
                        let mut dst = String::new();
                        caps.expand(&lr.replacement, &mut dst);
                        if dst.is_empty() {
                            s.labels.remove(&lr.dst_label);
                        } else {
                            s.labels.insert(lr.dst_label.clone(), dst);
                        }
                    }
                }
                Val::Vector(series)
            }
            other => return Err(QueryError::Unsupported(format!("{other:?}"))),
        })
    }
}

fn group_key(labels: &Labels, grouping: Option<&Grouping>) -> Labels {
    match grouping {
        None => Labels::new(),
        Some(g) if g.without => labels
            .iter()
            .filter(|(k, _)| !g.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(g) => labels
            .iter()
            .filter(|(k, _)| g.labels.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// Whether a sum over series of `r` equals `r` over the union of their lines.
fn additive(r: &RangeAggregation) -> bool {
    use RangeFunction as F;
    r.grouping.is_none()
        && matches!(
            r.function,
            F::CountOverTime | F::Rate | F::BytesRate | F::BytesOverTime | F::SumOverTime
        )
}

impl Eval<'_> {
    /// Evaluates a range aggregation; with `sum_grouping`, lines are keyed by the enclosing
    /// `sum`'s grouping straight away (see [`additive`]).
    fn range_agg(
        &self,
        r: &RangeAggregation,
        sum_grouping: Option<Option<&Grouping>>,
    ) -> Result<Vec<Series>, QueryError> {
        use RangeFunction as F;
        let (idx, times, limits) = (self.idx, self.times, self.limits);
        let range = i64::try_from(r.range.as_nanos()).unwrap_or(i64::MAX);
        let offset = r.offset.map_or(0, |o| i64::try_from(o.as_nanos()).unwrap_or(0));
        if range <= 0 {
            return Err(QueryError::BadRequest("range must be positive".into()));
        }
        let mut stages = r.log_query.pipeline.clone();
        if let Some(u) = &r.unwrap {
            stages.push(PipelineStage::Unwrap(u.clone()));
        }
        let unwrapped = stages.iter().any(|s| matches!(s, PipelineStage::Unwrap(_)));
        let needs_unwrap = !matches!(
            r.function,
            F::Rate | F::CountOverTime | F::BytesRate | F::BytesOverTime | F::AbsentOverTime
        );
        if needs_unwrap && !unwrapped {
            return Err(QueryError::BadRequest(format!(
                "{:?} needs a value: add `| unwrap <label>` to the log query",
                r.function
            )));
        }
        let pipeline = Pipeline::compile(&stages)?;
        let clauses = plan(idx, &r.log_query.selector, &pipeline)?;
        let (first, last) = (times[0], times[times.len() - 1]);
        let lo = first - offset - range + 1;
        let hi = last - offset + 1;
        let searchers = idx.searchers(lo, hi);
        let query = idx.query(lo, hi, clauses);
        if let Some(grouping) = sum_grouping.filter(|_| !unwrapped && super::volume::label_only(&stages)) {
            let volume = super::volume::Volume {
                function: r.function,
                times,
                range,
                offset,
                grouping,
            };
            let held = self.held.get();
            match super::volume::count(idx, &searchers, &query, &volume, &|l| self.hold(l))? {
                Some(series) => return Ok(series),
                None => self.held.set(held),
            }
        }
        let refs = idx
            .refs(&searchers, &query, (lo, hi), limits.max_lines_scanned)?
            .map_err(|_| scan_limit(limits))?;

        let mut readers: Vec<_> = searchers.iter().map(|s| idx.reader(s)).collect();
        // Samples per output series: (ts, value).
        let mut samples: HashMap<Labels, Vec<(i64, f64)>> = HashMap::new();
        let mut stream_labels: HashMap<(usize, u64), Option<Labels>> = HashMap::new();
        for rf in refs {
            let (labels, value) = if pipeline.is_empty() {
                let labels = match stream_labels.get(&(rf.part, rf.stream)) {
                    Some(l) => l.clone(),
                    None => {
                        let labels = readers[rf.part].hit(rf.addr)?.labels.clone();
                        stream_labels.insert((rf.part, rf.stream), Some(labels.clone()));
                        Some(labels)
                    }
                };
                (labels, None)
            } else if !pipeline.prefilter(readers[rf.part].line(rf.addr)?) {
                (None, None)
            } else {
                let hit = readers[rf.part].hit(rf.addr)?;
                match pipeline.run(hit.labels, hit.metadata, hit.line) {
                    Some(p) => (Some(p.labels), p.value),
                    None => (None, None),
                }
            };
            let Some(labels) = labels else { continue };
            let v = match r.function {
                F::BytesRate | F::BytesOverTime => rf.bytes as f64,
                _ => value.unwrap_or(1.0),
            };
            let key = match sum_grouping {
                Some(g) => group_key(&labels, g),
                None if unwrapped && r.grouping.is_some() => group_key(&labels, r.grouping.as_ref()),
                None => labels,
            };
            match samples.get_mut(&key) {
                Some(pts) => pts.push((rf.ts_ns, v)),
                None => {
                    self.hold(&key)?;
                    samples.insert(key, vec![(rf.ts_ns, v)]);
                }
            }
        }

        let range_secs = range as f64 / 1e9;
        let mut out = Vec::with_capacity(samples.len());
        for (labels, mut pts) in samples {
            pts.sort_unstable_by_key(|p| p.0);
            let points = times
                .iter()
                .map(|&t| {
                    let a = pts.partition_point(|p| p.0 <= t - offset - range);
                    let b = pts.partition_point(|p| p.0 <= t - offset);
                    let w: Vec<f64> = pts[a..b].iter().map(|p| p.1).collect();
                    if w.is_empty() {
                        return None;
                    }
                    let n = w.len() as f64;
                    let sum: f64 = w.iter().sum();
                    Some(match r.function {
                        F::CountOverTime => n,
                        F::Rate if !unwrapped => n / range_secs,
                        F::Rate | F::BytesRate => sum / range_secs,
                        F::BytesOverTime | F::SumOverTime => sum,
                        F::AvgOverTime => sum / n,
                        F::MinOverTime => w.iter().copied().fold(f64::INFINITY, f64::min),
                        F::MaxOverTime => w.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                        F::StdvarOverTime => variance(&w),
                        F::StddevOverTime => variance(&w).sqrt(),
                        F::FirstOverTime => w[0],
                        F::LastOverTime => w[w.len() - 1],
                        F::QuantileOverTime => quantile(r.param.unwrap_or(0.5), w),
                        _ => return None,
                    })
                })
                .collect();
            out.push(Series { labels, points });
        }
        if r.function == F::AbsentOverTime {
            let any: Vec<bool> = (0..times.len())
                .map(|i| out.iter().any(|s| s.points[i].is_some()))
                .collect();
            let labels = r
                .log_query
                .selector
                .matchers
                .iter()
                .filter(|m| m.op == logql::MatchOp::Eq)
                .map(|m| (m.name.clone(), m.value.clone()))
                .collect();
            return Ok(vec![Series {
                labels,
                points: any.iter().map(|&a| (!a).then_some(1.0)).collect(),
            }]);
        }
        if matches!(r.function, F::RateCounter) {
            return Err(QueryError::Unsupported("rate_counter".into()));
        }
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        Ok(out)
    }
}

fn variance(w: &[f64]) -> f64 {
    let n = w.len() as f64;
    let mean = w.iter().sum::<f64>() / n;
    w.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n
}

fn quantile(q: f64, mut w: Vec<f64>) -> f64 {
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    w.sort_by(f64::total_cmp);
    let rank = q * (w.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    w[lo] + (w[hi] - w[lo]) * (rank - lo as f64)
}

fn vector_agg(
    f: AggregationFunction,
    param: Option<f64>,
    grouping: Option<&Grouping>,
    inner: Vec<Series>,
    steps: usize,
) -> Result<Vec<Series>, QueryError> {
    use AggregationFunction as A;
    match f {
        A::Topk | A::Bottomk => {
            let k = param.ok_or_else(|| QueryError::BadRequest("topk/bottomk need a k".into()))?;
            if k < 1.0 {
                return Ok(Vec::new());
            }
            let k = k as usize;
            let mut keep = vec![vec![false; steps]; inner.len()];
            let mut groups: BTreeMap<Labels, Vec<usize>> = BTreeMap::new();
            for (i, s) in inner.iter().enumerate() {
                groups.entry(group_key(&s.labels, grouping)).or_default().push(i);
            }
            for members in groups.values() {
                #[allow(clippy::needless_range_loop)] // t indexes both the points and `keep`
                for t in 0..steps {
                    let mut vals: Vec<(f64, usize)> = members
                        .iter()
                        .filter_map(|&i| inner[i].points[t].map(|v| (v, i)))
                        .collect();
                    vals.sort_by(|a, b| {
                        if f == A::Topk {
                            b.0.total_cmp(&a.0)
                        } else {
                            a.0.total_cmp(&b.0)
                        }
                    });
                    for (_, i) in vals.into_iter().take(k) {
                        keep[i][t] = true;
                    }
                }
            }
            Ok(inner
                .into_iter()
                .zip(keep)
                .filter(|(_, k)| k.iter().any(|&x| x))
                .map(|(mut s, k)| {
                    for (p, keep) in s.points.iter_mut().zip(k) {
                        if !keep {
                            *p = None;
                        }
                    }
                    s
                })
                .collect())
        }
        A::Sort | A::SortDesc => {
            let mut inner = inner;
            let last = |s: &Series| s.points.iter().rev().find_map(|p| *p).unwrap_or(f64::NAN);
            inner.sort_by(|a, b| {
                let o = last(a).total_cmp(&last(b));
                if f == A::Sort {
                    o
                } else {
                    o.reverse()
                }
            });
            Ok(inner)
        }
        _ => {
            let mut groups: BTreeMap<Labels, Vec<Series>> = BTreeMap::new();
            for s in inner {
                groups.entry(group_key(&s.labels, grouping)).or_default().push(s);
            }
            Ok(groups
                .into_iter()
                .map(|(labels, members)| {
                    let points = (0..steps)
                        .map(|t| {
                            let w: Vec<f64> = members.iter().filter_map(|s| s.points[t]).collect();
                            if w.is_empty() {
                                return None;
                            }
                            let n = w.len() as f64;
                            Some(match f {
                                A::Sum => w.iter().sum(),
                                A::Avg => w.iter().sum::<f64>() / n,
                                A::Min => w.iter().copied().fold(f64::INFINITY, f64::min),
                                A::Max => w.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                                A::Count => n,
                                A::Stddev => variance(&w).sqrt(),
                                A::Stdvar => variance(&w),
                                _ => return None,
                            })
                        })
                        .collect();
                    Series { labels, points }
                })
                .collect())
        }
    }
}

fn apply(op: BinOp, a: f64, b: f64) -> Option<f64> {
    use BinOp as B;
    Some(match op {
        B::Add => a + b,
        B::Sub => a - b,
        B::Mul => a * b,
        B::Div => a / b,
        B::Mod => a % b,
        B::Pow => a.powf(b),
        B::Eq => f64::from(a == b),
        B::Neq => f64::from(a != b),
        B::Gt => f64::from(a > b),
        B::Gte => f64::from(a >= b),
        B::Lt => f64::from(a < b),
        B::Lte => f64::from(a <= b),
        _ => return None,
    })
}

fn is_comparison(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Eq | BinOp::Neq | BinOp::Gt | BinOp::Gte | BinOp::Lt | BinOp::Lte
    )
}

/// One point of `left op right`; comparisons without `bool` filter (keeping `keep`).
fn point(op: BinOp, bool_mod: bool, a: f64, b: f64, keep: f64) -> Option<f64> {
    let v = apply(op, a, b)?;
    if is_comparison(op) && !bool_mod {
        (v == 1.0).then_some(keep)
    } else {
        Some(v)
    }
}

fn binary(b: &logql::BinaryExpr, l: Val, r: Val) -> Result<Val, QueryError> {
    let op = b.op;
    let logical = matches!(op, BinOp::And | BinOp::Or | BinOp::Unless);
    Ok(match (l, r) {
        (Val::Scalar(x), Val::Scalar(y)) => {
            if logical {
                return Err(QueryError::BadRequest(
                    "set operators need vectors on both sides".into(),
                ));
            }
            Val::Scalar(apply(op, x, y).unwrap_or(f64::NAN))
        }
        (Val::Vector(v), Val::Scalar(y)) | (Val::Scalar(y), Val::Vector(v)) if logical => {
            let _ = (v, y);
            return Err(QueryError::BadRequest(
                "set operators need vectors on both sides".into(),
            ));
        }
        (Val::Vector(v), Val::Scalar(y)) => {
            Val::Vector(map_points(v, |x| point(op, b.bool_modifier, x, y, x)))
        }
        (Val::Scalar(x), Val::Vector(v)) => {
            Val::Vector(map_points(v, |y| point(op, b.bool_modifier, x, y, y)))
        }
        (Val::Vector(lv), Val::Vector(rv)) => Val::Vector(vector_vector(b, lv, rv)?),
    })
}

fn map_points(v: Vec<Series>, f: impl Fn(f64) -> Option<f64>) -> Vec<Series> {
    v.into_iter()
        .map(|mut s| {
            for p in &mut s.points {
                *p = p.and_then(&f);
            }
            s
        })
        .filter(|s| s.points.iter().any(Option::is_some))
        .collect()
}

fn vector_vector(b: &logql::BinaryExpr, lv: Vec<Series>, rv: Vec<Series>) -> Result<Vec<Series>, QueryError> {
    let sig = |l: &Labels| -> Labels {
        match &b.matching {
            Some(m) if m.on => l
                .iter()
                .filter(|(k, _)| m.labels.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            Some(m) => l
                .iter()
                .filter(|(k, _)| !m.labels.contains(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            None => l.clone(),
        }
    };
    let mut right: HashMap<Labels, &Series> = HashMap::new();
    for s in &rv {
        if right.insert(sig(&s.labels), s).is_some()
            && !matches!(b.op, BinOp::And | BinOp::Or | BinOp::Unless)
        {
            return Err(QueryError::BadRequest(
                "found duplicate series for the match group on the right hand-side of the operation; \
                 many-to-many matching not allowed"
                    .into(),
            ));
        }
    }
    let steps = lv.first().or(rv.first()).map_or(0, |s| s.points.len());
    let mut out = Vec::new();
    match b.op {
        BinOp::And | BinOp::Unless => {
            for mut s in lv {
                let other = right.get(&sig(&s.labels));
                for t in 0..steps {
                    let present = other.is_some_and(|o| o.points[t].is_some());
                    if present == (b.op == BinOp::Unless) {
                        s.points[t] = None;
                    }
                }
                out.push(s);
            }
        }
        BinOp::Or => {
            // Right samples fill in only where no left series with their signature has one.
            let mut left_present: HashMap<Labels, Vec<bool>> = HashMap::new();
            for s in &lv {
                let present = left_present
                    .entry(sig(&s.labels))
                    .or_insert_with(|| vec![false; steps]);
                for (p, l) in s.points.iter().zip(present.iter_mut()) {
                    *l |= p.is_some();
                }
            }
            out.extend(lv);
            for mut s in rv {
                if let Some(present) = left_present.get(&sig(&s.labels)) {
                    for (p, &l) in s.points.iter_mut().zip(present) {
                        if l {
                            *p = None;
                        }
                    }
                }
                out.push(s);
            }
        }
        _ => {
            for s in lv {
                let Some(o) = right.get(&sig(&s.labels)) else {
                    continue;
                };
                let labels = if is_comparison(b.op) && !b.bool_modifier {
                    s.labels.clone()
                } else {
                    sig(&s.labels)
                };
                let labels = if b.matching.as_ref().is_some_and(|m| m.grouped) {
                    s.labels.clone()
                } else {
                    labels
                };
                let points = (0..steps)
                    .map(|t| match (s.points[t], o.points[t]) {
                        (Some(x), Some(y)) => point(b.op, b.bool_modifier, x, y, x),
                        _ => None,
                    })
                    .collect();
                out.push(Series { labels, points });
            }
        }
    }
    out.retain(|s| s.points.iter().any(Option::is_some));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{index_with, Line};
    use super::*;

    const S: i64 = 1_000_000_000;

    fn run(idx: &LogIndex, q: &str, times: &[i64]) -> Result<Val, QueryError> {
        let logql::Expr::Metric(m) = super::super::parse(q)? else {
            panic!("not a metric query")
        };
        eval(idx, &m, times, &Limits::default())
    }

    fn fixture() -> (tempfile::TempDir, LogIndex) {
        let a: &[(&str, &str)] = &[("job", "api"), ("level", "error")];
        let b: &[(&str, &str)] = &[("job", "api"), ("level", "info")];
        let c: &[(&str, &str)] = &[("job", "web"), ("level", "info")];
        let mut lines: Vec<Line> = Vec::new();
        for i in 0..60 {
            lines.push((a, i * S, "status=500 took=10"));
            lines.push((b, i * S, "status=200 took=20"));
            if i % 2 == 0 {
                lines.push((c, i * S, "status=200 took=30"));
            }
        }
        index_with(&lines)
    }

    fn values(v: &Val) -> Vec<(String, Vec<Option<f64>>)> {
        let Val::Vector(s) = v else { panic!("scalar") };
        s.iter()
            .map(|s| (format!("{:?}", s.labels), s.points.clone()))
            .collect()
    }

    /// The logs volume is counted from the fast fields alone (`volume.rs`); it must give what
    /// reading every line gives (`|= ""` keeps every line but takes the general path).
    #[test]
    fn counting_without_reading_lines_agrees_with_reading_them() {
        let leveled: &[(&str, &str)] = &[("job", "api"), ("level", "error")];
        let plain: &[(&str, &str)] = &[("job", "web")];
        let mut text = Vec::new();
        for i in 0..300i64 {
            let line = match i % 4 {
                0 => format!("level=warn msg=slow took={i}"),
                1 => format!("ERROR disk full {i}"),
                2 => format!("{{\"level\":\"debug\",\"i\":{i}}}"),
                _ => format!("plain line {i}"),
            };
            text.push((i, line));
        }
        let mut lines: Vec<Line> = Vec::new();
        for (i, t) in &text {
            lines.push((plain, i * S / 3, t.as_str()));
            if i % 5 == 0 {
                lines.push((leveled, i * S / 3 + 7, t.as_str()));
            }
        }
        let (_d, idx) = index_with(&lines);
        let steps: Vec<i64> = (0..12).map(|i| 5 * S + i * 9 * S).collect();
        for (fast, slow) in [
            (
                r#"sum by (level, detected_level) (count_over_time({job=~".+"} | drop __error__, __error_details__ [10s]))"#,
                r#"sum by (level, detected_level) (count_over_time({job=~".+"} |= "" [10s]))"#,
            ),
            (
                r#"sum by (job) (bytes_over_time({job=~".+"} [25s] offset 3s))"#,
                r#"sum by (job) (bytes_over_time({job=~".+"} |= "" [25s] offset 3s))"#,
            ),
            (
                r#"sum(rate({job="web"}[4s]))"#,
                r#"sum(rate({job="web"} |= "" [4s]))"#,
            ),
            (
                r#"sum by (detected_level) (bytes_rate({job=~".+"}[1m]))"#,
                r#"sum by (detected_level) (bytes_rate({job=~".+"} |= "" [1m]))"#,
            ),
        ] {
            let (a, b) = (run(&idx, fast, &steps).unwrap(), run(&idx, slow, &steps).unwrap());
            assert_eq!(values(&a), values(&b), "{fast}");
            assert!(!values(&a).is_empty());
            let one = [steps[5]];
            assert_eq!(
                values(&run(&idx, fast, &one).unwrap()),
                values(&run(&idx, slow, &one).unwrap()),
                "{fast} instant"
            );
        }
        let v = run(
            &idx,
            r#"sum by (detected_level) (count_over_time({job="web"}[1h]))"#,
            &[200 * S],
        )
        .unwrap();
        let levels: Vec<String> = values(&v).into_iter().map(|(l, _)| l).collect();
        assert_eq!(levels.len(), 4, "warn, error, debug and unknown: {levels:?}");
    }

    #[test]
    fn the_series_limit_applies_to_the_result_of_a_sum() {
        // Every line carries its own `seq` once parsed: 120 label sets, 2 values of `b`.
        let job: &[(&str, &str)] = &[("job", "seq")];
        let text: Vec<String> = (0..120).map(|i| format!("seq={i} b={}", i % 2)).collect();
        let lines: Vec<Line> = text
            .iter()
            .enumerate()
            .map(|(i, t)| (job, i as i64 * S, t.as_str()))
            .collect();
        let (_d, idx) = index_with(&lines);
        let limits = Limits {
            max_series: 100,
            ..Limits::default()
        };
        let q = |q: &str| {
            let logql::Expr::Metric(m) = super::super::parse(q).unwrap() else {
                panic!()
            };
            eval(&idx, &m, &[200 * S], &limits)
        };
        let v = q(r#"sum by (b) (count_over_time({job="seq"} | logfmt [1h]))"#).unwrap();
        assert_eq!(
            values(&v),
            [
                (r#"{"b": "0"}"#.to_string(), vec![Some(60.0)]),
                (r#"{"b": "1"}"#.to_string(), vec![Some(60.0)])
            ]
        );
        let v = q(r#"sum(rate({job="seq"} | logfmt [1h]))"#).unwrap();
        assert_eq!(values(&v)[0].1, [Some(120.0 / 3600.0)]);
        // Regression (issue 21): aggregations that need every series answer too, as the
        // limit applies to the result (in Loki too).
        let v = q(r#"max by (b) (count_over_time({job="seq"} | logfmt [1h]))"#).unwrap();
        assert_eq!(values(&v).len(), 2);
        let v = q(r#"count(count_over_time({job="seq"} | logfmt [1h]))"#).unwrap();
        assert_eq!(values(&v)[0].1, [Some(120.0)]);
        let v = q(
            r#"count(count_over_time({job="seq"} | logfmt [1h])) + count(rate({job="seq"} | logfmt [1h]))"#,
        );
        assert_eq!(values(&v.unwrap())[0].1, [Some(240.0)]);
        // A result of 120 series is over the limit.
        let e = q(r#"count_over_time({job="seq"} | logfmt [1h])"#).unwrap_err();
        assert!(e.to_string().contains("maximum of series (100) reached"), "{e}");
        // What a query holds on the way is bounded by memory: 120 series of ~300 bytes.
        let small = Limits {
            max_intermediate_bytes: 20_000,
            ..limits
        };
        let logql::Expr::Metric(m) =
            super::super::parse(r#"count(count_over_time({job="seq"} | logfmt [1h]))"#).unwrap()
        else {
            panic!()
        };
        let e = eval(&idx, &m, &[200 * S], &small).unwrap_err();
        assert!(e.to_string().contains("holds more than 19 KiB of series"), "{e}");
        assert!(eval(
            &idx,
            &m,
            &[200 * S],
            &Limits {
                max_intermediate_bytes: 200_000,
                ..limits
            }
        )
        .is_ok());
    }

    #[test]
    fn grafana_health_check_is_two() {
        let (_d, idx) = fixture();
        let v = run(&idx, "vector(1)+vector(1)", &[4 * S]).unwrap();
        assert_eq!(
            v,
            Val::Vector(vec![Series {
                labels: Labels::new(),
                points: vec![Some(2.0)]
            }])
        );
        assert_eq!(run(&idx, "1+1", &[4 * S]).unwrap(), Val::Scalar(2.0));
    }

    #[test]
    fn logs_volume_counts_by_level() {
        let (_d, idx) = fixture();
        let v = run(
            &idx,
            r#"sum by (level) (count_over_time({job=~"api|web"}[10s]))"#,
            &[29 * S, 59 * S],
        )
        .unwrap();
        let got = values(&v);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1, [Some(10.0), Some(10.0)], "error: one line a second");
        assert_eq!(
            got[1].1,
            [Some(15.0), Some(15.0)],
            "info: api every second + web every other"
        );
    }

    #[test]
    fn rate_bytes_and_unwrap() {
        let (_d, idx) = fixture();
        let rate = run(&idx, r#"sum(rate({job="api"} |= "status=500" [10s]))"#, &[30 * S]).unwrap();
        assert_eq!(values(&rate)[0].1, [Some(1.0)]);
        let bytes = run(&idx, r#"sum(bytes_over_time({job="web"}[4s]))"#, &[30 * S]).unwrap();
        assert_eq!(
            values(&bytes)[0].1,
            [Some(2.0 * "status=200 took=30".len() as f64)]
        );
        let avg = run(
            &idx,
            r#"avg_over_time({job="api"} | logfmt | unwrap took [10s]) by (job)"#,
            &[30 * S],
        )
        .unwrap();
        assert_eq!(values(&avg)[0].1, [Some(15.0)]);
        assert!(matches!(
            run(&idx, r#"sum_over_time({job="api"}[10s])"#, &[S]),
            Err(QueryError::BadRequest(_))
        ));
    }

    #[test]
    fn topk_comparisons_and_vector_matching() {
        let (_d, idx) = fixture();
        let top = run(
            &idx,
            r#"topk(1, sum by (job) (count_over_time({job=~".+"}[10s])))"#,
            &[30 * S],
        )
        .unwrap();
        let got = values(&top);
        assert_eq!(got.len(), 1);
        assert!(got[0].0.contains("api"));
        let cmp = run(
            &idx,
            r#"sum by (job) (count_over_time({job=~".+"}[10s])) > 10"#,
            &[30 * S],
        )
        .unwrap();
        assert_eq!(values(&cmp).len(), 1);
        let ratio = run(
            &idx,
            r#"sum by (job) (count_over_time({job="api", level="error"}[10s])) / sum by (job) (count_over_time({job="api"}[10s]))"#,
            &[30 * S],
        )
        .unwrap();
        assert_eq!(values(&ratio)[0].1, [Some(0.5)]);
    }
}
