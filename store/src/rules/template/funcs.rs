//! Template functions: Go's builtins (`printf`, `eq`, `len`, `index`, ...) and Prometheus's
//! (`query`, `first`, `label`, `value`, `humanize*`, `title`, `reReplaceAll`, `stripPort`, ...),
//! with Prometheus's semantics and output forms.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::exec::truth;
use super::fmt::{go_g, go_time, print, sprintf, type_name};
use super::{Context, Value};

const NAMES: &[&str] = &[
    "and",
    "or",
    "not",
    "len",
    "index",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "js",
    "urlquery",
    "slice",
    "call",
    "query",
    "first",
    "label",
    "value",
    "strvalue",
    "args",
    "reReplaceAll",
    "safeHtml",
    "match",
    "title",
    "toUpper",
    "toLower",
    "sortByLabel",
    "stripPort",
    "stripDomain",
    "humanize",
    "humanize1024",
    "humanizeDuration",
    "humanizePercentage",
    "humanizeTimestamp",
    "toTime",
    "toDuration",
    "pathPrefix",
    "externalURL",
    "parseDuration",
];

pub(super) fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

fn want(name: &str, args: &[Value], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn string(v: &Value) -> Result<String, String> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        other => Err(format!(
            "wrong type for value; expected string; got {}",
            type_name(other)
        )),
    }
}

/// Prometheus's `convertToFloat`: numbers and numeric strings.
fn float(v: &Value) -> Result<f64, String> {
    match v {
        Value::Float(f) => Ok(*f),
        Value::Int(n) => Ok(*n as f64),
        Value::Str(s) => parse_go_float(s),
        Value::Time(ms) => Ok(*ms as f64 / 1000.0),
        other => Err(format!("can't convert {} to float", type_name(other))),
    }
}

fn parse_go_float(s: &str) -> Result<f64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    match lower.trim_start_matches(['+', '-']) {
        "inf" | "infinity" => Ok(if t.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        }),
        "nan" => Ok(f64::NAN),
        _ => t
            .parse::<f64>()
            .map_err(|_| format!("strconv.ParseFloat: parsing {s:?}: invalid syntax")),
    }
}

fn sample(v: &Value) -> Result<&super::Sample, String> {
    match v {
        Value::Sample(s) => Ok(s),
        other => Err(format!(
            "wrong type for value; expected *template.sample; got {}",
            type_name(other)
        )),
    }
}

pub(super) fn call(name: &str, args: &[Value], ctx: &Context) -> Result<Value, String> {
    let s = |x: String| Ok(Value::Str(x));
    match name {
        "not" => {
            want(name, args, 1)?;
            Ok(Value::Bool(!truth(&args[0])))
        }
        "len" => {
            want(name, args, 1)?;
            Ok(Value::Int(match &args[0] {
                Value::Str(x) => x.len(),
                Value::Labels(m) => m.len(),
                Value::Map(m) => m.len(),
                Value::List(l) => l.len(),
                other => return Err(format!("len of type {}", type_name(other))),
            } as i64))
        }
        "index" => {
            let (first, keys) = args
                .split_first()
                .ok_or("wrong number of args for index: want at least 1 got 0")?;
            let mut v = first.clone();
            for k in keys {
                v = match (v, k) {
                    (Value::Labels(m), Value::Str(k)) => Value::Str(m.get(k).cloned().unwrap_or_default()),
                    (Value::Map(m), Value::Str(k)) => m.get(k).cloned().unwrap_or(Value::Nil),
                    (Value::List(l), Value::Int(i)) => l
                        .get(usize::try_from(*i).map_err(|_| format!("index out of range: {i}"))?)
                        .cloned()
                        .ok_or(format!("index out of range: {i}"))?,
                    (v, _) => return Err(format!("can't index item of type {}", type_name(&v))),
                };
            }
            Ok(v)
        }
        "print" => s(go_print(args, false)),
        "println" => s(go_print(args, true)),
        "printf" => {
            let (f, rest) = args
                .split_first()
                .ok_or("wrong number of args for printf: want at least 1 got 0")?;
            s(sprintf(&string(f)?, rest))
        }
        "eq" => {
            let (a, rest) = args.split_first().ok_or("missing argument for comparison")?;
            if rest.is_empty() {
                return Err("missing argument for comparison".into());
            }
            for b in rest {
                if compare(a, b, true)? == std::cmp::Ordering::Equal {
                    return Ok(Value::Bool(true));
                }
            }
            Ok(Value::Bool(false))
        }
        "ne" | "lt" | "le" | "gt" | "ge" => {
            want(name, args, 2)?;
            let o = compare(&args[0], &args[1], name == "ne")?;
            use std::cmp::Ordering::*;
            Ok(Value::Bool(match name {
                "ne" => o != Equal,
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            }))
        }
        "html" | "safeHtml" => s(html(&go_print(args, false))),
        "js" => s(go_print(args, false).escape_default().to_string()),
        "urlquery" => s(form_urlencoded::byte_serialize(go_print(args, false).as_bytes()).collect()),
        "query" => {
            want(name, args, 1)?;
            let rows = (ctx.query)(&string(&args[0])?)?;
            Ok(Value::List(
                rows.into_iter().map(|r| Value::Sample(Arc::new(r))).collect(),
            ))
        }
        "first" => {
            want(name, args, 1)?;
            match &args[0] {
                Value::List(l) => l
                    .first()
                    .cloned()
                    .ok_or("first() called on vector with no elements".into()),
                other => Err(format!(
                    "wrong type for value; expected template.queryResult; got {}",
                    type_name(other)
                )),
            }
        }
        "label" => {
            want(name, args, 2)?;
            let smp = sample(&args[1])?;
            s(smp.labels.get(&string(&args[0])?).cloned().unwrap_or_default())
        }
        "value" => {
            want(name, args, 1)?;
            Ok(Value::Float(sample(&args[0])?.value))
        }
        "strvalue" => {
            want(name, args, 1)?;
            s(sample(&args[0])?
                .labels
                .get("__value__")
                .cloned()
                .unwrap_or_default())
        }
        "sortByLabel" => {
            want(name, args, 2)?;
            let label = string(&args[0])?;
            let Value::List(mut l) = args[1].clone() else {
                return Err("sortByLabel needs a query result".into());
            };
            let key = |v: &Value| match v {
                Value::Sample(s) => s.labels.get(&label).cloned().unwrap_or_default(),
                _ => String::new(),
            };
            l.sort_by_key(key);
            Ok(Value::List(l))
        }
        "args" => Ok(Value::Map(
            args.iter()
                .enumerate()
                .map(|(i, v)| (format!("arg{i}"), v.clone()))
                .collect::<BTreeMap<_, _>>(),
        )),
        "reReplaceAll" => {
            want(name, args, 3)?;
            let re = regex::Regex::new(&string(&args[0])?).map_err(|e| e.to_string())?;
            s(re.replace_all(&string(&args[2])?, string(&args[1])?.as_str())
                .into_owned())
        }
        "match" => {
            want(name, args, 2)?;
            let re = regex::Regex::new(&string(&args[0])?).map_err(|e| e.to_string())?;
            Ok(Value::Bool(re.is_match(&string(&args[1])?)))
        }
        "title" => {
            want(name, args, 1)?;
            s(title(&string(&args[0])?))
        }
        "toUpper" => {
            want(name, args, 1)?;
            s(string(&args[0])?.to_uppercase())
        }
        "toLower" => {
            want(name, args, 1)?;
            s(string(&args[0])?.to_lowercase())
        }
        "stripPort" => {
            want(name, args, 1)?;
            s(strip_port(&string(&args[0])?))
        }
        "stripDomain" => {
            want(name, args, 1)?;
            s(strip_domain(&string(&args[0])?))
        }
        "humanize" | "humanize1024" | "humanizeDuration" | "humanizePercentage" | "humanizeTimestamp" => {
            want(name, args, 1)?;
            let v = float(&args[0])?;
            s(match name {
                "humanize" => humanize(v),
                "humanize1024" => humanize1024(v),
                "humanizeDuration" => humanize_duration(v),
                "humanizePercentage" => format!("{}%", go_g(v * 100.0, 4)),
                _ if v.is_nan() || v.is_infinite() => go_g(v, 4),
                _ => go_time((v * 1000.0).round() as i64),
            })
        }
        "toTime" => {
            want(name, args, 1)?;
            let v = float(&args[0])?;
            if v.is_nan() || v.is_infinite() {
                return Err(format!("cannot convert {} to time.Time", go_g(v, -1)));
            }
            Ok(Value::Time((v * 1000.0).round() as i64))
        }
        "toDuration" => {
            want(name, args, 1)?;
            s(humanize_duration(float(&args[0])?))
        }
        "parseDuration" => {
            want(name, args, 1)?;
            let d = crate::rules::file::parse_duration("duration", &string(&args[0])?)?;
            Ok(Value::Float(d.as_secs_f64()))
        }
        "externalURL" => s(ctx.external_url.to_string()),
        "pathPrefix" => s(url_path(ctx.external_url)),
        "slice" | "call" => Err(format!("{name} is not supported in alert templates")),
        other => Err(format!("function {other:?} not defined")),
    }
}

/// Go's `fmt.Sprint` (spaces between operands when neither is a string) and `Sprintln`.
fn go_print(args: &[Value], ln: bool) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = |v: &Value| matches!(v, Value::Str(_));
        if i > 0 && (ln || (!is_str(a) && !is_str(&args[i - 1]))) {
            out.push(' ');
        }
        out.push_str(&print(a));
    }
    if ln {
        out.push('\n');
    }
    out
}

/// Go's template comparison: basic kinds only, and both of the same kind (an int and a
/// float do not compare, as in Go).
fn compare(a: &Value, b: &Value, eq_only: bool) -> Result<std::cmp::Ordering, String> {
    use Value::*;
    let incompatible = || "incompatible types for comparison".to_string();
    match (a, b) {
        (Int(x), Int(y)) => Ok(x.cmp(y)),
        (Float(x), Float(y)) => x.partial_cmp(y).ok_or_else(|| "NaN does not compare".into()),
        (Str(x), Str(y)) => Ok(x.cmp(y)),
        (Bool(x), Bool(y)) if eq_only => Ok(x.cmp(y)),
        (Bool(_), Bool(_)) => Err("invalid type for comparison".into()),
        (Nil, Nil) if eq_only => Ok(std::cmp::Ordering::Equal),
        (Nil, _) | (_, Nil) if eq_only => Ok(std::cmp::Ordering::Less),
        (Int(_) | Float(_) | Str(_) | Bool(_), Int(_) | Float(_) | Str(_) | Bool(_)) => Err(incompatible()),
        _ => Err("invalid type for comparison".into()),
    }
}

fn html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

/// Go's deprecated `strings.Title`: the first letter of every word upper-cased.
fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut prev: Option<char> = None;
    for c in s.chars() {
        let boundary = match prev {
            None => true,
            Some(p) => !(p.is_alphanumeric() || p == '_' || p == '\''),
        };
        if boundary {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev = Some(c);
    }
    out
}

/// Prometheus's `stripPort`: the host of `host:port` (`[v6]:port` too), else the input.
fn strip_port(s: &str) -> String {
    if let Some(rest) = s.strip_prefix('[') {
        if let Some((host, port)) = rest.split_once(']') {
            if port.starts_with(':') {
                return host.to_string();
            }
        }
        return s.to_string();
    }
    match s.rsplit_once(':') {
        Some((host, _)) if !host.contains(':') => host.to_string(),
        _ => s.to_string(),
    }
}

/// Prometheus's `stripDomain`: the first label of a host name, keeping any port; IPs as they are.
fn strip_domain(s: &str) -> String {
    let (host, port) = match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') && !h.starts_with('[') => (h, Some(p)),
        _ => (s, None),
    };
    if host.parse::<std::net::IpAddr>().is_ok() || s.starts_with('[') {
        return s.to_string();
    }
    let first = host.split('.').next().unwrap_or(host);
    match port {
        Some(p) => format!("{first}:{p}"),
        None => first.to_string(),
    }
}

fn url_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    match after_scheme.find('/') {
        Some(i) => after_scheme[i..].to_string(),
        None => String::new(),
    }
}

fn humanize(mut v: f64) -> String {
    if v == 0.0 || v.is_nan() || v.is_infinite() {
        return go_g(v, 4);
    }
    let mut prefix = "";
    if v.abs() >= 1.0 {
        for p in ["k", "M", "G", "T", "P", "E", "Z", "Y"] {
            if v.abs() < 1000.0 {
                break;
            }
            prefix = p;
            v /= 1000.0;
        }
    } else {
        for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
            if v.abs() >= 1.0 {
                break;
            }
            prefix = p;
            v *= 1000.0;
        }
    }
    format!("{}{prefix}", go_g(v, 4))
}

fn humanize1024(mut v: f64) -> String {
    if v.abs() <= 1.0 || v.is_nan() || v.is_infinite() {
        return go_g(v, 4);
    }
    let mut prefix = "";
    for p in ["ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"] {
        if v.abs() < 1024.0 {
            break;
        }
        prefix = p;
        v /= 1024.0;
    }
    format!("{}{prefix}", go_g(v, 4))
}

fn humanize_duration(mut v: f64) -> String {
    if v.is_nan() || v.is_infinite() {
        return go_g(v, 4);
    }
    if v == 0.0 {
        return format!("{}s", go_g(v, 4));
    }
    if v.abs() >= 1.0 {
        let sign = if v < 0.0 { "-" } else { "" };
        v = v.abs();
        let d = v as i64;
        let (secs, mins, hours, days) = (d % 60, (d / 60) % 60, (d / 3600) % 24, d / 86_400);
        return if days != 0 {
            format!("{sign}{days}d {hours}h {mins}m {secs}s")
        } else if hours != 0 {
            format!("{sign}{hours}h {mins}m {secs}s")
        } else if mins != 0 {
            format!("{sign}{mins}m {secs}s")
        } else {
            format!("{sign}{}s", go_g(v, 4))
        };
    }
    let mut prefix = "";
    for p in ["m", "u", "n", "p", "f", "a", "z", "y"] {
        if v.abs() >= 1.0 {
            break;
        }
        prefix = p;
        v *= 1000.0;
    }
    format!("{}{prefix}s", go_g(v, 4))
}
