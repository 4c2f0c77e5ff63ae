"""Send metrics to an OTLP endpoint with the official OpenTelemetry Python SDK.

Used by the cross-process tests: a real client, not a hand-made request.

    python3 tests/python/otlp_metrics.py --protocol grpc --endpoint http://127.0.0.1:9701 \
        --service shop

Records a counter (5 requests on route /buy), an up-down counter (queue size 3), a histogram
(0.05, 0.3, 0.7 and 2.0 seconds, buckets 0.1/0.5/1) and an observable gauge (1024 bytes),
exports once, and exits 0 if the export succeeded.
"""
import argparse
import sys

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExportResult, PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource


class Checked:
    """Wraps an exporter and remembers whether any export failed."""

    def __init__(self, inner):
        self.inner, self.failed = inner, False
        self._preferred_temporality = inner._preferred_temporality
        self._preferred_aggregation = inner._preferred_aggregation

    def export(self, data, **kw):
        result = self.inner.export(data, **kw)
        if result != MetricExportResult.SUCCESS:
            self.failed = True
        return result

    def force_flush(self, *a, **k):
        return True

    def shutdown(self, *a, **k):
        return self.inner.shutdown(*a, **k)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--protocol", choices=["grpc", "http"], required=True)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--service", required=True)
    a = p.parse_args()
    if a.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=a.endpoint, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        exporter = OTLPMetricExporter(endpoint=a.endpoint.rstrip("/") + "/v1/metrics")
    checked = Checked(exporter)
    reader = PeriodicExportingMetricReader(checked, export_interval_millis=3_600_000)
    view = View(instrument_name="shop.latency", aggregation=ExplicitBucketHistogramAggregation([0.1, 0.5, 1.0]))
    resource = Resource.create({"service.name": a.service, "service.instance.id": "i-1", "host.name": "box-1"})
    provider = MeterProvider(resource=resource, metric_readers=[reader], views=[view])
    meter = provider.get_meter("obs-e2e")
    requests = meter.create_counter("shop.requests", unit="{request}", description="Requests served.")
    requests.add(5, {"http.route": "/buy"})
    queue = meter.create_up_down_counter("shop.queue")
    queue.add(4)
    queue.add(-1)
    latency = meter.create_histogram("shop.latency", unit="s")
    for v in (0.05, 0.3, 0.7, 2.0):
        latency.record(v)
    meter.create_observable_gauge(
        "shop.memory.usage", unit="By", callbacks=[lambda options: [__import__("opentelemetry.metrics").metrics.Observation(1024)]]
    )
    provider.force_flush()
    provider.shutdown()
    if checked.failed:
        print("export failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
