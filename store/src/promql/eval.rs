//! The evaluator: selectors, subqueries and the per-step driver.
//!
//! Every expression is evaluated at one step time `t`. A range query runs the whole tree at
//! each step; selectors read from series fetched once per query (`prefetch`), so a step
//! costs a binary search per series rather than a storage read.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use promql_parser::parser::{AtModifier, Expr, MatrixSelector, Offset, SubqueryExpr, VectorSelector};

use super::grid::{self, Grid};
use super::{aggregate, binary, functions, Annotations, Error, Options, Result, Sample, Series, Value};
use crate::tsdb::{is_stale, Labels, Matcher, Querier, RawSeries, METRIC_NAME};

pub(super) struct Evaluator<'a> {
    querier: &'a dyn Querier,
    pub(super) opts: &'a Options,
    /// The query's own start and end (what `@ start()` / `@ end()` mean) and step.
    pub(super) start: i64,
    pub(super) end: i64,
    pub(super) step: i64,
    /// Data window each selector needs, keyed by the selector node's address.
    windows: HashMap<usize, (i64, i64)>,
    fetched: HashMap<usize, Arc<Vec<RawSeries>>>,
    /// Per selector and series, where the last lookups landed: steps move forward in
    /// time, so the next position is found by a short scan instead of a binary search
    /// (a range query would otherwise miss the cache on every probe of every series).
    cursors: HashMap<usize, Vec<[usize; 2]>>,
    /// Per aggregation node, the group of each input label set, so that steps after the
    /// first find a series' group by pointer instead of building and hashing its labels.
    /// Holding the input `Arc` keeps its address from being reused by another label set.
    groups: HashMap<(usize, usize), (Arc<Labels>, Arc<Labels>)>,
    /// Label sets already looked at by a once-per-series check (see `first_sight`); the
    /// `Arc`s are held so their addresses stay theirs.
    seen: HashMap<usize, Arc<Labels>>,
    /// Per aggregation node, one shared `Arc` per distinct group label set.
    group_sets: HashMap<(usize, Labels), Arc<Labels>>,
    pub(super) annotations: Annotations,
    deadline: Instant,
    loaded: usize,
    /// Values of nodes at every step, computed before stepping (`grid.rs`), by node address.
    pub(super) grids: HashMap<usize, Grid>,
}

/// A range-vector argument with the window it was cut from (what `rate` extrapolates to).
pub(super) struct RangeArg {
    pub series: Vec<Series>,
    pub range: i64,
    /// End of the window: the step time moved by `@` and `offset`.
    pub end: i64,
}

fn millis(d: &std::time::Duration) -> i64 {
    d.as_millis() as i64
}

pub(super) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => millis(d),
        Some(Offset::Neg(d)) => -millis(d),
    }
}

pub(super) fn system_time_ms(t: &SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => millis(&d),
        Err(e) => -millis(&e.duration()),
    }
}

/// The matcher sets a selector stands for: its matchers plus the metric name, or one set per
/// alternative of `{a="1" or b="2"}`.
pub(super) fn selector_matcher_sets(vs: &VectorSelector) -> Vec<Vec<Matcher>> {
    let mut base: Vec<Matcher> = vs.matchers.matchers.clone();
    if let Some(name) = &vs.name {
        if !base.iter().any(|m| m.name == METRIC_NAME) {
            base.push(Matcher::new(crate::tsdb::MatchOp::Equal, METRIC_NAME, name));
        }
    }
    if vs.matchers.or_matchers.is_empty() {
        return vec![base];
    }
    vs.matchers
        .or_matchers
        .iter()
        .map(|alt| {
            let mut m = alt.clone();
            m.extend(base.iter().filter(|x| x.name == METRIC_NAME).cloned());
            m
        })
        .collect()
}

fn selector_key(vs: &VectorSelector) -> usize {
    vs as *const VectorSelector as usize
}

impl<'a> Evaluator<'a> {
    pub(super) fn new(querier: &'a dyn Querier, opts: &'a Options, start: i64, end: i64, step: i64) -> Self {
        Evaluator {
            querier,
            opts,
            start,
            end,
            step,
            windows: HashMap::new(),
            fetched: HashMap::new(),
            cursors: HashMap::new(),
            groups: HashMap::new(),
            seen: HashMap::new(),
            group_sets: HashMap::new(),
            annotations: Annotations::default(),
            deadline: Instant::now() + opts.timeout,
            loaded: 0,
            grids: HashMap::new(),
        }
    }

    pub(super) fn querier(&self) -> &'a dyn Querier {
        self.querier
    }

    pub(super) fn deadline(&self) -> Instant {
        self.deadline
    }

    /// How many steps the query has (an instant query has one).
    pub(super) fn steps(&self) -> usize {
        if self.step > 0 {
            ((self.end - self.start) / self.step) as usize + 1
        } else {
            1
        }
    }

    /// The query's step times moved back by `offset` ms.
    pub(super) fn step_times(&self, offset: i64) -> Vec<i64> {
        (0..self.steps())
            .map(|i| self.start + i as i64 * self.step - offset)
            .collect()
    }

    /// Which step `t` is, if it is one of the query's.
    fn step_index(&self, t: i64) -> Option<usize> {
        if t < self.start || t > self.end {
            return None;
        }
        if self.step == 0 {
            return (t == self.start).then_some(0);
        }
        let d = t - self.start;
        (d % self.step == 0).then_some((d / self.step) as usize)
    }

    /// The data window the query needs of `vs` (see `prefetch`).
    pub(super) fn window(&self, vs: &VectorSelector) -> (i64, i64) {
        self.windows
            .get(&selector_key(vs))
            .copied()
            .unwrap_or((self.start, self.end))
    }

    /// A selector may match at most `max_series` series.
    pub(super) fn check_series(&self, vs: &VectorSelector, n: usize) -> Result<()> {
        if n > self.opts.max_series {
            return Err(Error::Execution(format!(
                "the selector {vs} matches {n} series, over the limit of {}; add label matchers to narrow it",
                self.opts.max_series
            )));
        }
        Ok(())
    }

    /// True the first time this query sees `metric` (by identity); past a million label
    /// sets it stops remembering and says false.
    pub(super) fn first_sight(&mut self, metric: &Arc<Labels>) -> bool {
        if self.seen.len() >= 1 << 20 {
            return false;
        }
        match self.seen.entry(Arc::as_ptr(metric) as usize) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(metric.clone());
                true
            }
        }
    }

    /// The group `metric` falls in at aggregation `node`: one `Arc` per distinct group, so
    /// callers can key groups by pointer.
    pub(super) fn group_of(
        &mut self,
        node: usize,
        metric: &Arc<Labels>,
        grouping: impl FnOnce(&Labels) -> Labels,
    ) -> Arc<Labels> {
        const MAX_CACHED: usize = 1 << 20;
        let key = (node, Arc::as_ptr(metric) as usize);
        if let Some((_, g)) = self.groups.get(&key) {
            return g.clone();
        }
        let labels = grouping(metric);
        let group = match self.group_sets.get(&(node, labels.clone())) {
            Some(g) => g.clone(),
            None => {
                let g = Arc::new(labels.clone());
                self.group_sets.insert((node, labels), g.clone());
                g
            }
        };
        if self.groups.len() < MAX_CACHED {
            self.groups.insert(key, (metric.clone(), group.clone()));
        }
        group
    }

    /// The time a selector or subquery reads at when evaluated at `t`.
    fn at_time(&self, at: &Option<AtModifier>, t: i64) -> i64 {
        match at {
            None => t,
            Some(AtModifier::Start) => self.start,
            Some(AtModifier::End) => self.end,
            Some(AtModifier::At(st)) => system_time_ms(st),
        }
    }

    fn ref_time(&self, at: &Option<AtModifier>, offset: &Option<Offset>, t: i64) -> i64 {
        self.at_time(at, t) - offset_ms(offset)
    }

    /// Computes every selector's data window; a selector reads its series the first time it
    /// is evaluated (`series`), once for the whole query.
    pub(super) fn prefetch(&mut self, expr: &Expr) {
        self.collect_windows(expr, self.start, self.end);
    }

    fn shifted(&self, at: &Option<AtModifier>, offset: &Option<Offset>, a: i64, b: i64) -> (i64, i64) {
        let o = offset_ms(offset);
        match at {
            None => (a - o, b - o),
            Some(_) => {
                let t = self.at_time(at, a) - o;
                (t, t)
            }
        }
    }

    fn widen(&mut self, vs: &VectorSelector, from: i64, to: i64) {
        let w = self.windows.entry(selector_key(vs)).or_insert((from, to));
        w.0 = w.0.min(from);
        w.1 = w.1.max(to);
    }

    /// Walks the tree with the interval `[a, b]` of times each node is evaluated at.
    fn collect_windows(&mut self, e: &Expr, a: i64, b: i64) {
        match e {
            Expr::VectorSelector(vs) => {
                let (a, b) = self.shifted(&vs.at, &vs.offset, a, b);
                self.widen(vs, a - self.opts.lookback_ms, b);
            }
            Expr::MatrixSelector(ms) => {
                let (a, b) = self.shifted(&ms.vs.at, &ms.vs.offset, a, b);
                self.widen(&ms.vs, a - millis(&ms.range), b);
            }
            Expr::Subquery(sq) => {
                let (a, b) = self.shifted(&sq.at, &sq.offset, a, b);
                self.collect_windows(&sq.expr, a - millis(&sq.range), b);
            }
            Expr::Aggregate(ag) => {
                self.collect_windows(&ag.expr, a, b);
                if let Some(p) = &ag.param {
                    self.collect_windows(p, a, b);
                }
            }
            Expr::Unary(u) => self.collect_windows(&u.expr, a, b),
            Expr::Binary(bin) => {
                self.collect_windows(&bin.lhs, a, b);
                self.collect_windows(&bin.rhs, a, b);
            }
            Expr::Paren(p) => self.collect_windows(&p.expr, a, b),
            Expr::Call(c) => {
                for arg in &c.args.args {
                    self.collect_windows(arg, a, b);
                }
            }
            _ => {}
        }
    }

    fn series(&mut self, vs: &VectorSelector) -> Result<Arc<Vec<RawSeries>>> {
        let key = selector_key(vs);
        if let Some(s) = self.fetched.get(&key) {
            return Ok(s.clone());
        }
        let (mint, maxt) = self.window(vs);
        let sets = selector_matcher_sets(vs);
        let mut out = if sets.len() == 1 {
            self.querier
                .select(&sets[0], mint, maxt)
                .map_err(Error::Storage)?
        } else {
            // `{a="1" or b="2"}`: the union of each alternative, each series once.
            let mut seen = std::collections::HashSet::new();
            let mut all = Vec::new();
            for m in &sets {
                for s in self.querier.select(m, mint, maxt).map_err(Error::Storage)? {
                    if seen.insert(s.labels.clone()) {
                        all.push(s);
                    }
                }
            }
            all
        };
        self.check_series(vs, out.len())?;
        out.sort_by(|a, b| a.labels.cmp(&b.labels));
        self.loaded += out.iter().map(|s| s.samples.len()).sum::<usize>();
        self.check_samples(self.loaded)?;
        let out = Arc::new(out);
        self.fetched.insert(key, out.clone());
        Ok(out)
    }

    pub(super) fn check_samples(&self, n: usize) -> Result<()> {
        if n > self.opts.max_samples {
            return Err(Error::Execution(
                "query processing would load too many samples into memory in query execution".into(),
            ));
        }
        Ok(())
    }

    fn check_deadline(&self) -> Result<()> {
        if Instant::now() > self.deadline {
            return Err(Error::Timeout("query execution"));
        }
        Ok(())
    }

    pub(super) fn eval(&mut self, e: &Expr, t: i64) -> Result<Value> {
        if !self.grids.is_empty() {
            if let (Some(i), Some(g)) = (self.step_index(t), self.grids.get(&grid::key(e))) {
                return Ok(g.at(i, t));
            }
        }
        match e {
            Expr::NumberLiteral(n) => Ok(Value::Scalar(n.val)),
            Expr::StringLiteral(s) => Ok(Value::String(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, t),
            Expr::Unary(u) => Ok(match self.eval(&u.expr, t)? {
                Value::Scalar(v) => Value::Scalar(-v),
                Value::Vector(v) => Value::Vector(
                    v.into_iter()
                        .map(|s| Sample {
                            v: -s.v,
                            drop_name: true,
                            ..s
                        })
                        .collect(),
                ),
                other => return Err(Error::Execution(format!("unary minus on {}", other.type_name()))),
            }),
            Expr::VectorSelector(vs) => Ok(Value::Vector(self.vector_selector(vs, t)?)),
            Expr::MatrixSelector(ms) => Ok(Value::Matrix(self.matrix_selector(ms, t)?.series)),
            Expr::Subquery(sq) => Ok(Value::Matrix(self.subquery(sq, t)?.series)),
            Expr::Binary(b) => binary::eval(self, b, t),
            Expr::Aggregate(a) => aggregate::eval(self, a, t),
            Expr::Call(c) => functions::call(self, c, t),
            Expr::Extension(_) => Err(Error::Execution("extension expressions are not supported".into())),
        }
    }

    pub(super) fn vector_selector(&mut self, vs: &VectorSelector, t: i64) -> Result<Vec<Sample>> {
        let rt = self.ref_time(&vs.at, &vs.offset, t);
        let series = self.series(vs)?;
        let cursors = self
            .cursors
            .entry(selector_key(vs))
            .or_insert_with(|| vec![[0; 2]; series.len()]);
        let mut out = Vec::new();
        for (k, s) in series.iter().enumerate() {
            let i = seek(&s.samples, &mut cursors[k][0], rt);
            if i == 0 {
                continue;
            }
            let (st, v) = s.samples[i - 1];
            if st <= rt - self.opts.lookback_ms || is_stale(v) {
                continue;
            }
            out.push(Sample {
                metric: s.labels.clone(),
                t: st,
                v,
                drop_name: false,
            });
        }
        Ok(out)
    }

    pub(super) fn matrix_selector(&mut self, ms: &MatrixSelector, t: i64) -> Result<RangeArg> {
        let end = self.ref_time(&ms.vs.at, &ms.vs.offset, t);
        let range = millis(&ms.range);
        let series = self.series(&ms.vs)?;
        let cursors = self
            .cursors
            .entry(selector_key(&ms.vs))
            .or_insert_with(|| vec![[0; 2]; series.len()]);
        let mut out = Vec::new();
        for (k, s) in series.iter().enumerate() {
            let [lo_hint, hi_hint] = &mut cursors[k];
            let lo = seek(&s.samples, lo_hint, end - range);
            let hi = seek(&s.samples, hi_hint, end);
            let points: Vec<(i64, f64)> = s.samples[lo..hi]
                .iter()
                .copied()
                .filter(|(_, v)| !is_stale(*v))
                .collect();
            if !points.is_empty() {
                out.push(Series {
                    metric: s.labels.clone(),
                    points,
                    drop_name: false,
                });
            }
        }
        Ok(RangeArg {
            series: out,
            range,
            end,
        })
    }

    pub(super) fn subquery(&mut self, sq: &SubqueryExpr, t: i64) -> Result<RangeArg> {
        let end = self.ref_time(&sq.at, &sq.offset, t);
        let range = millis(&sq.range);
        let step = sq
            .step
            .as_ref()
            .map(millis)
            .filter(|s| *s > 0)
            .unwrap_or(self.opts.subquery_step_ms);
        // The first step-aligned time after the window's open start.
        let open = end - range;
        let mut ts = step * (open / step);
        if ts <= open {
            ts += step;
        }
        let mut index: HashMap<(Arc<Labels>, bool), usize> = HashMap::new();
        let mut out: Vec<Series> = Vec::new();
        let mut total = 0usize;
        while ts <= end {
            self.check_deadline()?;
            match self.eval(&sq.expr, ts)? {
                Value::Vector(v) => {
                    total += v.len();
                    for s in v {
                        let i = *index.entry((s.metric.clone(), s.drop_name)).or_insert_with(|| {
                            out.push(Series {
                                metric: s.metric.clone(),
                                points: Vec::new(),
                                drop_name: s.drop_name,
                            });
                            out.len() - 1
                        });
                        out[i].points.push((ts, s.v));
                    }
                }
                Value::Scalar(v) => {
                    total += 1;
                    if out.is_empty() {
                        out.push(Series {
                            metric: Arc::new(Labels::default()),
                            points: Vec::new(),
                            drop_name: false,
                        });
                    }
                    out[0].points.push((ts, v));
                }
                other => {
                    return Err(Error::Execution(format!(
                        "subquery is only allowed on instant vector, got {}",
                        other.type_name()
                    )))
                }
            }
            self.check_samples(self.loaded + total)?;
            ts += step;
        }
        Ok(RangeArg {
            series: out,
            range,
            end,
        })
    }

    /// A range-vector argument: a matrix selector or a subquery, through parentheses.
    pub(super) fn range_arg(&mut self, e: &Expr, t: i64) -> Result<RangeArg> {
        match e {
            Expr::Paren(p) => self.range_arg(&p.expr, t),
            Expr::MatrixSelector(ms) => self.matrix_selector(ms, t),
            Expr::Subquery(sq) => self.subquery(sq, t),
            _ => Err(Error::Execution("expected a range vector argument".into())),
        }
    }

    pub(super) fn eval_vector(&mut self, e: &Expr, t: i64) -> Result<Vec<Sample>> {
        match self.eval(e, t)? {
            Value::Vector(v) => Ok(v),
            other => Err(Error::Execution(format!(
                "expected instant vector, got {}",
                other.type_name()
            ))),
        }
    }

    pub(super) fn eval_scalar(&mut self, e: &Expr, t: i64) -> Result<f64> {
        match self.eval(e, t)? {
            Value::Scalar(v) => Ok(v),
            other => Err(Error::Execution(format!(
                "expected scalar, got {}",
                other.type_name()
            ))),
        }
    }

    pub(super) fn eval_string(&mut self, e: &Expr, t: i64) -> Result<String> {
        match self.eval(e, t)? {
            Value::String(s) => Ok(s),
            other => Err(Error::Execution(format!(
                "expected string, got {}",
                other.type_name()
            ))),
        }
    }

    /// Runs `expr` at each step and joins the steps into series sorted by labels; what has a
    /// grid is read from it.
    pub(super) fn eval_range(&mut self, expr: &Expr, start: i64, end: i64, step: i64) -> Result<Vec<Series>> {
        if let Some(g) = self.grids.remove(&grid::key(expr)) {
            return grid::into_series(self, g);
        }
        let mut index: HashMap<(Arc<Labels>, bool), usize> = HashMap::new();
        let mut out: Vec<Series> = Vec::new();
        let mut total = 0usize;
        let mut t = start;
        while t <= end {
            self.check_deadline()?;
            let samples = match self.eval(expr, t)? {
                Value::Scalar(v) => {
                    vec![Sample {
                        metric: Arc::new(Labels::default()),
                        t,
                        v,
                        drop_name: false,
                    }]
                }
                Value::Vector(v) => v,
                other => {
                    return Err(Error::Execution(format!(
                        "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                        other.type_name()
                    )))
                }
            };
            check_unique(&samples)?;
            total += samples.len();
            self.check_samples(total)?;
            for s in samples {
                let i = *index.entry((s.metric.clone(), s.drop_name)).or_insert_with(|| {
                    out.push(Series {
                        metric: s.metric.clone(),
                        points: Vec::new(),
                        drop_name: s.drop_name,
                    });
                    out.len() - 1
                });
                out[i].points.push((t, s.v));
            }
            t += step;
        }
        finish_matrix(out)
    }
}

/// The number of samples at or before `t` (`partition_point`), starting from the previous
/// answer in `hint` when time moved forward a little.
fn seek(samples: &[(i64, f64)], hint: &mut usize, t: i64) -> usize {
    let mut i = (*hint).min(samples.len());
    if i > 0 && samples[i - 1].0 > t {
        i = samples.partition_point(|(st, _)| *st <= t);
    } else {
        let mut scanned = 0;
        while i < samples.len() && samples[i].0 <= t {
            i += 1;
            scanned += 1;
            if scanned == 64 {
                // A long jump: finish with a binary search over the rest.
                i += samples[i..].partition_point(|(st, _)| *st <= t);
                break;
            }
        }
    }
    *hint = i;
    i
}

/// Two samples of one step with the same final label set make the result ambiguous.
fn check_unique(samples: &[Sample]) -> Result<()> {
    if samples.len() < 2 {
        return Ok(());
    }
    let mut seen = std::collections::HashSet::with_capacity(samples.len());
    for s in samples {
        let key = if s.drop_name {
            Arc::new(s.metric.without_name())
        } else {
            s.metric.clone()
        };
        if !seen.insert(key) {
            return Err(Error::Execution(
                "vector cannot contain metrics with the same labelset".into(),
            ));
        }
    }
    Ok(())
}

fn drop_name(metric: Arc<Labels>, drop: bool) -> Arc<Labels> {
    if drop && metric.metric_name().is_some() {
        Arc::new(metric.without_name())
    } else {
        metric
    }
}

/// Applies delayed name removal to an instant vector leaving the engine.
pub(super) fn finish_vector(v: Vec<Sample>) -> Result<Vec<Sample>> {
    check_unique(&v)?;
    Ok(v.into_iter()
        .map(|s| Sample {
            metric: drop_name(s.metric, s.drop_name),
            drop_name: false,
            ..s
        })
        .collect())
}

/// Applies delayed name removal to a matrix leaving the engine and sorts it by labels.
/// Series that end up with the same labels merge when their points never share a time
/// (a name that changed between steps); otherwise the result is ambiguous.
pub(super) fn finish_matrix(m: Vec<Series>) -> Result<Vec<Series>> {
    let mut out: Vec<Series> = m
        .into_iter()
        .map(|s| Series {
            metric: drop_name(s.metric, s.drop_name),
            drop_name: false,
            points: s.points,
        })
        .collect();
    out.sort_by(|a, b| a.metric.cmp(&b.metric));
    let mut merged: Vec<Series> = Vec::with_capacity(out.len());
    for s in out {
        match merged.last_mut() {
            Some(last) if last.metric == s.metric => {
                last.points.extend(s.points);
                last.points.sort_by_key(|p| p.0);
                if last.points.windows(2).any(|w| w[0].0 == w[1].0) {
                    return Err(Error::Execution(
                        "vector cannot contain metrics with the same labelset".into(),
                    ));
                }
            }
            _ => merged.push(s),
        }
    }
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::seek;

    #[test]
    fn seek_matches_partition_point_from_any_hint() {
        let samples: Vec<(i64, f64)> = (0..300).map(|i| (i * 10, 0.0)).collect();
        for hint0 in [0, 1, 7, 150, 299, 300, 400] {
            for t in [-5, 0, 5, 10, 95, 640, 1500, 2990, 5000] {
                let mut hint = hint0;
                let want = samples.partition_point(|(st, _)| *st <= t);
                assert_eq!(seek(&samples, &mut hint, t), want, "hint {hint0} t {t}");
                assert_eq!(hint, want);
            }
        }
    }
}
