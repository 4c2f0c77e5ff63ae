//! Ingest limits a shared store needs, under Loki's names and defaults (and Mimir's for
//! metric series): label name and value lengths, label names per series, streams per push.
//!
//! Every push is checked whole before anything of it is written: one over a limit is
//! refused whole, with a message naming the stream (or series) and the limit, and counted
//! by limit in `/metrics` (`obs_store_pushes_refused_total{limit=...}`). Loki push and
//! remote_write answer 400 (do not retry); OTLP answers success with a partial success
//! that rejects every record and gives the reason, as the OTLP spec asks of data that a
//! retry cannot fix.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::model::LogBatch;
use crate::tsdb::SampleBatch;

/// Keys of `[store]`, with Loki's defaults (`max_label_names_per_metric_series`: Mimir's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    pub max_label_name_length: usize,
    pub max_label_value_length: usize,
    /// Labels of a log stream.
    pub max_label_names_per_series: usize,
    /// Labels of a metric series, `__name__` included.
    pub max_label_names_per_metric_series: usize,
    pub max_streams_per_push: usize,
}

impl Default for IngestLimits {
    fn default() -> Self {
        IngestLimits {
            max_label_name_length: 1024,
            max_label_value_length: 2048,
            max_label_names_per_series: 15,
            max_label_names_per_metric_series: 30,
            max_streams_per_push: 5_000,
        }
    }
}

/// Which limit refused a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Limit {
    LabelNameLength,
    LabelValueLength,
    LabelNamesPerSeries,
    LabelNamesPerMetricSeries,
    StreamsPerPush,
}

impl Limit {
    pub(crate) const ALL: [Limit; 5] = [
        Limit::LabelNameLength,
        Limit::LabelValueLength,
        Limit::LabelNamesPerSeries,
        Limit::LabelNamesPerMetricSeries,
        Limit::StreamsPerPush,
    ];

    /// The config key, also the `limit` label of the counter.
    pub(crate) fn key(self) -> &'static str {
        match self {
            Limit::LabelNameLength => "max_label_name_length",
            Limit::LabelValueLength => "max_label_value_length",
            Limit::LabelNamesPerSeries => "max_label_names_per_series",
            Limit::LabelNamesPerMetricSeries => "max_label_names_per_metric_series",
            Limit::StreamsPerPush => "max_streams_per_push",
        }
    }
}

/// Pushes refused, by limit (indexed like [`Limit::ALL`]).
#[derive(Debug, Default)]
pub(crate) struct RefusedCounts([AtomicU64; 5]);

impl RefusedCounts {
    pub(crate) fn add(&self, limit: Limit) {
        self.0[limit as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn get(&self, limit: Limit) -> u64 {
        self.0[limit as usize].load(Ordering::Relaxed)
    }
}

/// A push over a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) limit: Limit,
    pub(crate) message: String,
}

impl IngestLimits {
    /// Checks every stream of a log push.
    pub(crate) fn check_logs(&self, batch: &LogBatch) -> Result<(), Refused> {
        let streams = batch.streams.len();
        if streams > self.max_streams_per_push {
            return Err(self.refused(
                Limit::StreamsPerPush,
                format!("the push holds {streams} streams"),
                self.max_streams_per_push,
            ));
        }
        for s in &batch.streams {
            let labels = s.labels.iter().map(|(n, v)| (n.as_str(), v.as_str()));
            let names = (Limit::LabelNamesPerSeries, self.max_label_names_per_series);
            self.check_series("stream", labels, s.labels.len(), names)?;
        }
        Ok(())
    }

    /// Checks every series of a metrics push.
    pub(crate) fn check_samples(&self, batch: &SampleBatch) -> Result<(), Refused> {
        for s in &batch.series {
            let labels = s.labels.iter().map(|(n, v)| (n.as_str(), v.as_str()));
            let names = (
                Limit::LabelNamesPerMetricSeries,
                self.max_label_names_per_metric_series,
            );
            self.check_series("series", labels, s.labels.len(), names)?;
        }
        Ok(())
    }

    fn check_series<'a>(
        &self,
        what: &str,
        labels: impl Iterator<Item = (&'a str, &'a str)> + Clone,
        count: usize,
        (limit, max_names): (Limit, usize),
    ) -> Result<(), Refused> {
        if count > max_names {
            return Err(self.refused(
                limit,
                format!("{what} {} has {count} labels", show(labels)),
                max_names,
            ));
        }
        for (name, value) in labels.clone() {
            if name.len() > self.max_label_name_length {
                return Err(self.refused(
                    Limit::LabelNameLength,
                    format!("{what} {} has a label name of {} bytes", show(labels), name.len()),
                    self.max_label_name_length,
                ));
            }
            if value.len() > self.max_label_value_length {
                return Err(self.refused(
                    Limit::LabelValueLength,
                    format!(
                        "{what} {} has a value of {} bytes for label {}",
                        show(labels),
                        value.len(),
                        cut(name)
                    ),
                    self.max_label_value_length,
                ));
            }
        }
        Ok(())
    }

    fn refused(&self, limit: Limit, what: String, max: usize) -> Refused {
        Refused {
            limit,
            message: format!(
                "{what}; the limit is {max} ({} in [store]): nothing of this push was stored",
                limit.key()
            ),
        }
    }
}

/// A label set for a message: long names and values cut, at most 20 labels.
fn show<'a>(labels: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut parts: Vec<String> = labels
        .take(21)
        .map(|(n, v)| format!("{}={:?}", cut(n), cut(v)))
        .collect();
    if parts.len() > 20 {
        parts[20] = "…".into();
    }
    format!("{{{}}}", parts.join(", "))
}

/// The first 64 characters of `s`, with an ellipsis when there is more.
fn cut(s: &str) -> String {
    match s.char_indices().nth(64) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LogEntry, LogStream};
    use crate::tsdb::SeriesSamples;

    fn stream(labels: &[(&str, String)]) -> LogStream {
        LogStream {
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            entries: vec![LogEntry {
                ts_ns: 1,
                line: "x".into(),
                metadata: Vec::new(),
            }],
        }
    }

    fn logs(streams: Vec<LogStream>) -> LogBatch {
        LogBatch { streams }
    }

    #[test]
    fn log_pushes_over_a_limit_are_refused_naming_the_stream_and_the_limit() {
        let l = IngestLimits::default();
        let ok = logs(vec![stream(&[("job", "api".into())])]);
        assert_eq!(l.check_logs(&ok), Ok(()));

        let long = logs(vec![stream(&[("job", "a".repeat(200_000))])]);
        let e = l.check_logs(&long).unwrap_err();
        assert_eq!(e.limit, Limit::LabelValueLength);
        assert!(
            e.message.contains("a value of 200000 bytes for label job"),
            "{}",
            e.message
        );
        assert!(
            e.message
                .contains("the limit is 2048 (max_label_value_length in [store])"),
            "{}",
            e.message
        );
        assert!(e.message.len() < 400, "the message cuts the value: {}", e.message);

        let name = logs(vec![stream(&[(&"n".repeat(1025), "v".into())])]);
        assert_eq!(l.check_logs(&name).unwrap_err().limit, Limit::LabelNameLength);

        let names: Vec<(String, String)> = (0..16).map(|i| (format!("l{i:02}"), "v".into())).collect();
        let names: Vec<(&str, String)> = names.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let e = l.check_logs(&logs(vec![stream(&names)])).unwrap_err();
        assert_eq!(e.limit, Limit::LabelNamesPerSeries);
        assert!(e.message.starts_with("stream {l00=\"v\""), "{}", e.message);
        assert!(
            e.message.contains("has 16 labels; the limit is 15"),
            "{}",
            e.message
        );

        let many = logs((0..5_001).map(|i| stream(&[("i", i.to_string())])).collect());
        let e = l.check_logs(&many).unwrap_err();
        assert_eq!(e.limit, Limit::StreamsPerPush);
        assert!(
            e.message
                .starts_with("the push holds 5001 streams; the limit is 5000"),
            "{}",
            e.message
        );
    }

    #[test]
    fn metric_series_allow_thirty_labels() {
        let l = IngestLimits::default();
        let series = |n: usize| SampleBatch {
            series: vec![SeriesSamples {
                labels: (0..n).map(|i| (format!("l{i:02}"), "v".into())).collect(),
                samples: vec![(1, 1.0)],
            }],
        };
        assert_eq!(l.check_samples(&series(30)), Ok(()));
        let e = l.check_samples(&series(31)).unwrap_err();
        assert_eq!(e.limit, Limit::LabelNamesPerMetricSeries);
        assert!(e.message.contains("series {"), "{}", e.message);
        assert!(
            e.message
                .contains("(max_label_names_per_metric_series in [store])"),
            "{}",
            e.message
        );
    }
}
