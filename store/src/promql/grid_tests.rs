//! Grids answer what the step-by-step evaluator answers: every query here runs both ways
//! over a TSDB with blocks and a head, resets, gaps, stale markers, churn, late writes and
//! NaN, and the results must agree to the bit (errors and annotations too).

use std::sync::Arc;

use super::{instant, parse, range, Options, Output, QueryValue};
use crate::tsdb::{stale_nan, Matcher, Querier, RawSeries, SampleBatch, SeriesPlan, SeriesSamples, Tsdb};

const MIN: i64 = 60_000;

fn series(labels: &[(&str, &str)], samples: Vec<(i64, f64)>) -> SeriesSamples {
    SeriesSamples {
        labels: labels
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        samples,
    }
}

/// 40 minutes at 15 s: counters with resets, gauges, a series that ends with a stale
/// marker, one that starts late, one with a gap and a NaN.
fn data() -> Vec<SeriesSamples> {
    let mut out = Vec::new();
    // xorshift: the same data on every run.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut rng = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for inst in ["a", "b", "c"] {
        for mode in ["idle", "user", "system", "iowait"] {
            let mut v = 0.0;
            let mut s = Vec::new();
            for k in 0..160i64 {
                v += (rng() % 1000) as f64 / 100.0;
                if k == 90 && mode == "user" {
                    v = 1.0; // a counter reset
                }
                s.push((k * 15_000 + (rng() % 40) as i64, v));
            }
            out.push(series(
                &[
                    ("__name__", "c_total"),
                    ("job", "node"),
                    ("instance", inst),
                    ("mode", mode),
                ],
                s,
            ));
        }
        let g: Vec<(i64, f64)> = (0..160i64)
            .filter(|k| inst != "b" || !(40..70).contains(k))
            .map(|k| (k * 15_000 + 7, ((rng() % 2000) as f64 - 500.0) / 100.0))
            .collect();
        out.push(series(&[("__name__", "g"), ("instance", inst)], g));
        let h: Vec<(i64, f64)> = (0..160i64)
            .map(|k| (k * 15_000 + 11, (rng() % 900) as f64 / 10.0 + 1.0))
            .collect();
        out.push(series(&[("__name__", "h"), ("instance", inst), ("x", "y")], h));
    }
    let mut ending: Vec<(i64, f64)> = (0..60i64).map(|k| (k * 15_000, k as f64)).collect();
    ending.push((60 * 15_000, stale_nan()));
    out.push(series(&[("__name__", "g"), ("instance", "gone")], ending));
    out.push(series(
        &[("__name__", "g"), ("instance", "late")],
        (100..160i64)
            .map(|k| (k * 15_000, if k == 120 { f64::NAN } else { 2.0 }))
            .collect(),
    ));
    out
}

/// A TSDB holding `data()`: the first 20 minutes in a block, the rest in the head, and a
/// resend of a few samples with other values (the newest write wins).
fn tsdb(dir: &std::path::Path) -> Tsdb {
    let db = Tsdb::open(dir).unwrap();
    let all = data();
    let part = |lo: i64, hi: i64| SampleBatch {
        series: all
            .iter()
            .map(|s| SeriesSamples {
                labels: s.labels.clone(),
                samples: s
                    .samples
                    .iter()
                    .copied()
                    .filter(|p| p.0 >= lo && p.0 < hi)
                    .collect(),
            })
            .collect(),
    };
    db.apply(1, &part(0, 20 * MIN));
    db.flush().unwrap();
    db.apply(2, &part(20 * MIN, 60 * MIN));
    let mut resend = part(18 * MIN, 21 * MIN);
    for s in &mut resend.series {
        for p in &mut s.samples {
            p.1 += 0.5;
        }
    }
    db.apply(3, &resend);
    db
}

const QUERIES: &[&str] = &[
    "c_total",
    "g offset 2m",
    "rate(c_total[5m])",
    "irate(c_total[1m])",
    "increase(c_total[10m] offset 1m)",
    "delta(g[5m])",
    "idelta(g[2m])",
    "deriv(g[5m])",
    "predict_linear(g[10m], 600)",
    "resets(c_total[15m])",
    "changes(g[15m])",
    "avg_over_time(g[5m])",
    "sum_over_time(g[5m])",
    "count_over_time(g[3m])",
    "min_over_time(g[5m])",
    "max_over_time(g[10m])",
    "quantile_over_time(0.9, g[10m])",
    "quantile_over_time(1.5, g[10m])",
    "stddev_over_time(g[5m])",
    "stdvar_over_time(g[5m])",
    "mad_over_time(g[10m])",
    "last_over_time(g[1m])",
    "first_over_time(g[5m])",
    "present_over_time(g[1m])",
    "ts_of_max_over_time(g[10m])",
    "double_exponential_smoothing(g[10m], 0.5, 0.3)",
    "double_exponential_smoothing(g[10m], 1.5, 0.3)",
    "rate(g[5m])",
    "sum by (mode) (rate(c_total[5m]))",
    "avg without (mode) (rate(c_total[5m]))",
    "sum(sum by (instance) (g))",
    "count(g)",
    "max by (instance) (g)",
    "min(g)",
    "group by (job) (c_total)",
    "stddev(g)",
    "stdvar by (instance) (rate(c_total[5m]))",
    "quantile(0.5, g)",
    "sum by (__name__) ({__name__=~\"g|h\"})",
    "100 * (1 - g / ignoring(x) h)",
    "g > 0",
    "g > bool 0",
    "0 < g",
    "g - on(instance) h",
    "g / h",
    "rate(c_total[5m]) > 0.1",
    "c_total and on(instance) g > 1",
    "g or on(instance) h",
    "h or g",
    "g unless on(instance) (h > 50)",
    "2 * 3 > bool 5",
    "time() - g",
    "-g",
    "abs(-g)",
    "clamp(g, 1, 5)",
    "clamp(g, 5, 1)",
    "clamp_min(g, 0)",
    "round(g, 0.5)",
    "ln(h)",
    "topk(2, rate(c_total[5m]))",
    "sum by (instance) (c_total) / on(instance) group_left count by (instance) (c_total)",
    "c_total / on(instance) group_left g",
    "label_replace(rate(c_total[5m]), \"m\", \"$1\", \"mode\", \"(.*)\")",
    "max_over_time(rate(c_total[5m])[10m:1m])",
    "timestamp(g)",
    "timestamp(sum(g))",
    "rate(c_total[5m] @ 600)",
    "g @ end()",
    "absent(nope)",
    "absent_over_time(g[1m])",
    "scalar(sum(g))",
    "vector(1) + g",
    "sort(g)",
    "c_total + ignoring(mode) c_total",
    "g + on() h",
    "sum(rate(c_total[5m])) / scalar(count(g))",
    "histogram_quantile(0.9, sum by (le) (rate(c_total[5m])))",
];

fn both(f: impl Fn(&Options) -> super::Result<Output>) -> (String, String) {
    let show = |r: super::Result<Output>| match r {
        Err(e) => format!("error: {e}"),
        Ok(o) => {
            let mut s = format!("{:?} {:?}\n", o.annotations.warnings, o.annotations.infos);
            match o.value {
                QueryValue::Matrix(m) => {
                    for x in m {
                        s += &format!(
                            "{} {:?}\n",
                            x.metric,
                            x.points.iter().map(|p| (p.0, p.1.to_bits())).collect::<Vec<_>>()
                        );
                    }
                }
                QueryValue::Vector(v) => {
                    for x in v {
                        // (`t` is the sample's own time only inside the engine.)
                        s += &format!("{} {}\n", x.metric, x.v.to_bits());
                    }
                }
                other => s += &format!("{other:?}"),
            }
            s
        }
    };
    let on = Options::default();
    let off = Options {
        grids: false,
        ..Options::default()
    };
    (show(f(&on)), show(f(&off)))
}

#[test]
fn grids_answer_what_stepping_answers() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(tsdb(dir.path()));
    let mut answered = 0;
    for q in QUERIES {
        let expr = parse(q).unwrap();
        for (start, end, step) in [
            (0, 40 * MIN, 15_000),
            (5 * MIN + 3, 39 * MIN, 60_000),
            (10 * MIN, 10 * MIN, 1),
        ] {
            let (a, b) = both(|o| range(&*db, &expr, start, end, step, o));
            assert_eq!(a, b, "{q} over [{start}, {end}] step {step}");
            answered += a.lines().count();
        }
        for t in [0, 13 * MIN + 500, 35 * MIN] {
            let (a, b) = both(|o| instant(&*db, &expr, t, o));
            assert_eq!(a, b, "{q} at {t}");
        }
    }
    assert!(answered > 1000, "the queries return series ({answered} lines)");
}

/// Counts how the engine reads: `plan` (one series at a time, what grids use) or
/// `select` (every series at once, what stepping uses).
struct Counting<'a>(&'a Tsdb, std::sync::Mutex<(usize, usize)>);

impl Querier for Counting<'_> {
    fn select(&self, m: &[Matcher], mint: i64, maxt: i64) -> Result<Vec<RawSeries>, String> {
        self.1.lock().unwrap().1 += 1;
        self.0.select(m, mint, maxt)
    }

    fn plan(&self, m: &[Matcher], mint: i64, maxt: i64) -> Result<Box<dyn SeriesPlan + '_>, String> {
        self.1.lock().unwrap().0 += 1;
        self.0.plan(m, mint, maxt)
    }
}

#[test]
fn grids_are_used_where_they_apply() {
    let dir = tempfile::tempdir().unwrap();
    let db = tsdb(dir.path());
    for (q, plans, selects) in [
        ("sum by (mode) (rate(c_total[5m]))", 1, 0),
        ("100 * (1 - g / ignoring(x) h)", 2, 0),
        // The step-by-step parts read their children's grids.
        ("topk(2, rate(c_total[5m]))", 1, 0),
        (
            "label_replace(g, \"m\", \"$1\", \"instance\", \"(.*)\") + on(instance) (h * 2)",
            2,
            0,
        ),
        // Not on a grid: @, subqueries, timestamp of a selector.
        ("rate(c_total[5m] @ 600)", 0, 1),
        ("max_over_time(g[10m:1m])", 0, 1),
        ("timestamp(g)", 0, 1),
    ] {
        let counting = Counting(&db, Default::default());
        range(
            &counting,
            &parse(q).unwrap(),
            0,
            40 * MIN,
            15_000,
            &Options::default(),
        )
        .unwrap();
        assert_eq!(*counting.1.lock().unwrap(), (plans, selects), "{q}");
    }
}
