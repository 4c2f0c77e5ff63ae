//! OTLP metrics -> samples, mapped the way Prometheus's OTLP receiver does (`otlptranslator`,
//! with unit and type suffixes):
//!
//! | OTLP                                  | Prometheus series                                   |
//! |---------------------------------------|-----------------------------------------------------|
//! | gauge `system.memory.usage`, unit `By`| `system_memory_usage_bytes`                         |
//! | monotonic cumulative sum, unit `s`    | `…_seconds_total` (counter)                         |
//! | non-monotonic sum                     | gauge, no `_total`                                  |
//! | gauge with unit `1`                   | `…_ratio`                                           |
//! | histogram (explicit buckets)          | `…_bucket{le}` (cumulative), `…_sum`, `…_count`     |
//! | summary                               | `…{quantile}`, `…_sum`, `…_count`                   |
//! | resource `service.name` (+ namespace) | `job` (`namespace/name`)                            |
//! | resource `service.instance.id`        | `instance`                                          |
//! | other resource attributes             | labels of `target_info{job, instance}` = 1          |
//! | point attributes                      | labels, names sanitized (`http.method` → `http_method`) |
//! | flag "no recorded value"              | staleness marker                                    |
//!
//! Delta temporality and exponential histograms are not stored: those points are reported
//! back as rejected (OTLP partial success) with the reason; the rest of the request is.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point, AggregationTemporality};

use super::{MetricMeta, SampleBatch, SeriesSamples, METRIC_NAME};
use crate::convert::attr;
use crate::model::sanitize_label_name;

/// An OTLP metrics request as samples, with what had to be left out.
#[derive(Debug, Default)]
pub(crate) struct OtlpMetrics {
    pub batch: SampleBatch,
    pub metadata: BTreeMap<String, MetricMeta>,
    /// Data points not stored, and why (the first reason).
    pub rejected: usize,
    pub reason: Option<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

fn unit_word(u: &str) -> Option<&str> {
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
        _ => u,
    })
}

fn per_unit_word(u: &str) -> &str {
    match u {
        "s" => "second",
        "m" => "minute",
        "h" => "hour",
        "d" => "day",
        "w" => "week",
        "mo" => "month",
        "y" => "year",
        _ => u,
    }
}

fn tokens(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// The Prometheus name of an OTLP metric: sanitized, with unit and type suffixes.
fn prometheus_name(name: &str, unit: &str, kind: Kind) -> String {
    let mut t: Vec<String> = tokens(name).collect();
    let unit = if unit.starts_with('{') { "" } else { unit };
    let (main, per) = unit.split_once('/').unwrap_or((unit, ""));
    let push = |t: &mut Vec<String>, words: Vec<String>| {
        if !words.is_empty() && !t.ends_with(&words) {
            t.extend(words);
        }
    };
    if let Some(w) = unit_word(main).filter(|_| !main.starts_with('{')) {
        push(&mut t, tokens(w).collect());
    }
    if !per.is_empty() && !per.starts_with('{') {
        let words: Vec<String> = std::iter::once("per".to_string())
            .chain(tokens(per_unit_word(per)))
            .collect();
        push(&mut t, words);
    }
    if kind == Kind::Counter {
        t.retain(|w| w != "total");
        t.push("total".into());
    }
    if kind == Kind::Gauge && main == "1" {
        push(&mut t, vec!["ratio".into()]);
    }
    let mut out = t.join("_");
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn ms(ns: u64) -> i64 {
    (ns / 1_000_000) as i64
}

const NO_RECORDED_VALUE: u32 = 1;

/// Samples by label set (`__name__` included), as a request is mapped.
type SeriesMap = BTreeMap<Vec<(String, String)>, Vec<(i64, f64)>>;

struct Out<'a> {
    res: &'a [(String, String)],
    series: SeriesMap,
}

impl Out<'_> {
    fn add(&mut self, name: &str, attrs: &[KeyValue], extra: Option<(&str, String)>, t: i64, v: f64) {
        let mut labels: Vec<(String, String)> = attrs
            .iter()
            .map(|kv| (sanitize_label_name(&kv.key), attr(kv)))
            .collect();
        labels.extend(self.res.iter().cloned());
        if let Some((k, val)) = extra {
            labels.push((k.to_string(), val));
        }
        labels.push((METRIC_NAME.to_string(), name.to_string()));
        labels.retain(|(_, v)| !v.is_empty());
        let labels = crate::tsdb::Labels::new(labels).into_pairs();
        self.series.entry(labels).or_default().push((t, v));
    }
}

/// Maps an OTLP metrics request to samples (see the module doc for the mapping).
pub(crate) fn otlp_metrics(req: &ExportMetricsServiceRequest) -> OtlpMetrics {
    let mut result = OtlpMetrics::default();
    let reject = |n: usize, why: String, result: &mut OtlpMetrics| {
        result.rejected += n;
        result.reason.get_or_insert(why);
    };
    let mut all = SeriesMap::new();
    for rm in &req.resource_metrics {
        let attrs = rm
            .resource
            .as_ref()
            .map(|r| r.attributes.as_slice())
            .unwrap_or(&[]);
        let get = |k: &str| {
            attrs
                .iter()
                .find(|kv| kv.key == k)
                .map(attr)
                .filter(|v| !v.is_empty())
        };
        let job = match (get("service.namespace"), get("service.name")) {
            (Some(ns), Some(name)) => format!("{ns}/{name}"),
            (None, Some(name)) => name,
            _ => String::new(),
        };
        let instance = get("service.instance.id").unwrap_or_default();
        let res = vec![
            ("job".to_string(), job.clone()),
            ("instance".to_string(), instance.clone()),
        ];
        let mut out = Out {
            res: &res,
            series: BTreeMap::new(),
        };
        let mut latest = 0i64;
        for sm in &rm.scope_metrics {
            for m in &sm.metrics {
                let Some(data) = &m.data else { continue };
                let cumulative = |t: i32| t != AggregationTemporality::Delta as i32;
                let (kind, help) = (
                    match data {
                        Data::Sum(s) if s.is_monotonic => Kind::Counter,
                        Data::Gauge(_) | Data::Sum(_) => Kind::Gauge,
                        Data::Histogram(_) | Data::ExponentialHistogram(_) => Kind::Histogram,
                        Data::Summary(_) => Kind::Summary,
                    },
                    m.description.clone(),
                );
                let name = prometheus_name(&m.name, &m.unit, kind);
                let type_name = match kind {
                    Kind::Counter => "counter",
                    Kind::Gauge => "gauge",
                    Kind::Histogram => "histogram",
                    Kind::Summary => "summary",
                };
                result.metadata.insert(
                    name.clone(),
                    MetricMeta {
                        kind: type_name.into(),
                        help,
                        unit: m.unit.clone(),
                    },
                );
                let value = |dp: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint| match dp.value {
                    _ if dp.flags & NO_RECORDED_VALUE != 0 => crate::tsdb::stale_nan(),
                    Some(number_data_point::Value::AsDouble(d)) => d,
                    Some(number_data_point::Value::AsInt(i)) => i as f64,
                    None => f64::NAN,
                };
                match data {
                    Data::Gauge(g) => {
                        for dp in &g.data_points {
                            latest = latest.max(ms(dp.time_unix_nano));
                            out.add(&name, &dp.attributes, None, ms(dp.time_unix_nano), value(dp));
                        }
                    }
                    Data::Sum(s) if s.is_monotonic && !cumulative(s.aggregation_temporality) => reject(
                        s.data_points.len(),
                        format!(
                            "{}: delta temporality is not supported; configure the exporter for cumulative",
                            m.name
                        ),
                        &mut result,
                    ),
                    Data::Sum(s) => {
                        for dp in &s.data_points {
                            latest = latest.max(ms(dp.time_unix_nano));
                            out.add(&name, &dp.attributes, None, ms(dp.time_unix_nano), value(dp));
                        }
                    }
                    Data::Histogram(h) if !cumulative(h.aggregation_temporality) => reject(
                        h.data_points.len(),
                        format!(
                            "{}: delta temporality is not supported; configure the exporter for cumulative",
                            m.name
                        ),
                        &mut result,
                    ),
                    Data::Histogram(h) => {
                        for dp in &h.data_points {
                            let t = ms(dp.time_unix_nano);
                            latest = latest.max(t);
                            let stale = dp.flags & NO_RECORDED_VALUE != 0;
                            let v = |x: f64| if stale { crate::tsdb::stale_nan() } else { x };
                            let mut cum = 0u64;
                            for (i, c) in dp.bucket_counts.iter().enumerate() {
                                cum += c;
                                let le = match dp.explicit_bounds.get(i) {
                                    Some(b) => crate::tsdb::labels::format_float(*b),
                                    None => "+Inf".to_string(),
                                };
                                out.add(
                                    &format!("{name}_bucket"),
                                    &dp.attributes,
                                    Some(("le", le)),
                                    t,
                                    v(cum as f64),
                                );
                            }
                            if dp.bucket_counts.len() <= dp.explicit_bounds.len() {
                                out.add(
                                    &format!("{name}_bucket"),
                                    &dp.attributes,
                                    Some(("le", "+Inf".into())),
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
                    Data::ExponentialHistogram(h) => reject(
                        h.data_points.len(),
                        format!(
                            "{}: exponential histograms are not supported yet; use explicit buckets",
                            m.name
                        ),
                        &mut result,
                    ),
                    Data::Summary(sm) => {
                        for dp in &sm.data_points {
                            let t = ms(dp.time_unix_nano);
                            latest = latest.max(t);
                            let stale = dp.flags & NO_RECORDED_VALUE != 0;
                            let v = |x: f64| if stale { crate::tsdb::stale_nan() } else { x };
                            for q in &dp.quantile_values {
                                let label = crate::tsdb::labels::format_float(q.quantile);
                                out.add(&name, &dp.attributes, Some(("quantile", label)), t, v(q.value));
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
        if !other.is_empty() && !out.series.is_empty() {
            out.add("target_info", &other, None, latest, 1.0);
        }
        for (labels, samples) in out.series {
            all.entry(labels).or_default().extend(samples);
        }
    }
    result.batch.series = all
        .into_iter()
        .map(|(labels, samples)| SeriesSamples { labels, samples })
        .collect();
    result
}

#[cfg(test)]
mod tests {
    use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
    use opentelemetry_proto::tonic::metrics::v1::{
        metric, summary_data_point::ValueAtQuantile, Gauge, Histogram, HistogramDataPoint, Metric,
        NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    use super::*;
    use crate::convert::kv;

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
    fn names_get_unit_and_type_suffixes_like_prometheus() {
        for (name, unit, kind, want) in [
            (
                "http.server.request.duration",
                "s",
                Kind::Histogram,
                "http_server_request_duration_seconds",
            ),
            (
                "system.memory.usage",
                "By",
                Kind::Gauge,
                "system_memory_usage_bytes",
            ),
            ("requests", "{request}", Kind::Counter, "requests_total"),
            ("requests_total", "1", Kind::Counter, "requests_total"),
            ("cpu.utilization", "1", Kind::Gauge, "cpu_utilization_ratio"),
            ("throughput", "By/s", Kind::Gauge, "throughput_bytes_per_second"),
            ("latency_seconds", "s", Kind::Gauge, "latency_seconds"),
            ("2xx", "", Kind::Gauge, "_2xx"),
        ] {
            assert_eq!(prometheus_name(name, unit, kind), want, "{name} {unit}");
        }
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
