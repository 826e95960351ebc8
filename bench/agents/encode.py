"""Pre-encodes the protobuf request bodies of bench/agents, once, before any clock starts:
Loki push (logproto.PushRequest, snappy block) and OTLP/HTTP logs (ExportLogsServiceRequest,
plain or gzip). Run by agents.py with the agents' venv python (dev/peers/python-clients.sh:
protobuf, grpcio-tools to compile tests/agents/push.proto, cramjam for snappy,
opentelemetry-proto), so the bodies are what the real libraries put on the wire; the sending
itself is stdlib Python in agents.py.

Reads a JSON spec on stdin:
  {"size": S, "base_us": B, "batch": K, "count": N,
   "phases": [{"kind": "loki" | "otlp" | "otlp-gzip", "first": F, "out": PATH}, ...]}
and writes, per phase, the bodies of events F .. F+N-1 in requests of K events to PATH, each
as a 4-byte big-endian length and the body. Prints one summary line per phase.
"""

import gzip
import importlib
import importlib.resources
import json
import os
import struct
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import corpus  # noqa: E402

import cramjam  # noqa: E402
from grpc_tools import protoc  # noqa: E402
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2  # noqa: E402
from opentelemetry.proto.common.v1 import common_pb2  # noqa: E402
from opentelemetry.proto.logs.v1 import logs_pb2  # noqa: E402
from opentelemetry.proto.resource.v1 import resource_pb2  # noqa: E402


def push_pb2():
    """logproto's push_pb2, compiled from tests/agents/push.proto (as loki_proto.py does)."""
    proto_dir = os.path.join(REPO, "tests", "agents")
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    with tempfile.TemporaryDirectory(prefix="meniscus-agents-proto.") as out:
        rc = protoc.main(["protoc", f"-I{proto_dir}", f"-I{well_known}", f"--python_out={out}",
                          os.path.join(proto_dir, "push.proto")])
        if rc != 0:
            sys.exit(f"encode.py: protoc could not compile push.proto (exit {rc})")
        sys.path.insert(0, out)
        try:
            return importlib.import_module("push_pb2")
        finally:
            sys.path.remove(out)


LOKI_LABELS = f'{{app="{corpus.APP}", host="{corpus.HOST}", level="{corpus.SEVERITY_TEXT}"}}'


def loki_body(pb, events):
    """One stream (app, host, level labels: as Promtail/Alloy batch per stream), an entry per
    event; snappy block format, as Loki's clients send it."""
    stream = pb.StreamAdapter(labels=LOKI_LABELS)
    for _stamp, ns, msg in events:
        entry = stream.entries.add(line=msg)
        entry.timestamp.seconds = ns // 1_000_000_000
        entry.timestamp.nanos = ns % 1_000_000_000
    raw = pb.PushRequest(streams=[stream]).SerializeToString()
    return bytes(cramjam.snappy.compress_raw(raw)), len(raw)


def otlp_body(events, compress):
    """One ResourceLogs (service.name, host.name, process.pid), one ScopeLogs, a LogRecord per
    event: time and observed time, severity INFO (9) with its text, a string body."""

    def attr(key, value):
        return common_pb2.KeyValue(key=key, value=common_pb2.AnyValue(string_value=value))

    resource = resource_pb2.Resource(attributes=[
        attr("service.name", corpus.APP), attr("host.name", corpus.HOST),
        common_pb2.KeyValue(key="process.pid", value=common_pb2.AnyValue(int_value=int(corpus.PROCID))),
    ])
    records = [logs_pb2.LogRecord(time_unix_nano=ns, observed_time_unix_nano=ns,
                                  severity_number=logs_pb2.SEVERITY_NUMBER_INFO, severity_text="INFO",
                                  body=common_pb2.AnyValue(string_value=msg))
               for _stamp, ns, msg in events]
    request = logs_service_pb2.ExportLogsServiceRequest(resource_logs=[logs_pb2.ResourceLogs(
        resource=resource,
        scope_logs=[logs_pb2.ScopeLogs(scope=common_pb2.InstrumentationScope(name="bench"),
                                       log_records=records)])])
    raw = request.SerializeToString()
    return (gzip.compress(raw, compresslevel=6) if compress else raw), len(raw)


def main():
    spec = json.load(sys.stdin)
    pb = None
    for phase in spec["phases"]:
        kind = phase["kind"]
        if kind == "loki" and pb is None:
            pb = push_pb2()
        bodies = raw_total = 0
        with open(phase["out"], "wb") as f:
            for first in range(phase["first"], phase["first"] + spec["count"], spec["batch"]):
                n = min(spec["batch"], phase["first"] + spec["count"] - first)
                events = corpus.events(first, n, spec["size"], spec["base_us"])
                if kind == "loki":
                    body, raw = loki_body(pb, events)
                elif kind in ("otlp", "otlp-gzip"):
                    body, raw = otlp_body(events, kind == "otlp-gzip")
                else:
                    sys.exit(f"encode.py: unknown kind {kind!r}")
                f.write(struct.pack(">I", len(body)))
                f.write(body)
                bodies += 1
                raw_total += raw
        print(f"{kind}: {bodies} bodies, {os.path.getsize(phase['out']) - 4 * bodies} bytes "
              f"({raw_total} before compression)", flush=True)


if __name__ == "__main__":
    main()
