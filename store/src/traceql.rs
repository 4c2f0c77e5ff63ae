//! A TraceQL subset for trace search, written by hand (no maintained Rust TraceQL parser
//! exists): one or more spansets joined by `&&` / `||` (a trace matches `{A} && {B}` when it has
//! a span matching A and one matching B), each a boolean expression over span conditions:
//!
//! ```text
//! { resource.service.name = "shop" && (name =~ "GET.*" || span.http.status_code >= 500) }
//! { .db.system = "sqlite" && duration > 100ms && status = error && kind = server }
//! ```
//!
//! Fields: intrinsics `name`, `status`, `kind`, `duration`, `statusMessage` (also as
//! `span:name`, `span:status`, …), attributes `resource.x`, `span.x` and `.x` (either scope).
//! Operators `= != > >= < <= =~ !~`. Values: strings, numbers, durations (`100ms`, `1.5s`),
//! `true`/`false`, status (`ok`, `error`, `unset`) and kind (`server`, `client`, …) keywords.

use regex::Regex;

/// A parse or evaluation problem, with the byte offset where it was found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid TraceQL at {pos}: {message}")]
pub(crate) struct TraceQlError {
    pub pos: usize,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    Resource,
    Span,
    Any,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Field {
    Name,
    Status,
    Kind,
    Duration,
    StatusMessage,
    Attr(Scope, String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Re,
    Nre,
}

#[derive(Debug, Clone)]
pub(crate) enum Lit {
    Str(String),
    Num(f64),
    /// Nanoseconds.
    Dur(f64),
    Bool(bool),
    Status(i32),
    Kind(i32),
}

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    True,
    Cmp(Field, Op, Lit, Option<Regex>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
}

/// A whole query: spansets combined at the trace level.
#[derive(Debug, Clone)]
pub(crate) enum Query {
    Spanset(Expr),
    And(Box<Query>, Box<Query>),
    Or(Box<Query>, Box<Query>),
}

/// What a condition can see of a span.
pub(crate) trait SpanView {
    fn name(&self) -> &str;
    fn status(&self) -> i32;
    fn kind(&self) -> i32;
    fn duration_ns(&self) -> i64;
    fn status_message(&self) -> &str;
    fn attr(&self, scope: Scope, key: &str) -> Option<String>;
}

pub(crate) fn kind_name(kind: i32) -> &'static str {
    match kind {
        1 => "internal",
        2 => "server",
        3 => "client",
        4 => "producer",
        5 => "consumer",
        _ => "unspecified",
    }
}

impl Expr {
    pub(crate) fn matches(&self, s: &dyn SpanView) -> bool {
        match self {
            Expr::True => true,
            Expr::And(a, b) => a.matches(s) && b.matches(s),
            Expr::Or(a, b) => a.matches(s) || b.matches(s),
            Expr::Cmp(field, op, lit, re) => {
                let got = match field {
                    Field::Name => Lit::Str(s.name().to_string()),
                    Field::StatusMessage => Lit::Str(s.status_message().to_string()),
                    Field::Status => Lit::Status(s.status()),
                    Field::Kind => Lit::Kind(s.kind()),
                    Field::Duration => Lit::Dur(s.duration_ns() as f64),
                    Field::Attr(scope, key) => match s.attr(*scope, key) {
                        Some(v) => Lit::Str(v),
                        None => return *op == Op::Ne,
                    },
                };
                compare(&got, *op, lit, re.as_ref())
            }
        }
    }

    /// Equality conditions every matching span must meet (for index hints).
    pub(crate) fn required_equalities(&self) -> Vec<(&Field, &str)> {
        match self {
            Expr::Cmp(f, Op::Eq, Lit::Str(v), _) => vec![(f, v.as_str())],
            Expr::And(a, b) => {
                let mut out = a.required_equalities();
                out.extend(b.required_equalities());
                out
            }
            _ => Vec::new(),
        }
    }
}

fn compare(got: &Lit, op: Op, want: &Lit, re: Option<&Regex>) -> bool {
    use std::cmp::Ordering;
    if let (Some(re), Lit::Str(g)) = (re, got) {
        return re.is_match(g) == (op == Op::Re);
    }
    let ord: Option<Ordering> = match (got, want) {
        (Lit::Str(g), Lit::Str(w)) => Some(g.as_str().cmp(w.as_str())),
        (Lit::Str(g), Lit::Num(w)) => g.parse::<f64>().ok().and_then(|g| g.partial_cmp(w)),
        (Lit::Str(g), Lit::Bool(w)) => (g == &w.to_string())
            .then_some(Ordering::Equal)
            .or(Some(Ordering::Less)),
        (Lit::Str(g), Lit::Dur(w)) => humantime::parse_duration(g)
            .ok()
            .and_then(|d| (d.as_nanos() as f64).partial_cmp(w)),
        (Lit::Dur(g), Lit::Dur(w)) => g.partial_cmp(w),
        (Lit::Status(g), Lit::Status(w)) | (Lit::Kind(g), Lit::Kind(w)) => Some(g.cmp(w)),
        _ => None,
    };
    let Some(ord) = ord else { return op == Op::Ne };
    match op {
        Op::Eq => ord == Ordering::Equal,
        Op::Ne => ord != Ordering::Equal,
        Op::Gt => ord == Ordering::Greater,
        Op::Ge => ord != Ordering::Less,
        Op::Lt => ord == Ordering::Less,
        Op::Le => ord != Ordering::Greater,
        Op::Re | Op::Nre => false,
    }
}

struct Parser<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn err<T>(&self, message: impl Into<String>) -> Result<T, TraceQlError> {
        Err(TraceQlError {
            pos: self.pos,
            message: message.into(),
        })
    }

    fn ws(&mut self) {
        while self.rest().starts_with(char::is_whitespace) {
            self.pos += self.rest().chars().next().map_or(1, char::len_utf8);
        }
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn eat(&mut self, tok: &str) -> bool {
        self.ws();
        if self.rest().starts_with(tok) {
            self.pos += tok.len();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, tok: &str) -> Result<(), TraceQlError> {
        if self.eat(tok) {
            Ok(())
        } else {
            self.err(format!("expected {tok:?}"))
        }
    }

    fn query(&mut self) -> Result<Query, TraceQlError> {
        let mut left = self.spanset()?;
        loop {
            if self.eat("&&") {
                left = Query::And(Box::new(left), Box::new(self.spanset()?));
            } else if self.eat("||") {
                left = Query::Or(Box::new(left), Box::new(self.spanset()?));
            } else {
                return Ok(left);
            }
        }
    }

    fn spanset(&mut self) -> Result<Query, TraceQlError> {
        self.expect("{")?;
        if self.eat("}") {
            return Ok(Query::Spanset(Expr::True));
        }
        let e = self.or()?;
        self.expect("}")?;
        Ok(Query::Spanset(e))
    }

    fn or(&mut self) -> Result<Expr, TraceQlError> {
        let mut left = self.and()?;
        while self.eat("||") {
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, TraceQlError> {
        let mut left = self.atom()?;
        while self.eat("&&") {
            left = Expr::And(Box::new(left), Box::new(self.atom()?));
        }
        Ok(left)
    }

    fn atom(&mut self) -> Result<Expr, TraceQlError> {
        if self.eat("(") {
            let e = self.or()?;
            self.expect(")")?;
            return Ok(e);
        }
        let field = self.field()?;
        let op = self.op()?;
        let lit = self.literal(&field)?;
        let re = match (op, &lit) {
            (Op::Re | Op::Nre, Lit::Str(p)) => Some(
                Regex::new(&format!("^(?:{p})$"))
                    .or_else(|e| self.err(format!("invalid regex {p:?}: {e}")))?,
            ),
            (Op::Re | Op::Nre, _) => return self.err("=~ and !~ need a string"),
            _ => None,
        };
        Ok(Expr::Cmp(field, op, lit, re))
    }

    fn ident(&mut self) -> &'a str {
        let rest = self.rest();
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '/' | ':')))
            .unwrap_or(rest.len());
        self.pos += end;
        &rest[..end]
    }

    fn field(&mut self) -> Result<Field, TraceQlError> {
        self.ws();
        let start = self.pos;
        let word = self.ident();
        let attr = |scope, key: &str| {
            if key.is_empty() {
                Err(TraceQlError {
                    pos: start,
                    message: "empty attribute name".into(),
                })
            } else {
                Ok(Field::Attr(scope, key.to_string()))
            }
        };
        match word {
            "name" | "span:name" => Ok(Field::Name),
            "status" | "span:status" => Ok(Field::Status),
            "kind" | "span:kind" => Ok(Field::Kind),
            "duration" | "span:duration" => Ok(Field::Duration),
            "statusMessage" | "span:statusMessage" => Ok(Field::StatusMessage),
            w if w.starts_with("resource.") => attr(Scope::Resource, &w["resource.".len()..]),
            w if w.starts_with("span.") => attr(Scope::Span, &w["span.".len()..]),
            w if w.starts_with('.') => attr(Scope::Any, &w[1..]),
            "" => self.err("expected a field such as name, duration, resource.service.name or .key"),
            w => Err(TraceQlError {
                pos: start,
                message: format!("unsupported field {w:?}: use name, status, kind, duration, statusMessage, resource.x, span.x or .x"),
            }),
        }
    }

    fn op(&mut self) -> Result<Op, TraceQlError> {
        for (tok, op) in [
            ("=~", Op::Re),
            ("!~", Op::Nre),
            ("!=", Op::Ne),
            (">=", Op::Ge),
            ("<=", Op::Le),
            ("=", Op::Eq),
            (">", Op::Gt),
            ("<", Op::Lt),
        ] {
            if self.eat(tok) {
                return Ok(op);
            }
        }
        self.err("expected an operator (= != > >= < <= =~ !~)")
    }

    fn literal(&mut self, field: &Field) -> Result<Lit, TraceQlError> {
        self.ws();
        if self.rest().starts_with('"') || self.rest().starts_with('`') {
            let quote = self.rest().chars().next().expect("checked");
            self.pos += 1;
            let mut out = String::new();
            loop {
                let Some(c) = self.rest().chars().next() else {
                    return self.err("unterminated string");
                };
                self.pos += c.len_utf8();
                match c {
                    c if c == quote => return Ok(Lit::Str(out)),
                    '\\' if quote == '"' => {
                        let Some(n) = self.rest().chars().next() else {
                            return self.err("unterminated string");
                        };
                        self.pos += n.len_utf8();
                        out.push(n);
                    }
                    c => out.push(c),
                }
            }
        }
        let start = self.pos;
        let word = self.ident();
        let bad = |m: String| TraceQlError {
            pos: start,
            message: m,
        };
        match (field, word) {
            (Field::Status, w) => match w {
                "ok" => Ok(Lit::Status(1)),
                "error" => Ok(Lit::Status(2)),
                "unset" => Ok(Lit::Status(0)),
                _ => Err(bad(format!("invalid status {w:?}: use ok, error or unset"))),
            },
            (Field::Kind, w) => (0..=5)
                .find(|k| kind_name(*k) == w)
                .map(Lit::Kind)
                .ok_or_else(|| {
                    bad(format!(
                        "invalid kind {w:?}: use server, client, producer, consumer, internal or unspecified"
                    ))
                }),
            (_, "true") => Ok(Lit::Bool(true)),
            (_, "false") => Ok(Lit::Bool(false)),
            (_, w) => {
                if let Ok(n) = w.parse::<f64>() {
                    return Ok(if *field == Field::Duration {
                        Lit::Dur(n)
                    } else {
                        Lit::Num(n)
                    });
                }
                humantime::parse_duration(w)
                    .map(|d| Lit::Dur(d.as_nanos() as f64))
                    .map_err(|_| {
                        bad(format!(
                            "expected a value (\"string\", number, duration), found {w:?}"
                        ))
                    })
            }
        }
    }
}

/// Parses a TraceQL query.
///
/// The text must be within the bounds of [`crate::guard`]; it is parsed on a deep stack, and
/// callers match spans and drop the tree inside `guard::deep` too.
pub(crate) fn parse(src: &str) -> Result<Query, TraceQlError> {
    crate::guard::check(src).map_err(|message| TraceQlError { pos: 0, message })?;
    crate::guard::deep(|| parse_checked(src))
}

fn parse_checked(src: &str) -> Result<Query, TraceQlError> {
    let mut p = Parser { src, pos: 0 };
    let q = p.query()?;
    p.ws();
    if p.pos < src.len() {
        if p.rest().starts_with('|') {
            return p.err("pipelines (| select, | count, ...) are not supported yet");
        }
        return p.err("unexpected input after the query");
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct S {
        name: &'static str,
        status: i32,
        kind: i32,
        dur: i64,
        res: Vec<(&'static str, &'static str)>,
        span: Vec<(&'static str, &'static str)>,
    }

    impl SpanView for S {
        fn name(&self) -> &str {
            self.name
        }
        fn status(&self) -> i32 {
            self.status
        }
        fn kind(&self) -> i32 {
            self.kind
        }
        fn duration_ns(&self) -> i64 {
            self.dur
        }
        fn status_message(&self) -> &str {
            ""
        }
        fn attr(&self, scope: Scope, key: &str) -> Option<String> {
            let find = |v: &Vec<(&str, &str)>| v.iter().find(|(k, _)| *k == key).map(|(_, v)| v.to_string());
            match scope {
                Scope::Resource => find(&self.res),
                Scope::Span => find(&self.span),
                Scope::Any => find(&self.span).or_else(|| find(&self.res)),
            }
        }
    }

    fn span() -> S {
        S {
            name: "GET /cart",
            status: 2,
            kind: 2,
            dur: 150_000_000,
            res: vec![("service.name", "shop")],
            span: vec![("http.status_code", "503"), ("db.system", "sqlite")],
        }
    }

    fn matches(q: &str) -> bool {
        match parse(q).unwrap() {
            Query::Spanset(e) => e.matches(&span()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn conditions_over_intrinsics_and_attributes() {
        assert!(matches(r#"{ resource.service.name = "shop" }"#));
        assert!(!matches(r#"{ span.service.name = "shop" }"#));
        assert!(matches(r#"{ .service.name = "shop" && name =~ "GET.*" }"#));
        assert!(matches(
            r#"{ span.http.status_code >= 500 && status = error && kind = server }"#
        ));
        assert!(matches(r#"{ duration > 100ms && duration < 1s }"#));
        assert!(!matches(r#"{ duration > 200ms }"#));
        assert!(matches(
            r#"{ (name = "x" || .db.system = "sqlite") && status != ok }"#
        ));
        assert!(matches(r#"{ .missing != "x" }"#));
        assert!(matches("{}"));
    }

    #[test]
    fn bad_queries_say_where() {
        let e = parse(r#"{ name = "x" "#).unwrap_err();
        assert!(e.message.contains("expected \"}\""), "{e}");
        assert!(parse(r#"{ foo = 1 }"#)
            .unwrap_err()
            .message
            .contains("unsupported field"));
        assert!(parse(r#"{ status = broken }"#)
            .unwrap_err()
            .message
            .contains("invalid status"));
        assert!(parse(r#"{ name = "x" } | count() > 1"#)
            .unwrap_err()
            .message
            .contains("pipelines"));
        assert!(parse(r#"{ name =~ "(" }"#)
            .unwrap_err()
            .message
            .contains("invalid regex"));
    }

    #[test]
    fn required_equalities_are_index_hints() {
        let Query::Spanset(e) =
            parse(r#"{ resource.service.name = "shop" && (name = "a" || name = "b") }"#).unwrap()
        else {
            panic!()
        };
        assert_eq!(e.required_equalities().len(), 1);
    }
}
