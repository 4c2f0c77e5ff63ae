"""Sends errors to the store the way real apps do, for tests/tests/errors.rs.

  errors_send.py sentry --dsn http://KEY@127.0.0.1:PORT/1
      The official sentry-sdk: capture_exception from two code paths (3 and 2 times, other
      values each time), capture_message twice (other numbers), and a transaction. Prints the
      HTTP status of every request the SDK made, as JSON.

  errors_send.py otel --endpoint http://127.0.0.1:PORT --service NAME [--token T]
      The OpenTelemetry SDK over OTLP/HTTP: a span that raises ZeroDivisionError twice (the
      span records an `exception` event) and logs it with logger.exception (the log record
      carries exception.* attributes and the trace context). Prints the trace ids as JSON.
"""

import argparse
import json
import logging
import sys


def sentry(dsn):
    import sentry_sdk
    import urllib3

    statuses = []
    urlopen = urllib3.connectionpool.HTTPConnectionPool.urlopen

    def recording(self, method, url, *args, **kwargs):
        response = urlopen(self, method, url, *args, **kwargs)
        statuses.append({"path": url, "status": response.status})
        return response

    urllib3.connectionpool.HTTPConnectionPool.urlopen = recording
    sentry_sdk.init(
        dsn=dsn,
        release="shop@1.4.2",
        environment="test",
        server_name="web-1",
        traces_sample_rate=1.0,
        default_integrations=True,
    )
    sentry_sdk.set_user({"id": "user-17"})

    def parse_amount(text):
        return int(text)

    rates = {"DE": 0.19}

    def tax_rate(order):
        return rates[order["country"]]

    for value in ["abc", "12x", "x1"]:
        logging.warning("parsing amount %s", value)  # a breadcrumb
        try:
            parse_amount(value)
        except ValueError:
            sentry_sdk.capture_exception()
    for country in ["XX", "YY"]:
        try:
            tax_rate({"country": country})
        except KeyError:
            sentry_sdk.capture_exception()
    sentry_sdk.capture_message("payment 42 declined by the bank")
    sentry_sdk.capture_message("payment 97 declined by the bank")
    with sentry_sdk.start_transaction(name="checkout", op="http.server"):
        pass
    sentry_sdk.flush(timeout=10)
    print(json.dumps({"statuses": statuses}))


def otel(endpoint, service, token):
    from opentelemetry import trace
    from opentelemetry._logs import set_logger_provider
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    headers = {"authorization": f"Bearer {token}"} if token else {}
    resource = Resource.create({"service.name": service, "host.name": "pyhost", "service.version": "2.0.1"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", headers=headers)))
    trace.set_tracer_provider(tracer_provider)
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{endpoint}/v1/logs", headers=headers)))
    set_logger_provider(logger_provider)
    log = logging.getLogger("shop")
    log.addHandler(LoggingHandler(level=logging.INFO, logger_provider=logger_provider))
    log.setLevel(logging.INFO)
    tracer = trace.get_tracer("shop")

    def ratio(a, b):
        return a / b

    trace_ids = []

    def charge(amount):
        with tracer.start_as_current_span("charge") as span:
            trace_ids.append(format(span.get_span_context().trace_id, "032x"))
            try:
                return ratio(100, amount)
            except ZeroDivisionError:
                log.exception("charge of %s failed", amount)
                raise

    for _ in range(2):
        try:
            charge(0)
        except ZeroDivisionError:
            pass
    tracer_provider.shutdown()
    logger_provider.shutdown()
    print(json.dumps({"trace_ids": trace_ids}))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["sentry", "otel"])
    p.add_argument("--dsn")
    p.add_argument("--endpoint")
    p.add_argument("--service", default="otel-shop")
    p.add_argument("--token", help="a bearer token for OTLP/HTTP")
    a = p.parse_args()
    if a.mode == "sentry":
        sentry(a.dsn)
    else:
        otel(a.endpoint, a.service, a.token)


if __name__ == "__main__":
    sys.exit(main())
