"""Loki push, protobuf: a logproto.PushRequest built from push.proto (compiled at run time
with grpcio-tools), one stream {app="loki-proto", host="loki-host"} with an entry per line
(structured metadata trace_id=abc{i}), snappy block-compressed (cramjam.snappy.compress_raw,
not the framed format) and POSTed with urllib to URL/loki/api/v1/push with
Content-Type: application/x-protobuf, X-Scope-OrgID: tenant, Authorization: Bearer token.
Success: HTTP 204, as Loki answers.
"""

import importlib
import importlib.resources
import pathlib
import sys
import tempfile
import time
import urllib.error
import urllib.request

from agent_args import fail, need, ok, parse_args

try:
    import cramjam
    from grpc_tools import protoc
except ImportError as e:
    need(e)

HERE = pathlib.Path(__file__).resolve().parent


def compile_push_proto():
    """push_pb2, generated from push.proto into a temporary directory."""
    well_known = importlib.resources.files("grpc_tools") / "_proto"  # google/protobuf/*.proto
    with tempfile.TemporaryDirectory() as out:
        rc = protoc.main(["protoc", f"-I{HERE}", f"-I{well_known}", f"--python_out={out}",
                          str(HERE / "push.proto")])
        if rc != 0:
            fail(f"protoc could not compile {HERE / 'push.proto'} (exit {rc})")
        sys.path.insert(0, out)
        try:
            return importlib.import_module("push_pb2")
        finally:
            sys.path.remove(out)


args = parse_args(__doc__)
pb = compile_push_proto()
stream = pb.StreamAdapter(labels='{app="loki-proto", host="loki-host"}')
for i in range(args.count):
    entry = stream.entries.add(line=f"{args.prefix}-{i}")
    entry.timestamp.FromNanoseconds(time.time_ns())
    entry.structuredMetadata.add(name="trace_id", value=f"abc{i}")
body = bytes(cramjam.snappy.compress_raw(pb.PushRequest(streams=[stream]).SerializeToString()))

url = args.url + "/loki/api/v1/push"
request = urllib.request.Request(url, data=body, method="POST", headers={
    "Content-Type": "application/x-protobuf",
    "X-Scope-OrgID": args.tenant,
    "Authorization": "Bearer " + args.token,
})
try:
    with urllib.request.urlopen(request, timeout=10) as response:
        status = response.status
except urllib.error.HTTPError as e:
    fail(f"{url} answered HTTP {e.code}: {e.read()[:500].decode('utf-8', 'replace')}")
except OSError as e:  # connection refused, timeout
    fail(f"{url}: {e}")
if status != 204:
    fail(f"{url} answered HTTP {status}, not 204")
ok(f"{args.count} lines pushed to {url} in one request ({len(body)} bytes snappy), HTTP 204")
