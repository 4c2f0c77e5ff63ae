//! OTLP metrics -> Prometheus remote_write 1.0, for `protocol = "remote-write"` forwards
//! (Prometheus with `--web.enable-remote-write-receiver`, Mimir, VictoriaMetrics, Thanos).
//!
//! The mapping is `obs-otlp-prom`'s, the one Prometheus's own OTLP receiver uses and the obs
//! store too, so a series has one name wherever it lands. Delta temporality and exponential
//! histograms have no remote_write 1.0 form: they are left out and counted (the caller says
//! so in an OTLP partial success).
//!
//! Body: the `prometheus.WriteRequest` protobuf (labels sorted by name), snappy block format.

use obs_otlp_prom::prompb;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;

/// A snappy-compressed `WriteRequest` for an OTLP metrics request, and how many data points
/// had no remote_write form.
pub(crate) fn encode(body: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let req = ExportMetricsServiceRequest::decode(body)
        .map_err(|e| format!("spooled metrics do not decode: {e}"))?;
    let mapped = obs_otlp_prom::map(&req);
    let write = prompb::WriteRequest {
        timeseries: mapped
            .series
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
        metadata: Vec::new(),
    };
    let snappy = snap::raw::Encoder::new()
        .compress_vec(&write.encode_to_vec())
        .map_err(|e| format!("snappy: {e}"))?;
    Ok((snappy, mapped.rejected))
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, number_data_point, AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric,
        NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
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
}
