//! From wire formats to the store's model: OTLP logs (protobuf or JSON, over gRPC or HTTP) and
//! Loki push (JSON, or protobuf + snappy).
//!
//! OTLP resource attributes become stream labels the way Loki 3 maps them: names sanitized
//! (`service.name` → `service_name`), and only the attributes Loki 3 indexes by default (plus
//! `host.name`) become labels; the other resource attributes, the record's attributes,
//! `trace_id`, `span_id` and `severity_text` become structured metadata. `level` is a stream
//! label derived from the severity. A stream without `service.name` gets
//! `service_name="unknown_service"`, as in Loki.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
#[cfg(test)]
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};

use crate::model::{
    detect_level, level_from_severity, sanitize_label_name, Labels, LogBatch, LogEntry, LogStream, SpanBatch,
    SpanRecord,
};

/// Why records older than the retention period are in an OTLP partial success.
pub(crate) const TOO_OLD: &str = "records older than the retention period were not stored";

/// The OTLP answer to a log push refused whole by an ingest limit: a partial success that
/// rejects every record, with the reason.
pub(crate) fn refused_logs(lines: usize, reason: String) -> ExportLogsServiceResponse {
    ExportLogsServiceResponse {
        partial_success: Some(ExportLogsPartialSuccess {
            rejected_log_records: lines as i64,
            error_message: reason,
        }),
    }
}

/// Resource attributes that become stream labels (Loki 3's defaults, plus `host.name`).
pub(crate) const INDEXED_RESOURCE_ATTRIBUTES: &[&str] = &[
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "cloud.region",
    "cloud.availability_zone",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "container.name",
    "k8s.replicaset.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.cronjob.name",
    "k8s.job.name",
    "host.name",
];

/// A resource attribute naming (comma-separated) more resource attributes to index as stream
/// labels, the way Loki's per-tenant `otlp_config` does server-side. obs's collector sets it
/// for a file's `filename` and the labels the user configured; any OTLP client may.
pub(crate) const INDEX_LABELS_ATTRIBUTE: &str = "obs.index_labels";

/// An OTLP attribute value as a string (arrays and maps as JSON, bytes as hex).
pub(crate) fn any_value_string(v: &AnyValue) -> String {
    obs_otlp_prom::attribute_value(Some(v))
}

/// A string-valued OTLP attribute (tests build requests with it).
#[cfg(test)]
pub(crate) fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

pub(crate) use obs_otlp_prom::hex;

pub(crate) fn attr(kv: &KeyValue) -> String {
    kv.value.as_ref().map(any_value_string).unwrap_or_default()
}

/// Maps an OTLP logs request to log streams. `now_ns` stands in for records with no time.
pub(crate) fn otlp_logs(req: &ExportLogsServiceRequest, now_ns: i64) -> LogBatch {
    let mut streams: BTreeMap<Labels, Vec<LogEntry>> = BTreeMap::new();
    for rl in &req.resource_logs {
        let mut resource_labels = Labels::new();
        let mut resource_meta = Vec::new();
        let attributes = rl.resource.iter().flat_map(|r| &r.attributes);
        let extra = attributes
            .clone()
            .find(|kv| kv.key == INDEX_LABELS_ATTRIBUTE)
            .map(attr);
        let extra: Vec<&str> = extra
            .as_deref()
            .map_or_else(Vec::new, |e| e.split(',').map(str::trim).collect());
        for kv in attributes {
            if kv.key == INDEX_LABELS_ATTRIBUTE {
                continue;
            }
            if INDEXED_RESOURCE_ATTRIBUTES.contains(&kv.key.as_str()) || extra.contains(&kv.key.as_str()) {
                resource_labels.insert(sanitize_label_name(&kv.key), attr(kv));
            } else {
                resource_meta.push((sanitize_label_name(&kv.key), attr(kv)));
            }
        }
        resource_labels
            .entry("service_name".into())
            .or_insert_with(|| "unknown_service".into());
        for sl in &rl.scope_logs {
            for rec in &sl.log_records {
                let line = rec.body.as_ref().map(any_value_string).unwrap_or_default();
                let level = match level_from_severity(rec.severity_number, &rec.severity_text) {
                    "unknown" => detect_level(&line),
                    l => l,
                };
                let mut labels = resource_labels.clone();
                labels.insert("level".into(), level.into());
                let mut metadata = resource_meta.clone();
                for kv in &rec.attributes {
                    metadata.push((sanitize_label_name(&kv.key), attr(kv)));
                }
                if !rec.trace_id.is_empty() {
                    metadata.push(("trace_id".into(), hex(&rec.trace_id)));
                }
                if !rec.span_id.is_empty() {
                    metadata.push(("span_id".into(), hex(&rec.span_id)));
                }
                if !rec.severity_text.is_empty() {
                    metadata.push(("severity_text".into(), rec.severity_text.clone()));
                }
                if let Some(scope) = &sl.scope {
                    if !scope.name.is_empty() {
                        metadata.push(("scope_name".into(), scope.name.clone()));
                    }
                }
                let ts = if rec.time_unix_nano != 0 {
                    rec.time_unix_nano
                } else {
                    rec.observed_time_unix_nano
                };
                let ts_ns = if ts == 0 {
                    now_ns
                } else {
                    i64::try_from(ts).unwrap_or(i64::MAX)
                };
                streams.entry(labels).or_default().push(LogEntry {
                    ts_ns,
                    line,
                    metadata,
                });
            }
        }
    }
    LogBatch {
        streams: streams
            .into_iter()
            .map(|(labels, entries)| LogStream { labels, entries })
            .collect(),
    }
}

/// Splits an OTLP traces request into one record per span. A span with a malformed id is an
/// error naming it: the whole request is rejected, nothing is stored.
pub(crate) fn otlp_traces(req: &ExportTraceServiceRequest) -> Result<SpanBatch, String> {
    let mut spans = Vec::new();
    for (ri, rs) in req.resource_spans.iter().enumerate() {
        let service = rs
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .map(attr)
            .unwrap_or_else(|| "unknown_service".into());
        for (si, ss) in rs.scope_spans.iter().enumerate() {
            for (i, span) in ss.spans.iter().enumerate() {
                let at = || format!("resourceSpans[{ri}].scopeSpans[{si}].spans[{i}]");
                if span.trace_id.len() != 16 || span.trace_id.iter().all(|b| *b == 0) {
                    return Err(format!("{}: traceId must be 16 non-zero bytes", at()));
                }
                if span.span_id.len() != 8 {
                    return Err(format!("{}: spanId must be 8 bytes", at()));
                }
                if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
                    return Err(format!("{}: parentSpanId must be empty or 8 bytes", at()));
                }
                spans.push(SpanRecord {
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                    name: span.name.clone(),
                    service: service.clone(),
                    kind: span.kind,
                    status: span.status.as_ref().map_or(0, |s| s.code),
                    start_ns: i64::try_from(span.start_time_unix_nano).unwrap_or(i64::MAX),
                    end_ns: i64::try_from(span.end_time_unix_nano.max(span.start_time_unix_nano))
                        .unwrap_or(i64::MAX),
                    otlp: one_span(rs, ss, span),
                });
            }
        }
    }
    Ok(SpanBatch { spans })
}

/// The encoded `ResourceSpans` of the one span `span` of `rs` and `ss`: the bytes prost writes
/// for that message, written from the request's parts (copying the resource, scope and span
/// into a message of their own was most of the span path's allocations).
fn one_span(rs: &ResourceSpans, ss: &ScopeSpans, span: &Span) -> Vec<u8> {
    use prost::Message;
    // Fields are written in tag order; empty strings and absent messages are left out.
    let scope_spans = ss.scope.as_ref().map_or(0, |s| field_len(s.encoded_len()))
        + field_len(span.encoded_len())
        + string_len(&ss.schema_url);
    let total = rs.resource.as_ref().map_or(0, |r| field_len(r.encoded_len()))
        + field_len(scope_spans)
        + string_len(&rs.schema_url);
    let mut buf = Vec::with_capacity(total);
    if let Some(r) = &rs.resource {
        put_message(&mut buf, 1, r);
    }
    put_key_and_len(&mut buf, 2, scope_spans);
    if let Some(scope) = &ss.scope {
        put_message(&mut buf, 1, scope);
    }
    put_message(&mut buf, 2, span);
    put_string(&mut buf, 3, &ss.schema_url);
    put_string(&mut buf, 3, &rs.schema_url);
    buf
}

/// The bytes of a length-delimited field of `len` bytes (tags below 16 take one key byte).
fn field_len(len: usize) -> usize {
    1 + prost::length_delimiter_len(len) + len
}

fn string_len(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        field_len(s.len())
    }
}

/// Writes the key (wire type 2) and length of field `tag` (below 16).
fn put_key_and_len(buf: &mut Vec<u8>, tag: u8, len: usize) {
    debug_assert!(tag < 16);
    buf.push(tag << 3 | 2);
    prost::encode_length_delimiter(len, buf).expect("a Vec grows");
}

fn put_message(buf: &mut Vec<u8>, tag: u8, msg: &impl prost::Message) {
    put_key_and_len(buf, tag, msg.encoded_len());
    msg.encode(buf).expect("a Vec grows");
}

fn put_string(buf: &mut Vec<u8>, tag: u8, s: &str) {
    if !s.is_empty() {
        put_key_and_len(buf, tag, s.len());
        buf.extend_from_slice(s.as_bytes());
    }
}

/// Loki's push protobuf (`logproto.PushRequest`), declared by hand: Loki publishes no crate.
pub(crate) mod loki_proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub(crate) streams: Vec<StreamAdapter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct StreamAdapter {
        #[prost(string, tag = "1")]
        pub(crate) labels: String,
        #[prost(message, repeated, tag = "2")]
        pub(crate) entries: Vec<EntryAdapter>,
        #[prost(uint64, tag = "3")]
        pub(crate) hash: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub(crate) timestamp: Option<Timestamp>,
        #[prost(string, tag = "2")]
        pub(crate) line: String,
        #[prost(message, repeated, tag = "3")]
        pub(crate) structured_metadata: Vec<LabelPairAdapter>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub(crate) struct LabelPairAdapter {
        #[prost(string, tag = "1")]
        pub(crate) name: String,
        #[prost(string, tag = "2")]
        pub(crate) value: String,
    }

    #[derive(Clone, Copy, PartialEq, prost::Message)]
    pub(crate) struct Timestamp {
        #[prost(int64, tag = "1")]
        pub(crate) seconds: i64,
        #[prost(int32, tag = "2")]
        pub(crate) nanos: i32,
    }
}

/// Parses a Loki stream label string such as `{job="x", env="prod"}`.
pub(crate) fn parse_stream_labels(s: &str) -> Result<Labels, String> {
    let sel = crate::logql::guard_parser(|| logql::parse_selector(s))
        .map_err(|e| format!("invalid stream labels {s:?}: {e}"))?
        .map_err(|e| format!("invalid stream labels {s:?}: {}", e.message))?;
    let mut labels = Labels::new();
    for m in sel.matchers {
        if m.op != logql::MatchOp::Eq {
            return Err(format!("invalid stream labels {s:?}: only = is allowed"));
        }
        labels.insert(m.name, m.value);
    }
    if labels.is_empty() {
        return Err(format!(
            "invalid stream labels {s:?}: a stream needs at least one label"
        ));
    }
    Ok(labels)
}

fn check_labels(labels: &Labels) -> Result<(), String> {
    for name in labels.keys() {
        if sanitize_label_name(name) != *name || name.starts_with("__") {
            return Err(format!(
                "invalid label name {name:?}: use [a-zA-Z_][a-zA-Z0-9_]* and no leading __"
            ));
        }
    }
    Ok(())
}

/// Decompresses a snappy block body, refusing one that declares more than the body limit:
/// the header states the decompressed size, and fuzzing found a 20-byte body that asked
/// for gigabytes.
pub(crate) fn snappy_decompress(body: &[u8], what: &str) -> Result<Vec<u8>, String> {
    let len = snap::raw::decompress_len(body).map_err(|e| format!("{what} is not snappy-compressed: {e}"))?;
    if len > crate::api::params::MAX_BODY_BYTES {
        return Err(format!(
            "{what} decompresses to {len} bytes, over the {}-byte limit; send smaller batches",
            crate::api::params::MAX_BODY_BYTES
        ));
    }
    snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| format!("{what} is not snappy-compressed: {e}"))
}

/// Decodes a snappy-compressed protobuf Loki push body.
pub(crate) fn loki_push_proto(body: &[u8]) -> Result<LogBatch, String> {
    let raw = snappy_decompress(body, "push body")?;
    let req = <loki_proto::PushRequest as prost::Message>::decode(raw.as_slice())
        .map_err(|e| format!("push body is not a loki PushRequest: {e}"))?;
    let mut streams = Vec::with_capacity(req.streams.len());
    for s in req.streams {
        let labels = parse_stream_labels(&s.labels)?;
        check_labels(&labels)?;
        let entries = s
            .entries
            .into_iter()
            .map(|e| {
                let ts = e.timestamp.unwrap_or_default();
                LogEntry {
                    ts_ns: ts
                        .seconds
                        .saturating_mul(1_000_000_000)
                        .saturating_add(i64::from(ts.nanos)),
                    metadata: e
                        .structured_metadata
                        .into_iter()
                        .map(|p| (p.name, p.value))
                        .collect(),
                    line: e.line,
                }
            })
            .collect();
        streams.push(LogStream { labels, entries });
    }
    Ok(LogBatch { streams })
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonPush {
    streams: Vec<JsonStream>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonStream {
    stream: Labels,
    values: Vec<JsonEntry>,
}

/// `["<ns>", "line"]` or `["<ns>", "line", {"meta": "value"}]`, read in one pass (an
/// untagged enum buffered every entry and cost a tenth of the push path).
struct JsonEntry {
    ts: JsonTs,
    line: String,
    meta: BTreeMap<String, String>,
}

/// A timestamp string, parsed as it is read (a `String` per line cost an allocation and a
/// free); its text is kept only when it is not integer nanoseconds, for the error.
struct JsonTs(Result<i64, String>);

impl<'de> serde::Deserialize<'de> for JsonTs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<JsonTs, D::Error> {
        struct Ts;
        impl serde::de::Visitor<'_> for Ts {
            type Value = JsonTs;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string of integer nanoseconds")
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<JsonTs, E> {
                Ok(JsonTs(v.parse().map_err(|_| v.to_string())))
            }
        }
        d.deserialize_str(Ts)
    }
}

impl<'de> serde::Deserialize<'de> for JsonEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<JsonEntry, D::Error> {
        use serde::de::{Error, IgnoredAny, SeqAccess, Visitor};
        struct Entry;
        impl<'de> Visitor<'de> for Entry {
            type Value = JsonEntry;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(r#"["<ns>", "<line>"] or ["<ns>", "<line>", {"<name>": "<value>"}]"#)
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonEntry, A::Error> {
                let ts = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(0, &self))?;
                let line = seq
                    .next_element()?
                    .ok_or_else(|| A::Error::invalid_length(1, &self))?;
                let meta = seq.next_element()?.unwrap_or_default();
                if seq.next_element::<IgnoredAny>()?.is_some() {
                    return Err(A::Error::invalid_length(4, &self));
                }
                Ok(JsonEntry { ts, line, meta })
            }
        }
        d.deserialize_seq(Entry)
    }
}

/// Decodes a JSON Loki push body.
pub(crate) fn loki_push_json(body: &[u8]) -> Result<LogBatch, String> {
    let push: JsonPush = serde_json::from_slice(body).map_err(|e| format!("invalid push JSON: {e}"))?;
    let mut streams = Vec::with_capacity(push.streams.len());
    for (i, s) in push.streams.into_iter().enumerate() {
        check_labels(&s.stream)?;
        if s.stream.is_empty() {
            return Err(format!("streams[{i}]: a stream needs at least one label"));
        }
        let mut entries = Vec::with_capacity(s.values.len());
        for (j, v) in s.values.into_iter().enumerate() {
            let JsonEntry { ts, line, meta } = v;
            let ts_ns = ts.0.map_err(|ts| {
                format!("streams[{i}].values[{j}]: timestamp {ts:?} is not integer nanoseconds")
            })?;
            entries.push(LogEntry {
                ts_ns,
                line,
                metadata: meta.into_iter().collect(),
            });
        }
        streams.push(LogStream {
            labels: s.stream,
            entries,
        });
    }
    Ok(LogBatch { streams })
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    use super::*;

    #[test]
    fn otlp_resource_attributes_map_like_loki3() {
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", "api"),
                        kv("host.name", "n1"),
                        kv("process.pid", "42"),
                    ],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "app".into(),
                        ..Default::default()
                    }),
                    log_records: vec![LogRecord {
                        time_unix_nano: 5,
                        severity_number: 17,
                        severity_text: "ERROR".into(),
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("boom".into())),
                        }),
                        attributes: vec![kv("http.route", "/x")],
                        trace_id: vec![0xab; 16],
                        span_id: vec![0xcd; 8],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let batch = otlp_logs(&req, 99);
        assert_eq!(batch.streams.len(), 1);
        let s = &batch.streams[0];
        let labels: Vec<_> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(labels, ["host_name=n1", "level=error", "service_name=api"]);
        let e = &s.entries[0];
        assert_eq!((e.ts_ns, e.line.as_str()), (5, "boom"));
        let meta: BTreeMap<_, _> = e.metadata.iter().cloned().collect();
        assert_eq!(meta["process_pid"], "42");
        assert_eq!(meta["http_route"], "/x");
        assert_eq!(meta["trace_id"], "ab".repeat(16));
        assert_eq!(meta["span_id"], "cd".repeat(8));
    }

    #[test]
    fn obs_index_labels_names_more_resource_attributes_to_index() {
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![
                        kv("filename", "/var/log/app.log"),
                        kv("job", "app"),
                        kv("process.pid", "42"),
                        kv(INDEX_LABELS_ATTRIBUTE, "filename, job"),
                    ],
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue("hi".into())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let batch = otlp_logs(&req, 99);
        let s = &batch.streams[0];
        let labels: Vec<_> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        assert_eq!(
            labels,
            [
                "filename=/var/log/app.log",
                "job=app",
                "level=unknown",
                "service_name=unknown_service"
            ]
        );
        let meta: Vec<_> = s.entries[0].metadata.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(meta, ["process_pid"], "the naming attribute itself is not kept");
    }

    #[test]
    fn a_spans_record_is_what_prost_writes_for_its_own_resource_spans() {
        use opentelemetry_proto::tonic::trace::v1::Status;
        let span = |id: u8| Span {
            trace_id: vec![7; 16],
            span_id: vec![id; 8],
            name: format!("span {id}"),
            attributes: vec![KeyValue {
                key: "k".into(),
                value: Some(AnyValue {
                    value: Some(any_value::Value::IntValue(300)),
                }),
                ..Default::default()
            }],
            status: Some(Status {
                code: 2,
                message: "x".repeat(200),
            }),
            ..Default::default()
        };
        let full = ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("api".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lib".into(),
                    ..Default::default()
                }),
                spans: vec![span(1), span(2)],
                schema_url: "https://scope".into(),
            }],
            schema_url: "https://resource".into(),
        };
        // With every part, and with none of the optional ones.
        let bare = ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![span(3)],
                ..Default::default()
            }],
            ..Default::default()
        };
        for rs in [full, bare] {
            let batch = otlp_traces(&ExportTraceServiceRequest {
                resource_spans: vec![rs.clone()],
            })
            .unwrap();
            for (record, span) in batch.spans.iter().zip(&rs.scope_spans[0].spans) {
                let own = ResourceSpans {
                    resource: rs.resource.clone(),
                    scope_spans: vec![ScopeSpans {
                        spans: vec![span.clone()],
                        ..rs.scope_spans[0].clone()
                    }],
                    schema_url: rs.schema_url.clone(),
                };
                assert_eq!(record.otlp, prost::Message::encode_to_vec(&own));
            }
        }
    }

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff, 0x10]), "000fa5ff10");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn loki_json_push_with_and_without_metadata() {
        let body = br#"{"streams":[{"stream":{"job":"x"},"values":[["1","level=warn hi"],["2","b",{"trace_id":"t"}]]}]}"#;
        let batch = loki_push_json(body).unwrap();
        let e = &batch.streams[0].entries;
        assert!(
            e[0].metadata.is_empty(),
            "detected_level is added when lines are read"
        );
        assert_eq!(e[1].metadata[0], ("trace_id".to_string(), "t".to_string()));
        let err =
            loki_push_json(br#"{"streams":[{"stream":{"job":"x"},"values":[["soon","x"]]}]}"#).unwrap_err();
        assert!(
            err.contains(r#"streams[0].values[0]: timestamp "soon" is not integer nanoseconds"#),
            "{err}"
        );
        // An escaped timestamp is still read.
        let escaped = br#"{"streams":[{"stream":{"job":"x"},"values":[["1\u0030","x"]]}]}"#;
        assert_eq!(loki_push_json(escaped).unwrap().streams[0].entries[0].ts_ns, 10);
        assert!(loki_push_json(br#"{"streams":[{"stream":{"__x":"y"},"values":[]}]}"#).is_err());
        for bad in [
            r#"["1"]"#,
            r#"["1","a",{},"x"]"#,
            r#"[1,"a"]"#,
            r#"["1","a",{"k":1}]"#,
            r#""1 a""#,
        ] {
            let body = format!(r#"{{"streams":[{{"stream":{{"job":"x"}},"values":[{bad}]}}]}}"#);
            let err = loki_push_json(body.as_bytes()).unwrap_err();
            assert!(err.starts_with("invalid push JSON: "), "{bad}: {err}");
        }
        let err = loki_push_json(br#"{"streams":[{"stream":{"job":"x"},"values":[["1"]]}]}"#).unwrap_err();
        assert!(err.contains(r#"["<ns>", "<line>"]"#), "{err}");
    }

    #[test]
    fn loki_proto_push_round_trips() {
        use loki_proto::*;
        let req = PushRequest {
            streams: vec![StreamAdapter {
                labels: r#"{job="x", env="prod"}"#.into(),
                entries: vec![EntryAdapter {
                    timestamp: Some(Timestamp { seconds: 2, nanos: 5 }),
                    line: "hello".into(),
                    structured_metadata: vec![],
                }],
                hash: 0,
            }],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&prost::Message::encode_to_vec(&req))
            .unwrap();
        let batch = loki_push_proto(&body).unwrap();
        assert_eq!(batch.streams[0].labels.len(), 2);
        assert_eq!(batch.streams[0].entries[0].ts_ns, 2_000_000_005);
        assert!(loki_push_proto(b"not snappy").unwrap_err().contains("snappy"));
        // Regression (fuzzing): a tiny body declaring a huge decompressed size is refused
        // before any allocation.
        let bomb = [0xff, 0xff, 0xff, 0xff, 0x0a, 0x00];
        assert!(loki_push_proto(&bomb)
            .unwrap_err()
            .contains("over the 16777216-byte limit"));
    }
}
