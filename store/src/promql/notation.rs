//! Prometheus's series notation for test data, as its PromQL tests and promtool's rule unit
//! tests write it: a series description (`up{job="node"}`) and expanding values
//! (`1 2 _ stale 1+2x3 5-1x2 0x4 _x3`).
//!
//! Point `k` of a series is at `start + k * interval`; `_` is a missing point and `stale`
//! a staleness marker. `a+bxn` expands to the `n + 1` values `a, a+b, …, a+n·b`, and `axn`
//! to `n + 1` copies of `a`.

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
}
