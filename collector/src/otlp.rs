//! Small OTLP building blocks the sources share: string attributes, metric requests built
//! point by point, and appending encoded requests to the spool from async code.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, AggregationTemporality, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use prost::Message;

use crate::spool::{Kind, Spool};

/// A string attribute.
pub(crate) fn string_kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_string())),
        }),
        ..Default::default()
    }
}

/// Metrics of one resource, built a point at a time (points of one name share a metric).
#[derive(Debug, Default)]
pub(crate) struct MetricsBuilder {
    metrics: Vec<Metric>,
}

impl MetricsBuilder {
    /// Adds a point; the first point of a name decides whether it is a counter (cumulative
    /// monotonic sum) or a gauge.
    pub(crate) fn push(&mut self, name: String, counter: bool, point: NumberDataPoint) {
        match self.metrics.iter_mut().find(|m| m.name == name) {
            Some(Metric {
                data:
                    Some(
                        metric::Data::Sum(Sum { data_points, .. })
                        | metric::Data::Gauge(Gauge { data_points }),
                    ),
                ..
            }) => data_points.push(point),
            _ => self.metrics.push(Metric {
                name,
                data: Some(match counter {
                    true => metric::Data::Sum(Sum {
                        data_points: vec![point],
                        aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    }),
                    false => metric::Data::Gauge(Gauge {
                        data_points: vec![point],
                    }),
                }),
                ..Default::default()
            }),
        }
    }

    /// The request, with these resource attributes.
    pub(crate) fn request(self, resource: Vec<KeyValue>) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: self.metrics,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }
}

/// Appends metric requests to the spool on a blocking thread; failures are logged with
/// `what` (the source keeps running and tries again next time).
pub(crate) async fn spool_metrics(
    spool: &Arc<Spool>,
    requests: Vec<ExportMetricsServiceRequest>,
    what: &str,
) {
    let records = requests
        .iter()
        .map(|r| (Kind::Metrics, r.encode_to_vec()))
        .collect();
    spool_records(spool, records, what).await;
}

/// Appends encoded requests of any kind to the spool on a blocking thread, as
/// [`spool_metrics`] does.
pub(crate) async fn spool_records(spool: &Arc<Spool>, records: Vec<(Kind, Vec<u8>)>, what: &str) {
    let spool = spool.clone();
    let done = tokio::task::spawn_blocking(move || {
        records
            .iter()
            .try_for_each(|(kind, body)| spool.append(*kind, body).map(|_| ()))
    });
    match done.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "cannot spool {what}"),
        Err(e) => tracing::error!(error = %e, "spooling {what} stopped"),
    }
}

/// Fires every `interval` (the first tick at once) until shutdown: `while t.next().await {…}`.
pub(crate) struct Ticker {
    tick: tokio::time::Interval,
    shutdown: tokio::sync::watch::Receiver<bool>,
}

impl Ticker {
    pub(crate) fn new(interval: std::time::Duration, shutdown: tokio::sync::watch::Receiver<bool>) -> Self {
        Self {
            tick: tokio::time::interval(interval),
            shutdown,
        }
    }

    /// Waits for the next tick; false once shutdown is signalled.
    pub(crate) async fn next(&mut self) -> bool {
        tokio::select! {
            _ = self.tick.tick() => true,
            _ = self.shutdown.changed() => false,
        }
    }
}
