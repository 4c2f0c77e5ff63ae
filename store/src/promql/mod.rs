//! PromQL: the expression language Grafana's Prometheus data source speaks.
//!
//! Parsing is `promql-parser`'s; evaluation is ours and follows Prometheus 3 semantics
//! (left-open range and lookback windows, staleness markers, delayed `__name__` removal).
//!
//! ```text
//! query text --parse()--> Expr --instant()/range()--> Evaluator (eval.rs)
//!   prefetch: walk the tree once, compute each selector's time window (offset, @, subquery
//!             ranges)
//!   grids:    evaluate what can be over all steps at once (grid.rs): selectors and range
//!             functions read one series at a time from several threads and keep one row
//!             of values per step; aggregations, operators and math combine rows
//!   per step: eval(expr, t) -> Value { Scalar | String | Vector | Matrix } for the rest,
//!             reading grids where they exist and otherwise series fetched once per query;
//!             selectors and subqueries (eval.rs), functions (functions.rs, range ones in
//!             over_time.rs, classic histograms in histogram.rs), aggregations
//!             (aggregate.rs), operators and vector matching (binary.rs)
//!   output:   __name__ dropped where an operation asked for it; a range query's steps
//!             joined into series by label set
//! ```
//!
//! Times are milliseconds since the epoch, values `f64`. Limits ([`Options`]) bound the
//! samples a query may hold and its run time; exceeding one is an error, never a partial
//! answer.

mod aggregate;
mod binary;
mod eval;
mod functions;
mod grid;
#[cfg(test)]
mod grid_tests;
mod histogram;
pub mod notation;
mod over_time;

use std::sync::Arc;
use std::time::Duration;

use promql_parser::parser::value::ValueType;
use promql_parser::parser::Expr;

use crate::tsdb::{Labels, Querier};

/// Evaluation limits and defaults, as a Prometheus operator would set them on the server.
#[derive(Clone, Debug)]
pub struct Options {
    /// How far back an instant selector looks for the latest sample (Prometheus: 5m).
    pub lookback_ms: i64,
    /// Step of a subquery written without one (`x[1h:]`), Prometheus's evaluation interval.
    pub subquery_step_ms: i64,
    /// Most samples a query may load or produce at once.
    pub max_samples: usize,
    /// Most series one selector may match.
    pub max_series: usize,
    /// Longest time range a range query may cover (ms).
    pub max_range_ms: i64,
    /// Wall-clock budget for one query.
    pub timeout: Duration,
    /// Evaluate what can be over all steps at once (`grid.rs`); off only to compare.
    #[doc(hidden)]
    pub grids: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lookback_ms: 5 * 60 * 1000,
            subquery_step_ms: 60 * 1000,
            max_samples: 50_000_000,
            max_series: 500_000,
            max_range_ms: 400 * 86_400_000,
            timeout: Duration::from_secs(120),
            grids: true,
        }
    }
}

/// One element of an instant vector.
#[derive(Clone, Debug)]
pub struct Sample {
    pub metric: Arc<Labels>,
    /// Time of the underlying stored sample for selector results (what `timestamp()` reads);
    /// the evaluation time otherwise.
    pub t: i64,
    pub v: f64,
    /// Set by operations that remove the metric name; applied when the result leaves the
    /// engine (or when a later operation needs the final label set).
    pub drop_name: bool,
}

/// One series of a range vector or of a range query's result.
#[derive(Clone, Debug)]
pub struct Series {
    pub metric: Arc<Labels>,
    pub points: Vec<(i64, f64)>,
    pub drop_name: bool,
}

/// What an expression evaluates to at one step.
#[derive(Clone, Debug)]
pub enum Value {
    Scalar(f64),
    String(String),
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

impl Value {
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Scalar(_) => "scalar",
            Value::String(_) => "string",
            Value::Vector(_) => "vector",
            Value::Matrix(_) => "matrix",
        }
    }
}

/// A query's answer, in the shape the Prometheus HTTP API returns.
#[derive(Clone, Debug)]
pub enum QueryValue {
    Scalar(i64, f64),
    String(i64, String),
    Vector(Vec<Sample>),
    Matrix(Vec<Series>),
}

#[derive(Clone, Debug, Default)]
pub struct Annotations {
    pub warnings: Vec<String>,
    pub infos: Vec<String>,
}

impl Annotations {
    pub(crate) fn warn(&mut self, msg: String) {
        if !self.warnings.contains(&msg) {
            self.warnings.push(msg);
        }
    }

    pub(crate) fn info(&mut self, msg: String) {
        if !self.infos.contains(&msg) {
            self.infos.push(msg);
        }
    }
}

#[derive(Clone, Debug)]
pub struct Output {
    pub value: QueryValue,
    pub annotations: Annotations,
}

/// Why a query failed, with the Prometheus API's error types.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The query text or parameters are wrong (`bad_data`, HTTP 400).
    #[error("{0}")]
    BadData(String),
    /// The query is valid but cannot be answered (`execution`, HTTP 422).
    #[error("{0}")]
    Execution(String),
    /// The time budget ran out (`timeout`, HTTP 503).
    #[error("query timed out in {0}")]
    Timeout(&'static str),
    /// Storage failed to read (`internal`, HTTP 500).
    #[error("{0}")]
    Storage(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Parses a PromQL expression; the message is the parser's, prefixed like Prometheus's.
///
/// The text is first checked against the bounds of [`crate::guard`] (size, nesting,
/// operators), and parsed on a deep stack; callers evaluate and drop the tree inside
/// `guard::deep` too (the API handlers run whole queries in it).
pub fn parse(query: &str) -> Result<Expr> {
    crate::guard::check(query).map_err(|e| Error::BadData(format!("invalid parameter \"query\": {e}")))?;
    // The parser is generated code; a panic on hostile input must not take the store down.
    let q = query.to_string();
    crate::guard::deep(
        move || match std::panic::catch_unwind(move || promql_parser::parser::parse(&q)) {
            Ok(Ok(expr)) => Ok(expr),
            Ok(Err(e)) => Err(Error::BadData(format!("invalid parameter \"query\": {e}"))),
            Err(_) => Err(Error::BadData(
                "invalid parameter \"query\": could not parse query".into(),
            )),
        },
    )
}

/// Parses a series selector (`match[]` of the metadata APIs) into its matcher sets: one set,
/// or one per alternative of `{a="1" or b="2"}`.
pub fn selector_matchers(s: &str) -> Result<Vec<Vec<crate::tsdb::Matcher>>> {
    crate::guard::deep(|| match parse(s)? {
        Expr::VectorSelector(vs) => Ok(eval::selector_matcher_sets(&vs)),
        _ => Err(Error::BadData(format!(
            "invalid parameter \"match[]\": {s:?} is not a series selector"
        ))),
    })
}

/// Evaluates `expr` at one instant `t` (ms).
pub fn instant(querier: &dyn Querier, expr: &Expr, t: i64, opts: &Options) -> Result<Output> {
    crate::guard::deep(|| instant_inner(querier, expr, t, opts))
}

fn instant_inner(querier: &dyn Querier, expr: &Expr, t: i64, opts: &Options) -> Result<Output> {
    let mut ev = eval::Evaluator::new(querier, opts, t, t, 0);
    ev.prefetch(expr);
    if opts.grids {
        grid::precompute(&mut ev, expr)?;
    }
    let value = match ev.eval(expr, t)? {
        Value::Scalar(v) => QueryValue::Scalar(t, v),
        Value::String(s) => QueryValue::String(t, s),
        Value::Vector(v) => QueryValue::Vector(eval::finish_vector(v)?),
        Value::Matrix(m) => QueryValue::Matrix(eval::finish_matrix(m)?),
    };
    Ok(Output {
        value,
        annotations: ev.annotations,
    })
}

/// Evaluates `expr` at every step from `start` to `end` (ms, inclusive) and joins the steps
/// into series. Only scalar and instant-vector expressions can be range-queried.
pub fn range(
    querier: &dyn Querier,
    expr: &Expr,
    start: i64,
    end: i64,
    step: i64,
    opts: &Options,
) -> Result<Output> {
    if step <= 0 {
        return Err(Error::BadData(
            "invalid parameter \"step\": zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
        ));
    }
    if end - start > opts.max_range_ms {
        return Err(Error::BadData(format!(
            "the query time range {} exceeds the limit of {} days; query a shorter range",
            humantime::format_duration(std::time::Duration::from_millis((end - start).max(0) as u64)),
            opts.max_range_ms / 86_400_000
        )));
    }
    match expr.value_type() {
        ValueType::Scalar | ValueType::Vector => {}
        other => {
            return Err(Error::BadData(format!(
                "invalid parameter \"query\": invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                type_label(other)
            )))
        }
    }
    crate::guard::deep(|| {
        let mut ev = eval::Evaluator::new(querier, opts, start, end, step);
        ev.prefetch(expr);
        if opts.grids {
            grid::precompute(&mut ev, expr)?;
        }
        if start != end && uses_sort(expr) {
            ev.annotations.warn(
            "PromQL warning: sort is ineffective for range queries since results are always ordered by labels".into(),
        );
        }
        let series = ev.eval_range(expr, start, end, step)?;
        Ok(Output {
            value: QueryValue::Matrix(series),
            annotations: ev.annotations,
        })
    })
}

fn uses_sort(e: &Expr) -> bool {
    match e {
        Expr::Call(c) => c.func.name.starts_with("sort") || c.args.args.iter().any(|a| uses_sort(a)),
        Expr::Aggregate(a) => uses_sort(&a.expr),
        Expr::Binary(b) => uses_sort(&b.lhs) || uses_sort(&b.rhs),
        Expr::Paren(p) => uses_sort(&p.expr),
        Expr::Unary(u) => uses_sort(&u.expr),
        Expr::Subquery(s) => uses_sort(&s.expr),
        _ => false,
    }
}

fn type_label(t: ValueType) -> &'static str {
    match t {
        ValueType::Scalar => "scalar",
        ValueType::String => "string",
        ValueType::Vector => "instant vector",
        ValueType::Matrix => "range vector",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tsdb::{RawSeries, SeriesList};

    fn store(series: usize, samples: i64) -> SeriesList {
        SeriesList(
            (0..series)
                .map(|i| RawSeries {
                    labels: Arc::new(Labels::from_pairs([("__name__", "m"), ("i", &i.to_string())])),
                    samples: (0..samples).map(|t| (t * 1000, t as f64)).collect(),
                })
                .collect(),
        )
    }

    #[test]
    fn limits_give_clear_errors() {
        let q = store(20, 100);
        let expr = parse("sum(rate(m[1m]))").unwrap();
        let tight = Options {
            max_series: 10,
            ..Options::default()
        };
        let err = range(&q, &expr, 0, 90_000, 15_000, &tight)
            .unwrap_err()
            .to_string();
        assert!(err.contains("matches 20 series, over the limit of 10"), "{err}");
        // The limit bounds what is held at once: 20 series x 7 steps of rates fit in 500
        // though the windows read 2,000 samples (one series at a time); 100 do not.
        let tight = Options {
            max_samples: 500,
            ..Options::default()
        };
        range(&q, &expr, 0, 90_000, 15_000, &tight).unwrap();
        let tight = Options {
            max_samples: 100,
            ..Options::default()
        };
        let err = range(&q, &expr, 0, 90_000, 15_000, &tight)
            .unwrap_err()
            .to_string();
        assert!(err.contains("too many samples"), "{err}");
        let err = range(&q, &expr, 0, 401 * 86_400_000, 86_400_000, &Options::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("exceeds the limit of 400 days"), "{err}");
        let ok = range(&q, &expr, 0, 90_000, 15_000, &Options::default()).unwrap();
        let QueryValue::Matrix(m) = ok.value else {
            panic!("matrix")
        };
        assert_eq!(m.len(), 1);
        assert!(
            (m[0].points.last().unwrap().1 - 20.0).abs() < 1e-9,
            "20 series at 1/s"
        );
    }
}
