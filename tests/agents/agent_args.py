"""The command line every tests/agents client takes, and how it reports.

    python SCRIPT --url http://127.0.0.1:PORT --tenant T --token K --count N --prefix P

Each client sends N log lines whose message text is exactly f"{P}-{i}" for i in 0..N through
a real client library, prints one summary line and exits 0 only when the library reported
success for every line; otherwise it prints "NAME: FAILED: reason" on stderr and exits 1.
The libraries come from the venv that dev/peers/python-clients.sh makes (it prints its
python): importing this module from another python3 runs the client again with the venv's,
so the pinned versions are the ones that run.
"""

import argparse
import os
import sys

NAME = os.path.splitext(os.path.basename(sys.argv[0]))[0]
VENV = os.path.join(os.environ.get("MENISCUS_CACHE") or os.path.expanduser("~/.cache/meniscus"),
                    "venv-agents")

if os.path.realpath(sys.prefix) != os.path.realpath(VENV) and os.path.exists(f"{VENV}/bin/python"):
    os.execv(f"{VENV}/bin/python", [f"{VENV}/bin/python"] + sys.argv)


def parse_args(description, extra=None):
    """The common options; extra(parser) may add a client's own (all optional)."""
    p = argparse.ArgumentParser(prog=NAME, description=description)
    p.add_argument("--url", required=True, help="Meniscus' base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--tenant", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--count", required=True, type=int, help="number of log lines")
    p.add_argument("--prefix", required=True, help='line i says f"{prefix}-{i}"')
    if extra:
        extra(p)
    args = p.parse_args()
    if args.count < 0:
        p.error("--count must be >= 0")
    args.url = args.url.rstrip("/")
    return args


def ok(summary):
    print(f"{NAME}: {summary}")
    sys.exit(0)


def fail(reason):
    print(f"{NAME}: FAILED: {reason}", file=sys.stderr)
    sys.exit(1)


def need(import_error):
    fail(f"{import_error}: run dev/peers/python-clients.sh first (it makes {VENV})")
