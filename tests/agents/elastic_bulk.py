"""Elasticsearch _bulk through the official Python client (elasticsearch 8.x):
Elasticsearch(URL, api_key=(tenant, token)) -> Authorization: ApiKey base64("tenant:token"),
and elasticsearch.helpers.bulk with one "index" action per line into the index logs-app.

Document i: {"@timestamp": now, "message": f"{prefix}-{i}", "host": {"name": "es-host"},
"service": {"name": "es-app"}, "log": {"level": "error"}, "seq": i}. Success: helpers.bulk
counts N items with a 2xx status and reports no error. No retries (max_retries=0), so a line
is sent once.
"""

from datetime import datetime, timezone

from agent_args import fail, need, ok, parse_args

try:
    from elasticsearch import Elasticsearch, helpers
except ImportError as e:
    need(e)

INDEX = "logs-app"

args = parse_args(__doc__)
es = Elasticsearch(args.url, api_key=(args.tenant, args.token), max_retries=0, request_timeout=10)


def actions():
    for i in range(args.count):
        now = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        yield {
            "_index": INDEX,
            "@timestamp": now,
            "message": f"{args.prefix}-{i}",
            "host": {"name": "es-host"},
            "service": {"name": "es-app"},
            "log": {"level": "error"},
            "seq": i,
        }


try:
    indexed, errors = helpers.bulk(es, actions(), raise_on_error=False)
except Exception as e:  # connection refused, HTTP error status, not Elasticsearch, bad JSON
    fail(repr(e))
finally:
    es.close()
if errors or indexed != args.count:
    first = f"; first error: {errors[0]}" if errors else ""
    fail(f"{indexed} of {args.count} documents indexed into {INDEX} at {args.url}, "
         f"{len(errors)} errors{first}")
ok(f"{indexed} documents indexed into {INDEX} at {args.url}")
