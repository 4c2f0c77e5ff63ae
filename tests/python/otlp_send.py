"""Send logs (and traces) to an OTLP endpoint with the official OpenTelemetry Python SDK.

Used by the cross-process tests: a real client, not a hand-made request.

    python3 tests/python/otlp_send.py --protocol grpc --endpoint http://127.0.0.1:9701 \
        --service shop --logs 20 --traces 3 [--token SECRET]

Prints one JSON line with the trace ids it created, then exits 0 once everything was exported
(non-zero if an export failed).
"""
import argparse
import json
import logging
import os
import sys

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor


class Checked:
    """Wraps an exporter and remembers whether any export failed."""

    def __init__(self, inner):
        self.inner, self.failed = inner, False

    def export(self, batch):
        result = self.inner.export(batch)
        # Compared by name: the SDK has renamed these enums between releases.
        if result.name != "SUCCESS":
            self.failed = True
        return result

    def shutdown(self, *a, **k):
        return self.inner.shutdown(*a, **k)

    def force_flush(self, *a, **k):
        return True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--protocol", choices=["grpc", "http"], required=True)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--service", required=True)
    p.add_argument("--logs", type=int, default=10)
    p.add_argument("--traces", type=int, default=0)
    p.add_argument("--token")
    p.add_argument("--ca", help="PEM file of the CA that signed the store's certificate (TLS)")
    a = p.parse_args()

    headers = {"authorization": f"Bearer {a.token}"} if a.token else None
    if a.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from grpc import Compression

        kw = dict(endpoint=a.endpoint, headers=headers, compression=Compression.Gzip)
        if a.ca:
            import grpc

            with open(a.ca, "rb") as f:
                kw.update(insecure=False, credentials=grpc.ssl_channel_credentials(root_certificates=f.read()))
        else:
            kw.update(insecure=True)
        log_exp, span_exp = OTLPLogExporter(**kw), OTLPSpanExporter(**kw)
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.exporter.otlp.proto.http import Compression

        base = a.endpoint.rstrip("/")
        tls = dict(certificate_file=a.ca) if a.ca else {}
        if a.ca:
            # requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override the session's `verify`
            # (which certificate_file sets), so point them at the same CA.
            os.environ["REQUESTS_CA_BUNDLE"] = os.environ["CURL_CA_BUNDLE"] = a.ca
        log_exp = OTLPLogExporter(endpoint=f"{base}/v1/logs", headers=headers, compression=Compression.Gzip, **tls)
        span_exp = OTLPSpanExporter(
            endpoint=f"{base}/v1/traces", headers=headers, compression=Compression.Gzip, **tls
        )

    resource = Resource.create({"service.name": a.service, "host.name": "pyhost", "deployment.environment": "test"})
    logs = Checked(log_exp)
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    logger = logging.getLogger(f"obs-test-{a.service}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    logger.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=provider))

    spans = Checked(span_exp)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    tracer = tracer_provider.get_tracer("obs-test")

    trace_ids = []
    for t in range(a.traces):
        with tracer.start_as_current_span("checkout", attributes={"cart.items": t + 1}) as root:
            with tracer.start_as_current_span("db.query", attributes={"db.system": "sqlite"}):
                logger.warning("querying stock for order %d", t, extra={"order.id": str(t)})
            trace_ids.append(format(root.get_span_context().trace_id, "032x"))
    for i in range(a.logs):
        logger.info("order placed %d", i, extra={"order.id": str(1000 + i)})

    provider.shutdown()
    tracer_provider.shutdown()
    print(json.dumps({"trace_ids": trace_ids}))
    if logs.failed or spans.failed:
        print("an export failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
