//! Stack traces in log lines, as the runtimes print them: Python tracebacks, Java/Kotlin
//! (`at pkg.Class.method(File.java:N)`, `Caused by:`), Go panics with goroutine stacks,
//! Node.js (`at fn (file:line:col)`) and Rust panics with or without a backtrace.
//!
//! Each parser finds its trace anywhere in the line (a logger's prefix may come first) and
//! returns the exception's type and message and its frames, the innermost (where it was
//! raised) first, each marked in-app or library by where its code lives. No crate reads these
//! formats (Sentry parses them server-side, in Python), so they are written here, one short
//! function each, pinned by the fixtures in `fixtures/`.

use super::fingerprint::Frame;

/// What a trace says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Trace {
    pub kind: &'static str,
    pub type_name: String,
    pub message: String,
    /// Innermost first.
    pub frames: Vec<Frame>,
    /// Types of the exceptions that caused this one (Java's `Caused by:`), outermost first.
    pub causes: Vec<String>,
}

/// Frames past this many are not read: a recursion overflow prints thousands.
const MAX_FRAMES: usize = 200;

/// The first trace found in `text`, trying each runtime's shape.
pub(crate) fn parse(text: &str) -> Option<Trace> {
    if !text.contains('\n') {
        return rust(text);
    }
    rust(text)
        .or_else(|| python(text))
        .or_else(|| java(text))
        .or_else(|| go(text))
        .or_else(|| node(text))
}

fn frame(module: &str, function: &str, line: Option<u32>, in_app: bool) -> Frame {
    Frame {
        module: module.to_string(),
        function: function.to_string(),
        line,
        in_app,
    }
}

/// `Type: message` (or just `Type`).
fn split_type(line: &str) -> (String, String) {
    match line.split_once(": ") {
        Some((t, m)) => (t.trim().to_string(), m.trim().to_string()),
        None => (line.trim().trim_end_matches(':').to_string(), String::new()),
    }
}

fn python(text: &str) -> Option<Trace> {
    const HEAD: &str = "Traceback (most recent call last):";
    // Chained exceptions print one traceback each; the last is what was finally raised.
    let at = text.rfind(HEAD)?;
    let mut frames = Vec::new();
    let mut exception = None;
    for line in text[at + HEAD.len()..].lines().skip(1) {
        if let Some(rest) = line.trim_start().strip_prefix("File \"") {
            let Some((path, rest)) = rest.split_once('"') else {
                continue;
            };
            let lineno = rest
                .split("line ")
                .nth(1)
                .and_then(|r| r.split(',').next())
                .and_then(|n| n.trim().parse().ok());
            let function = rest.rsplit_once(" in ").map_or("", |(_, f)| f.trim());
            if frames.len() < MAX_FRAMES {
                frames.push(frame(path, function, lineno, python_in_app(path)));
            }
        } else if !line.starts_with(' ') && !line.starts_with('\t') && !line.trim().is_empty() {
            exception = Some(line);
            break;
        }
    }
    let (type_name, message) = split_type(exception?);
    frames.reverse();
    Some(Trace {
        kind: "python",
        type_name,
        message,
        frames,
        causes: Vec::new(),
    })
}

fn python_in_app(path: &str) -> bool {
    !(path.contains("site-packages/")
        || path.contains("dist-packages/")
        || path.starts_with('<')
        || path.contains("/lib/python")
        || path.contains("/lib64/python"))
}

/// A Java or Kotlin class name: dotted identifiers.
fn is_class_name(s: &str) -> bool {
    s.contains('.')
        && s.split('.')
            .all(|part| !part.is_empty() && part.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '$'))
}

fn java(text: &str) -> Option<Trace> {
    let lines: Vec<&str> = text.lines().collect();
    // The exception line is the one before the first `at ...(...)` frame.
    let first = lines
        .iter()
        .position(|l| l.trim_start().starts_with("at ") && l.trim_end().ends_with(')') && l.contains('('))?;
    let mut head = *lines.get(first.checked_sub(1)?)?;
    if let Some(rest) = head.strip_prefix("Exception in thread \"") {
        head = rest.split_once("\" ").map_or(rest, |(_, r)| r);
    }
    let (type_name, message) = split_type(head);
    if !is_class_name(&type_name) {
        return None;
    }
    let mut frames = Vec::new();
    let mut causes = Vec::new();
    let mut in_cause = false;
    for line in &lines[first..] {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("Caused by: ") {
            causes.push(split_type(rest).0);
            in_cause = true;
        } else if let Some(rest) = t.strip_prefix("at ") {
            if in_cause || frames.len() >= MAX_FRAMES {
                continue;
            }
            let Some((call, location)) = rest.split_once('(') else {
                continue;
            };
            // `java.base/java.lang.Thread.run`: the module prefix goes.
            let call = call.rsplit_once('/').map_or(call, |(_, c)| c);
            let (class, method) = call.rsplit_once('.').unwrap_or(("", call));
            let lineno = location
                .trim_end_matches(')')
                .rsplit_once(':')
                .and_then(|(_, n)| n.parse().ok());
            frames.push(frame(class, method, lineno, java_in_app(class)));
        } else if t.starts_with("...") || t.starts_with("Suppressed: ") {
            continue;
        } else if !t.is_empty() && !in_cause {
            break;
        }
    }
    Some(Trace {
        kind: "java",
        type_name,
        message,
        frames,
        causes,
    })
}

fn java_in_app(class: &str) -> bool {
    const LIBRARY: &[&str] = &[
        "java.",
        "javax.",
        "jdk.",
        "sun.",
        "com.sun.",
        "kotlin.",
        "kotlinx.",
        "scala.",
        "org.springframework.",
        "org.apache.",
        "io.netty.",
        "reactor.",
        "okhttp3.",
        "com.fasterxml.",
        "org.hibernate.",
        "org.junit.",
        "io.ktor.",
    ];
    !LIBRARY.iter().any(|p| class.starts_with(p))
}

fn go(text: &str) -> Option<Trace> {
    let (at, type_name, prefix) = ["panic: ", "fatal error: "]
        .iter()
        .find_map(|p| Some((text.find(p)?, p.trim_end_matches(": "), p.len())))?;
    let message = text[at + prefix..].lines().next().unwrap_or("");
    let message = message.trim_end_matches(" [recovered]").trim().to_string();
    let mut frames = Vec::new();
    let mut lines = text[at..]
        .lines()
        .skip_while(|l| !l.starts_with("goroutine "))
        .skip(1);
    // The first goroutine is the one that panicked; its stack ends at a blank line.
    while let Some(call) = lines.next() {
        if call.trim().is_empty() || frames.len() >= MAX_FRAMES {
            break;
        }
        let Some(location) = lines.next() else { break };
        let location = location.trim();
        let call = call.strip_prefix("created by ").unwrap_or(call);
        let func = match call.rfind('(') {
            // A call's arguments: `main.(*T).Do(0x1, ...)`, `panic({0x4..})`.
            Some(open) if call.ends_with(')') || call.ends_with("...)") => &call[..open],
            _ => call.split(" in goroutine").next().unwrap_or(call),
        };
        let path = location.split(' ').next().unwrap_or("");
        let (path, lineno) = match path.rsplit_once(':') {
            Some((p, n)) => (p, n.parse().ok()),
            None => (path, None),
        };
        let (package, function) = split_go_func(func);
        let library = func.starts_with("runtime.")
            || func == "panic"
            || path.contains("/go/src/")
            || path.contains("/pkg/mod/")
            || path.contains("/vendor/")
            || path.contains("/usr/lib/go");
        frames.push(frame(package, function, lineno, !library));
    }
    Some(Trace {
        kind: "go",
        type_name: type_name.to_string(),
        message,
        frames,
        causes: Vec::new(),
    })
}

/// `github.com/a/b/pkg.(*T).Method` -> (`github.com/a/b/pkg`, `(*T).Method`).
fn split_go_func(func: &str) -> (&str, &str) {
    let last_slash = func.rfind('/').map_or(0, |i| i + 1);
    match func[last_slash..].find('.') {
        Some(dot) => (&func[..last_slash + dot], &func[last_slash + dot + 1..]),
        None => ("", func),
    }
}

fn node(text: &str) -> Option<Trace> {
    let lines: Vec<&str> = text.lines().collect();
    let first = lines.iter().position(|l| {
        let t = l.trim_start();
        l.starts_with(' ') && t.starts_with("at ") && (t.ends_with(')') || ends_with_line_col(t))
    })?;
    let head = lines.get(first.checked_sub(1)?)?.trim();
    let head = head.strip_prefix("Uncaught ").unwrap_or(head);
    // A logger's prefix may come first: the type is the last word before the first ": ".
    let (type_name, message) = split_type(head);
    let type_name = type_name.rsplit(' ').next().unwrap_or("").to_string();
    if type_name.is_empty()
        || !type_name
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '$')
    {
        return None;
    }
    let mut frames = Vec::new();
    for line in &lines[first..] {
        let Some(rest) = line.trim().strip_prefix("at ") else {
            break;
        };
        if frames.len() >= MAX_FRAMES {
            break;
        }
        let rest = rest.strip_prefix("async ").unwrap_or(rest);
        let (function, location) = match rest.strip_suffix(')').and_then(|r| r.rsplit_once(" (")) {
            Some((f, loc)) => (f, loc),
            None => ("<anonymous>", rest),
        };
        let mut parts = location.rsplitn(3, ':');
        let (_col, lineno, path) = (parts.next(), parts.next(), parts.next());
        let (path, lineno) = match path {
            Some(p) => (p, lineno.and_then(|n| n.parse().ok())),
            None => (location, None),
        };
        let path = path.strip_prefix("file://").unwrap_or(path);
        let library =
            path.contains("node_modules/") || path.starts_with("node:") || path.starts_with("internal/");
        frames.push(frame(path, function, lineno, !library));
    }
    Some(Trace {
        kind: "node",
        type_name,
        message,
        frames,
        causes: Vec::new(),
    })
}

fn ends_with_line_col(s: &str) -> bool {
    let mut parts = s.rsplitn(3, ':');
    let col = parts.next().unwrap_or("");
    let line = parts.next().unwrap_or("");
    !col.is_empty()
        && col.bytes().all(|b| b.is_ascii_digit())
        && !line.is_empty()
        && line.bytes().all(|b| b.is_ascii_digit())
}

fn rust(text: &str) -> Option<Trace> {
    let at = text.find("' panicked at ")?;
    let after = &text[at + "' panicked at ".len()..];
    let first_line = after.lines().next().unwrap_or("");
    // Rust 1.73+: `panicked at src/main.rs:10:5:` then the message on the next line; before:
    // `panicked at 'message', src/main.rs:10:5`.
    let (location, message) = if let Some(quoted) = first_line.strip_prefix('\'') {
        match quoted.rsplit_once("', ") {
            Some((m, loc)) => (loc.to_string(), m.to_string()),
            None => (String::new(), quoted.to_string()),
        }
    } else {
        let loc = first_line.trim_end_matches(':').to_string();
        let message = after.lines().nth(1).unwrap_or("").trim().to_string();
        (loc, message)
    };
    let mut frames = Vec::new();
    if let Some(bt) = after.find("stack backtrace:") {
        let mut lines = after[bt..].lines().skip(1).peekable();
        while let Some(line) = lines.next() {
            let t = line.trim();
            let Some((n, func)) = t.split_once(": ") else {
                if t.starts_with("at ") {
                    continue;
                }
                break;
            };
            if !n.bytes().all(|b| b.is_ascii_digit()) || frames.len() >= MAX_FRAMES {
                break;
            }
            let mut path = "";
            let mut lineno = None;
            if let Some(next) = lines.peek() {
                if let Some(loc) = next.trim().strip_prefix("at ") {
                    let mut parts = loc.rsplitn(3, ':');
                    let (_col, l, p) = (parts.next(), parts.next(), parts.next());
                    path = p.unwrap_or(loc);
                    lineno = l.and_then(|l| l.parse().ok());
                    lines.next();
                }
            }
            let func = strip_rust_hash(func);
            let library =
                rust_library(func) || path.contains("/rustc/") || path.contains("/.cargo/registry/");
            let (module, function) = func.rsplit_once("::").unwrap_or(("", func));
            frames.push(frame(module, function, lineno, !library));
        }
    }
    if frames.iter().all(|f| !f.in_app) && !location.is_empty() {
        // Without a backtrace (or with only library frames) the panic's location is the frame.
        let mut parts = location.rsplitn(3, ':');
        let (_col, l, p) = (parts.next(), parts.next(), parts.next());
        let in_app = !location.contains("/.cargo/registry/") && !location.contains("/rustc/");
        frames.insert(
            0,
            frame(p.unwrap_or(&location), "", l.and_then(|l| l.parse().ok()), in_app),
        );
    }
    Some(Trace {
        kind: "rust",
        type_name: "panic".into(),
        message,
        frames,
        causes: Vec::new(),
    })
}

/// The standard library's and the C runtime's frames.
fn rust_library(func: &str) -> bool {
    const PREFIXES: &[&str] = &[
        "std::",
        "core::",
        "alloc::",
        "backtrace::",
        "<std::",
        "<core::",
        "<alloc::",
        "__rust",
        "__libc",
    ];
    PREFIXES.iter().any(|p| func.starts_with(p))
        || matches!(func, "rust_begin_unwind" | "main" | "_start" | "<unknown>")
}

/// `app::run::h1a2b3c4d5e6f708` -> `app::run`.
fn strip_rust_hash(func: &str) -> &str {
    match func.rsplit_once("::h") {
        Some((f, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => f,
        _ => func,
    }
}
