//! The store's own record types: what ingest decodes into, what the WAL holds (postcard), and
//! what the indexes take. Every ingest protocol maps into these.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Stream labels, sorted by name.
pub(crate) type Labels = BTreeMap<String, String>;

/// Log lines that share one label set (one Loki stream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LogStream {
    pub labels: Labels,
    pub entries: Vec<LogEntry>,
}

/// One log line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LogEntry {
    /// Unix time in nanoseconds.
    pub ts_ns: i64,
    pub line: String,
    /// Structured metadata (OTLP attributes, Loki structured metadata), in input order.
    pub metadata: Vec<(String, String)>,
}

/// A batch of log streams: one WAL record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LogBatch {
    pub streams: Vec<LogStream>,
}

impl LogBatch {
    pub(crate) fn entry_count(&self) -> usize {
        self.streams.iter().map(|s| s.entries.len()).sum()
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("log batches always serialize")
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<LogBatch, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// One span, as the WAL and the trace index keep it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SpanRecord {
    /// Lowercase hex, 32 digits.
    pub trace_id: String,
    /// Lowercase hex, 16 digits.
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    pub service: String,
    /// OTLP `SpanKind` (0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer).
    pub kind: i32,
    /// OTLP status code (0 unset, 1 ok, 2 error).
    pub status: i32,
    pub start_ns: i64,
    pub end_ns: i64,
    /// The span in OTLP form: an encoded `ResourceSpans` holding its resource, scope and this
    /// one span, so traces are returned exactly as they were sent.
    pub otlp: Vec<u8>,
}

/// A batch of spans: one WAL record.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SpanBatch {
    pub spans: Vec<SpanRecord>,
}

impl SpanBatch {
    pub(crate) fn encode(&self) -> Vec<u8> {
        postcard::to_stdvec(self).expect("span batches always serialize")
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<SpanBatch, postcard::Error> {
        postcard::from_bytes(bytes)
    }
}

/// `s` cut to at most `max` bytes, at a char boundary.
pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Turns any string into a valid Prometheus/Loki label name: `[a-zA-Z_][a-zA-Z0-9_]*`, the way
/// Loki 3 maps OTLP attribute names (`service.name` → `service_name`).
pub(crate) use obs_otlp_prom::label_name as sanitize_label_name;

/// Adds `detected_level` to a line whose stream has no `level` label and whose metadata has no
/// level, as Loki 3 does. Done when lines are read rather than stored: it is a function of the
/// line, and storing it cost every line of Loki push two strings and 30 bytes. (Lines stored
/// before 2026-12 hold it already, which this respects.)
pub(crate) fn add_detected_level(labels: &Labels, line: &str, metadata: &mut Vec<(String, String)>) {
    if !labels.contains_key("level")
        && !metadata
            .iter()
            .any(|(k, _)| k == "level" || k == "detected_level")
    {
        let level = detect_level(line);
        metadata.push(("detected_level".into(), level.into()));
    }
}

/// The field names a level hides behind, each with the separators that may follow it, as
/// searchers built once (this runs on every line that arrives without a level).
static LEVEL_KEYS: std::sync::LazyLock<Vec<memchr::memmem::Finder<'static>>> =
    std::sync::LazyLock::new(|| {
        ["level", "lvl", "severity"]
            .into_iter()
            .flat_map(|key| ["=", "\":\"", "\": \""].map(|sep| format!("{key}{sep}")))
            .map(|k| memchr::memmem::Finder::new(k.as_bytes()).into_owned())
            .collect()
    });

/// Guesses a level from a line that carries none, as Loki's `detected_level` does: a JSON or
/// logfmt `level`/`severity` field in the first 256 bytes first, then the most severe
/// well-known word there. Case-insensitive, without allocating.
pub(crate) fn detect_level(line: &str) -> &'static str {
    let mut buf = [0u8; 256];
    let n = line.len().min(buf.len());
    buf[..n].copy_from_slice(&line.as_bytes()[..n]);
    let head = &mut buf[..n];
    head.make_ascii_lowercase();
    let head = &*head;
    for key in LEVEL_KEYS.iter() {
        if let Some(at) = key.find(head) {
            let mut rest = &head[at + key.needle().len()..];
            while let Some(r) = rest.strip_prefix(b"\"") {
                rest = r;
            }
            let word = rest.iter().take_while(|b| b.is_ascii_alphanumeric()).count();
            if let Some(level) = level_word(&rest[..word]) {
                return level;
            }
        }
    }
    // Most severe first: a line that says both "info" and "error" is an error.
    let mut best: Option<(u8, &'static str)> = None;
    for word in head.split(|b| !b.is_ascii_alphanumeric()) {
        let found = match word {
            b"panic" | b"fatal" | b"critical" | b"crit" => (0, "critical"),
            b"error" | b"err" | b"exception" => (1, "error"),
            b"warn" | b"warning" => (2, "warn"),
            b"debug" => (3, "debug"),
            b"trace" => (4, "trace"),
            b"info" => (5, "info"),
            _ => continue,
        };
        if best.is_none_or(|(rank, _)| found.0 < rank) {
            best = Some(found);
        }
    }
    best.map_or("unknown", |(_, level)| level)
}

fn level_word(word: &[u8]) -> Option<&'static str> {
    Some(match word {
        b"trace" => "trace",
        b"debug" | b"dbug" => "debug",
        b"info" | b"information" | b"notice" => "info",
        b"warn" | b"warning" => "warn",
        b"error" | b"err" | b"eror" => "error",
        b"critical" | b"crit" | b"fatal" | b"panic" | b"emerg" | b"alert" => "critical",
        _ => return None,
    })
}

/// Level from an OTLP severity number (1–24), as Loki maps it.
pub(crate) fn level_from_severity(number: i32, text: &str) -> &'static str {
    match number {
        1..=4 => "trace",
        5..=8 => "debug",
        9..=12 => "info",
        13..=16 => "warn",
        17..=20 => "error",
        21..=24 => "critical",
        _ => level_word(text.to_ascii_lowercase().as_bytes()).unwrap_or("unknown"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_names_are_sanitized_like_loki() {
        assert_eq!(sanitize_label_name("service.name"), "service_name");
        assert_eq!(sanitize_label_name("k8s.pod.name"), "k8s_pod_name");
        assert_eq!(sanitize_label_name("9lives"), "_9lives");
        assert_eq!(sanitize_label_name(""), "_");
    }

    #[test]
    fn levels_are_detected_from_fields_then_words() {
        assert_eq!(detect_level("ts=1 level=warn msg=\"disk error\""), "warn");
        assert_eq!(detect_level(r#"{"severity": "ERROR", "msg": "x"}"#), "error");
        assert_eq!(detect_level("connection refused: ERROR 42"), "error");
        assert_eq!(detect_level("all good"), "unknown");
        assert_eq!(detect_level("info: retrying after error"), "error");
        assert_eq!(detect_level(r#"{"msg":"x","level":"debug"}"#), "debug");
        assert_eq!(detect_level("level=bogus but a WARNING"), "warn");
        let long = format!("{} error", "x".repeat(300));
        assert_eq!(
            detect_level(&long),
            "unknown",
            "only the first 256 bytes are read"
        );
        assert_eq!(level_from_severity(9, ""), "info");
        assert_eq!(level_from_severity(0, "Warning"), "warn");
    }

    #[test]
    fn batches_round_trip_through_postcard() {
        let batch = LogBatch {
            streams: vec![LogStream {
                labels: [("job".to_string(), "x".to_string())].into(),
                entries: vec![LogEntry {
                    ts_ns: 1,
                    line: "hi".into(),
                    metadata: vec![("trace_id".into(), "ab".into())],
                }],
            }],
        };
        assert_eq!(LogBatch::decode(&batch.encode()).unwrap(), batch);
        assert!(LogBatch::decode(b"\xff\xff\xff").is_err());
    }
}
