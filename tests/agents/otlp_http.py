"""OTLP/HTTP logs through the OpenTelemetry Python SDK: LoggerProvider ->
BatchLogRecordProcessor -> OTLPLogExporter (protobuf, POST URL/v1/logs).

Resource service.name=otel-app, host.name=otel-host; record i has body f"{prefix}-{i}",
severity WARN (even i) or INFO (odd i) and the attribute seq=i. The SDK only logs a failed
export, so the exporter is wrapped to count what each export returned.
"""

import logging
import time

from agent_args import fail, need, ok, parse_args

try:
    from opentelemetry._logs import SeverityNumber
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import (
        BatchLogRecordProcessor,
        LogRecordExporter,
        LogRecordExportResult,
    )
    from opentelemetry.sdk.resources import Resource
except ImportError as e:
    need(e)


class Tally(LogRecordExporter):
    """Passes each batch to the real exporter and counts what it returned."""

    def __init__(self, exporter):
        self.exporter, self.requests, self.sent, self.lost = exporter, 0, 0, 0

    def export(self, batch):
        result = self.exporter.export(batch)
        self.requests += 1
        if result == LogRecordExportResult.SUCCESS:
            self.sent += len(batch)
        else:
            self.lost += len(batch)
        return result

    def force_flush(self, timeout_millis=30000):
        return self.exporter.force_flush(timeout_millis)

    def shutdown(self):
        self.exporter.shutdown()


class Reasons(logging.Handler):
    """Keeps the SDK's warnings and errors (why an export failed) for the report."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def options(p):
    p.add_argument("--compression", choices=["none", "gzip", "deflate"], default="none",
                   help="request body encoding (the SDK's default: none)")


args = parse_args(__doc__, options)
reasons = Reasons()
logging.getLogger("opentelemetry").addHandler(reasons)

endpoint = args.url + "/v1/logs"
exporter = Tally(OTLPLogExporter(
    endpoint=endpoint,
    headers={"X-Scope-OrgID": args.tenant, "Authorization": "Bearer " + args.token},
    compression={"none": Compression.NoCompression, "gzip": Compression.Gzip,
                 "deflate": Compression.Deflate}[args.compression],
))
provider = LoggerProvider(resource=Resource.create(
    {"service.name": "otel-app", "host.name": "otel-host"}))
# A queue that holds every record: a full queue drops records silently.
provider.add_log_record_processor(
    BatchLogRecordProcessor(exporter, max_queue_size=max(2048, args.count)))
logger = provider.get_logger("meniscus.e2e")

for i in range(args.count):
    warn = i % 2 == 0
    logger.emit(
        timestamp=time.time_ns(),
        severity_number=SeverityNumber.WARN if warn else SeverityNumber.INFO,
        severity_text="WARN" if warn else "INFO",
        body=f"{args.prefix}-{i}",
        attributes={"seq": i},
    )
flushed = provider.force_flush()
provider.shutdown()

if exporter.lost or exporter.sent != args.count or not flushed:
    seen = list(dict.fromkeys(reasons.messages))  # first and last of what the SDK logged
    why = " ... ".join(seen[:1] + seen[-1:] if len(seen) > 1 else seen) or "no reason logged"
    fail(f"{exporter.sent} of {args.count} records exported to {endpoint}, {exporter.lost} failed"
         f"{'' if flushed else ', flush timed out'} ({why})")
ok(f"{exporter.sent} records exported to {endpoint} in {exporter.requests} export(s) "
   f"(compression {args.compression})")
