//! Alert label and annotation templates: Go's `text/template` as Prometheus uses it.
//!
//! Written here rather than taken from a crate: the one Rust port (`gtmpl` 0.7, unchanged
//! since 2021) differs from Go where alert texts notice (it cannot compare a float with a
//! float constant, errors on a missing label where Go prints an empty string, and prints
//! `%e` as `3.5e0` where Go prints `3.5e+00`), and has no way to give `query` the rule's
//! evaluation time.
//!
//! ```text
//! text --lex.rs--> text and action tokens --parse.rs--> nodes (if/range/with blocks)
//!      --exec.rs--> output, calling funcs.rs (Go's builtins and Prometheus's functions)
//!                   and fmt.rs (Go's number forms and printf)
//! ```
//!
//! [`expand`] prepends Prometheus's `$labels`, `$externalLabels`, `$externalURL` and
//! `$value` definitions; a template that fails to parse or run expands to
//! `<error expanding template: ...>`, as in Prometheus, never to an error for the rule.

mod exec;
mod fmt;
mod funcs;
mod lex;
mod parse;

use std::collections::BTreeMap;
use std::sync::Arc;

/// A value inside a template.
#[derive(Clone, Debug)]
pub(crate) enum Value {
    Nil,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    /// A label set (Go's `map[string]string`: a missing key reads as "").
    Labels(Arc<BTreeMap<String, String>>),
    /// Go's `map[string]interface{}` (what `args` returns).
    Map(BTreeMap<String, Value>),
    /// A query's result.
    List(Vec<Value>),
    Sample(Arc<Sample>),
    /// A time (ms since the epoch), from `toTime`.
    Time(i64),
}

/// One element of a `query` result: `.Labels` and `.Value`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Sample {
    pub(crate) labels: Arc<BTreeMap<String, String>>,
    pub(crate) value: f64,
}

/// What an alert's templates see, and what they may call.
pub(crate) struct Context<'a> {
    pub(crate) labels: &'a [(String, String)],
    pub(crate) external_labels: &'a [(String, String)],
    pub(crate) external_url: &'a str,
    pub(crate) value: f64,
    /// Runs `query "..."` at the rule's evaluation time.
    pub(crate) query: &'a dyn Fn(&str) -> Result<Vec<Sample>, String>,
}

const DEFS: &str = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}";

/// Parses `text` as an alert template would be parsed; the error says what is wrong.
pub(crate) fn check(text: &str) -> Result<(), String> {
    compile(&format!("{DEFS}{text}")).map(|_| ())
}

fn compile(text: &str) -> Result<Vec<parse::Node>, String> {
    parse::parse(lex::pieces(text)?, &funcs::exists)
}

/// Expands an alert label or annotation template.
pub(crate) fn expand(text: &str, ctx: &Context) -> String {
    if !text.contains("{{") {
        return text.to_string();
    }
    let map = |pairs: &[(String, String)]| Value::Labels(Arc::new(pairs.iter().cloned().collect()));
    let data = Value::Map(BTreeMap::from([
        ("Labels".to_string(), map(ctx.labels)),
        ("ExternalLabels".to_string(), map(ctx.external_labels)),
        (
            "ExternalURL".to_string(),
            Value::Str(ctx.external_url.to_string()),
        ),
        ("Value".to_string(), Value::Float(ctx.value)),
    ]));
    let run = || -> Result<String, String> {
        let nodes = compile(&format!("{DEFS}{text}"))?;
        exec::run(&nodes, data, ctx)
    };
    match run() {
        Ok(s) => s,
        Err(e) => format!("<error expanding template: {e}>"),
    }
}

#[cfg(test)]
mod tests;
