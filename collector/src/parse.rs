//! What the collector reads out of a log line: severity, and with `parse = "json"` or
//! `"logfmt"` its fields as OTLP attributes. The line itself is always kept as the body.

use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};

/// OTLP severity numbers for the level names logs use.
pub(crate) fn severity_of(level: &str) -> Option<(i32, &'static str)> {
    severity_of_bytes(level.as_bytes())
}

/// [`severity_of`] on bytes, case-insensitive, without allocating (it runs on every line).
fn severity_of_bytes(level: &[u8]) -> Option<(i32, &'static str)> {
    let level = level.trim_ascii();
    let mut buf = [0u8; 11];
    let l = buf.get_mut(..level.len())?;
    l.copy_from_slice(level);
    l.make_ascii_lowercase();
    Some(match &*l {
        b"trace" => (1, "TRACE"),
        b"debug" | b"dbg" => (5, "DEBUG"),
        b"info" | b"information" | b"notice" => (9, "INFO"),
        b"warn" | b"warning" => (13, "WARN"),
        b"error" | b"err" | b"eror" => (17, "ERROR"),
        b"fatal" | b"crit" | b"critical" | b"panic" | b"alert" | b"emerg" => (21, "FATAL"),
        _ => return None,
    })
}

/// Finds a level in the first 256 bytes, in one pass over its words (runs of ASCII letters;
/// this runs on every line). The value of a `level`, `lvl` or `severity` key wins
/// (`level=x`, `"level":"x"`, `"level": "x"`, `log_level=x`); else the first upper-case word
/// that names a level (`ERROR`); else the first bracketed one (`[warn]`, `[ notice ]`).
pub(crate) fn detect_severity(line: &[u8]) -> Option<(i32, &'static str)> {
    let head = &line[..line.len().min(256)];
    let (mut upper, mut bracketed) = (None, None);
    let mut i = 0;
    while i < head.len() {
        let first = head[i];
        if !first.is_ascii_alphabetic() {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        while i < head.len() && head[i].is_ascii_alphabetic() {
            i += 1;
        }
        let word = &head[start..i];
        // Cheap tests on the first byte and length first: most words are none of these.
        if first.is_ascii_lowercase() {
            if matches!(word, b"level" | b"lvl" | b"severity") {
                if let Some(found) = value_after_key(&head[i..]).and_then(severity_of_bytes) {
                    return Some(found);
                }
                continue;
            }
        } else if upper.is_none() && word.len() >= 4 && word.iter().all(u8::is_ascii_uppercase) {
            upper = severity_of_bytes(word);
            continue;
        }
        if bracketed.is_none()
            && start > 0
            && matches!(head[start - 1], b'[' | b' ')
            && head[..start].trim_ascii_end().ends_with(b"[")
            && head[i..].trim_ascii_start().starts_with(b"]")
        {
            bracketed = severity_of_bytes(word);
        }
    }
    upper.or(bracketed)
}

/// The word a key's value starts with: after `=` or `:`, spaces and one quote (the key's
/// own closing quote may come first, as in JSON).
fn value_after_key(rest: &[u8]) -> Option<&[u8]> {
    let rest = rest.strip_prefix(b"\"").unwrap_or(rest);
    let rest = rest.strip_prefix(b"=").or_else(|| rest.strip_prefix(b":"))?;
    let rest = rest.trim_ascii_start();
    let rest = rest.strip_prefix(b"\"").unwrap_or(rest);
    let word = rest.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    Some(&rest[..word])
}

fn string_value(s: String) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(s)),
    })
}

fn json_value(v: serde_json::Value) -> Option<AnyValue> {
    use serde_json::Value;
    let value = match v {
        Value::Null => return None,
        Value::Bool(b) => any_value::Value::BoolValue(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => any_value::Value::IntValue(i),
            None => any_value::Value::DoubleValue(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => any_value::Value::StringValue(s),
        other => any_value::Value::StringValue(other.to_string()),
    };
    Some(AnyValue { value: Some(value) })
}

/// A JSON object line's top-level fields. Not an object: no attributes (the line is kept).
pub(crate) fn json_fields(line: &[u8]) -> Vec<KeyValue> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice(line) else {
        return Vec::new();
    };
    map.into_iter()
        .map(|(key, v)| KeyValue {
            key,
            value: json_value(v),
            ..Default::default()
        })
        .filter(|kv| kv.value.is_some())
        .collect()
}

/// `key=value key2="quoted \" value" flag` pairs; bare keys get an empty value.
pub(crate) fn logfmt_fields(line: &[u8]) -> Vec<KeyValue> {
    let text = String::from_utf8_lossy(line);
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let key: String = std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace() && *c != '=')).collect();
        if key.is_empty() {
            if chars.next().is_none() {
                return out;
            }
            continue;
        }
        let mut value = String::new();
        if chars.next_if_eq(&'=').is_some() {
            if chars.next_if_eq(&'"').is_some() {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => value.extend(chars.next()),
                        '"' => break,
                        c => value.push(c),
                    }
                }
            } else {
                value.extend(std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())));
            }
        }
        out.push(KeyValue {
            key,
            value: string_value(value),
            ..Default::default()
        });
    }
}

/// The severity a parsed record names in a `level`, `severity` or `lvl` field.
pub(crate) fn severity_from_fields(fields: &[KeyValue]) -> Option<(i32, &'static str)> {
    fields
        .iter()
        .filter(|kv| matches!(kv.key.as_str(), "level" | "severity" | "lvl" | "log.level"))
        .find_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => severity_of(s),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(kv: &KeyValue) -> String {
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(any_value::Value::StringValue(s)) => s.clone(),
            Some(any_value::Value::IntValue(i)) => i.to_string(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn severity_is_found_in_common_shapes() {
        assert_eq!(detect_severity(b"ts=1 level=warn msg=x").unwrap().1, "WARN");
        assert_eq!(
            detect_severity(br#"{"level":"error","msg":"x"}"#).unwrap().1,
            "ERROR"
        );
        assert_eq!(
            detect_severity(b"2024-01-01 12:00:00 ERROR db down").unwrap().1,
            "ERROR"
        );
        assert_eq!(detect_severity(b"[notice] started").unwrap().1, "INFO");
        assert_eq!(detect_severity(b"GET /error 200"), None, "a path is not a level");
        assert_eq!(detect_severity(br#"{"level": "Warning"}"#).unwrap().1, "WARN");
        assert_eq!(detect_severity(b"level=extraordinarily x"), None);
        assert_eq!(detect_severity(b"level=\"error\" x").unwrap().1, "ERROR");
        assert_eq!(detect_severity(b"log_level=debug").unwrap().1, "DEBUG");
        assert_eq!(detect_severity(b"loglevel=debug"), None, "not a key of its own");
        assert_eq!(detect_severity(b"severity: crit").unwrap().1, "FATAL");
        assert_eq!(detect_severity(b"[ warn ] disk").unwrap().1, "WARN");
        assert_eq!(
            detect_severity(b"[warn x] disk"),
            None,
            "the whole bracket must be a level"
        );
        // A key beats an upper-case word, which beats a bracketed one, wherever they stand.
        assert_eq!(detect_severity(b"[info] ERROR in lvl=debug").unwrap().1, "DEBUG");
        assert_eq!(detect_severity(b"[info] ERROR x").unwrap().1, "ERROR");
        assert_eq!(detect_severity(b"level=bogus WARN").unwrap().1, "WARN");
        // Only the first 256 bytes are looked at.
        let mut long = vec![b'x'; 300];
        long.extend_from_slice(b" ERROR");
        assert_eq!(detect_severity(&long), None);
    }

    #[test]
    fn logfmt_and_json_fields_become_attributes() {
        let kv = logfmt_fields(br#"level=info msg="hello \"world\"" dur=3ms flag"#);
        let pairs: Vec<(String, String)> = kv.iter().map(|k| (k.key.clone(), s(k))).collect();
        assert_eq!(
            pairs,
            [
                ("level".into(), "info".into()),
                ("msg".into(), "hello \"world\"".into()),
                ("dur".into(), "3ms".into()),
                ("flag".into(), String::new())
            ]
        );
        assert_eq!(severity_from_fields(&kv).unwrap().1, "INFO");
        let kv = json_fields(br#"{"status":200,"path":"/x","nested":{"a":1},"none":null}"#);
        let pairs: Vec<(String, String)> = kv.iter().map(|k| (k.key.clone(), s(k))).collect();
        assert_eq!(
            pairs,
            [
                ("nested".into(), r#"{"a":1}"#.into()),
                ("path".into(), "/x".into()),
                ("status".into(), "200".into())
            ]
        );
        assert!(json_fields(b"not json").is_empty());
    }
}
