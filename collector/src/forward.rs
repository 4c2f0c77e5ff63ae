//! Forward destinations over HTTP: `[[collector.forward]]` entries with protocol `otlp-http`,
//! `loki` or `remote-write` (`otlp` forwards use the store's gRPC
//! [`crate::grpc::Exporter`]).
//!
//! Each forward is a consumer of the spool with its own cursor (see `spool`), shipped by the
//! same pipeline as the store ([`crate::export::ship`]): it reads the spooled OTLP requests,
//! and for each one it carries, sends:
//!
//! | protocol       | carries | request                                                     |
//! |----------------|---------|-------------------------------------------------------------|
//! | `otlp-http`    | all     | `POST <url>/v1/{logs,metrics,traces}`, the spooled protobuf |
//! | `loki`         | logs    | `POST <url>`, Loki push JSON, gzip                          |
//! | `remote-write` | metrics | `POST <url>`, remote_write 1.0, snappy (`remote_write.rs`)  |
//!
//! Loki streams are labelled the way Loki 3's OTLP ingest does: the well-known resource
//! attributes (and those named in `obs.index_labels`) become labels with `.` → `_`; other
//! resource attributes, record attributes, `severity_text`, `trace_id` and `span_id` go along
//! as structured metadata.
//!
//! Answers map onto the shipper's retry rules: 2xx delivered; 400, 413 and 422 malformed
//! (counted and skipped: resending cannot help); 401 and 403 refused token; anything else,
//! 429 included, is retried with backoff.

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message;
use tonic::Status;

use crate::config::{Forward, Protocol};
use crate::spool::Kind;

/// Resource attributes that become Loki stream labels (Loki 3's default list, trimmed to what
/// a small fleet sends).
const LABEL_ATTRIBUTES: &[&str] = &[
    "service.name",
    "service.namespace",
    "service.instance.id",
    "deployment.environment",
    "deployment.environment.name",
    "host.name",
    "container.name",
    "k8s.namespace.name",
    "k8s.pod.name",
    "k8s.container.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
];
const INDEX_LABELS_ATTRIBUTE: &str = "obs.index_labels";

#[derive(Debug, Clone, Copy, PartialEq)]
enum HttpProtocol {
    OtlpHttp,
    Loki,
    RemoteWrite,
}

/// An HTTP forward destination.
#[derive(Debug, Clone)]
pub(crate) struct HttpSink {
    protocol: HttpProtocol,
    url: String,
    auth: Option<String>,
    agent: ureq::Agent,
}

impl HttpSink {
    pub(crate) fn new(f: &Forward, token: Option<&str>) -> crate::Result<HttpSink> {
        let protocol = match f.protocol {
            Protocol::OtlpHttp => HttpProtocol::OtlpHttp,
            Protocol::Loki => HttpProtocol::Loki,
            Protocol::RemoteWrite => HttpProtocol::RemoteWrite,
            Protocol::Otlp => {
                return Err(crate::error::config(format!(
                    "forward {}: otlp goes over gRPC, not HTTP",
                    f.name
                )))
            }
        };
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)));
        if let Some(ca) = &f.ca_file {
            let pem = std::fs::read(ca).map_err(|source| crate::Error::Read {
                what: format!("CA file of forward {}", f.name),
                path: ca.clone(),
                source,
            })?;
            let cert = ureq::tls::Certificate::from_pem(&pem)
                .map_err(|e| {
                    crate::error::config(format!(
                        "forward {}: {} is not a PEM certificate: {e}",
                        f.name,
                        ca.display()
                    ))
                })?
                .to_owned();
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(Arc::new(vec![cert])))
                    .build(),
            );
        }
        Ok(HttpSink {
            protocol,
            url: f.url.trim_end_matches('/').to_string(),
            auth: token.map(|t| format!("Bearer {}", t.trim())),
            agent: config.build().into(),
        })
    }

    /// Whether this destination takes records of `kind` (others are passed over).
    pub(crate) fn carries(&self, kind: Kind) -> bool {
        match self.protocol {
            HttpProtocol::OtlpHttp => true,
            HttpProtocol::Loki => kind == Kind::Logs,
            HttpProtocol::RemoteWrite => kind == Kind::Metrics,
        }
    }

    /// Sends one spooled request (concatenated OTLP payloads of `kind`) in this protocol.
    /// Answers like an OTLP export: what could not be sent shows as a partial success.
    pub(crate) async fn send(&self, kind: Kind, body: Bytes) -> Result<Bytes, Status> {
        let mut answer = Bytes::new();
        let (url, headers, payload): (String, Vec<(&'static str, &'static str)>, Vec<u8>) =
            match self.protocol {
                HttpProtocol::OtlpHttp => {
                    let signal = match kind {
                        Kind::Logs => "logs",
                        Kind::Metrics => "metrics",
                        Kind::Traces => "traces",
                    };
                    (
                        format!("{}/v1/{signal}", self.url),
                        vec![("content-type", "application/x-protobuf")],
                        body.to_vec(),
                    )
                }
                HttpProtocol::Loki => (
                    self.url.clone(),
                    vec![("content-type", "application/json"), ("content-encoding", "gzip")],
                    gzip(&loki_push(&body)?),
                ),
                HttpProtocol::RemoteWrite => {
                    let (write, skipped) =
                        crate::remote_write::encode(&body).map_err(Status::invalid_argument)?;
                    if skipped > 0 {
                        answer = partial_metrics(skipped);
                    }
                    (
                        self.url.clone(),
                        vec![
                            ("content-type", "application/x-protobuf"),
                            ("content-encoding", "snappy"),
                            ("x-prometheus-remote-write-version", "0.1.0"),
                        ],
                        write,
                    )
                }
            };
        let (agent, auth) = (self.agent.clone(), self.auth.clone());
        tokio::task::spawn_blocking(move || {
            let mut req = agent.post(&url);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            if let Some(a) = &auth {
                req = req.header("authorization", a);
            }
            let mut resp = req
                .send(&payload[..])
                .map_err(|e| Status::unavailable(format!("cannot reach {url}: {e}")))?;
            let status = resp.status().as_u16();
            let said = resp.body_mut().read_to_vec().unwrap_or_default();
            let text = || {
                format!(
                    "{url} answered {status}: {}",
                    String::from_utf8_lossy(&said).trim()
                )
            };
            match status {
                200..=299 => Ok(answer),
                400 | 413 | 422 => Err(Status::invalid_argument(text())),
                401 | 403 => Err(Status::unauthenticated(text())),
                _ => Err(Status::unavailable(text())),
            }
        })
        .await
        .map_err(|e| Status::internal(format!("the forward task stopped: {e}")))?
    }
}

/// An OTLP metrics answer saying `n` points were not sent.
fn partial_metrics(n: usize) -> Bytes {
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
    };
    let answer = ExportMetricsServiceResponse {
        partial_success: Some(ExportMetricsPartialSuccess {
            rejected_data_points: n as i64,
            error_message: "delta temporality and exponential histograms have no remote_write 1.0 form; \
                            configure the exporter for cumulative explicit-bucket histograms"
                .into(),
        }),
    };
    answer.encode_to_vec().into()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

pub(crate) use obs_otlp_prom::{attribute_value as value_string, hex, label_name};

fn kv_pairs(kvs: &[KeyValue]) -> impl Iterator<Item = (String, String)> + '_ {
    kvs.iter()
        .map(|kv| (label_name(&kv.key), value_string(kv.value.as_ref())))
}

/// An OTLP logs request as a Loki push request (JSON).
fn loki_push(body: &[u8]) -> Result<Vec<u8>, Status> {
    let req = ExportLogsServiceRequest::decode(body)
        .map_err(|e| Status::invalid_argument(format!("spooled logs do not decode: {e}")))?;
    let mut streams: BTreeMap<BTreeMap<String, String>, Vec<serde_json::Value>> = BTreeMap::new();
    for rl in &req.resource_logs {
        let attrs = rl.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let extra = attrs
            .iter()
            .find(|kv| kv.key == INDEX_LABELS_ATTRIBUTE)
            .map(|kv| value_string(kv.value.as_ref()))
            .unwrap_or_default();
        let (mut labels, mut resource_meta) = (BTreeMap::new(), Vec::new());
        for kv in attrs.iter().filter(|kv| kv.key != INDEX_LABELS_ATTRIBUTE) {
            let pair = (label_name(&kv.key), value_string(kv.value.as_ref()));
            if LABEL_ATTRIBUTES.contains(&kv.key.as_str()) || extra.split(',').any(|e| e.trim() == kv.key) {
                labels.insert(pair.0, pair.1);
            } else {
                resource_meta.push(pair);
            }
        }
        let entries = streams.entry(labels).or_default();
        for rec in rl.scope_logs.iter().flat_map(|s| &s.log_records) {
            let ts = match rec.time_unix_nano {
                0 => rec.observed_time_unix_nano,
                t => t,
            };
            let mut meta: serde_json::Map<String, serde_json::Value> = resource_meta
                .iter()
                .cloned()
                .chain(kv_pairs(&rec.attributes))
                .map(|(k, v)| (k, v.into()))
                .collect();
            if !rec.severity_text.is_empty() {
                meta.insert("severity_text".into(), rec.severity_text.clone().into());
            }
            for (k, id) in [("trace_id", &rec.trace_id), ("span_id", &rec.span_id)] {
                if !id.is_empty() {
                    meta.insert(k.into(), hex(id).into());
                }
            }
            let line = value_string(rec.body.as_ref());
            entries.push(match meta.is_empty() {
                true => serde_json::json!([ts.to_string(), line]),
                false => serde_json::json!([ts.to_string(), line, meta]),
            });
        }
    }
    let streams: Vec<serde_json::Value> = streams
        .into_iter()
        .filter(|(_, values)| !values.is_empty())
        .map(|(stream, values)| serde_json::json!({"stream": stream, "values": values}))
        .collect();
    Ok(serde_json::to_vec(&serde_json::json!({ "streams": streams })).expect("JSON of strings"))
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};

    use super::*;
    use crate::otlp::string_kv;

    #[test]
    fn otlp_logs_become_loki_streams_with_labels_and_structured_metadata() {
        let rl = |file: &str, lines: &[&str]| ResourceLogs {
            resource: Some(Resource {
                attributes: vec![
                    string_kv("host.name", "node1"),
                    string_kv("job", "nginx"),
                    string_kv("filename", file),
                    string_kv("os.type", "linux"),
                    string_kv(INDEX_LABELS_ATTRIBUTE, "job,filename"),
                ],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| LogRecord {
                        time_unix_nano: 1_000 + i as u64,
                        severity_text: "WARN".into(),
                        body: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(l.to_string())),
                        }),
                        attributes: vec![string_kv("http.method", "GET")],
                        trace_id: vec![0xab; 16],
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        };
        // Two spooled records, concatenated as the shipper sends them.
        let mut body = ExportLogsServiceRequest {
            resource_logs: vec![rl("/var/log/a.log", &["one", "two"])],
        }
        .encode_to_vec();
        body.extend(
            ExportLogsServiceRequest {
                resource_logs: vec![rl("/var/log/b.log", &["three"])],
            }
            .encode_to_vec(),
        );
        let push: serde_json::Value = serde_json::from_slice(&loki_push(&body).unwrap()).unwrap();
        let streams = push["streams"].as_array().unwrap();
        assert_eq!(streams.len(), 2, "{push}");
        assert_eq!(
            streams[0]["stream"],
            serde_json::json!({"host_name": "node1", "job": "nginx", "filename": "/var/log/a.log"})
        );
        let first = &streams[0]["values"][0];
        assert_eq!(first[0], "1000");
        assert_eq!(first[1], "one");
        assert_eq!(first[2]["os_type"], "linux");
        assert_eq!(first[2]["http_method"], "GET");
        assert_eq!(first[2]["severity_text"], "WARN");
        assert_eq!(first[2]["trace_id"], "ab".repeat(16));
        assert_eq!(streams[1]["values"][0][1], "three");
    }

    #[test]
    fn undecodable_logs_are_malformed_not_retried() {
        let err = loki_push(b"\xff\xff\xff").unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
    }
}
