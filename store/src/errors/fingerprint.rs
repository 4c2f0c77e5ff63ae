//! Grouping: which occurrences are the same issue.
//!
//! Fingerprint version 1, over the service and then, in order of preference:
//! - an SDK-supplied fingerprint (Sentry's `fingerprint`, `{{ default }}` standing for the
//!   default components below);
//! - the exception type, the types that caused it, and the top [`TOP_FRAMES`] in-app frames
//!   (module or path + function; never line numbers). Library frames (site-packages,
//!   node_modules, vendor, the cargo registry, the JDK...) count only when no frame is in-app;
//! - without frames: the type and the message's first line with its variable parts replaced
//!   ([`parameterize`], after Sentry's parameterisation).
//!
//! The components are hashed with BLAKE3; the issue id is the first 12 hex digits. Each issue
//! stores the version that made it: a later version must keep finding version-1 issues (by
//! computing their version-1 id as well), never regroup them.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

/// The grouping algorithm's version, stored with each issue.
pub(crate) const VERSION: u8 = 1;
/// In-app frames that make the fingerprint.
pub(crate) const TOP_FRAMES: usize = 5;
/// Most bytes of a message's first line that grouping reads.
const MAX_HEAD: usize = 4096;
/// Longest title kept, in bytes.
const MAX_TITLE: usize = 200;

/// One stack frame.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Frame {
    /// Module, class or file path.
    #[serde(rename = "m")]
    pub module: String,
    #[serde(rename = "f", default, skip_serializing_if = "String::is_empty")]
    pub function: String,
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(rename = "a")]
    pub in_app: bool,
}

impl Frame {
    /// `module in function` (or the module alone), as culprits read.
    pub(crate) fn label(&self) -> String {
        if self.function.is_empty() {
            self.module.clone()
        } else if self.module.is_empty() {
            self.function.clone()
        } else {
            format!("{} in {}", self.module, self.function)
        }
    }
}

/// What grouping looks at.
pub(crate) struct Grouping<'a> {
    pub service: &'a str,
    pub type_name: &'a str,
    pub message: &'a str,
    /// Innermost first.
    pub frames: &'a [Frame],
    pub causes: &'a [String],
    pub sdk_fingerprint: Option<&'a [String]>,
}

/// The frames grouping and culprits use: in-app ones, or all when none is in-app.
pub(crate) fn top_frames(frames: &[Frame]) -> Vec<&Frame> {
    let in_app: Vec<&Frame> = frames.iter().filter(|f| f.in_app).take(TOP_FRAMES).collect();
    if in_app.is_empty() {
        frames.iter().take(TOP_FRAMES).collect()
    } else {
        in_app
    }
}

/// The issue id of `g` under the current version.
pub(crate) fn issue_id(g: &Grouping) -> String {
    let default = || {
        let mut parts = vec![g.type_name.to_string()];
        parts.extend(g.causes.iter().cloned());
        let frames = top_frames(g.frames);
        if frames.is_empty() {
            parts.push(parameterize(head(g.message)));
        } else {
            parts.extend(frames.iter().map(|f| format!("{}:{}", f.module, f.function)));
        }
        parts
    };
    let parts = match g.sdk_fingerprint {
        Some(fp) if !fp.is_empty() => fp
            .iter()
            .flat_map(|p| {
                if p == "{{ default }}" || p == "{{default}}" {
                    default()
                } else {
                    vec![p.clone()]
                }
            })
            .collect(),
        _ => default(),
    };
    let mut h = blake3::Hasher::new();
    h.update(&[VERSION]);
    for part in std::iter::once(g.service).chain(parts.iter().map(String::as_str)) {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().to_hex()[..12].to_string()
}

/// `Type: parameterised first line of the message`, at most [`MAX_TITLE`] bytes.
pub(crate) fn title(type_name: &str, message: &str) -> String {
    let msg = parameterize(head(message));
    let t = match (type_name.is_empty(), msg.is_empty()) {
        (true, _) => msg,
        (false, true) => type_name.to_string(),
        (false, false) => format!("{type_name}: {msg}"),
    };
    truncate(&t, MAX_TITLE).to_string()
}

/// The top frame that grouping uses, as `module in function`.
pub(crate) fn culprit(frames: &[Frame]) -> String {
    top_frames(frames).first().map(|f| f.label()).unwrap_or_default()
}

/// The part of a message grouping reads: its first line, at most [`MAX_HEAD`] bytes (a line
/// of megabytes costs no more than that).
fn head(message: &str) -> &str {
    truncate(first_line(message), MAX_HEAD)
}

pub(crate) fn first_line(s: &str) -> &str {
    s.trim_start().lines().next().unwrap_or("").trim_end()
}

pub(crate) use crate::model::truncate;

static PARAMS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?P<uuid>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)",
        r"|(?P<email>\b[\w.+-]+@[\w-]+\.[\w.-]+\b)",
        r"|(?P<url>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\x22<>]+)",
        r"|(?P<date>\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b|\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\b)",
        r"|(?P<ip>\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b|\b(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F]{1,4}\b)",
        r"|(?P<quoted>'[^'\n]*'|\x22[^\x22\n]*\x22)",
        r"|(?P<path>(?:\b[A-Za-z]:)?(?:[/\\][\w.@~-]+){2,}[/\\]?)",
        r"|(?P<hex>\b0[xX][0-9a-fA-F]+\b|\b[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b|\b[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*[0-9][0-9a-fA-F]*\b)",
        r"|(?P<num>-?\b\d+(?:\.\d+)?)",
    ))
    .expect("the parameter regex compiles")
});

/// Replaces a message's variable parts (UUIDs, e-mails, URLs, dates and times, IPs, quoted
/// strings, paths, hex, numbers) with `<uuid>`, `<email>`, ... so that messages that differ
/// only in them group together. Hex needs both a digit and a letter `a`-`f` (else it is a
/// word or a number).
pub(crate) fn parameterize(s: &str) -> String {
    PARAMS
        .replace_all(s, |caps: &regex::Captures| {
            const NAMES: [&str; 9] = [
                "uuid", "email", "url", "date", "ip", "quoted", "path", "hex", "num",
            ];
            let name = NAMES.iter().find(|n| caps.name(n).is_some()).unwrap_or(&"num");
            let name = if *name == "quoted" { "quoted_str" } else { name };
            format!("<{name}>")
        })
        .into_owned()
}
