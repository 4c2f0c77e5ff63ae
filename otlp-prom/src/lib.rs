//! `obs-otlp-prom`: OTLP metrics as Prometheus series, mapped the way Prometheus's OTLP
//! receiver does (`otlptranslator`, with unit and type suffixes), so that a series has one
//! name wherever it lands: the store maps what it receives ([`map`] → its samples), the
//! collector what it forwards to a remote_write receiver ([`map`] → [`prompb::WriteRequest`]).
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
//! Delta temporality and exponential histograms have no Prometheus form: those points are
//! counted in [`Mapped::rejected`] with the reason; the rest of the request is mapped.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point, AggregationTemporality, NumberDataPoint,
};

/// The remote_write 1.0 protobuf messages (prometheus/prompb `remote.proto`, `types.proto`):
/// the fields obs writes and reads.
pub mod prompb {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
        #[prost(message, repeated, tag = "3")]
        pub metadata: Vec<MetricMetadata>,
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

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct MetricMetadata {
        #[prost(int32, tag = "1")]
        pub r#type: i32,
        #[prost(string, tag = "2")]
        pub metric_family_name: String,
        #[prost(string, tag = "4")]
        pub help: String,
        #[prost(string, tag = "5")]
        pub unit: String,
    }
}

/// The bits of Prometheus's staleness marker, a NaN no computation produces.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;

/// The OTLP flag of a point with no recorded value.
const NO_RECORDED_VALUE: u32 = 1;

/// Samples `(ms, value)` by label set: `__name__` included, names sorted, no empty values.
pub type SeriesMap = BTreeMap<Vec<(String, String)>, Vec<(i64, f64)>>;

/// What Prometheus's metadata API says of a metric.
#[derive(Debug, Clone, PartialEq)]
pub struct Metadata {
    /// `counter`, `gauge`, `histogram` or `summary`.
    pub kind: &'static str,
    pub help: String,
    pub unit: String,
}

/// An OTLP metrics request as Prometheus series.
#[derive(Debug, Default)]
pub struct Mapped {
    pub series: SeriesMap,
    /// By metric name.
    pub metadata: BTreeMap<String, Metadata>,
    /// Data points with no Prometheus form, and why (the first reason).
    pub rejected: usize,
    pub reason: Option<String>,
}

/// A valid Prometheus (and Loki) label name, `[a-zA-Z_][a-zA-Z0-9_]*`, the way Prometheus and
/// Loki 3 map OTLP attribute names (`service.name` → `service_name`).
pub fn label_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// An OTLP attribute value as a string: arrays and maps as JSON, bytes as hex.
pub fn attribute_value(v: Option<&AnyValue>) -> String {
    let Some(v) = v else { return String::new() };
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(any_value::Value::BytesValue(b)) => hex(b),
        Some(any_value::Value::ArrayValue(_) | any_value::Value::KvlistValue(_)) => value_json(v).to_string(),
        // Dictionary references exist only in profiles; logs, spans and metrics carry none.
        Some(any_value::Value::StringValueStrindex(_)) | None => String::new(),
    }
}

fn value_json(v: &AnyValue) -> serde_json::Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => s.clone().into(),
        Some(any_value::Value::BoolValue(b)) => (*b).into(),
        Some(any_value::Value::IntValue(i)) => (*i).into(),
        Some(any_value::Value::DoubleValue(d)) => (*d).into(),
        Some(any_value::Value::BytesValue(b)) => hex(b).into(),
        Some(any_value::Value::ArrayValue(a)) => a.values.iter().map(value_json).collect(),
        Some(any_value::Value::KvlistValue(kv)) => serde_json::Value::Object(
            kv.values
                .iter()
                .map(|kv| {
                    (
                        kv.key.clone(),
                        kv.value.as_ref().map_or(serde_json::Value::Null, value_json),
                    )
                })
                .collect(),
        ),
        Some(any_value::Value::StringValueStrindex(_)) | None => serde_json::Value::Null,
    }
}

/// Bytes as lowercase hex, two digits each. (A `format!` per byte was a tenth of the store's
/// span ingest, where ids are hex.)
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(2 * bytes.len());
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    s
}

/// A float as Prometheus writes one in a label (`le`, `quantile`) or a value.
pub fn format_float(v: f64) -> String {
    with_float_str(v, str::to_string)
}

/// Calls `f` with [`format_float`]'s text of `v`, without allocating it: the shortest
/// digits that read back as `v` (ties to even, as Go's `strconv.FormatFloat(v, 'f', -1,
/// 64)` breaks them), never in exponent form.
pub fn with_float_str<R>(v: f64, f: impl FnOnce(&str) -> R) -> R {
    if v.is_nan() {
        return f("NaN");
    } else if v == f64::INFINITY {
        return f("+Inf");
    } else if v == f64::NEG_INFINITY {
        return f("-Inf");
    }
    // Whole numbers below 2^53 (counters, byte gauges, timestamps): their shortest digits
    // are the integer's own, which itoa writes several times faster than ryu. -0 is not one.
    if v.fract() == 0.0 && v.abs() < MAX_EXACT_INT && !(v == 0.0 && v.is_sign_negative()) {
        return f(itoa::Buffer::new().format(v as i64));
    }
    with_ryu_str(v, f)
}

/// The general path of [`with_float_str`] for finite `v`.
fn with_ryu_str<R>(v: f64, f: impl FnOnce(&str) -> R) -> R {
    let mut buf = ryu::Buffer::new();
    let s = buf.format_finite(v);
    match s.split_once('e') {
        // Very large or small: the same digits, spelled out.
        Some((mantissa, exp)) => f(&spell_out(mantissa, exp.parse().unwrap_or(0))),
        None => f(s.strip_suffix(".0").unwrap_or(s)),
    }
}

/// 2^53: every integer below it is a distinct double.
const MAX_EXACT_INT: f64 = 9_007_199_254_740_992.0;

/// `1.5` × 10^`exp` (ryu's `1.5e-7`) written without an exponent.
fn spell_out(mantissa: &str, exp: i32) -> String {
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let n = digits.len() as i32;
    let point = exp + 1; // digits before the decimal point
    if point >= n {
        format!("{sign}{digits}{}", "0".repeat((point - n) as usize))
    } else if point > 0 {
        format!(
            "{sign}{}.{}",
            &digits[..point as usize],
            &digits[point as usize..]
        )
    } else {
        format!("{sign}0.{}{digits}", "0".repeat((-point) as usize))
    }
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
fn metric_name(name: &str, unit: &str, kind: Kind) -> String {
    let mut t: Vec<String> = tokens(name).collect();
    let unit = if unit.starts_with('{') { "" } else { unit };
    let (main, per) = unit.split_once('/').unwrap_or((unit, ""));
    let push = |t: &mut Vec<String>, words: Vec<String>| {
        if !words.is_empty() && !t.ends_with(&words) {
            t.extend(words);
        }
    };
    if let Some(w) = unit_word(main) {
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

/// The samples of one resource.
struct Out<'a> {
    resource: &'a [(String, String)],
    series: SeriesMap,
}

impl Out<'_> {
    fn add(&mut self, name: &str, attrs: &[KeyValue], extra: Option<(&str, String)>, t: i64, v: f64) {
        let mut labels: Vec<(String, String)> = attrs
            .iter()
            .map(|kv| (label_name(&kv.key), attribute_value(kv.value.as_ref())))
            .collect();
        labels.extend(self.resource.iter().cloned());
        if let Some((k, val)) = extra {
            labels.push((k.to_string(), val));
        }
        labels.push(("__name__".to_string(), name.to_string()));
        self.series.entry(label_set(labels)).or_default().push((t, v));
    }

    /// The `_sum`/`_count` of a histogram or summary point, and `value` mapped to the
    /// staleness marker for a point with no recorded value.
    fn sum_and_count(
        &mut self,
        name: &str,
        attrs: &[KeyValue],
        t: i64,
        sum: Option<f64>,
        count: u64,
        stale: bool,
    ) {
        let v = |x: f64| if stale { f64::from_bits(STALE_NAN_BITS) } else { x };
        if let Some(sum) = sum {
            self.add(&format!("{name}_sum"), attrs, None, t, v(sum));
        }
        self.add(&format!("{name}_count"), attrs, None, t, v(count as f64));
    }
}

/// A canonical label set: empty values dropped, sorted by name (stably), the last of each
/// name kept.
pub fn label_set(mut pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    pairs.retain(|(_, v)| !v.is_empty());
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut out: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    for p in pairs {
        match out.last_mut() {
            Some(last) if last.0 == p.0 => *last = p,
            _ => out.push(p),
        }
    }
    out
}

fn number(dp: &NumberDataPoint) -> f64 {
    match dp.value {
        _ if dp.flags & NO_RECORDED_VALUE != 0 => f64::from_bits(STALE_NAN_BITS),
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => f64::NAN,
    }
}

/// Maps an OTLP metrics request to Prometheus series (see the crate doc for the mapping).
pub fn map(req: &ExportMetricsServiceRequest) -> Mapped {
    let mut result = Mapped::default();
    for rm in &req.resource_metrics {
        let attrs = rm.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        let get = |k: &str| {
            attrs
                .iter()
                .find(|kv| kv.key == k)
                .map(|kv| attribute_value(kv.value.as_ref()))
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
        let mut out = Out {
            resource: &resource,
            series: SeriesMap::new(),
        };
        let mut latest = 0i64;
        for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
            let Some(data) = &m.data else { continue };
            map_metric(m, data, &mut out, &mut latest, &mut result);
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
            result.series.entry(labels).or_default().extend(samples);
        }
    }
    result
}

/// Maps one metric's points into `out`, its metadata and rejections into `result`.
fn map_metric(
    m: &opentelemetry_proto::tonic::metrics::v1::Metric,
    data: &Data,
    out: &mut Out<'_>,
    latest: &mut i64,
    result: &mut Mapped,
) {
    let kind = match data {
        Data::Sum(s) if s.is_monotonic => Kind::Counter,
        Data::Gauge(_) | Data::Sum(_) => Kind::Gauge,
        Data::Histogram(_) | Data::ExponentialHistogram(_) => Kind::Histogram,
        Data::Summary(_) => Kind::Summary,
    };
    let name = metric_name(&m.name, &m.unit, kind);
    let type_name = match kind {
        Kind::Counter => "counter",
        Kind::Gauge => "gauge",
        Kind::Histogram => "histogram",
        Kind::Summary => "summary",
    };
    result.metadata.insert(
        name.clone(),
        Metadata {
            kind: type_name,
            help: m.description.clone(),
            unit: m.unit.clone(),
        },
    );
    let delta = |t: i32| t == AggregationTemporality::Delta as i32;
    let mut reject = |n: usize, why: &str| {
        result.rejected += n;
        result.reason.get_or_insert_with(|| format!("{}: {why}", m.name));
    };
    const DELTA: &str = "delta temporality is not supported; configure the exporter for cumulative";
    match data {
        Data::Sum(s) if s.is_monotonic && delta(s.aggregation_temporality) => {
            reject(s.data_points.len(), DELTA)
        }
        Data::Histogram(h) if delta(h.aggregation_temporality) => reject(h.data_points.len(), DELTA),
        Data::ExponentialHistogram(h) => reject(
            h.data_points.len(),
            "exponential histograms are not supported yet; use explicit buckets",
        ),
        Data::Gauge(opentelemetry_proto::tonic::metrics::v1::Gauge { data_points })
        | Data::Sum(opentelemetry_proto::tonic::metrics::v1::Sum { data_points, .. }) => {
            for dp in data_points {
                *latest = (*latest).max(ms(dp.time_unix_nano));
                out.add(&name, &dp.attributes, None, ms(dp.time_unix_nano), number(dp));
            }
        }
        Data::Histogram(h) => {
            for dp in &h.data_points {
                let t = ms(dp.time_unix_nano);
                *latest = (*latest).max(t);
                let stale = dp.flags & NO_RECORDED_VALUE != 0;
                let v = |x: f64| if stale { f64::from_bits(STALE_NAN_BITS) } else { x };
                let bucket = format!("{name}_bucket");
                let mut cumulative = 0u64;
                for (i, c) in dp.bucket_counts.iter().enumerate() {
                    cumulative += c;
                    let le = dp
                        .explicit_bounds
                        .get(i)
                        .map_or("+Inf".into(), |b| format_float(*b));
                    out.add(&bucket, &dp.attributes, Some(("le", le)), t, v(cumulative as f64));
                }
                if dp.bucket_counts.len() <= dp.explicit_bounds.len() {
                    let inf = Some(("le", "+Inf".to_string()));
                    out.add(&bucket, &dp.attributes, inf, t, v(dp.count as f64));
                }
                out.sum_and_count(&name, &dp.attributes, t, dp.sum, dp.count, stale);
            }
        }
        Data::Summary(s) => {
            for dp in &s.data_points {
                let t = ms(dp.time_unix_nano);
                *latest = (*latest).max(t);
                let stale = dp.flags & NO_RECORDED_VALUE != 0;
                let v = |x: f64| if stale { f64::from_bits(STALE_NAN_BITS) } else { x };
                for q in &dp.quantile_values {
                    let quantile = Some(("quantile", format_float(q.quantile)));
                    out.add(&name, &dp.attributes, quantile, t, v(q.value));
                }
                out.sum_and_count(&name, &dp.attributes, t, Some(dp.sum), dp.count, stale);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn floats_print_shortest_without_exponent() {
        for (v, want) in [
            (0.0, "0"),
            (-0.0, "-0"),
            (100.0, "100"),
            (0.1, "0.1"),
            (1e21, "1000000000000000000000"),
            (-1.5e22, "-15000000000000000000000"),
            (1e-7, "0.0000001"),
            (-1.25e-7, "-0.000000125"),
            (123.456, "123.456"),
            // An exact tie at the last digit goes to even, as in Go (and Prometheus).
            (662_936_471_232_937.0 + 0.25, "662936471232937.2"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-Inf"),
        ] {
            assert_eq!(super::format_float(v), want, "{v:e}");
        }
        // The integer fast path prints what the general path prints, up to and past 2^53.
        let general = |v: f64| super::with_ryu_str(v, str::to_string);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = ((x >> (x % 64)) as i64 as f64) * if x & 1 == 0 { 1.0 } else { -1.0 };
            assert_eq!(super::format_float(v), general(v), "{v:e}");
        }
        for v in [
            super::MAX_EXACT_INT - 1.0,
            super::MAX_EXACT_INT,
            super::MAX_EXACT_INT * 3.0,
            1.0,
            -1.0,
        ] {
            assert_eq!(super::format_float(v), general(v), "{v:e}");
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if !v.is_finite() {
                continue;
            }
            let s = super::format_float(v);
            assert!(!s.contains('e'), "{s}");
            assert_eq!(s.parse::<f64>().unwrap().to_bits(), v.to_bits(), "{s} reads back");
            let digits = |s: &str| {
                s.trim_start_matches(['-', '0', '.'])
                    .trim_end_matches(['0', '.'])
                    .replace('.', "")
                    .len()
            };
            assert_eq!(digits(&s), digits(&format!("{v}")), "{s} is as short as {v}");
        }
    }

    use super::*;

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
            assert_eq!(metric_name(name, unit, kind), want, "{name} {unit}");
        }
    }

    #[test]
    fn a_point_with_no_recorded_value_is_the_staleness_marker() {
        use opentelemetry_proto::tonic::metrics::v1::{Gauge, Metric, ResourceMetrics, ScopeMetrics};
        let point = NumberDataPoint {
            time_unix_nano: 2_000_000,
            flags: NO_RECORDED_VALUE,
            value: Some(number_data_point::Value::AsDouble(1.0)),
            ..Default::default()
        };
        let req = ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: "up".into(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: vec![point],
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let mapped = map(&req);
        let samples: Vec<_> = mapped.series.values().flatten().collect();
        assert_eq!(samples.len(), 1);
        assert_eq!((samples[0].0, samples[0].1.to_bits()), (2, STALE_NAN_BITS));
    }

    #[test]
    fn label_names_and_values_are_prometheus_safe() {
        assert_eq!(label_name("service.name"), "service_name");
        assert_eq!(label_name("1st"), "_1st");
        let list = AnyValue {
            value: Some(any_value::Value::ArrayValue(
                opentelemetry_proto::tonic::common::v1::ArrayValue {
                    values: vec![AnyValue {
                        value: Some(any_value::Value::IntValue(1)),
                    }],
                },
            )),
        };
        assert_eq!(attribute_value(Some(&list)), "[1]");
        assert_eq!(
            label_set(vec![
                ("b".into(), "1".into()),
                ("a".into(), "".into()),
                ("b".into(), "2".into())
            ]),
            [("b".to_string(), "2".to_string())]
        );
    }
}
