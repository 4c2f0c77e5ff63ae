//! Prometheus's series notation for test data, as its PromQL tests and promtool's rule unit
//! tests write it: a series description (`up{job="node"}`) and expanding values
//! (`1 2 _ stale 1+2x3 5-1x2 0x4 _x3`).
//!
//! Point `k` of a series is at `start + k * interval`; `_` is a missing point and `stale`
//! a staleness marker. `a+bxn` expands to the `n + 1` values `a, a+b, …, a+n·b`, and `axn`
//! to `n + 1` copies of `a`. Native histograms are written `{{schema:1 count:3 sum:2
//! buckets:[1 2] offset:-1 n_buckets:[…] n_offset:… z_bucket:… z_bucket_w:…}}` and expand
//! the same way (`{{…}}x2`, `{{…}}+{{…}}x2`); [`points`] reads both kinds.

use crate::tsdb::{stale_nan, Labels, METRIC_NAME};

/// One number as the notation writes it (`1`, `-2.5e3`, `Inf`, `NaN`, `0x1f`, `stale`).
pub fn value(s: &str) -> Option<f64> {
    match s {
        "stale" => Some(stale_nan()),
        "Inf" | "+Inf" | "inf" | "+inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" | "nan" => Some(f64::NAN),
        _ => s.parse().ok().or_else(|| {
            let hex = s.strip_prefix("0x")?;
            i64::from_str_radix(hex, 16).ok().map(|v| v as f64)
        }),
    }
}

/// Expands one token (`5`, `_`, `stale`, `1+2x3`, `1-2x3`, `1x3`, `_x3`) into points;
/// `None` points are missing.
pub fn expand(tok: &str) -> Option<Vec<Option<f64>>> {
    if let Some((base, n)) = tok.rsplit_once('x') {
        if let Ok(n) = n.parse::<usize>() {
            if n > 1_000_000 {
                return None;
            }
            if base == "_" {
                return Some(vec![None; n]);
            }
            // Split "a+b" / "a-b" at an operator that is not a sign or an exponent's.
            let bytes = base.as_bytes();
            let split = (1..bytes.len())
                .rev()
                .find(|&i| (bytes[i] == b'+' || bytes[i] == b'-') && !matches!(bytes[i - 1], b'e' | b'E'));
            let (start, delta) = match split {
                Some(i) => {
                    let d = value(&base[i + 1..])?;
                    (value(&base[..i])?, if bytes[i] == b'-' { -d } else { d })
                }
                None => (value(base)?, 0.0),
            };
            return Some((0..=n).map(|k| Some(start + delta * k as f64)).collect());
        }
    }
    if tok == "_" {
        return Some(vec![None]);
    }
    value(tok).map(|v| vec![Some(v)])
}

/// All points of a values text (tokens separated by white space).
pub fn values(text: &str) -> Result<Vec<Option<f64>>, String> {
    let mut out = Vec::new();
    for tok in text.split_whitespace() {
        out.extend(expand(tok).ok_or_else(|| format!("invalid value {tok:?} in {text:?}"))?);
    }
    Ok(out)
}

/// A native histogram as the notation writes it (dense buckets from their offsets).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Histogram {
    pub schema: i64,
    pub count: f64,
    pub sum: f64,
    pub zero_count: f64,
    pub zero_threshold: f64,
    pub offset: i64,
    pub buckets: Vec<f64>,
    pub n_offset: i64,
    pub n_buckets: Vec<f64>,
    /// `unknown` (not written), `reset`, `not_reset` or `gauge`.
    pub counter_reset_hint: String,
}

impl Histogram {
    /// Parses `{{key:value ...}}`.
    pub fn parse(text: &str) -> Result<Histogram, String> {
        let inner = text
            .strip_prefix("{{")
            .and_then(|t| t.strip_suffix("}}"))
            .ok_or_else(|| format!("invalid histogram {text:?}"))?;
        let mut h = Histogram {
            counter_reset_hint: "unknown".into(),
            ..Histogram::default()
        };
        let mut rest = inner.trim();
        while !rest.is_empty() {
            let (key, after) = rest
                .split_once(':')
                .ok_or_else(|| format!("invalid histogram {text:?}"))?;
            let after = after.trim_start();
            let (val, next) = if let Some(list) = after.strip_prefix('[') {
                let end = list.find(']').ok_or_else(|| format!("unclosed [ in {text:?}"))?;
                (&list[..end], &list[end + 1..])
            } else {
                after.split_at(after.find(char::is_whitespace).unwrap_or(after.len()))
            };
            let num = |v: &str| value(v).ok_or_else(|| format!("invalid number {v:?} in {text:?}"));
            let list = |v: &str| {
                v.split_whitespace()
                    .map(num)
                    .collect::<Result<Vec<f64>, String>>()
            };
            let int = |v: &str| {
                v.parse::<i64>()
                    .map_err(|_| format!("invalid integer {v:?} in {text:?}"))
            };
            match key.trim() {
                "schema" => h.schema = int(val)?,
                "count" => h.count = num(val)?,
                "sum" => h.sum = num(val)?,
                "z_bucket" => h.zero_count = num(val)?,
                "z_bucket_w" => h.zero_threshold = num(val)?,
                "offset" => h.offset = int(val)?,
                "buckets" => h.buckets = list(val)?,
                "n_offset" => h.n_offset = int(val)?,
                "n_buckets" => h.n_buckets = list(val)?,
                "counter_reset_hint" => h.counter_reset_hint = val.to_string(),
                other => return Err(format!("unknown histogram field {other:?} in {text:?}")),
            }
            rest = next.trim_start();
        }
        Ok(h)
    }

    /// `self + other`: counts, sums and buckets added (bucket by bucket from their offsets).
    pub fn add(&self, other: &Histogram) -> Histogram {
        fn merge(a: &[f64], ao: i64, b: &[f64], bo: i64) -> (Vec<f64>, i64) {
            if a.is_empty() {
                return (b.to_vec(), bo);
            }
            if b.is_empty() {
                return (a.to_vec(), ao);
            }
            let start = ao.min(bo);
            let end = (ao + a.len() as i64).max(bo + b.len() as i64);
            let mut out = vec![0.0; (end - start) as usize];
            for (i, v) in a.iter().enumerate() {
                out[(ao - start) as usize + i] += v;
            }
            for (i, v) in b.iter().enumerate() {
                out[(bo - start) as usize + i] += v;
            }
            (out, start)
        }
        let (buckets, offset) = merge(&self.buckets, self.offset, &other.buckets, other.offset);
        let (n_buckets, n_offset) = merge(&self.n_buckets, self.n_offset, &other.n_buckets, other.n_offset);
        Histogram {
            schema: self.schema,
            count: self.count + other.count,
            sum: self.sum + other.sum,
            zero_count: self.zero_count + other.zero_count,
            zero_threshold: self.zero_threshold.max(other.zero_threshold),
            offset,
            buckets,
            n_offset,
            n_buckets,
            counter_reset_hint: self.counter_reset_hint.clone(),
        }
    }

    /// Equal up to float rounding of the sums and counts, and with the same hint.
    pub fn same(&self, other: &Histogram) -> bool {
        let close = |a: f64, b: f64| a == b || (a - b).abs() <= 1e-12 * a.abs().max(b.abs());
        let lists = |a: &[f64], b: &[f64]| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| close(*x, *y));
        self.schema == other.schema
            && close(self.count, other.count)
            && close(self.sum, other.sum)
            && close(self.zero_count, other.zero_count)
            && close(self.zero_threshold, other.zero_threshold)
            && (self.offset == other.offset || self.buckets.is_empty())
            && lists(&self.buckets, &other.buckets)
            && (self.n_offset == other.n_offset || self.n_buckets.is_empty())
            && lists(&self.n_buckets, &other.n_buckets)
            && self.counter_reset_hint == other.counter_reset_hint
    }
}

impl std::fmt::Display for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: &[f64]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(" ");
        write!(
            f,
            "{{{{schema:{} count:{} sum:{}",
            self.schema, self.count, self.sum
        )?;
        if self.zero_count != 0.0 {
            write!(
                f,
                " z_bucket:{} z_bucket_w:{}",
                self.zero_count, self.zero_threshold
            )?;
        }
        if !self.buckets.is_empty() {
            write!(f, " offset:{} buckets:[{}]", self.offset, list(&self.buckets))?;
        }
        if !self.n_buckets.is_empty() {
            write!(
                f,
                " n_offset:{} n_buckets:[{}]",
                self.n_offset,
                list(&self.n_buckets)
            )?;
        }
        if self.counter_reset_hint != "unknown" {
            write!(f, " counter_reset_hint:{}", self.counter_reset_hint)?;
        }
        write!(f, "}}}}")
    }
}

/// One point of a series in the notation.
#[derive(Clone, Debug, PartialEq)]
pub enum Point {
    Missing,
    Float(f64),
    Histogram(Histogram),
}

/// All points of a values text, floats and native histograms.
pub fn points(text: &str) -> Result<Vec<Point>, String> {
    let mut out = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        if rest.starts_with("{{") {
            let take = |r: &str| -> Result<(Histogram, usize), String> {
                let end = r
                    .find("}}")
                    .ok_or_else(|| format!("unclosed histogram in {text:?}"))?
                    + 2;
                Ok((Histogram::parse(&r[..end])?, end))
            };
            let (base, mut used) = take(rest)?;
            let mut inc = Histogram::default();
            if let Some(r) = rest[used..].strip_prefix('+') {
                let (i, n) = take(r)?;
                inc = i;
                used += 1 + n;
            }
            let times = match rest[used..].strip_prefix('x') {
                Some(r) => {
                    let digits = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
                    used += 1 + digits;
                    r[..digits]
                        .parse::<usize>()
                        .map_err(|_| format!("invalid repeat in {text:?}"))?
                }
                None => 0,
            };
            if times > 1_000_000 {
                return Err(format!("too many points in {text:?}"));
            }
            let mut cur = base;
            for _ in 0..=times {
                out.push(Point::Histogram(cur.clone()));
                cur = cur.add(&inc);
            }
            rest = rest[used..].trim_start();
            continue;
        }
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let tok = &rest[..end];
        let expanded = expand(tok).ok_or_else(|| format!("invalid value {tok:?} in {text:?}"))?;
        out.extend(
            expanded
                .into_iter()
                .map(|v| v.map_or(Point::Missing, Point::Float)),
        );
        rest = rest[end..].trim_start();
    }
    Ok(out)
}

/// A series description (`name{a="b"}`, `{a="b"}`, `name`) as a label set.
pub fn metric(desc: &str) -> Result<Labels, String> {
    let desc = desc.trim();
    let desc = match desc.strip_suffix("{}") {
        Some(name) if !name.is_empty() => name,
        _ => desc,
    };
    if desc == "{}" {
        return Ok(Labels::default());
    }
    let expr = promql_parser::parser::parse(desc).map_err(|e| format!("invalid series {desc:?}: {e}"))?;
    let promql_parser::parser::Expr::VectorSelector(vs) = expr else {
        return Err(format!("invalid series {desc:?}: not a series description"));
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    for m in &vs.matchers.matchers {
        if m.op != promql_parser::label::MatchOp::Equal {
            return Err(format!(
                "invalid series {desc:?}: only = matchers describe a series"
            ));
        }
        pairs.push((m.name.clone(), m.value.clone()));
    }
    if let Some(n) = vs.name {
        pairs.push((METRIC_NAME.to_string(), n));
    }
    Ok(Labels::new(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expanding_notation() {
        assert_eq!(values("1 _ 3").unwrap(), [Some(1.0), None, Some(3.0)]);
        assert_eq!(values("1+1x2").unwrap(), [Some(1.0), Some(2.0), Some(3.0)]);
        assert_eq!(
            values("5-2x1 0x1").unwrap(),
            [Some(5.0), Some(3.0), Some(0.0), Some(0.0)]
        );
        assert_eq!(
            values("_x2 -1e1+1e1x1").unwrap(),
            [None, None, Some(-10.0), Some(0.0)]
        );
        assert!(crate::tsdb::is_stale(values("stale").unwrap()[0].unwrap()));
        assert!(values("1 abc").is_err());
        assert_eq!(
            metric("up{job=\"a\"}").unwrap(),
            Labels::from_pairs([("__name__", "up"), ("job", "a")])
        );
        assert_eq!(metric("{}").unwrap(), Labels::default());
        assert!(metric("up{job=~\"a\"}").is_err());
        assert!(metric("up{job=\"a\"").is_err());
    }

    #[test]
    fn histograms() {
        let p = points("{{schema:1 sum:-0.3 count:32.1 z_bucket:7.1 z_bucket_w:0.05 buckets:[5.1 10 7] offset:-3 n_buckets:[4.1 5] n_offset:-5}} 1").unwrap();
        let Point::Histogram(h) = &p[0] else {
            panic!("{p:?}")
        };
        assert_eq!(
            (h.schema, h.count, h.sum, h.zero_count, h.offset),
            (1, 32.1, -0.3, 7.1, -3)
        );
        assert_eq!(
            (h.buckets.clone(), h.n_buckets.clone(), h.n_offset),
            (vec![5.1, 10.0, 7.0], vec![4.1, 5.0], -5)
        );
        assert_eq!(p[1], Point::Float(1.0));
        let p = points("{{sum:3 count:2 buckets:[2]}}+{{sum:1.3 count:1 buckets:[1]}}x2 _").unwrap();
        assert_eq!(p.len(), 4);
        let Point::Histogram(last) = &p[2] else { panic!() };
        assert!(
            last.same(&Histogram::parse("{{count:4 sum:5.6 buckets:[4]}}").unwrap()),
            "{last}"
        );
        let sum = Histogram::parse("{{buckets:[1 1] offset:0}}")
            .unwrap()
            .add(&Histogram::parse("{{buckets:[1] offset:-1}}").unwrap());
        assert_eq!((sum.offset, sum.buckets), (-1, vec![1.0, 1.0, 1.0]));
        assert!(points("{{nope:1}}").is_err());
        assert!(points("{{count:1").is_err());
    }
}
