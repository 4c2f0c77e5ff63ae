//! Log records encoded straight into OTLP protobuf as lines arrive: the file tailer's hot
//! path. Building a prost `LogRecord` per line costs several allocations (body, severity
//! text, the struct in a Vec) and a second pass to encode; here a line is written once into
//! the batch buffer with prost's own wire primitives, and [`LogRecords::finish`] wraps the
//! batch into an `ExportLogsServiceRequest` with one more copy.
//!
//! Field numbers are those of `opentelemetry/proto/logs/v1/logs.proto` (stable since OTLP
//! 1.0): `LogRecord { time_unix_nano = 1 (fixed64), severity_number = 2, severity_text = 3,
//! body = 5 (AnyValue { string_value = 1 }), attributes = 6, observed_time_unix_nano = 11
//! (fixed64) }`, inside `ScopeLogs { scope = 1, log_records = 2 }` inside `ResourceLogs {
//! resource = 1, scope_logs = 2 }` inside `ExportLogsServiceRequest { resource_logs = 1 }`.
//! A test decodes the output with prost and compares it with the structs.

use opentelemetry_proto::tonic::common::v1::{InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, message, WireType};
use prost::Message;

/// Encoded `ScopeLogs.log_records` fields (each with its tag and length).
#[derive(Debug, Default)]
pub(crate) struct LogRecords {
    buf: Vec<u8>,
    count: usize,
}

/// Key (tag and wire type) length for field numbers below 16: one byte.
const KEY: usize = 1;

fn len_delimited(len: usize) -> usize {
    KEY + encoded_len_varint(len as u64) + len
}

impl LogRecords {
    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Encoded bytes so far.
    pub(crate) fn bytes(&self) -> usize {
        self.buf.len()
    }

    /// Appends one record. `body` that is not UTF-8 is stored with U+FFFD replacements.
    pub(crate) fn push(
        &mut self,
        time_ns: u64,
        observed_ns: u64,
        (severity_number, severity_text): (i32, &str),
        body: &[u8],
        attributes: &[KeyValue],
    ) {
        let lossy;
        let body = match std::str::from_utf8(body) {
            Ok(s) => s.as_bytes(),
            Err(_) => {
                lossy = String::from_utf8_lossy(body).into_owned();
                lossy.as_bytes()
            }
        };
        let any_len = len_delimited(body.len());
        let mut len = 2 * (KEY + 8) + len_delimited(any_len);
        if time_ns == 0 {
            len -= KEY + 8;
        }
        if severity_number != 0 {
            len += KEY + encoded_len_varint(severity_number as u64);
        }
        if !severity_text.is_empty() {
            len += len_delimited(severity_text.len());
        }
        len += attributes
            .iter()
            .map(|a| len_delimited(a.encoded_len()))
            .sum::<usize>();

        let buf = &mut self.buf;
        encode_key(2, WireType::LengthDelimited, buf);
        encode_varint(len as u64, buf);
        if time_ns != 0 {
            encode_key(1, WireType::SixtyFourBit, buf);
            buf.extend_from_slice(&time_ns.to_le_bytes());
        }
        if severity_number != 0 {
            encode_key(2, WireType::Varint, buf);
            encode_varint(severity_number as u64, buf);
        }
        if !severity_text.is_empty() {
            encode_key(3, WireType::LengthDelimited, buf);
            encode_varint(severity_text.len() as u64, buf);
            buf.extend_from_slice(severity_text.as_bytes());
        }
        encode_key(5, WireType::LengthDelimited, buf);
        encode_varint(any_len as u64, buf);
        encode_key(1, WireType::LengthDelimited, buf);
        encode_varint(body.len() as u64, buf);
        buf.extend_from_slice(body);
        for a in attributes {
            message::encode(6, a, buf);
        }
        encode_key(11, WireType::SixtyFourBit, buf);
        buf.extend_from_slice(&observed_ns.to_le_bytes());
        self.count += 1;
    }

    /// What goes before [`LogRecords::records`] to make the batch an encoded
    /// `ExportLogsServiceRequest` with one resource and scope. The two parts are written
    /// to the spool as they are (the batch is not copied once more).
    pub(crate) fn header(&self, resource: &Resource, scope: &InstrumentationScope) -> Vec<u8> {
        let scope_logs_len = len_delimited(scope.encoded_len()) + self.buf.len();
        let resource_logs_len = len_delimited(resource.encoded_len()) + len_delimited(scope_logs_len);
        let mut out = Vec::with_capacity(len_delimited(resource_logs_len) - self.buf.len());
        encode_key(1, WireType::LengthDelimited, &mut out);
        encode_varint(resource_logs_len as u64, &mut out);
        message::encode(1, resource, &mut out);
        encode_key(2, WireType::LengthDelimited, &mut out);
        encode_varint(scope_logs_len as u64, &mut out);
        message::encode(1, scope, &mut out);
        out
    }

    /// The encoded records, after [`LogRecords::header`].
    pub(crate) fn records(&self) -> &[u8] {
        &self.buf
    }

    /// Empties the batch, keeping its buffer.
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::string_kv;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};

    #[test]
    fn encodes_what_prost_encodes() {
        let resource = Resource {
            attributes: vec![
                string_kv("host.name", "n1"),
                string_kv("filename", "/var/log/x.log"),
            ],
            ..Default::default()
        };
        let scope = InstrumentationScope {
            name: "obs-collector/files".into(),
            ..Default::default()
        };
        type Line<'a> = (u64, (i32, &'a str), &'a [u8], Vec<KeyValue>);
        let lines: [Line; 4] = [
            (0, (0, ""), b"plain line", vec![]),
            (
                1_700_000_000_123,
                (13, "WARN"),
                b"level=warn x=1",
                vec![string_kv("x", "1")],
            ),
            (
                5,
                (17, "ERROR"),
                b"bad \xff utf-8",
                vec![string_kv("stream", "stderr")],
            ),
            (u64::MAX, (0, ""), &[b'a'; 300], vec![]),
        ];
        let mut enc = LogRecords::default();
        let mut want = Vec::new();
        for (i, (t, sev, body, attrs)) in lines.iter().enumerate() {
            enc.push(*t, 42 + i as u64, *sev, body, attrs);
            want.push(LogRecord {
                time_unix_nano: *t,
                observed_time_unix_nano: 42 + i as u64,
                severity_number: sev.0,
                severity_text: sev.1.into(),
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(
                        String::from_utf8_lossy(body).into(),
                    )),
                }),
                attributes: attrs.clone(),
                ..Default::default()
            });
        }
        let bytes = [enc.header(&resource, &scope), enc.records().to_vec()].concat();
        enc.clear();
        assert!(enc.is_empty());
        let want = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(resource),
                scope_logs: vec![ScopeLogs {
                    scope: Some(scope),
                    log_records: want,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(ExportLogsServiceRequest::decode(&bytes[..]).unwrap(), want);
        assert_eq!(bytes.len(), want.encoded_len());
    }
}
