//! OTLP metrics -> Prometheus remote_write 1.0, for `protocol = "remote-write"` forwards
//! (Prometheus with `--web.enable-remote-write-receiver`, Mimir, VictoriaMetrics, Thanos).
//!
//! The mapping is the one Prometheus's own OTLP receiver uses (and the obs store, so a series
//! has one name wherever it lands):
//!
//! - names sanitized (`.` → `_`) with unit and type suffixes: `By` → `_bytes`, `s` →
//!   `_seconds`, `x/s` → `_per_second`, unit `1` on a gauge → `_ratio`, monotonic sums →
//!   `_total`; curly-brace units (`{requests}`) add nothing;
//! - `job` = `service.namespace/service.name`, `instance` = `service.instance.id`; other
//!   resource attributes become the labels of `target_info{job, instance} 1`;
//! - point attributes become labels; histograms become `_bucket{le}` (cumulative), `_sum` and
//!   `_count`; summaries `{quantile}`, `_sum` and `_count`; a point flagged "no recorded
//!   value" becomes Prometheus's staleness marker.
//!
//! Delta temporality and exponential histograms have no remote_write 1.0 form: they are left
//! out and counted (the caller logs it).
//!
//! Body: the `prometheus.WriteRequest` protobuf (labels sorted by name), snappy block format.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, NumberDataPoint,
};
use prost::Message;

use crate::forward::{label_name, value_string};

/// The remote_write 1.0 messages (prometheus/prompb/remote.proto and types.proto).
mod prompb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }
}

/// Prometheus's staleness marker.
const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;
const NO_RECORDED_VALUE: u32 = 1;

/// A snappy-compressed `WriteRequest` for an OTLP metrics request, and how many data points
/// had no remote_write form.
pub(crate) fn encode(body: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let req = ExportMetricsServiceRequest::decode(body)
        .map_err(|e| format!("spooled metrics do not decode: {e}"))?;
    let (series, skipped) = series(&req);
    let write = prompb::WriteRequest {
        timeseries: series
            .into_iter()
            .map(|(labels, samples)| prompb::TimeSeries {
                labels: labels
                    .into_iter()
                    .map(|(name, value)| prompb::Label { name, value })
                    .collect(),
                samples: samples
                    .into_iter()
                    .map(|(timestamp, value)| prompb::Sample { value, timestamp })
                    .collect(),
            })
            .collect(),
    };
    let snappy = snap::raw::Encoder::new()
        .compress_vec(&write.encode_to_vec())
        .map_err(|e| format!("snappy: {e}"))?;
    Ok((snappy, skipped))
}

fn unit_words(u: &str) -> Option<&str> {
    Some(match u {
        "d" => "days",
        "h" => "hours",
        "min" => "minutes",
        "s" => "seconds",
        "ms" => "milliseconds",
        "us" => "microseconds",
        "ns" => "nanoseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        "GiBy" => "gibibytes",
        "TiBy" => "tibibytes",
        "KBy" => "kilobytes",
        "MBy" => "megabytes",
        "GBy" => "gigabytes",
        "TBy" => "terabytes",
        "m" => "meters",
        "V" => "volts",
        "A" => "amperes",
        "J" => "joules",
        "W" => "watts",
        "g" => "grams",
        "Cel" => "celsius",
        "Hz" => "hertz",
        "%" => "percent",
        "1" | "" => return None,
        other => other,
    })
}

fn per_words(u: &str) -> &str {
    match u {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        other => other,
    }
}

fn words(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
}

#[derive(Clone, Copy, PartialEq)]
enum Type {
    Counter,
    Gauge,
    Other,
}

/// The Prometheus name of an OTLP metric.
fn metric_name(name: &str, unit: &str, ty: Type) -> String {
    let mut w: Vec<String> = words(name).collect();
    let unit = if unit.starts_with('{') { "" } else { unit };
    let (main, per) = unit.split_once('/').unwrap_or((unit, ""));
    let suffix = |w: &mut Vec<String>, add: Vec<String>| {
        if !add.is_empty() && !w.ends_with(&add) {
            w.extend(add);
        }
    };
    if let Some(u) = unit_words(main) {
        suffix(&mut w, words(u).collect());
    }
    if !per.is_empty() && !per.starts_with('{') {
        suffix(
            &mut w,
            std::iter::once("per".into())
                .chain(words(per_words(per)))
                .collect(),
        );
    }
    match ty {
        Type::Counter => {
            w.retain(|x| x != "total");
            w.push("total".into());
        }
        Type::Gauge if main == "1" => suffix(&mut w, vec!["ratio".into()]),
        _ => {}
    }
    let mut out = w.join("_");
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn format_float(v: f64) -> String {
    match v {
        f64::INFINITY => "+Inf".into(),
        f64::NEG_INFINITY => "-Inf".into(),
        v => format!("{v}"),
    }
}

type Series = BTreeMap<Vec<(String, String)>, Vec<(i64, f64)>>;

/// Collects the samples of one resource.
struct Emit<'a> {
    resource: &'a [(String, String)],
    series: &'a mut Series,
}

impl Emit<'_> {
    fn add(&mut self, name: &str, attrs: &[KeyValue], extra: Option<(&str, String)>, t_ns: u64, v: f64) {
        let mut labels: BTreeMap<String, String> = attrs
            .iter()
            .map(|kv| (label_name(&kv.key), value_string(kv.value.as_ref())))
            .collect();
        labels.extend(self.resource.iter().cloned());
        if let Some((k, val)) = extra {
            labels.insert(k.into(), val);
        }
        labels.insert("__name__".into(), name.into());
        labels.retain(|_, v| !v.is_empty());
        let t_ms = (t_ns / 1_000_000) as i64;
        self.series
            .entry(labels.into_iter().collect())
            .or_default()
            .push((t_ms, v));
    }
}

fn number(dp: &NumberDataPoint) -> f64 {
    match dp.value {
        _ if dp.flags & NO_RECORDED_VALUE != 0 => f64::from_bits(STALE_NAN),
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => f64::NAN,
    }
}

/// Every series of the request, and how many points were left out.
fn series(req: &ExportMetricsServiceRequest) -> (Series, usize) {
    let (mut all, mut skipped) = (Series::new(), 0);
    for rm in &req.resource_metrics {
        let attrs = rm.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let get = |k: &str| {
            attrs
                .iter()
                .find(|kv| kv.key == k)
                .map(|kv| value_string(kv.value.as_ref()))
                .filter(|v| !v.is_empty())
        };
        let job = match (get("service.namespace"), get("service.name")) {
            (Some(ns), Some(name)) => format!("{ns}/{name}"),
            (_, name) => name.unwrap_or_default(),
        };
        let resource = [
            ("job".to_string(), job),
            (
                "instance".to_string(),
                get("service.instance.id").unwrap_or_default(),
            ),
        ];
        let mut out = Emit {
            resource: &resource,
            series: &mut all,
        };
        let (mut latest, mut any) = (0u64, false);
        for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
            let Some(data) = &m.data else { continue };
            let delta = |t: i32| t == AggregationTemporality::Delta as i32;
            let ty = match data {
                Data::Sum(s) if s.is_monotonic => Type::Counter,
                Data::Gauge(_) | Data::Sum(_) => Type::Gauge,
                _ => Type::Other,
            };
            let name = metric_name(&m.name, &m.unit, ty);
            match data {
                Data::Sum(s) if s.is_monotonic && delta(s.aggregation_temporality) => {
                    skipped += s.data_points.len()
                }
                Data::Histogram(h) if delta(h.aggregation_temporality) => skipped += h.data_points.len(),
                Data::ExponentialHistogram(h) => skipped += h.data_points.len(),
                Data::Gauge(opentelemetry_proto::tonic::metrics::v1::Gauge { data_points })
                | Data::Sum(opentelemetry_proto::tonic::metrics::v1::Sum { data_points, .. }) => {
                    for dp in data_points {
                        (latest, any) = (latest.max(dp.time_unix_nano), true);
                        out.add(&name, &dp.attributes, None, dp.time_unix_nano, number(dp));
                    }
                }
                Data::Histogram(h) => {
                    for dp in &h.data_points {
                        let t = dp.time_unix_nano;
                        (latest, any) = (latest.max(t), true);
                        let stale = dp.flags & NO_RECORDED_VALUE != 0;
                        let v = |x: f64| if stale { f64::from_bits(STALE_NAN) } else { x };
                        let mut cumulative = 0u64;
                        for (i, c) in dp.bucket_counts.iter().enumerate() {
                            cumulative += c;
                            let le = dp
                                .explicit_bounds
                                .get(i)
                                .map_or("+Inf".into(), |b| format_float(*b));
                            out.add(
                                &format!("{name}_bucket"),
                                &dp.attributes,
                                Some(("le", le)),
                                t,
                                v(cumulative as f64),
                            );
                        }
                        if dp.bucket_counts.len() <= dp.explicit_bounds.len() {
                            let inf = Some(("le", "+Inf".to_string()));
                            out.add(
                                &format!("{name}_bucket"),
                                &dp.attributes,
                                inf,
                                t,
                                v(dp.count as f64),
                            );
                        }
                        if let Some(sum) = dp.sum {
                            out.add(&format!("{name}_sum"), &dp.attributes, None, t, v(sum));
                        }
                        out.add(
                            &format!("{name}_count"),
                            &dp.attributes,
                            None,
                            t,
                            v(dp.count as f64),
                        );
                    }
                }
                Data::Summary(s) => {
                    for dp in &s.data_points {
                        let t = dp.time_unix_nano;
                        (latest, any) = (latest.max(t), true);
                        let stale = dp.flags & NO_RECORDED_VALUE != 0;
                        let v = |x: f64| if stale { f64::from_bits(STALE_NAN) } else { x };
                        for q in &dp.quantile_values {
                            let quantile = Some(("quantile", format_float(q.quantile)));
                            out.add(&name, &dp.attributes, quantile, t, v(q.value));
                        }
                        out.add(&format!("{name}_sum"), &dp.attributes, None, t, v(dp.sum));
                        out.add(
                            &format!("{name}_count"),
                            &dp.attributes,
                            None,
                            t,
                            v(dp.count as f64),
                        );
                    }
                }
            }
        }
        // Resource attributes that are not job/instance describe the target.
        let other: Vec<KeyValue> = attrs
            .iter()
            .filter(|kv| {
                !matches!(
                    kv.key.as_str(),
                    "service.name" | "service.namespace" | "service.instance.id"
                )
            })
            .cloned()
            .collect();
        if any && !other.is_empty() {
            out.add("target_info", &other, None, latest, 1.0);
        }
    }
    (all, skipped)
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, Gauge, Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics, Sum,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    use super::*;
    use crate::otlp::string_kv;

    const T: u64 = 1_700_000_000_123_000_000;

    fn point(v: f64) -> NumberDataPoint {
        NumberDataPoint {
            attributes: vec![string_kv("http.method", "GET")],
            time_unix_nano: T,
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        }
    }

    fn metric(name: &str, unit: &str, data: metric::Data) -> Metric {
        Metric {
            name: name.into(),
            unit: unit.into(),
            data: Some(data),
            ..Default::default()
        }
    }

    /// (labels, samples) per series, as sent.
    type Decoded = Vec<(Vec<(String, String)>, Vec<(i64, f64)>)>;

    fn decode(snappy: &[u8]) -> Decoded {
        let raw = snap::raw::Decoder::new().decompress_vec(snappy).unwrap();
        prompb::WriteRequest::decode(&raw[..])
            .unwrap()
            .timeseries
            .into_iter()
            .map(|ts| {
                let labels = ts.labels.into_iter().map(|l| (l.name, l.value)).collect();
                (
                    labels,
                    ts.samples.into_iter().map(|s| (s.timestamp, s.value)).collect(),
                )
            })
            .collect()
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn otlp_metrics_map_to_prometheus_series_like_prometheus_otlp_receiver() {
        let cumulative = AggregationTemporality::Cumulative as i32;
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        string_kv("service.name", "shop"),
                        string_kv("service.namespace", "prod"),
                        string_kv("service.instance.id", "node1"),
                        string_kv("host.arch", "amd64"),
                    ],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        metric(
                            "http.server.requests",
                            "{request}",
                            metric::Data::Sum(Sum {
                                data_points: vec![point(7.0)],
                                aggregation_temporality: cumulative,
                                is_monotonic: true,
                            }),
                        ),
                        metric(
                            "memory.usage",
                            "By",
                            metric::Data::Gauge(Gauge {
                                data_points: vec![point(2048.0)],
                            }),
                        ),
                        metric(
                            "http.duration",
                            "s",
                            metric::Data::Histogram(Histogram {
                                data_points: vec![HistogramDataPoint {
                                    time_unix_nano: T,
                                    count: 3,
                                    sum: Some(0.7),
                                    bucket_counts: vec![1, 2],
                                    explicit_bounds: vec![0.25],
                                    ..Default::default()
                                }],
                                aggregation_temporality: cumulative,
                            }),
                        ),
                        metric(
                            "deltas",
                            "",
                            metric::Data::Sum(Sum {
                                data_points: vec![point(1.0)],
                                aggregation_temporality: AggregationTemporality::Delta as i32,
                                is_monotonic: true,
                            }),
                        ),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let (body, skipped) = encode(&req.encode_to_vec()).unwrap();
        assert_eq!(skipped, 1, "the delta sum has no remote_write form");
        let got = decode(&body);
        let find = |name: &str, extra: Option<(&str, &str)>| {
            got.iter()
                .find(|(l, _)| {
                    l.contains(&("__name__".into(), name.into()))
                        && extra.is_none_or(|(k, v)| l.contains(&(k.into(), v.into())))
                })
                .unwrap_or_else(|| panic!("{name} in {got:?}"))
        };
        let t_ms = (T / 1_000_000) as i64;
        assert_eq!(
            find("http_server_requests_total", None),
            &(
                labels(&[
                    ("__name__", "http_server_requests_total"),
                    ("http_method", "GET"),
                    ("instance", "node1"),
                    ("job", "prod/shop")
                ]),
                vec![(t_ms, 7.0)]
            ),
            "labels sorted by name"
        );
        assert_eq!(find("memory_usage_bytes", None).1, vec![(t_ms, 2048.0)]);
        assert_eq!(
            find("http_duration_seconds_bucket", Some(("le", "0.25"))).1,
            vec![(t_ms, 1.0)]
        );
        assert_eq!(
            find("http_duration_seconds_bucket", Some(("le", "+Inf"))).1,
            vec![(t_ms, 3.0)]
        );
        assert_eq!(find("http_duration_seconds_sum", None).1, vec![(t_ms, 0.7)]);
        assert_eq!(find("http_duration_seconds_count", None).1, vec![(t_ms, 3.0)]);
        let info = find("target_info", None);
        assert!(info.0.contains(&("host_arch".into(), "amd64".into())), "{info:?}");
        assert!(!got
            .iter()
            .any(|(l, _)| l.iter().any(|(_, v)| v.starts_with("deltas"))));
    }

    #[test]
    fn names_get_unit_and_type_suffixes_once() {
        assert_eq!(
            metric_name("process.cpu.time", "s", Type::Counter),
            "process_cpu_time_seconds_total"
        );
        assert_eq!(
            metric_name("node_cpu_seconds_total", "", Type::Counter),
            "node_cpu_seconds_total"
        );
        assert_eq!(
            metric_name("disk.io", "By/s", Type::Gauge),
            "disk_io_bytes_per_second"
        );
        assert_eq!(
            metric_name("cpu.utilization", "1", Type::Gauge),
            "cpu_utilization_ratio"
        );
        assert_eq!(metric_name("queue_bytes", "By", Type::Gauge), "queue_bytes");
    }

    #[test]
    fn a_stale_point_becomes_the_staleness_marker() {
        let dp = NumberDataPoint {
            flags: NO_RECORDED_VALUE,
            ..point(1.0)
        };
        assert_eq!(number(&dp).to_bits(), STALE_NAN);
    }
}
