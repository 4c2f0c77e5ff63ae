//! OTLP metrics -> samples: the mapping is `obs-otlp-prom`'s (Prometheus's OTLP receiver's,
//! shared with the collector's remote_write forwards); here its series become a
//! [`SampleBatch`] and its metadata the TSDB's. Points with no Prometheus form (delta
//! temporality, exponential histograms) are reported back as rejected (OTLP partial success)
//! with the reason; the rest of the request is stored.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;

use super::{MetricMeta, SampleBatch, SeriesSamples};

/// An OTLP metrics request as samples, with what had to be left out.
#[derive(Debug, Default)]
pub(crate) struct OtlpMetrics {
    pub batch: SampleBatch,
    pub metadata: BTreeMap<String, MetricMeta>,
    /// Data points not stored, and why (the first reason).
    pub rejected: usize,
    pub reason: Option<String>,
}

/// Maps an OTLP metrics request to samples.
pub(crate) fn otlp_metrics(req: &ExportMetricsServiceRequest) -> OtlpMetrics {
    let mapped = obs_otlp_prom::map(req);
    OtlpMetrics {
        batch: SampleBatch {
            series: mapped
                .series
                .into_iter()
                .map(|(labels, samples)| SeriesSamples { labels, samples })
                .collect(),
        },
        metadata: mapped
            .metadata
            .into_iter()
            .map(|(name, m)| {
                let meta = MetricMeta {
                    kind: m.kind.into(),
                    help: m.help,
                    unit: m.unit,
                };
                (name, meta)
            })
            .collect(),
        rejected: mapped.rejected,
        reason: mapped.reason,
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, summary_data_point::ValueAtQuantile, Gauge, Histogram, HistogramDataPoint, Metric,
        NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    use opentelemetry_proto::tonic::metrics::v1::{number_data_point, AggregationTemporality};

    use super::*;
    use crate::convert::kv;
    use crate::tsdb::METRIC_NAME;

    const T: u64 = 1_700_000_000_123_000_000;

    fn number(v: f64, attrs: &[(&str, &str)]) -> NumberDataPoint {
        NumberDataPoint {
            attributes: attrs.iter().map(|(k, v)| kv(k, v)).collect(),
            time_unix_nano: T,
            value: Some(number_data_point::Value::AsDouble(v)),
            ..Default::default()
        }
    }

    fn metric(name: &str, unit: &str, data: metric::Data) -> Metric {
        Metric {
            name: name.into(),
            unit: unit.into(),
            description: format!("{name} help"),
            data: Some(data),
            ..Default::default()
        }
    }

    fn request(metrics: Vec<Metric>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", "shop"),
                        kv("service.namespace", "prod"),
                        kv("service.instance.id", "i-1"),
                        kv("host.name", "box"),
                    ],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn find<'a>(out: &'a OtlpMetrics, name: &str, extra: &[(&str, &str)]) -> Option<&'a SeriesSamples> {
        out.batch.series.iter().find(|s| {
            s.labels.iter().any(|(n, v)| n == METRIC_NAME && v == name)
                && extra
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(n, x)| n == k && x == v))
        })
    }

    #[test]
    fn counters_gauges_histograms_summaries_and_target_info() {
        let req = request(vec![
            metric(
                "shop.requests",
                "{request}",
                metric::Data::Sum(Sum {
                    data_points: vec![number(5.0, &[("http.route", "/buy")])],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                    is_monotonic: true,
                }),
            ),
            metric(
                "shop.queue",
                "",
                metric::Data::Gauge(Gauge {
                    data_points: vec![number(3.0, &[])],
                }),
            ),
            metric(
                "shop.latency",
                "s",
                metric::Data::Histogram(Histogram {
                    data_points: vec![HistogramDataPoint {
                        time_unix_nano: T,
                        count: 4,
                        sum: Some(3.05),
                        bucket_counts: vec![1, 1, 1, 1],
                        explicit_bounds: vec![0.1, 0.5, 1.0],
                        ..Default::default()
                    }],
                    aggregation_temporality: AggregationTemporality::Cumulative as i32,
                }),
            ),
            metric(
                "gc",
                "s",
                metric::Data::Summary(Summary {
                    data_points: vec![SummaryDataPoint {
                        time_unix_nano: T,
                        count: 10,
                        sum: 2.0,
                        quantile_values: vec![ValueAtQuantile {
                            quantile: 0.5,
                            value: 0.1,
                        }],
                        ..Default::default()
                    }],
                }),
            ),
        ]);
        let out = otlp_metrics(&req);
        assert_eq!(out.rejected, 0);
        let c = find(
            &out,
            "shop_requests_total",
            &[("http_route", "/buy"), ("job", "prod/shop"), ("instance", "i-1")],
        )
        .expect("counter");
        assert_eq!(c.samples, vec![(1_700_000_000_123, 5.0)]);
        assert!(find(&out, "shop_queue", &[]).is_some());
        for (le, want) in [("0.1", 1.0), ("0.5", 2.0), ("1", 3.0), ("+Inf", 4.0)] {
            let b =
                find(&out, "shop_latency_seconds_bucket", &[("le", le)]).unwrap_or_else(|| panic!("le={le}"));
            assert_eq!(b.samples[0].1, want, "le={le}");
        }
        assert_eq!(
            find(&out, "shop_latency_seconds_sum", &[]).unwrap().samples[0].1,
            3.05
        );
        assert_eq!(
            find(&out, "shop_latency_seconds_count", &[]).unwrap().samples[0].1,
            4.0
        );
        assert_eq!(
            find(&out, "gc_seconds", &[("quantile", "0.5")]).unwrap().samples[0].1,
            0.1
        );
        assert_eq!(find(&out, "gc_seconds_count", &[]).unwrap().samples[0].1, 10.0);
        let info =
            find(&out, "target_info", &[("host_name", "box"), ("job", "prod/shop")]).expect("target_info");
        assert_eq!(info.samples[0].1, 1.0);
        assert_eq!(out.metadata["shop_requests_total"].kind, "counter");
        assert_eq!(out.metadata["shop_latency_seconds"].kind, "histogram");
    }

    #[test]
    fn delta_sums_are_rejected_alone_and_no_value_is_a_staleness_marker() {
        let mut stale = number(0.0, &[]);
        stale.flags = 1;
        let req = request(vec![
            metric(
                "deltas",
                "",
                metric::Data::Sum(Sum {
                    data_points: vec![number(1.0, &[]), number(2.0, &[("a", "b")])],
                    aggregation_temporality: AggregationTemporality::Delta as i32,
                    is_monotonic: true,
                }),
            ),
            metric(
                "gone",
                "",
                metric::Data::Gauge(Gauge {
                    data_points: vec![stale],
                }),
            ),
        ]);
        let out = otlp_metrics(&req);
        assert_eq!(out.rejected, 2);
        assert!(out
            .reason
            .as_ref()
            .unwrap()
            .contains("deltas: delta temporality is not supported"));
        let gone = find(&out, "gone", &[]).unwrap();
        assert!(crate::tsdb::is_stale(gone.samples[0].1));
        assert!(find(&out, "deltas_total", &[]).is_none());
    }
}
