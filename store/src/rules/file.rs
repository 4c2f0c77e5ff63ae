//! Rule files in Prometheus's format (`groups:` of `record`/`alert` rules), read unchanged
//! for PromQL rules and for Loki ruler files (the same shape with LogQL in `expr`).
//!
//! Reading is strict like Prometheus's (unknown keys are errors) and checks what
//! Prometheus's `rulefmt` checks: one of `record`/`alert`, a parseable `expr`, valid names,
//! no `for`/`annotations` on recording rules, valid templates, unique group names. Every
//! error says where: `file:line:col: group "g", rule 2, "Name": message`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use serde_saphyr::Spanned;

use super::template;
use crate::tsdb::labels::{is_valid_label_name, is_valid_metric_name};

/// Which query language a file's `expr`s are in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lang {
    PromQL,
    LogQL,
}

/// A rule's parsed query.
#[derive(Clone, Debug)]
pub(crate) enum Query {
    Prom(Arc<promql_parser::parser::Expr>),
    Log(Arc<logql::MetricQuery>),
}

/// One group as loaded: its rules run in order, at one timestamp, every `interval`.
#[derive(Clone, Debug)]
pub(crate) struct Group {
    pub(crate) name: String,
    pub(crate) file: String,
    pub(crate) lang: Lang,
    /// `None`: the global `evaluation_interval`.
    pub(crate) interval: Option<Duration>,
    pub(crate) query_offset: Duration,
    /// Most series a rule may produce (alerts for an alerting rule); 0 is no limit.
    pub(crate) limit: usize,
    pub(crate) rules: Vec<Arc<Rule>>,
}

#[derive(Clone, Debug)]
pub(crate) struct Rule {
    pub(crate) kind: Kind,
    /// The query as written in the file.
    pub(crate) expr: String,
    pub(crate) query: Query,
    /// `for`: how long an alert stays pending before it fires.
    pub(crate) hold: Duration,
    pub(crate) keep_firing_for: Duration,
    /// The rule's labels (group labels first, the rule's own over them), sorted by name.
    pub(crate) labels: Vec<(String, String)>,
    pub(crate) annotations: Vec<(String, String)>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Record(String),
    Alert(String),
}

impl Rule {
    pub(crate) fn name(&self) -> &str {
        match &self.kind {
            Kind::Record(n) | Kind::Alert(n) => n,
        }
    }

    /// The query as the rules API shows it: PromQL printed from its tree, as Prometheus
    /// prints it; LogQL as written.
    pub(crate) fn query_text(&self) -> String {
        match &self.query {
            Query::Prom(e) => e.to_string(),
            Query::Log(_) => self.expr.trim().to_string(),
        }
    }
}

/// A problem in a rule file, with its position (1-based; 0 when unknown).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    pub file: String,
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file, self.message),
            _ => write!(f, "{}:{}:{}: {}", self.file, self.line, self.col, self.message),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    groups: Vec<Spanned<RawGroup>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default)]
    name: String,
    #[serde(default, deserialize_with = "scalar")]
    interval: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    query_offset: Option<String>,
    #[serde(default)]
    limit: usize,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    rules: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    record: Option<String>,
    #[serde(default)]
    alert: Option<String>,
    #[serde(default)]
    expr: Option<Spanned<ExprText>>,
    #[serde(default, rename = "for", deserialize_with = "scalar")]
    hold: Option<String>,
    #[serde(default, deserialize_with = "scalar")]
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// An `expr`, which YAML may write as a number (`expr: 1`).
struct ExprText(String);

impl<'de> Deserialize<'de> for ExprText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(ExprText(scalar(d)?.unwrap_or_default()))
    }
}

/// A scalar read as its text, as Go's YAML reads `for: 0` or `values: 0x10` into a string.
pub(crate) fn scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string or a number")
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    // Asked for a string, YAML hands over the scalar's text as written (`0x10`, `1e3`).
    d.deserialize_string(V)
}

/// A Prometheus duration (`1h30m`, `5m`, `0m`, `0`): units `y w d h m s ms`, largest
/// first, each at most once; the message names the field.
pub(crate) fn parse_duration(field: &str, s: &str) -> Result<Duration, String> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    let bad = || format!("{field}: not a valid duration string: {s:?}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut rest = s;
    let mut next_unit = 0;
    let mut ms: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let after = &rest[digits..];
        let unit_len = after.find(|c: char| c.is_ascii_digit()).unwrap_or(after.len());
        let unit = &after[..unit_len];
        let i = UNITS[next_unit..]
            .iter()
            .position(|(u, _)| *u == unit)
            .ok_or_else(bad)?
            + next_unit;
        ms = n
            .checked_mul(UNITS[i].1)
            .and_then(|v| v.checked_add(ms))
            .ok_or_else(bad)?;
        next_unit = i + 1;
        rest = &after[unit_len..];
    }
    if s.is_empty() {
        return Err(bad());
    }
    Ok(Duration::from_millis(ms))
}

/// Checks rule files as the store would load them (`obs rules check`): every problem
/// found, with its position; none when all load.
pub fn check_files(paths: &[std::path::PathBuf], lang: Lang) -> Vec<FileError> {
    paths
        .iter()
        .filter_map(|p| load_file(p, lang).err())
        .flatten()
        .collect()
}

/// Reads one rule file.
pub(crate) fn load_file(path: &Path, lang: Lang) -> Result<Vec<Group>, Vec<FileError>> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![FileError {
            file: file.clone(),
            line: 0,
            col: 0,
            message: format!("cannot read the rule file: {e}"),
        }]
    })?;
    parse(&file, &text, lang)
}

/// Parses the text of a rule file named `file`.
pub(crate) fn parse(file: &str, text: &str, lang: Lang) -> Result<Vec<Group>, Vec<FileError>> {
    let err = |line: u32, col: u32, message: String| FileError {
        file: file.to_string(),
        line,
        col,
        message,
    };
    let raw: RawFile = match serde_saphyr::from_str(text) {
        Ok(Some(raw)) => raw,
        Ok(None) => return Ok(Vec::new()),
        Err(e) => {
            let (line, col) = e
                .location()
                .map(|l| (l.line() as u32, l.column() as u32))
                .unwrap_or((0, 0));
            let message = e.without_snippet().to_string();
            return Err(vec![err(line, col, first_line(&message))]);
        }
    };
    let mut errors = Vec::new();
    let mut groups = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for g in raw.groups {
        let (gl, gc) = (g.referenced.line() as u32, g.referenced.column() as u32);
        let g = g.value;
        if g.name.is_empty() {
            errors.push(err(gl, gc, "Groupname must not be empty".into()));
            continue;
        }
        if !seen.insert(g.name.clone()) {
            errors.push(err(
                gl,
                gc,
                format!("groupname: {:?} is repeated in the same file", g.name),
            ));
            continue;
        }
        let mut durations = |field: &str, v: &Option<String>| match v {
            None => None,
            Some(s) => match parse_duration(field, s) {
                Ok(d) => Some(d),
                Err(e) => {
                    errors.push(err(gl, gc, format!("group {:?}: {e}", g.name)));
                    None
                }
            },
        };
        let interval = durations("interval", &g.interval).filter(|d| !d.is_zero());
        let query_offset = durations("query_offset", &g.query_offset).unwrap_or_default();
        let mut rules = Vec::new();
        for (i, r) in g.rules.into_iter().enumerate() {
            let (rl, rc) = (r.referenced.line() as u32, r.referenced.column() as u32);
            let name = r
                .value
                .record
                .clone()
                .or(r.value.alert.clone())
                .unwrap_or_default();
            let ctx = format!("group {:?}, rule {}, {:?}", g.name, i + 1, name);
            match rule(r.value, &g.labels, lang) {
                Ok(rule) => rules.push(Arc::new(rule)),
                Err((line, col, m)) => {
                    let (line, col) = if line == 0 { (rl, rc) } else { (line, col) };
                    errors.push(err(line, col, format!("{ctx}: {m}")));
                }
            }
        }
        groups.push(Group {
            name: g.name,
            file: file.to_string(),
            lang,
            interval,
            query_offset,
            limit: g.limit,
            rules,
        });
    }
    if errors.is_empty() {
        Ok(groups)
    } else {
        Err(errors)
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or(s).trim().to_string()
}

/// Checks one rule; an error carries the position of the part at fault (0: the rule's).
fn rule(r: RawRule, group_labels: &BTreeMap<String, String>, lang: Lang) -> Result<Rule, (u32, u32, String)> {
    let at_rule = |m: String| (0, 0, m);
    let kind = match (r.record, r.alert) {
        (Some(_), Some(_)) => return Err(at_rule("only one of 'record' and 'alert' must be set".into())),
        (None, None) => return Err(at_rule("one of 'record' or 'alert' must be set".into())),
        (Some(n), None) => {
            if !is_valid_metric_name(&n) {
                return Err(at_rule(format!("invalid recording rule name: {n}")));
            }
            Kind::Record(n)
        }
        (None, Some(n)) => {
            if n.is_empty() {
                return Err(at_rule("one of 'record' or 'alert' must be set".into()));
            }
            Kind::Alert(n)
        }
    };
    let Some(expr) = r.expr.filter(|e| !e.value.0.trim().is_empty()) else {
        return Err(at_rule("field 'expr' must be set in rule".into()));
    };
    let (el, ec) = (expr.referenced.line() as u32, expr.referenced.column() as u32);
    let text = expr.value.0;
    let query = parse_query(&text, lang).map_err(|e| (el, ec, format!("could not parse expression: {e}")))?;
    let hold = match &r.hold {
        Some(s) => parse_duration("for", s).map_err(at_rule)?,
        None => Duration::ZERO,
    };
    let keep_firing_for = match &r.keep_firing_for {
        Some(s) => parse_duration("keep_firing_for", s).map_err(at_rule)?,
        None => Duration::ZERO,
    };
    if let Kind::Record(_) = kind {
        if !r.annotations.is_empty() {
            return Err(at_rule("invalid field 'annotations' in recording rule".into()));
        }
        if r.hold.is_some() {
            return Err(at_rule("invalid field 'for' in recording rule".into()));
        }
        if r.keep_firing_for.is_some() {
            return Err(at_rule(
                "invalid field 'keep_firing_for' in recording rule".into(),
            ));
        }
    }
    let mut labels = group_labels.clone();
    labels.extend(r.labels);
    for (k, v) in &labels {
        if !is_valid_label_name(k) || k == "__name__" {
            return Err(at_rule(format!("invalid label name: {k}")));
        }
        if let Kind::Alert(_) = kind {
            template::check(v)
                .map_err(|e| at_rule(format!("msg=template parse error in label {k:?}: {e}")))?;
        }
    }
    for (k, v) in &r.annotations {
        if !is_valid_label_name(k) {
            return Err(at_rule(format!("invalid annotation name: {k}")));
        }
        template::check(v)
            .map_err(|e| at_rule(format!("msg=template parse error in annotation {k:?}: {e}")))?;
    }
    Ok(Rule {
        kind,
        expr: text,
        query,
        hold,
        keep_firing_for,
        labels: labels.into_iter().collect(),
        annotations: r.annotations.into_iter().collect(),
    })
}

/// Parses a rule's `expr` in its file's language.
pub(crate) fn parse_query(text: &str, lang: Lang) -> Result<Query, String> {
    match lang {
        Lang::PromQL => crate::promql::parse(text)
            .map(|e| Query::Prom(Arc::new(e)))
            .map_err(|e| {
                e.to_string()
                    .trim_start_matches("invalid parameter \"query\": ")
                    .to_string()
            }),
        Lang::LogQL => match crate::logql::parse(text).map_err(|e| e.to_string())? {
            logql::Expr::Metric(m) => Ok(Query::Log(Arc::new(m))),
            _ => Err(
                "a rule needs a metric query (e.g. sum(rate({app=\"x\"}[5m]))); this one returns log lines"
                    .into(),
            ),
        },
    }
}

#[cfg(test)]
mod tests;
