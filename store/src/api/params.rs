//! Request plumbing shared by the APIs: parameters from the query string and form bodies,
//! bounded (and gunzipped) bodies, and the time formats Loki and Prometheus clients send.

use std::io::Read;

use axum::body::Body;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};

/// Largest request body accepted (after decompression too).
pub(crate) const MAX_BODY_BYTES: usize = 16 << 20;

/// Parameters from the URL and, for form POSTs, the body; repeatable names keep every value.
#[derive(Debug, Default, Clone)]
pub(crate) struct Params(pub(crate) Vec<(String, String)>);

impl Params {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    pub(crate) fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub(crate) fn required(&self, name: &str) -> Result<&str, String> {
        self.get(name)
            .ok_or_else(|| format!("missing parameter {name:?}"))
    }
}

impl<S: Send + Sync> FromRequest<S> for Params {
    type Rejection = (StatusCode, String);

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let mut pairs: Vec<(String, String)> = req
            .uri()
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if is_form {
            let (parts, body) = req.into_parts();
            let body = read_body(&parts.headers, body).await?;
            pairs.extend(form_urlencoded::parse(&body).into_owned());
        }
        Ok(Params(pairs))
    }
}

fn too_large() -> (StatusCode, String) {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body is over the {MAX_BODY_BYTES}-byte limit; send smaller batches"),
    )
}

/// Reads a request body of at most [`MAX_BODY_BYTES`], decompressing `Content-Encoding: gzip`,
/// `deflate` (zlib) and `br`.
pub(crate) async fn read_body(headers: &HeaderMap, body: Body) -> Result<Vec<u8>, (StatusCode, String)> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| too_large())?;
    match headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        None | Some("identity") => Ok(bytes.to_vec()),
        Some("gzip") => inflate(flate2::read::GzDecoder::new(&bytes[..]), "gzip"),
        Some("deflate") => inflate(flate2::read::ZlibDecoder::new(&bytes[..]), "deflate"),
        Some("br") => inflate(brotli_decompressor::Decompressor::new(&bytes[..], 4096), "brotli"),
        Some(other) => Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Encoding {other:?}; use gzip, deflate, br or none"),
        )),
    }
}

/// Decompresses a body, refusing one that grows past [`MAX_BODY_BYTES`].
fn inflate(reader: impl Read, what: &str) -> Result<Vec<u8>, (StatusCode, String)> {
    let mut out = Vec::new();
    reader
        .take(MAX_BODY_BYTES as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("invalid {what} body: {e}")))?;
    if out.len() > MAX_BODY_BYTES {
        return Err(too_large());
    }
    Ok(out)
}

pub(crate) fn now_ns() -> i64 {
    chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX)
}

/// A time as Loki and Prometheus clients send it, by Loki's rule: an integer of up to 10
/// digits is Unix seconds, a longer one nanoseconds; with a decimal point, float seconds; or
/// RFC 3339.
pub(crate) fn parse_time_ns(s: &str) -> Result<i64, String> {
    if let Ok(i) = s.parse::<i64>() {
        let digits = s.trim_start_matches(['-', '+']).len();
        return Ok(if digits <= 10 {
            i.saturating_mul(1_000_000_000)
        } else {
            i
        });
    }
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() {
            return Ok((f * 1e9).round() as i64);
        }
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .and_then(|t| t.timestamp_nanos_opt())
        .ok_or_else(|| format!("invalid time {s:?}: use Unix seconds, nanoseconds or RFC 3339"))
}

/// A duration as float seconds ("15", "0.5") or with units ("15000ms", "1m", "1h30m", "1d").
pub(crate) fn parse_duration_ns(s: &str) -> Result<i64, String> {
    if let Ok(f) = s.parse::<f64>() {
        if f.is_finite() && f > 0.0 {
            return Ok((f * 1e9).round() as i64);
        }
    }
    humantime::parse_duration(s)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("invalid duration {s:?}: use seconds (\"15\") or units (\"15s\", \"1m\")"))
}

/// A sample value the way Prometheus and Loki print it.
pub(crate) use crate::tsdb::labels::format_float as fmt_value;

pub(crate) use obs_otlp_prom::with_float_str as with_value_str;

/// Seconds as a JSON number (integral when whole, like Prometheus's `1.7e9` vs `1.7e9+0.5`).
pub(crate) fn secs(ns: i64) -> serde_json::Value {
    if ns % 1_000_000_000 == 0 {
        serde_json::Value::from(ns / 1_000_000_000)
    } else {
        serde_json::Value::from(ns as f64 / 1e9)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_every_client_format() {
        assert_eq!(parse_time_ns("4").unwrap(), 4_000_000_000);
        assert_eq!(parse_time_ns("1700000000").unwrap(), 1_700_000_000_000_000_000);
        assert_eq!(
            parse_time_ns("4000000000").unwrap(),
            4_000_000_000_000_000_000,
            "10 digits: seconds"
        );
        assert_eq!(parse_time_ns("40000000000").unwrap(), 40_000_000_000);
        assert_eq!(
            parse_time_ns("1700000000000000000").unwrap(),
            1_700_000_000_000_000_000
        );
        assert_eq!(parse_time_ns("1700000000.5").unwrap(), 1_700_000_000_500_000_000);
        assert_eq!(
            parse_time_ns("2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000_000_000_000
        );
        assert!(parse_time_ns("yesterday").is_err());
    }

    #[test]
    fn durations_and_values() {
        assert_eq!(parse_duration_ns("15000ms").unwrap(), 15_000_000_000);
        assert_eq!(parse_duration_ns("15").unwrap(), 15_000_000_000);
        assert_eq!(parse_duration_ns("1m").unwrap(), 60_000_000_000);
        assert!(parse_duration_ns("0").is_err());
        assert_eq!(fmt_value(2.0), "2");
        assert_eq!(fmt_value(0.25), "0.25");
        assert_eq!(fmt_value(f64::INFINITY), "+Inf");
        assert_eq!(secs(4_000_000_000), serde_json::json!(4));
        assert_eq!(secs(4_500_000_000), serde_json::json!(4.5));
    }
}
