//! Metrics ingest formats -> [`SampleBatch`]:
//!
//! - Prometheus remote_write 1.0 (snappy-compressed protobuf). Label sets are validated so a
//!   bad series is refused with a message that names it, and the whole request with it
//!   (remote_write senders retry only on 5xx, so a 400 is dropped rather than retried).
//! - OTLP metrics (`otlp.rs`), mapped the way Prometheus's OTLP receiver does.

use std::collections::BTreeMap;

use prost::Message;

mod otlp;

pub(crate) use otlp::otlp_metrics;

use crate::tsdb::labels::{is_valid_label_name, is_valid_metric_name};
use crate::tsdb::{MetricMeta, SampleBatch, SeriesSamples, METRIC_NAME};

/// The remote_write 1.0 protobuf messages (prometheus/prompb), from `obs-otlp-prom`.
pub(crate) use obs_otlp_prom::prompb;

fn metric_type(t: i32) -> &'static str {
    match t {
        1 => "counter",
        2 => "gauge",
        3 => "histogram",
        4 => "gaugehistogram",
        5 => "summary",
        6 => "info",
        7 => "stateset",
        _ => "unknown",
    }
}

/// Checks one series' labels: a valid metric name, valid and unique label names.
pub(crate) fn check_series_labels(labels: &[(String, String)]) -> Result<(), String> {
    let shown = || {
        let pairs: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
        format!("{{{}}}", pairs.join(", "))
    };
    let name = labels
        .iter()
        .find(|(n, _)| n == METRIC_NAME)
        .map(|(_, v)| v.as_str());
    match name {
        None | Some("") => return Err(format!("series {} has no metric name (__name__)", shown())),
        Some(n) if !is_valid_metric_name(n) => {
            return Err(format!("series {}: invalid metric name {n:?}", shown()));
        }
        _ => {}
    }
    let mut seen = std::collections::HashSet::new();
    for (n, _) in labels {
        if !is_valid_label_name(n) {
            return Err(format!("series {}: invalid label name {n:?}", shown()));
        }
        if !seen.insert(n) {
            return Err(format!("series {}: duplicate label name {n:?}", shown()));
        }
    }
    Ok(())
}

/// Decodes a remote_write body into samples and metric metadata.
pub(crate) fn remote_write(body: &[u8]) -> Result<(SampleBatch, BTreeMap<String, MetricMeta>), String> {
    let raw = crate::convert::snappy_decompress(body, "remote_write body")?;
    let req = prompb::WriteRequest::decode(raw.as_slice())
        .map_err(|e| format!("remote_write body is not a prometheus WriteRequest: {e}"))?;
    let mut batch = SampleBatch::default();
    for (i, ts) in req.timeseries.into_iter().enumerate() {
        let labels: Vec<(String, String)> = ts
            .labels
            .into_iter()
            .filter(|l| !l.value.is_empty())
            .map(|l| (l.name, l.value))
            .collect();
        check_series_labels(&labels).map_err(|e| format!("timeseries[{i}]: {e}"))?;
        if ts.samples.is_empty() {
            continue;
        }
        let samples = ts.samples.into_iter().map(|s| (s.timestamp, s.value)).collect();
        batch.series.push(SeriesSamples { labels, samples });
    }
    let metadata = req
        .metadata
        .into_iter()
        .filter(|m| !m.metric_family_name.is_empty())
        .map(|m| {
            let meta = MetricMeta {
                kind: metric_type(m.r#type).into(),
                help: m.help,
                unit: m.unit,
            };
            (m.metric_family_name, meta)
        })
        .collect();
    Ok((batch, metadata))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::prompb::*;
    use super::*;

    pub(crate) fn encode_write(req: &WriteRequest) -> Vec<u8> {
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap()
    }

    pub(crate) fn series(labels: &[(&str, &str)], samples: &[(i64, f64)]) -> TimeSeries {
        TimeSeries {
            labels: labels
                .iter()
                .map(|(n, v)| Label {
                    name: n.to_string(),
                    value: v.to_string(),
                })
                .collect(),
            samples: samples
                .iter()
                .map(|&(timestamp, value)| Sample { value, timestamp })
                .collect(),
        }
    }

    #[test]
    fn decodes_samples_and_metadata() {
        let req = WriteRequest {
            timeseries: vec![series(
                &[("__name__", "up"), ("job", "node"), ("empty", "")],
                &[(1000, 1.0), (2000, 0.0)],
            )],
            metadata: vec![MetricMetadata {
                r#type: 2,
                metric_family_name: "up".into(),
                help: "Up.".into(),
                unit: "".into(),
            }],
        };
        let (batch, meta) = remote_write(&encode_write(&req)).unwrap();
        assert_eq!(batch.series.len(), 1);
        assert_eq!(
            batch.series[0].labels,
            vec![
                ("__name__".to_string(), "up".to_string()),
                ("job".into(), "node".into())
            ]
        );
        assert_eq!(batch.series[0].samples, vec![(1000, 1.0), (2000, 0.0)]);
        assert_eq!(meta["up"].kind, "gauge");
    }

    #[test]
    fn bad_series_are_refused_with_a_message_naming_them() {
        for (labels, want) in [
            (vec![("job", "x")], "has no metric name"),
            (vec![("__name__", "1bad")], "invalid metric name \"1bad\""),
            (
                vec![("__name__", "ok"), ("bad-name", "x")],
                "invalid label name \"bad-name\"",
            ),
            (
                vec![("__name__", "ok"), ("a", "1"), ("a", "2")],
                "duplicate label name \"a\"",
            ),
        ] {
            let req = WriteRequest {
                timeseries: vec![series(&labels, &[(1, 1.0)])],
                metadata: vec![],
            };
            let err = remote_write(&encode_write(&req)).unwrap_err();
            assert!(err.starts_with("timeseries[0]: series {"), "{err}");
            assert!(err.contains(want), "{err}");
        }
        assert!(remote_write(b"not snappy at all").unwrap_err().contains("snappy"));
        let junk = snap::raw::Encoder::new().compress_vec(b"\xff\xff\xff").unwrap();
        assert!(remote_write(&junk).unwrap_err().contains("WriteRequest"));
    }
}
