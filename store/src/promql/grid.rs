//! Whole-range evaluation: a node's values at every step of the query at once (a grid).
//!
//! ```text
//! precompute(root), bottom-up:
//!   vector selector, range function of a matrix selector
//!       -> read series one at a time (tsdb::SeriesPlan, several threads); each series
//!          becomes one row of values per step, its raw samples dropped right away
//!   aggregation (sum, avg, count, min, max, group, stddev, stdvar, quantile),
//!   operators with scalars, one-to-one and set operators between vectors, unary minus,
//!   math functions, number literals, time()
//!       -> rows combined from the children's grids, no storage access
//!   anything else (topk, label_replace, subqueries, @, ...) -> no grid; its children are
//!       still precomputed, and the step-by-step evaluator reads their grids (eval.rs)
//! ```
//!
//! A grid answers exactly what the step-by-step evaluator would: the same windows and
//! lookback, the same arithmetic in the same order (rows keep the order the step-by-step
//! vectors have), the same annotations and errors. Where that cannot be promised up front
//! (series that would be ambiguous at some step, a grid too large for the sample limit)
//! the node gets no grid and the step-by-step evaluator takes it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use promql_parser::parser::token::*;
use promql_parser::parser::{
    AggregateExpr, BinModifier, BinaryExpr, Call, Expr, VectorMatchCardinality, VectorSelector,
};

use super::aggregate::{self, Acc};
use super::binary::{drops_name, elem, result_metric, signature, vector_scalar_value};
use super::eval::{offset_ms, selector_matcher_sets, Evaluator};
use super::functions::{go_max, go_min, math_fn, unparen, warn_quantile};
use super::over_time::{self, check_smoothing, counter_rate, keeps_name, note_counter_name, series_fn};
use super::{Error, Result, Sample, Series, Value};
use crate::tsdb::{is_stale, Labels, RawSeries};

/// One series of a grid: its value at each step where it has one.
pub(super) struct Row {
    pub metric: Arc<Labels>,
    pub drop_name: bool,
    pub vals: Vec<f64>,
    pub has: Vec<bool>,
}

impl Row {
    fn empty(metric: Arc<Labels>, drop_name: bool, n: usize) -> Row {
        Row {
            metric,
            drop_name,
            vals: vec![0.0; n],
            has: vec![false; n],
        }
    }

    fn any(&self) -> bool {
        self.has.iter().any(|h| *h)
    }
}

pub(super) enum Grid {
    Scalar(Vec<f64>),
    Vector(Vec<Row>),
}

impl Grid {
    /// The value at step `i`, as the step-by-step evaluator would return it at time `t`.
    pub(super) fn at(&self, i: usize, t: i64) -> Value {
        match self {
            Grid::Scalar(v) => Value::Scalar(v[i]),
            Grid::Vector(rows) => Value::Vector(
                rows.iter()
                    .filter(|r| r.has[i])
                    .map(|r| Sample {
                        metric: r.metric.clone(),
                        t,
                        v: r.vals[i],
                        drop_name: r.drop_name,
                    })
                    .collect(),
            ),
        }
    }
}

/// Grids are keyed by the address of their node in the query's tree.
pub(super) fn key(e: &Expr) -> usize {
    e as *const Expr as usize
}

/// Computes the grids of `e` and of its subtrees wherever it can; true when `e` has one
/// (`ev.grids[key(e)]`). Children's grids are dropped once their parent has its own.
pub(super) fn precompute(ev: &mut Evaluator, e: &Expr) -> Result<bool> {
    let grid = match e {
        Expr::NumberLiteral(n) => Some(Grid::Scalar(vec![n.val; ev.steps()])),
        Expr::Paren(p) => take(ev, &p.expr)?,
        Expr::Unary(u) => match take(ev, &u.expr)? {
            Some(Grid::Scalar(v)) => Some(Grid::Scalar(v.into_iter().map(|x| -x).collect())),
            Some(Grid::Vector(rows)) => Some(Grid::Vector(
                rows.into_iter()
                    .map(|r| Row {
                        vals: r.vals.into_iter().map(|x| -x).collect(),
                        drop_name: true,
                        ..r
                    })
                    .collect(),
            )),
            None => None,
        },
        Expr::VectorSelector(vs) => selector(ev, vs)?,
        Expr::Call(c) => call(ev, c)?,
        Expr::Aggregate(a) => aggregation(ev, a)?,
        Expr::Binary(b) => binary(ev, b)?,
        // Matrix selectors and subqueries are read by their functions; subqueries evaluate
        // at their own steps, so nothing below one is precomputed.
        _ => None,
    };
    Ok(match grid {
        Some(g) => {
            ev.grids.insert(key(e), g);
            true
        }
        None => false,
    })
}

/// The grid of `e`, taken out of the evaluator for its parent to build on.
fn take(ev: &mut Evaluator, e: &Expr) -> Result<Option<Grid>> {
    Ok(if precompute(ev, e)? {
        ev.grids.remove(&key(e))
    } else {
        None
    })
}

/// Precomputes each of `children`; true when all have grids.
fn children(ev: &mut Evaluator, children: &[&Expr]) -> Result<bool> {
    let mut all = true;
    for c in children {
        all &= precompute(ev, c)?;
    }
    Ok(all)
}

/// The value of a number literal (in parentheses, negated), what parameters must be here.
fn constant(e: &Expr) -> Option<f64> {
    match e {
        Expr::NumberLiteral(n) => Some(n.val),
        Expr::Paren(p) => constant(&p.expr),
        Expr::Unary(u) => constant(&u.expr).map(|v| -v),
        _ => None,
    }
}

/// Reads the series of `vs` that `window` asks for and turns each into a row with
/// `to_row` (from several threads); rows come back in label order. `None` when the grid
/// would exceed the sample limit.
fn rows_from_storage(
    ev: &mut Evaluator,
    vs: &VectorSelector,
    to_row: &(dyn Fn(RawSeries) -> Option<Row> + Sync),
) -> Result<Option<Vec<Row>>> {
    let sets = selector_matcher_sets(vs);
    if vs.at.is_some() || sets.len() != 1 {
        return Ok(None);
    }
    let (mint, maxt) = ev.window(vs);
    let plan = ev.querier().plan(&sets[0], mint, maxt).map_err(Error::Storage)?;
    ev.check_series(vs, plan.len())?;
    if plan.len().saturating_mul(ev.steps()) > ev.opts.max_samples {
        return Ok(None);
    }
    let rows: Mutex<Vec<(usize, Row)>> = Mutex::new(Vec::new());
    let late = AtomicBool::new(false);
    let deadline = ev.deadline();
    plan.read_each(&|i, s| {
        if std::time::Instant::now() > deadline {
            late.store(true, Ordering::Relaxed);
            return false;
        }
        if let Some(r) = to_row(s) {
            rows.lock().expect("rows lock").push((i, r));
        }
        true
    })
    .map_err(Error::Storage)?;
    if late.load(Ordering::Relaxed) {
        return Err(Error::Timeout("query execution"));
    }
    let mut rows = rows.into_inner().expect("rows lock");
    rows.sort_by_key(|(i, _)| *i);
    Ok(Some(rows.into_iter().map(|(_, r)| r).collect()))
}

/// An instant vector selector: per step, the newest sample within the lookback window.
fn selector(ev: &mut Evaluator, vs: &VectorSelector) -> Result<Option<Grid>> {
    let times = ev.step_times(offset_ms(&vs.offset));
    let lookback = ev.opts.lookback_ms;
    let rows = rows_from_storage(ev, vs, &|s| {
        let mut row = Row::empty(s.labels, false, times.len());
        let mut k = 0;
        for (i, &rt) in times.iter().enumerate() {
            while k < s.samples.len() && s.samples[k].0 <= rt {
                k += 1;
            }
            if k == 0 {
                continue;
            }
            let (st, v) = s.samples[k - 1];
            if st > rt - lookback && !is_stale(v) {
                row.vals[i] = v;
                row.has[i] = true;
            }
        }
        row.any().then_some(row)
    })?;
    Ok(rows.map(Grid::Vector))
}

fn call(ev: &mut Evaluator, c: &Call) -> Result<Option<Grid>> {
    let name = c.func.name;
    let args: Vec<&Expr> = c.args.args.iter().map(|a| a.as_ref()).collect();
    if name == "time" {
        return Ok(Some(Grid::Scalar(
            ev.step_times(0).iter().map(|t| *t as f64 / 1000.0).collect(),
        )));
    }
    if name == "timestamp" {
        // `timestamp(selector)` reads the samples' own times, which grids do not keep.
        if !matches!(unparen(args[0]), Expr::VectorSelector(_)) {
            precompute(ev, args[0])?;
        }
        return Ok(None);
    }
    if over_time::is_range_function(name) {
        return range_function(ev, name, &args);
    }
    let elementwise =
        math_fn(name).is_some() || matches!(name, "clamp" | "clamp_min" | "clamp_max" | "round");
    let params: Option<Vec<f64>> = args.iter().skip(1).map(|a| constant(a)).collect();
    if !elementwise || args.is_empty() {
        for a in &args {
            precompute(ev, a)?;
        }
        return Ok(None);
    }
    if !precompute(ev, args[0])? {
        return Ok(None);
    }
    let Some(params) = params else {
        return Ok(None);
    };
    let rows = match ev.grids.remove(&key(args[0])) {
        Some(Grid::Vector(rows)) => rows,
        other => {
            if let Some(g) = other {
                ev.grids.insert(key(args[0]), g);
            }
            return Ok(None);
        }
    };
    let f: Box<dyn Fn(f64) -> f64> = match (name, params.as_slice()) {
        ("clamp", [lo, hi]) if hi < lo => return Ok(Some(Grid::Vector(Vec::new()))),
        ("clamp", &[lo, hi]) => Box::new(move |x| go_max(lo, go_min(hi, x))),
        ("clamp_min", &[lo]) => Box::new(move |x| go_max(lo, x)),
        ("clamp_max", &[hi]) => Box::new(move |x| go_min(hi, x)),
        ("round", p) if p.len() <= 1 => {
            let inv = 1.0 / p.first().copied().unwrap_or(1.0);
            Box::new(move |x| (x * inv + 0.5).floor() / inv)
        }
        (_, []) => match math_fn(name) {
            Some(f) => Box::new(f),
            None => return Ok(None),
        },
        _ => return Ok(None),
    };
    Ok(Some(Grid::Vector(
        rows.into_iter()
            .map(|r| Row {
                vals: r.vals.into_iter().map(&f).collect(),
                drop_name: true,
                ..r
            })
            .collect(),
    )))
}

/// `rate(m[5m])` and the other functions of a matrix selector: each series' windows slide
/// over its samples once.
fn range_function(ev: &mut Evaluator, name: &str, args: &[&Expr]) -> Result<Option<Grid>> {
    let (range_idx, scalar_idx) = match name {
        "quantile_over_time" => (1, Some(0)),
        "predict_linear" => (0, Some(1)),
        _ => (0, None),
    };
    let Some(Expr::MatrixSelector(ms)) = args.get(range_idx).map(|a| unparen(a)) else {
        return Ok(None);
    };
    if name == "absent_over_time" {
        return Ok(None);
    }
    let param = match scalar_idx.map(|i| constant(args[i])) {
        Some(None) => return Ok(None),
        Some(Some(p)) => p,
        None => f64::NAN,
    };
    let extra: Vec<f64> = if name == "double_exponential_smoothing" {
        match (constant(args[1]), constant(args[2])) {
            (Some(sf), Some(tf)) => vec![sf, tf],
            _ => return Ok(None),
        }
    } else {
        Vec::new()
    };
    let range = ms.range.as_millis() as i64;
    let offset = offset_ms(&ms.vs.offset);
    let steps = ev.step_times(0);
    let keep_name = keeps_name(name);
    let counters = matches!(name, "rate" | "increase");
    // Series with samples in some window, for the counter-name annotation.
    let seen: Mutex<Vec<Arc<Labels>>> = Mutex::new(Vec::new());
    let rows = rows_from_storage(ev, &ms.vs, &|s| {
        let mut points = s.samples;
        points.retain(|p| !is_stale(p.1));
        // Counter resets before each sample (a window without one needs no correction).
        let resets: Vec<u32> = if counters {
            let mut n = 0;
            (0..points.len())
                .map(|i| {
                    if i > 0 && points[i].1 < points[i - 1].1 {
                        n += 1;
                    }
                    n
                })
                .collect()
        } else {
            Vec::new()
        };
        let mut row = Row::empty(s.labels, !keep_name, steps.len());
        let (mut lo, mut hi, mut windowed) = (0, 0, false);
        for (i, &t) in steps.iter().enumerate() {
            let end = t - offset;
            while lo < points.len() && points[lo].0 <= end - range {
                lo += 1;
            }
            hi = hi.max(lo);
            while hi < points.len() && points[hi].0 <= end {
                hi += 1;
            }
            if lo == hi {
                continue;
            }
            windowed = true;
            let v = if counters {
                counter_rate(
                    &points[lo..hi],
                    range,
                    end,
                    name == "rate",
                    resets[hi - 1] > resets[lo],
                )
            } else {
                series_fn(name, &points[lo..hi], range, end, param, &extra, t)
            };
            if let Some(v) = v {
                row.vals[i] = v;
                row.has[i] = true;
            }
        }
        if counters && windowed {
            seen.lock().expect("seen lock").push(row.metric.clone());
        }
        row.any().then_some(row)
    })?;
    let Some(rows) = rows else {
        return Ok(None);
    };
    for m in seen.into_inner().expect("seen lock") {
        note_counter_name(ev, &m);
    }
    if name == "quantile_over_time" {
        warn_quantile(ev, param);
    }
    if name == "double_exponential_smoothing" {
        check_smoothing(extra[0], extra[1])?;
    }
    Ok(Some(Grid::Vector(rows)))
}

fn aggregation(ev: &mut Evaluator, a: &AggregateExpr) -> Result<Option<Grid>> {
    let op = a.op.id();
    let param = match &a.param {
        Some(p) if op == T_QUANTILE => match constant(p) {
            Some(v) => v,
            None => {
                precompute(ev, &a.expr)?;
                return Ok(None);
            }
        },
        _ => f64::NAN,
    };
    if !precompute(ev, &a.expr)? || !aggregate::is_accumulated(op) {
        return Ok(None);
    }
    let Some(Grid::Vector(rows)) = ev.grids.get(&key(&a.expr)) else {
        return Ok(None);
    };
    // Groups in order of first appearance, as a step sees them.
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<(Labels, bool, bool)> = Vec::new(); // labels, any drops, all drop
    let mut of_row = Vec::with_capacity(rows.len());
    for r in rows {
        let labels = aggregate::group_labels(&r.metric, &a.modifier);
        let g = *index.entry(labels.clone()).or_insert_with(|| {
            groups.push((labels, false, true));
            groups.len() - 1
        });
        groups[g].1 |= r.drop_name;
        groups[g].2 &= r.drop_name;
        of_row.push(g);
    }
    // A group keeping a name its members disagree on dropping depends on the step.
    if groups
        .iter()
        .any(|(l, any, all)| any != all && l.metric_name().is_some())
    {
        return Ok(None);
    }
    let n = ev.steps();
    let mut out: Vec<Row> = groups
        .into_iter()
        .map(|(labels, drop, _)| {
            let drop_name = drop && labels.metric_name().is_some();
            Row::empty(Arc::new(labels), drop_name, n)
        })
        .collect();
    // Steps in tiles, so a tile's accumulators stay in cache while the rows pass.
    const TILE: usize = 16;
    let mut accs: Vec<Option<Acc>> = vec![None; out.len() * TILE];
    for tile in (0..n).step_by(TILE) {
        let width = TILE.min(n - tile);
        accs.iter_mut().for_each(|a| *a = None);
        for (r, &g) in rows.iter().zip(&of_row) {
            for k in 0..width {
                if !r.has[tile + k] {
                    continue;
                }
                let f = r.vals[tile + k];
                match &mut accs[g * TILE + k] {
                    Some(acc) => acc.add(op, f),
                    slot => *slot = Some(Acc::first(op, f)),
                }
            }
        }
        for (g, row) in out.iter_mut().enumerate() {
            for k in 0..width {
                if let Some(acc) = &accs[g * TILE + k] {
                    row.vals[tile + k] = acc.result(op, param);
                    row.has[tile + k] = true;
                }
            }
        }
    }
    ev.grids.remove(&key(&a.expr));
    if op == T_QUANTILE {
        warn_quantile(ev, param);
    }
    Ok(Some(Grid::Vector(out)))
}

fn binary(ev: &mut Evaluator, b: &BinaryExpr) -> Result<Option<Grid>> {
    if !children(ev, &[&b.lhs, &b.rhs])? {
        return Ok(None);
    }
    let default = BinModifier::default();
    let m = b.modifier.as_ref().unwrap_or(&default);
    let return_bool = m.return_bool;
    let op = b.op;
    let grid = match (&ev.grids[&key(&b.lhs)], &ev.grids[&key(&b.rhs)]) {
        (Grid::Scalar(l), Grid::Scalar(r)) => Some(Grid::Scalar(
            l.iter()
                .zip(r)
                .map(|(&l, &r)| {
                    let (v, keep) = elem(op, l, r);
                    if op.is_comparison_operator() {
                        keep as u8 as f64
                    } else {
                        v
                    }
                })
                .collect(),
        )),
        (Grid::Vector(rows), Grid::Scalar(s)) => Some(vector_scalar(op, rows, s, false, return_bool)),
        (Grid::Scalar(s), Grid::Vector(rows)) => Some(vector_scalar(op, rows, s, true, return_bool)),
        (Grid::Vector(l), Grid::Vector(r)) => {
            let plain = matches!(m.card, VectorMatchCardinality::OneToOne)
                && m.fill_values.lhs.is_none()
                && m.fill_values.rhs.is_none();
            if op.is_set_operator() {
                Some(set_op(op, l, r, m))
            } else if plain {
                one_to_one(op, l, r, m)
            } else {
                None
            }
        }
    };
    if grid.is_some() {
        ev.grids.remove(&key(&b.lhs));
        ev.grids.remove(&key(&b.rhs));
    }
    Ok(grid)
}

fn vector_scalar(op: TokenType, rows: &[Row], s: &[f64], swap: bool, return_bool: bool) -> Grid {
    Grid::Vector(
        rows.iter()
            .map(|r| {
                let mut out = Row::empty(
                    r.metric.clone(),
                    drops_name(op, r.drop_name, return_bool),
                    s.len(),
                );
                for (i, &x) in s.iter().enumerate() {
                    if r.has[i] {
                        if let Some(v) = vector_scalar_value(op, r.vals[i], x, swap, return_bool) {
                            out.vals[i] = v;
                            out.has[i] = true;
                        }
                    }
                }
                out
            })
            .filter(Row::any)
            .collect(),
    )
}

/// Each row's match signature; `None` when a signature has several rows.
fn unique_signatures(rows: &[Row], m: &BinModifier) -> Option<Vec<String>> {
    let sigs: Vec<String> = rows.iter().map(|r| signature(&r.metric, &m.matching)).collect();
    let mut seen = std::collections::HashSet::with_capacity(sigs.len());
    sigs.iter().all(|s| seen.insert(s.as_str())).then_some(sigs)
}

/// `a / b`, `a > bool b`, ... with each side's rows matching at most one row of the other
/// (otherwise a step could hold an ambiguous match, and the step-by-step evaluator says so).
fn one_to_one(op: TokenType, lhs: &[Row], rhs: &[Row], m: &BinModifier) -> Option<Grid> {
    let right: HashMap<String, &Row> = unique_signatures(rhs, m)?.into_iter().zip(rhs).collect();
    let left = unique_signatures(lhs, m)?;
    let mut out = Vec::new();
    for (l, sig) in lhs.iter().zip(&left) {
        let Some(r) = right.get(sig) else {
            continue;
        };
        let metric = Arc::new(result_metric(&l.metric, &r.metric, m));
        let mut row = Row::empty(metric, drops_name(op, l.drop_name, m.return_bool), l.has.len());
        for i in 0..l.has.len() {
            if l.has[i] && r.has[i] {
                let (v, keep) = elem(op, l.vals[i], r.vals[i]);
                if m.return_bool {
                    row.vals[i] = keep as u8 as f64;
                    row.has[i] = true;
                } else if keep {
                    row.vals[i] = v;
                    row.has[i] = true;
                }
            }
        }
        if row.any() {
            out.push(row);
        }
    }
    Some(Grid::Vector(out))
}

/// Per match signature, whether any row with it has a value at each step.
fn presence(rows: &[Row], m: &BinModifier) -> HashMap<String, Vec<bool>> {
    let mut out: HashMap<String, Vec<bool>> = HashMap::new();
    for r in rows {
        let p = out
            .entry(signature(&r.metric, &m.matching))
            .or_insert_with(|| vec![false; r.has.len()]);
        for (a, b) in p.iter_mut().zip(&r.has) {
            *a |= *b;
        }
    }
    out
}

/// `and`, `or`, `unless`: a row keeps the steps where the other side has (or lacks) its
/// signature.
fn set_op(op: TokenType, lhs: &[Row], rhs: &[Row], m: &BinModifier) -> Grid {
    let filter = |rows: &[Row], other: &HashMap<String, Vec<bool>>, want: bool| -> Vec<Row> {
        rows.iter()
            .map(|r| {
                let p = other.get(&signature(&r.metric, &m.matching));
                Row {
                    metric: r.metric.clone(),
                    drop_name: r.drop_name,
                    vals: r.vals.clone(),
                    has: r
                        .has
                        .iter()
                        .enumerate()
                        .map(|(i, h)| *h && p.is_some_and(|p| p[i]) == want)
                        .collect(),
                }
            })
            .filter(Row::any)
            .collect()
    };
    Grid::Vector(match op.id() {
        T_LAND => filter(lhs, &presence(rhs, m), true),
        T_LUNLESS => filter(lhs, &presence(rhs, m), false),
        _ => {
            let mut out = filter(lhs, &HashMap::new(), false);
            out.extend(filter(rhs, &presence(lhs, m), false));
            out
        }
    })
}

/// A range query's answer from its root's grid.
pub(super) fn into_series(ev: &Evaluator, grid: Grid) -> Result<Vec<Series>> {
    let times = ev.step_times(0);
    let series = match grid {
        Grid::Scalar(v) => vec![Series {
            metric: Arc::new(Labels::default()),
            points: times.iter().copied().zip(v).collect(),
            drop_name: false,
        }],
        Grid::Vector(rows) => {
            let total: usize = rows.iter().map(|r| r.has.iter().filter(|h| **h).count()).sum();
            ev.check_samples(total)?;
            rows.into_iter()
                .map(|r| Series {
                    points: times
                        .iter()
                        .zip(r.vals.iter().zip(&r.has))
                        .filter(|(_, (_, h))| **h)
                        .map(|(t, (v, _))| (*t, *v))
                        .collect(),
                    metric: r.metric,
                    drop_name: r.drop_name,
                })
                .collect()
        }
    };
    super::eval::finish_matrix(series)
}
