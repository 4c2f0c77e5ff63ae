//! A probe's outcome as OTLP for the spool: metrics under blackbox_exporter's names and
//! meanings (so its dashboards and rules work), and for a failure one log line.
//!
//! Resource `service.name = obs-probe` and `service.instance.id = <target>` become `job`
//! and `instance` in the store; every point carries `probe` (the name) and `host_name`
//! (this vantage point), so the same target probed from two nodes is two series.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs, SeverityNumber};
use opentelemetry_proto::tonic::metrics::v1::{number_data_point, NumberDataPoint};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use super::{Checked, Outcome, Target};
use crate::otlp::{string_kv, MetricsBuilder};
use crate::spool::{Kind, Spool};

/// The service name of probe metrics and log lines.
pub(crate) const SERVICE: &str = "obs-probe";

const HTTP_PHASES: [&str; 5] = ["resolve", "connect", "tls", "processing", "transfer"];

fn phase(o: &Outcome, name: &str) -> f64 {
    o.phases
        .iter()
        .find(|(p, _)| *p == name)
        .map_or(0.0, |(_, d)| d.as_secs_f64())
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// The metrics of one run, taken at `at_ns`.
pub(crate) fn metrics(probe: &Checked, o: &Outcome, host: &str, at_ns: u64) -> ExportMetricsServiceRequest {
    let mut m = MetricsBuilder::default();
    let mut gauge = |name: &str, value: f64, extra: &[(&str, &str)]| {
        let mut attributes = vec![string_kv("probe", probe.name()), string_kv("host_name", host)];
        attributes.extend(extra.iter().map(|(k, v)| string_kv(k, v)));
        m.push(
            name.to_string(),
            false,
            NumberDataPoint {
                attributes,
                time_unix_nano: at_ns,
                value: Some(number_data_point::Value::AsDouble(value)),
                ..Default::default()
            },
        );
    };
    gauge("probe_success", flag(o.success), &[]);
    gauge("probe_duration_seconds", o.duration.as_secs_f64(), &[]);
    if let Some(ip) = o.ip {
        gauge("probe_ip_protocol", if ip.is_ipv6() { 6.0 } else { 4.0 }, &[]);
    }
    match &probe.target {
        Target::Http(_) => {
            gauge("probe_http_status_code", o.status.map_or(0.0, f64::from), &[]);
            for p in HTTP_PHASES {
                gauge("probe_http_duration_seconds", phase(o, p), &[("phase", p)]);
            }
            gauge("probe_http_redirects", f64::from(o.redirects), &[]);
            gauge("probe_http_ssl", flag(o.tls), &[]);
            gauge("probe_http_content_length", o.body.len() as f64, &[]);
            if let Some(t) = o.cert_not_after {
                gauge("probe_ssl_earliest_cert_expiry", t as f64, &[]);
            }
            let body_failed = o
                .conditions
                .iter()
                .zip(&probe.conditions)
                .any(|(r, c)| !r.success && c.uses("[BODY]"));
            gauge("probe_failed_due_to_regex", flag(body_failed), &[]);
        }
        Target::Dns(_) => {
            gauge("probe_dns_lookup_time_seconds", phase(o, "query"), &[]);
            gauge("probe_dns_answer_rrs", o.dns_answers.len() as f64, &[]);
        }
        Target::Icmp(_) => {
            for p in ["resolve", "setup", "rtt"] {
                gauge("probe_icmp_duration_seconds", phase(o, p), &[("phase", p)]);
            }
        }
        Target::Tcp(..) => {}
    }
    for c in &o.conditions {
        gauge(
            "probe_condition_success",
            flag(c.success),
            &[("condition", &c.condition)],
        );
    }
    m.request(vec![
        string_kv("service.name", SERVICE),
        string_kv("service.instance.id", probe.target()),
    ])
}

/// The log line of a failed run: `{service_name="obs-probe"}`, at error level.
pub(crate) fn failure_log(
    probe: &Checked,
    failure: &str,
    host: &str,
    at_ns: u64,
) -> ExportLogsServiceRequest {
    let record = LogRecord {
        time_unix_nano: at_ns,
        observed_time_unix_nano: at_ns,
        severity_number: SeverityNumber::Error as i32,
        severity_text: "ERROR".into(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(format!(
                "probe {} failed: {failure}",
                probe.name()
            ))),
        }),
        attributes: vec![
            string_kv("probe", probe.name()),
            string_kv("instance", probe.target()),
        ],
        ..Default::default()
    };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: Some(Resource {
                attributes: vec![string_kv("service.name", SERVICE), string_kv("host.name", host)],
                ..Default::default()
            }),
            scope_logs: vec![ScopeLogs {
                log_records: vec![record],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Appends the outcome to the spool.
pub(crate) async fn spool(probe: &Checked, o: &Outcome, host: &str, at_ns: u64, spool: &Arc<Spool>) {
    let mut records = vec![(Kind::Metrics, metrics(probe, o, host, at_ns).encode_to_vec())];
    if let Some(f) = &o.failure {
        records.push((Kind::Logs, failure_log(probe, f, host, at_ns).encode_to_vec()));
    }
    crate::otlp::spool_records(spool, records, "probe results").await;
}
