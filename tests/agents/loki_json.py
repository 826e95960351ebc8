"""Loki push, JSON, through python-logging-loki: LokiHandler(URL/loki/api/v1/push,
tags app=loki-app host=loki-host, auth=(tenant, token) as HTTP Basic, version "1") on a
logging logger at WARNING; one POST per line. The handler treats any status but 204 as a
failure and, like every logging handler, only reports it to handleError: that is overridden
here to count failures instead of printing tracebacks.
"""

import logging
import sys

from agent_args import fail, need, ok, parse_args

try:
    import requests
    from logging_loki import LokiHandler
except ImportError as e:
    need(e)


class Session(requests.Session):
    """The library's session with a timeout (it sets none); nothing else changes."""

    def request(self, *a, **kw):
        kw.setdefault("timeout", 10)
        return super().request(*a, **kw)


class Handler(LokiHandler):
    def __init__(self, **kw):
        super().__init__(**kw)
        self.failures = []

    def handleError(self, record):  # noqa: N802
        self.failures.append(sys.exc_info()[1])
        self.emitter.close()  # as LokiHandler.handleError does


args = parse_args(__doc__)
url = args.url + "/loki/api/v1/push"
handler = Handler(url=url, tags={"app": "loki-app", "host": "loki-host"},
                  auth=(args.tenant, args.token), version="1")
handler.emitter.session_class = Session
logger = logging.getLogger("e2e")  # becomes the label logger="e2e"
logger.propagate = False
logger.setLevel(logging.WARNING)
logger.addHandler(handler)

for i in range(args.count):
    logger.warning(f"{args.prefix}-{i}")
handler.close()

if handler.failures:
    fail(f"{len(handler.failures)} of {args.count} pushes to {url} failed; "
         f"first: {handler.failures[0]!r}")
ok(f"{args.count} lines pushed to {url} ({args.count} requests, HTTP 204)")
