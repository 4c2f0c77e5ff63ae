//! The per-line part of LogQL: line filters, parsers (`json`, `logfmt`, `regexp`), label
//! filters, `line_format`, `label_format`, `drop`, `keep`, `decolorize` and `unwrap`.
//!
//! A [`Pipeline`] is compiled once per query (regexes and templates checked up front, so a
//! bad query fails before any data is read) and then run on each line.

use std::collections::BTreeMap;

use logql::{
    FilterOp, FilterValue, LabelExtraction, LabelFilterExpr, LabelFormatValue, LineFilterOp, MatchOp,
    PipelineStage,
};
use regex::Regex;

use super::QueryError;
use crate::model::{sanitize_label_name, Labels};

/// A line after the pipeline: its labels, text and (with `unwrap`) value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Processed {
    pub(crate) labels: Labels,
    pub(crate) line: String,
    pub(crate) value: Option<f64>,
}

#[derive(Debug)]
enum Stage {
    Contains(String),
    NotContains(String),
    Matches(Regex),
    NotMatches(Regex),
    Json(Vec<(String, Vec<String>)>),
    Logfmt(Vec<(String, String)>),
    Regexp(Regex),
    Filter(Filter),
    LineFormat(Template),
    LabelFormat(Vec<(String, LabelSource)>),
    Drop(Vec<(String, Option<Matcher>)>),
    Keep(Vec<(String, Option<Matcher>)>),
    Decolorize,
    Unwrap {
        label: String,
        conversion: Option<String>,
    },
}

#[derive(Debug)]
enum LabelSource {
    Rename(String),
    Template(Template),
}

#[derive(Debug)]
enum Matcher {
    Eq(String),
    Neq(String),
    Re(Regex),
    Nre(Regex),
}

impl Matcher {
    fn compile(op: MatchOp, value: &str) -> Result<Matcher, QueryError> {
        Ok(match op {
            MatchOp::Eq => Matcher::Eq(value.to_string()),
            MatchOp::Neq => Matcher::Neq(value.to_string()),
            MatchOp::Re => Matcher::Re(anchored(value)?),
            MatchOp::Nre => Matcher::Nre(anchored(value)?),
            _ => return Err(QueryError::Unsupported(format!("matcher {op}"))),
        })
    }

    fn matches(&self, v: &str) -> bool {
        match self {
            Matcher::Eq(x) => v == x,
            Matcher::Neq(x) => v != x,
            Matcher::Re(r) => r.is_match(v),
            Matcher::Nre(r) => !r.is_match(v),
        }
    }
}

/// A label regex matches the whole value, as in Prometheus and Loki.
pub(crate) fn anchored(re: &str) -> Result<Regex, QueryError> {
    Regex::new(&format!("^(?:{re})$")).map_err(|e| QueryError::BadRegex(re.to_string(), e.to_string()))
}

fn unanchored(re: &str) -> Result<Regex, QueryError> {
    Regex::new(re).map_err(|e| QueryError::BadRegex(re.to_string(), e.to_string()))
}

#[derive(Debug)]
enum Filter {
    Str(String, Matcher),
    Num(String, FilterOp, f64),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

impl Filter {
    fn compile(e: &LabelFilterExpr) -> Result<Filter, QueryError> {
        Ok(match e {
            LabelFilterExpr::Pred(p) => {
                let num = |v: f64| Filter::Num(p.name.clone(), p.op, v);
                match (&p.value, p.op) {
                    (FilterValue::String(s), FilterOp::Eq) => {
                        Filter::Str(p.name.clone(), Matcher::Eq(s.clone()))
                    }
                    (FilterValue::String(s), FilterOp::Neq) => {
                        Filter::Str(p.name.clone(), Matcher::Neq(s.clone()))
                    }
                    (FilterValue::String(s), FilterOp::Re) => {
                        Filter::Str(p.name.clone(), Matcher::Re(anchored(s)?))
                    }
                    (FilterValue::String(s), FilterOp::Nre) => {
                        Filter::Str(p.name.clone(), Matcher::Nre(anchored(s)?))
                    }
                    (FilterValue::Number(n), _) => num(*n),
                    (FilterValue::Duration(d), _) => num(d.as_secs_f64()),
                    (FilterValue::Bytes(b), _) => num(*b as f64),
                    (v, op) => {
                        return Err(QueryError::Unsupported(format!(
                            "label filter {} {op:?} {v:?}",
                            p.name
                        )))
                    }
                }
            }
            LabelFilterExpr::And(a, b) => {
                Filter::And(Box::new(Filter::compile(a)?), Box::new(Filter::compile(b)?))
            }
            LabelFilterExpr::Or(a, b) => {
                Filter::Or(Box::new(Filter::compile(a)?), Box::new(Filter::compile(b)?))
            }
            other => return Err(QueryError::Unsupported(format!("label filter {other:?}"))),
        })
    }

    fn matches(&self, labels: &Labels) -> bool {
        match self {
            Filter::Str(name, m) => m.matches(labels.get(name).map_or("", String::as_str)),
            Filter::Num(name, op, want) => {
                let Some(got) = labels.get(name).and_then(|v| parse_number(v)) else {
                    return false;
                };
                match op {
                    FilterOp::Eq | FilterOp::CmpEq => got == *want,
                    FilterOp::Neq => got != *want,
                    FilterOp::Gt => got > *want,
                    FilterOp::Gte => got >= *want,
                    FilterOp::Lt => got < *want,
                    FilterOp::Lte => got <= *want,
                    _ => false,
                }
            }
            Filter::And(a, b) => a.matches(labels) && b.matches(labels),
            Filter::Or(a, b) => a.matches(labels) || b.matches(labels),
        }
    }
}

/// A number, a Go duration ("1.5s", "250ms") in seconds, or a byte size ("10KB") in bytes.
fn parse_number(v: &str) -> Option<f64> {
    let v = v.trim();
    if let Ok(n) = v.parse::<f64>() {
        return Some(n);
    }
    if let Ok(d) = humantime::parse_duration(v) {
        return Some(d.as_secs_f64());
    }
    let split = v.find(|c: char| c.is_ascii_alphabetic())?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.trim().parse().ok()?;
    let mult = match unit.to_ascii_uppercase().as_str() {
        "B" => 1.0,
        "KB" | "K" => 1e3,
        "MB" | "M" => 1e6,
        "GB" | "G" => 1e9,
        "KIB" | "KI" => 1024.0,
        "MIB" | "MI" => 1024.0 * 1024.0,
        "GIB" | "GI" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(n * mult)
}

/// A Go-template subset: literal text and `{{.name}}` / `{{ .name }}` / `{{__line__}}`.
#[derive(Debug)]
struct Template(Vec<Piece>);

#[derive(Debug)]
enum Piece {
    Text(String),
    Label(String),
    Line,
}

impl Template {
    fn compile(src: &str) -> Result<Template, QueryError> {
        let mut pieces = Vec::new();
        let mut rest = src;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| QueryError::BadTemplate(src.to_string(), "unclosed {{".into()))?;
            let action = after[..close]
                .trim()
                .trim_start_matches('-')
                .trim_end_matches('-')
                .trim();
            if action == "__line__" {
                pieces.push(Piece::Line);
            } else if let Some(name) = action.strip_prefix('.') {
                if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(QueryError::BadTemplate(
                        src.to_string(),
                        format!("unsupported action {action:?}"),
                    ));
                }
                pieces.push(Piece::Label(name.to_string()));
            } else {
                return Err(QueryError::BadTemplate(
                    src.to_string(),
                    format!("unsupported action {action:?}: only {{{{.label}}}} and {{{{__line__}}}} are supported"),
                ));
            }
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template(pieces))
    }

    fn render(&self, labels: &Labels, line: &str) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Label(n) => out.push_str(labels.get(n).map_or("", String::as_str)),
                Piece::Line => out.push_str(line),
            }
        }
        out
    }
}

/// A compiled pipeline.
#[derive(Debug, Default)]
pub(crate) struct Pipeline {
    stages: Vec<Stage>,
}

impl Pipeline {
    pub(crate) fn compile(stages: &[PipelineStage]) -> Result<Pipeline, QueryError> {
        let mut out = Vec::new();
        for s in stages {
            out.push(match s {
                PipelineStage::LineFilter(f) => {
                    if f.is_ip {
                        return Err(QueryError::Unsupported("ip() line filters".into()));
                    }
                    match f.op {
                        LineFilterOp::Contains => Stage::Contains(f.value.clone()),
                        LineFilterOp::NotContains => Stage::NotContains(f.value.clone()),
                        LineFilterOp::Regex => Stage::Matches(unanchored(&f.value)?),
                        LineFilterOp::NotRegex => Stage::NotMatches(unanchored(&f.value)?),
                        op => return Err(QueryError::Unsupported(format!("line filter {op:?}"))),
                    }
                }
                PipelineStage::Json(ex) => Stage::Json(ex.iter().map(json_path).collect()),
                PipelineStage::Logfmt(st) => Stage::Logfmt(
                    st.extractions
                        .iter()
                        .map(|e| (e.name.clone(), e.expr.clone().unwrap_or_else(|| e.name.clone())))
                        .collect(),
                ),
                PipelineStage::Regexp(re) => Stage::Regexp(unanchored(re)?),
                PipelineStage::LabelFilter(e) => Stage::Filter(Filter::compile(e)?),
                PipelineStage::LineFormat(t) => Stage::LineFormat(Template::compile(t)?),
                PipelineStage::LabelFormat(fs) => Stage::LabelFormat(
                    fs.iter()
                        .map(|f| {
                            Ok((
                                f.dst.clone(),
                                match &f.value {
                                    LabelFormatValue::Rename(src) => LabelSource::Rename(src.clone()),
                                    LabelFormatValue::Template(t) => {
                                        LabelSource::Template(Template::compile(t)?)
                                    }
                                    other => {
                                        return Err(QueryError::Unsupported(format!(
                                            "label_format {other:?}"
                                        )))
                                    }
                                },
                            ))
                        })
                        .collect::<Result<_, QueryError>>()?,
                ),
                PipelineStage::Drop(ps) | PipelineStage::Keep(ps) => {
                    let preds = ps
                        .iter()
                        .map(|p| {
                            Ok((
                                p.name.clone(),
                                p.matcher
                                    .as_ref()
                                    .map(|(op, v)| Matcher::compile(*op, v))
                                    .transpose()?,
                            ))
                        })
                        .collect::<Result<_, QueryError>>()?;
                    if matches!(s, PipelineStage::Drop(_)) {
                        Stage::Drop(preds)
                    } else {
                        Stage::Keep(preds)
                    }
                }
                PipelineStage::Decolorize => Stage::Decolorize,
                PipelineStage::Unwrap(u) => Stage::Unwrap {
                    label: u.label.clone(),
                    conversion: u.conversion.clone(),
                },
                other => return Err(QueryError::Unsupported(format!("pipeline stage {other:?}"))),
            });
        }
        Ok(Pipeline { stages: out })
    }

    /// Substrings every matching line must contain (for index hints).
    pub(crate) fn required_substrings(&self) -> Vec<&str> {
        let mut out = Vec::new();
        for s in &self.stages {
            match s {
                Stage::Contains(n) => out.push(n.as_str()),
                // Filters after a line_format see a different line.
                Stage::LineFormat(_) => break,
                _ => {}
            }
        }
        out
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.stages.is_empty()
    }

    /// Whether the line passes the line filters the pipeline starts with: a check on the line
    /// alone, before its labels and metadata are read.
    pub(crate) fn prefilter(&self, line: &str) -> bool {
        self.stages
            .iter()
            .take_while(|s| s.is_line_filter())
            .all(|s| keeps(s, line) != Some(false))
    }

    /// Runs the pipeline on one line; `None` when the line is filtered out.
    pub(crate) fn run(
        &self,
        labels: &Labels,
        metadata: &[(String, String)],
        line: &str,
    ) -> Option<Processed> {
        // Line filters before any other stage run on the line as read: most lines fail them,
        // and then nothing needs copying.
        if !self.prefilter(line) {
            return None;
        }
        let leading = self.stages.iter().take_while(|s| s.is_line_filter()).count();
        let mut labels = labels.clone();
        for (k, v) in metadata {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        let mut line = line.to_string();
        let mut value = None;
        for s in &self.stages[leading..] {
            match s {
                Stage::Contains(_) | Stage::NotContains(_) | Stage::Matches(_) | Stage::NotMatches(_) => {
                    if keeps(s, &line) == Some(false) {
                        return None;
                    }
                }
                Stage::Json(paths) => json_stage(&line, paths, &mut labels),
                Stage::Logfmt(ex) => logfmt_stage(&line, ex, &mut labels),
                Stage::Regexp(r) => {
                    if let Some(caps) = r.captures(&line) {
                        for name in r.capture_names().flatten() {
                            if let Some(m) = caps.name(name) {
                                labels.insert(name.to_string(), m.as_str().to_string());
                            }
                        }
                    }
                }
                Stage::Filter(f) => {
                    if !f.matches(&labels) {
                        return None;
                    }
                }
                Stage::LineFormat(t) => line = t.render(&labels, &line),
                Stage::LabelFormat(fs) => {
                    for (dst, src) in fs {
                        match src {
                            LabelSource::Rename(from) => {
                                if let Some(v) = labels.remove(from) {
                                    labels.insert(dst.clone(), v);
                                }
                            }
                            LabelSource::Template(t) => {
                                let v = t.render(&labels, &line);
                                labels.insert(dst.clone(), v);
                            }
                        }
                    }
                }
                Stage::Drop(preds) => labels.retain(|k, v| !preds.iter().any(|(n, m)| pred(n, m, k, v))),
                Stage::Keep(preds) => labels.retain(|k, v| preds.iter().any(|(n, m)| pred(n, m, k, v))),
                Stage::Decolorize => line = strip_ansi(&line),
                Stage::Unwrap { label, conversion } => {
                    let raw = labels.get(label)?;
                    let v = match conversion.as_deref() {
                        Some("duration") | Some("duration_seconds") => {
                            humantime::parse_duration(raw).ok()?.as_secs_f64()
                        }
                        Some("bytes") => parse_number(raw)?,
                        _ => raw.trim().parse::<f64>().ok()?,
                    };
                    labels.remove(label);
                    value = Some(v);
                }
            }
        }
        Some(Processed { labels, line, value })
    }
}

fn pred(name: &str, m: &Option<Matcher>, k: &str, v: &str) -> bool {
    name == k && m.as_ref().is_none_or(|m| m.matches(v))
}

fn json_path(e: &LabelExtraction) -> (String, Vec<String>) {
    let expr = e.expr.clone().unwrap_or_else(|| e.name.clone());
    let path = expr
        .split(['.', '[', ']'])
        .map(|p| p.trim_matches('"').to_string())
        .filter(|p| !p.is_empty())
        .collect();
    (e.name.clone(), path)
}

impl Stage {
    fn is_line_filter(&self) -> bool {
        matches!(
            self,
            Stage::Contains(_) | Stage::NotContains(_) | Stage::Matches(_) | Stage::NotMatches(_)
        )
    }
}

/// Whether a line filter stage keeps `line`; `None` for stages that are not line filters.
fn keeps(stage: &Stage, line: &str) -> Option<bool> {
    Some(match stage {
        Stage::Contains(n) => line.contains(n.as_str()),
        Stage::NotContains(n) => !line.contains(n.as_str()),
        Stage::Matches(r) => r.is_match(line),
        Stage::NotMatches(r) => !r.is_match(line),
        _ => return None,
    })
}

fn json_stage(line: &str, paths: &[(String, Vec<String>)], labels: &mut Labels) {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
        labels.insert("__error__".into(), "JSONParserErr".into());
        return;
    };
    if paths.is_empty() {
        flatten_json("", &value, labels);
        return;
    }
    for (name, path) in paths {
        let mut v = &value;
        for p in path {
            v = match v {
                serde_json::Value::Object(m) => m.get(p).unwrap_or(&serde_json::Value::Null),
                serde_json::Value::Array(a) => p
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| a.get(i))
                    .unwrap_or(&serde_json::Value::Null),
                _ => &serde_json::Value::Null,
            };
        }
        if let Some(s) = scalar(v) {
            labels.insert(name.clone(), s);
        }
    }
}

fn scalar(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn flatten_json(prefix: &str, v: &serde_json::Value, labels: &mut BTreeMap<String, String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                let key = if prefix.is_empty() {
                    sanitize_label_name(k)
                } else {
                    format!("{prefix}_{}", sanitize_label_name(k))
                };
                flatten_json(&key, v, labels);
            }
        }
        serde_json::Value::Array(_) => {
            if !prefix.is_empty() {
                labels.insert(prefix.to_string(), v.to_string());
            }
        }
        other => {
            if let (false, Some(s)) = (prefix.is_empty(), scalar(other)) {
                labels.insert(prefix.to_string(), s);
            }
        }
    }
}

/// `key=value key2="quoted value"` pairs.
pub(crate) fn logfmt_pairs(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let ks = i;
        while i < b.len() && b[i] != b'=' && b[i] != b' ' {
            i += 1;
        }
        let key = &line[ks..i];
        if i >= b.len() || b[i] != b'=' {
            if !key.is_empty() {
                out.push((key.to_string(), String::new()));
            }
            continue;
        }
        i += 1;
        let value = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut v = String::new();
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                let ch = line[i..].chars().next().unwrap_or(' ');
                v.push(ch);
                i += ch.len_utf8();
            }
            i += 1;
            v
        } else {
            let vs = i;
            while i < b.len() && b[i] != b' ' {
                i += 1;
            }
            line[vs..i].to_string()
        };
        if !key.is_empty() {
            out.push((key.to_string(), value));
        }
    }
    out
}

fn logfmt_stage(line: &str, extractions: &[(String, String)], labels: &mut Labels) {
    let pairs = logfmt_pairs(line);
    if extractions.is_empty() {
        for (k, v) in pairs {
            labels.insert(sanitize_label_name(&k), v);
        }
    } else {
        for (name, key) in extractions {
            if let Some((_, v)) = pairs.iter().find(|(k, _)| k == key) {
                labels.insert(name.clone(), v.clone());
            }
        }
    }
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pipeline(q: &str) -> Pipeline {
        match logql::parse(q).unwrap() {
            logql::Expr::Log(l) => Pipeline::compile(&l.pipeline).unwrap(),
            other => panic!("not a log query: {other:?}"),
        }
    }

    fn labels() -> Labels {
        [("job".to_string(), "api".to_string())].into()
    }

    #[test]
    fn line_filters_are_substring_and_regex() {
        let p = pipeline(r#"{job="api"} |= "error" != "timeout" |~ "code=5\\d\\d""#);
        assert!(p.run(&labels(), &[], "error code=503").is_some());
        assert!(p.run(&labels(), &[], "error timeout code=503").is_none());
        assert!(p.run(&labels(), &[], "error code=404").is_none());
        assert_eq!(p.required_substrings(), ["error"]);
    }

    #[test]
    fn json_then_numeric_filter_then_line_format() {
        let p = pipeline(
            r#"{job="api"} | json | status >= 500 | line_format "{{.method}} {{ .path }} -> {{.status}}""#,
        );
        let out = p
            .run(
                &labels(),
                &[],
                r#"{"method":"GET","path":"/x","status":503,"req":{"id":"7"}}"#,
            )
            .unwrap();
        assert_eq!(out.line, "GET /x -> 503");
        assert_eq!(out.labels["req_id"], "7");
        assert!(p.run(&labels(), &[], r#"{"status":200}"#).is_none());
    }

    #[test]
    fn logfmt_and_string_label_filters() {
        let p = pipeline(r#"{job="api"} | logfmt | level=~"warn|error" | msg!="ignored""#);
        assert!(p
            .run(&labels(), &[], r#"level=warn msg="disk almost full""#)
            .is_some());
        assert!(p.run(&labels(), &[], r#"level=info msg="fine""#).is_none());
        assert!(p.run(&labels(), &[], r#"level=error msg=ignored"#).is_none());
        assert_eq!(
            logfmt_pairs(r#"a=1 b="two words" c= d"#),
            [
                ("a".into(), "1".into()),
                ("b".into(), "two words".into()),
                ("c".into(), "".into()),
                ("d".into(), "".into())
            ]
        );
    }

    #[test]
    fn durations_and_unwrap() {
        let p = pipeline(r#"{job="api"} | logfmt | took > 1s | unwrap took_ms"#);
        let out = p.run(&labels(), &[], "took=1.5s took_ms=1500").unwrap();
        assert_eq!(out.value, Some(1500.0));
        assert!(!out.labels.contains_key("took_ms"));
        assert!(p.run(&labels(), &[], "took=500ms took_ms=500").is_none());
    }

    #[test]
    fn metadata_is_filterable_like_labels() {
        let p = pipeline(r#"{job="api"} | trace_id="abc""#);
        assert!(p
            .run(&labels(), &[("trace_id".into(), "abc".into())], "x")
            .is_some());
        assert!(p.run(&labels(), &[], "x").is_none());
    }

    #[test]
    fn bad_regexes_and_templates_fail_at_compile_time() {
        let l = match logql::parse(r#"{a="b"} |~ "(""#).unwrap() {
            logql::Expr::Log(l) => l,
            _ => unreachable!(),
        };
        assert!(matches!(
            Pipeline::compile(&l.pipeline),
            Err(QueryError::BadRegex(..))
        ));
        assert!(Template::compile("{{ .a | ToUpper }}").is_err());
    }
}
