//! No query may overflow a stack: bounds on query text, checked before any parser sees it,
//! and a deep stack for parsing and evaluating what passes.
//!
//! The parsers (promql-parser's LR tables and recursive checks, logql-parser's and our
//! TraceQL's recursive descent) and our evaluators walk expression trees recursively, and a
//! stack overflow aborts the whole process: `catch_unwind` cannot catch it. So for PromQL,
//! LogQL and TraceQL text alike, on every endpoint that takes one (query, query_range,
//! `match[]` of the metadata APIs, tail, Tempo search, and rule files later):
//!
//! 1. [`check`] bounds the text before parsing: at most [`MAX_QUERY_BYTES`] bytes, brackets
//!    (`(`, `[`, `{`) nested at most [`MAX_DEPTH`] deep (Prometheus accepts 1,000), and at
//!    most [`MAX_OPERATORS`] operators: each binary or unary operator can add one level to
//!    the tree (`1+1+…+1` parses to a tree as deep as it has terms). Quoted strings and
//!    `#` comments are skipped. The two counts bound the tree's depth whatever the parser
//!    makes of the text, at the cost of one pass over it.
//! 2. [`deep`] runs a closure on a stack of [`STACK_BYTES`] (the `stacker` crate maps it
//!    lazily: pages are only touched as deep as a query goes), many times what a tree
//!    within those bounds needs even in a debug build; tokio's threads have 2 MiB.
//!    Everything that holds a parsed tree (parse, evaluate, drop) runs inside it.
//!
//! Pushed data needs no such care: JSON is read by serde_json (nesting limit 128) and
//! protobuf by prost (nesting limit 100), and label matchers in pushed stream selectors
//! have no nesting.

/// Longest query text accepted (bytes).
pub(crate) const MAX_QUERY_BYTES: usize = 128 * 1024;
/// Deepest bracket nesting accepted.
pub(crate) const MAX_DEPTH: usize = 1_000;
/// Most operators accepted in one query.
pub(crate) const MAX_OPERATORS: usize = 1_000;
/// The stack that parsing and evaluation run on.
const STACK_BYTES: usize = 256 << 20;
/// Below this much stack left, [`deep`] switches to a new stack.
const RED_ZONE: usize = 64 << 20;

/// Checks `query` against the bounds; the error names the bound and the limit.
pub(crate) fn check(query: &str) -> Result<(), String> {
    if query.len() > MAX_QUERY_BYTES {
        return Err(format!(
            "query is {} bytes long; the limit is {MAX_QUERY_BYTES}",
            query.len()
        ));
    }
    let shape = shape(query.as_bytes());
    if shape.depth > MAX_DEPTH {
        return Err(format!(
            "query nests {} levels deep; the limit is {MAX_DEPTH}",
            shape.depth
        ));
    }
    if shape.operators > MAX_OPERATORS {
        return Err(format!(
            "query has {} operators; the limit is {MAX_OPERATORS} (each can nest the expression one level deeper)",
            shape.operators
        ));
    }
    Ok(())
}

/// Runs `f` with at least [`RED_ZONE`] of stack, on a new stack of [`STACK_BYTES`] if the
/// current one has less left.
pub(crate) fn deep<T>(f: impl FnOnce() -> T) -> T {
    stacker::maybe_grow(RED_ZONE, STACK_BYTES, f)
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Shape {
    depth: usize,
    operators: usize,
}

/// Deepest bracket nesting and operator count of query text, outside strings and comments.
fn shape(q: &[u8]) -> Shape {
    let mut out = Shape::default();
    let mut depth = 0usize;
    let mut i = 0;
    while i < q.len() {
        let c = q[i];
        let next = q.get(i + 1).copied();
        i += 1;
        match c {
            b'"' | b'\'' | b'`' => i = skip_string(q, i, c),
            b'#' => i = q[i..].iter().position(|b| *b == b'\n').map_or(q.len(), |p| i + p),
            b'(' | b'[' | b'{' => {
                depth += 1;
                out.depth = out.depth.max(depth);
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            b'=' | b'!' | b'<' | b'>' | b'&' | b'|' if next == Some(c) || next == Some(b'=') => {
                // ==, !=, <=, >=, &&, ||, <<, >>; but `|=` is a line filter, not an operator.
                i += 1;
                if !(c == b'|' && next == Some(b'=')) {
                    out.operators += 1;
                }
            }
            b'+' | b'-' | b'*' | b'/' | b'%' | b'^' | b'<' | b'>' => out.operators += 1,
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i - 1;
                while i < q.len() && (q[i].is_ascii_alphanumeric() || q[i] == b'_') {
                    i += 1;
                }
                if matches!(&q[start..i], b"and" | b"or" | b"unless") {
                    out.operators += 1;
                }
            }
            _ => {}
        }
    }
    out
}

/// The index after the string that starts at `i` (just past its opening `quote`); only
/// backquoted strings have no escapes.
fn skip_string(q: &[u8], mut i: usize, quote: u8) -> usize {
    while i < q.len() {
        match q[i] {
            b'\\' if quote != b'`' => i += 2,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    q.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(depth: usize, f: &str, inner: &str) -> String {
        format!("{}{inner}{}", format!("{f}(").repeat(depth), ")".repeat(depth))
    }

    #[test]
    fn counts_brackets_and_operators_outside_strings_and_comments() {
        let s = |q: &str| {
            let s = shape(q.as_bytes());
            (s.depth, s.operators)
        };
        assert_eq!(s(r#"sum(rate(x{a="(((("}[5m]))"#), (3, 0));
        assert_eq!(s(r#"{a="b"} |= "x" != "y" | json | n > 3 or m <= 2"#), (1, 4));
        assert_eq!(s("1+1-2*3/4%5^6"), (0, 6));
        assert_eq!(s("a and b or c unless d and_not"), (0, 3));
        assert_eq!(s(r#"{ .a = "x\"((" && (b || c) }"#), (2, 2));
        assert_eq!(s("x # (((((\n+ ((y))"), (2, 1));
        assert_eq!(s(r"x{a=`\`}+((1)"), (2, 1));
        assert_eq!(s(r#"x{a="unterminated ((("#), (1, 0));
    }

    #[test]
    fn prometheus_depth_passes_and_deeper_is_refused_with_the_limit() {
        assert_eq!(check(&nested(MAX_DEPTH, "sum", "up")), Ok(()));
        let e = check(&nested(3_000, "sum", "up")).unwrap_err();
        assert_eq!(e, "query nests 3000 levels deep; the limit is 1000");
        let e = check(&vec!["1"; 5_000].join("+")).unwrap_err();
        assert!(
            e.starts_with("query has 4999 operators; the limit is 1000"),
            "{e}"
        );
        let e = check(&format!("x{{a=\"{}\"}}", "a".repeat(MAX_QUERY_BYTES))).unwrap_err();
        assert!(e.contains("bytes long; the limit is 131072"), "{e}");
    }

    #[test]
    fn deep_runs_recursion_that_would_overflow_a_small_stack() {
        fn down(n: u64) -> u64 {
            let pad = std::hint::black_box([n; 64]);
            if n == 0 {
                0
            } else {
                pad[1] - n + 1 + down(n - 1)
            }
        }
        // ~100 MiB of frames on a thread with 1 MiB of stack.
        let got = std::thread::Builder::new()
            .stack_size(1 << 20)
            .spawn(|| deep(|| down(200_000)))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(got, 200_000);
    }
}
