"""bench/encrypted: the cost of `encrypted` producers, plain and sealed tenants in one run.

The same COUNT bench/query lines go to tenant `plain` (plain producers) and to tenant `sealed`
(its default producer `encrypted`: write-ahead log records and hot-store files sealed), one
after the other, into one Meniscus standalone (archive off). Measured for each: server CPU
while ingesting (until every event is stored), the flush at shutdown (memory to Parquet, one
tenant's memory at a time), compaction after a restart, the hot store's bytes, and the same
queries (count per minute x severity, a rare-token count), medians of RUNS; answers equal.
"""
import argparse
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "bench", "lib"))
from benchproc import (STARTED, cpu_seconds, free_port, listening,  # noqa: E402
                       parse_prometheus, stop_all, wait_until)

TENANTS = ("plain", "sealed")


def log(*a):
    print("[encrypted]", *a, file=sys.stderr, flush=True)


class Meniscus:
    def __init__(self, args, work, name, grace="1h"):
        self.args = args
        self.http, self.ops = free_port(), free_port()
        self.conf = os.path.join(work, f"{name}.yaml")
        listeners = "".join(
            f'  - {{protocol: tcp, address: "127.0.0.1:{args.ports[t]}", framing: octet-counting, tenant: {t}}}\n'
            for t in TENANTS)
        with open(self.conf, "w") as f:
            f.write(f"""listeners:
{listeners}http: {{address: "127.0.0.1:{self.http}"}}
ops: {{address: "127.0.0.1:{self.ops}"}}
limits: {{maxResultRows: 100000, queryTimeout: 600s}}
storage: {{compactionGrace: {grace}, flushInterval: 1h}}
archive: {{enabled: false}}
tenants:
  - {{id: plain, tokens: [{{value: plain-token}}], retention: {{shortTerm: 3650d}}}}
  - {{id: sealed, tokens: [{{value: sealed-token}}], retention: {{shortTerm: 3650d}},
     producers: [{{name: default, encrypted: true}}]}}
""")
        self.logf = open(os.path.join(work, "meniscus.log"), "ab")
        self.p = subprocess.Popen([args.meniscus_bin, "standalone", "--data-dir", args.data, "--config", self.conf],
                                  stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        STARTED.append(self.p)
        self.pid = self.p.pid
        wait_until(lambda: listening(self.http), 300, "meniscus", pid=self.pid, interval=0.1)

    def sql(self, tenant, sql):
        req = urllib.request.Request(f"http://127.0.0.1:{self.http}/v1/tenant/{tenant}/sql",
                                     data=json.dumps({"sql": sql}).encode(),
                                     headers={"MESSAGE-TOKEN": f"{tenant}-token", "Content-Type": "application/json"},
                                     method="POST")
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"sql -> {e.code}: {e.read()[:500]!r}") from None

    def stored(self, tenant):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ops}/metrics", timeout=10) as r:
            prom = parse_prometheus(r.read().decode())
        return sum(v for k, v in prom.items()
                   if k.startswith("meniscus_store_stored_events_total") and f'tenant="{tenant}"' in k)

    def stop(self):
        """SIGTERM (memory is flushed to Parquet) and wait; returns the process's CPU seconds
        over its whole life (its rusage, read when it is reaped)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(timeout=600)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        STARTED.remove(self.p)
        self.logf.close()
        return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def hot_files(data):
    return json.load(open(os.path.join(data, "hot", "MANIFEST.json")))["files"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qgen", required=True)
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--span", type=int, default=6 * 3600)
    ap.add_argument("--rare", type=int, default=10)
    ap.add_argument("--token", default="qzx7RAREb4f1")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--meniscus-bin", default=os.environ.get("MENISCUS_BIN"))
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "encrypted.txt"))
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(143)))
    cache = os.environ.get("MENISCUS_CACHE") or os.path.expanduser("~/.cache/meniscus")
    work = tempfile.mkdtemp(prefix="bench-encrypted-", dir=os.path.join(cache, "bench"))
    args.data = os.path.join(work, "data")
    args.ports = {t: free_port() for t in TENANTS}
    try:
        report = run(args, work)
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)
    print(report)
    with open(args.out, "w") as f:
        f.write(report + "\n")


def run(args, work):
    end = int(time.time()) // 3600 * 3600 - 3600
    lines_file = os.path.join(work, "lines.txt")
    subprocess.run([args.qgen, "render", lines_file, str(args.count), str(end - args.span), str(args.span),
                    args.token, str(args.rare)], capture_output=True, check=True, timeout=900)
    figures = {t: {} for t in TENANTS}

    # Ingest, one tenant at a time, each into a fresh process: server CPU from the first byte
    # to the last event stored (log records and memory; flushes that run meanwhile), then the
    # rest until it exits (the flush of what memory still holds). No compaction yet (a grace
    # of an hour): it would run beside either, whenever its hours qualify.
    for tenant in TENANTS:
        srv = Meniscus(args, work, f"ingest-{tenant}")
        c = cpu_seconds(srv.pid)
        subprocess.run([args.qgen, "send", lines_file, "127.0.0.1", str(args.ports[tenant]), "2"],
                       capture_output=True, check=True, timeout=1800)
        wait_until(lambda: srv.stored(tenant) >= args.count, 1800, f"{tenant}'s events stored", pid=srv.pid, interval=0.2)
        stored_at = cpu_seconds(srv.pid)
        figures[tenant]["ingest"] = stored_at - c
        figures[tenant]["flush"] = srv.stop() - stored_at
        log(f"{tenant}: ingest {figures[tenant]['ingest']:.2f} CPU-s, flush {figures[tenant]['flush']:.2f}")

    # Compaction of both tenants' hours in one process (one group at a time): its time per
    # tenant from the log's "compacted a closed window" lines.
    log_path = os.path.join(work, "meniscus.log")
    log_start = os.path.getsize(log_path)
    srv = Meniscus(args, work, "compact", grace="1s")
    wait_until(lambda: all(f["compacted"] for f in hot_files(args.data)), 1800, "compaction", pid=srv.pid, interval=0.2)
    with open(log_path, "rb") as f:
        f.seek(log_start)
        for line in f:
            try:
                fields = json.loads(line).get("fields", {})
            except ValueError:
                continue
            if fields.get("message") == "compacted a closed window":
                tenant = fields["tenant"]
                figures[tenant]["compaction"] = figures[tenant].get("compaction", 0) + fields["elapsed_ms"] / 1000
    files = hot_files(args.data)
    for tenant in TENANTS:
        figures[tenant]["bytes"] = sum(f["bytes"] for f in files if f["tenant"] == tenant)
        figures[tenant]["sealed_files"] = sum(1 for f in files if f["tenant"] == tenant and f.get("sealed"))
        figures[tenant]["files"] = sum(1 for f in files if f["tenant"] == tenant)

    counts_sql = ("SELECT date_bin(INTERVAL '60 seconds', ts, TIMESTAMP '1970-01-01T00:00:00Z') AS m, severity, "
                  "count(*) AS n FROM events GROUP BY 1, 2 ORDER BY 1, 2")
    rare_sql = f"SELECT count(*) AS n FROM events WHERE msg LIKE '%{args.token}%'"
    answers = {}
    for kind, sql in (("counts", counts_sql), ("rare", rare_sql)):
        samples = {t: ([], []) for t in TENANTS}
        for _ in range(args.runs):
            for tenant in TENANTS:  # interleaved, so drift on a shared machine hits both
                c, t = cpu_seconds(srv.pid), time.monotonic()
                rows = srv.sql(tenant, sql)["rows"]
                samples[tenant][0].append(time.monotonic() - t)
                samples[tenant][1].append(cpu_seconds(srv.pid) - c)
                if answers.setdefault((kind, tenant), rows) != rows:
                    raise RuntimeError(f"{kind} {tenant}: answers differ between runs")
        if answers[(kind, "plain")] != answers[(kind, "sealed")]:
            raise RuntimeError(f"{kind}: the sealed tenant's answer differs from the plain one's")
        for tenant in TENANTS:
            figures[tenant][kind] = (statistics.median(samples[tenant][0]), statistics.median(samples[tenant][1]))
    srv.stop()

    p, s = figures["plain"], figures["sealed"]
    out = [f"bench/encrypted: {args.count:,} bench/query events over {args.span // 3600} h to a plain tenant and to a "
           "tenant whose producer is `encrypted`, one Meniscus standalone (archive off); 2 cores, release build",
           f"{'':<34} {'plain':>14} {'sealed':>14} {'sealed/plain':>13}",
           f"{'ingest CPU per event':<34} {p['ingest'] / args.count * 1e6:>11.2f} µs {s['ingest'] / args.count * 1e6:>11.2f} µs "
           f"{s['ingest'] / p['ingest']:>12.2f}x",
           f"{'the rest (flush at shutdown) /event':<34} {p['flush'] / args.count * 1e6:>11.2f} µs {s['flush'] / args.count * 1e6:>11.2f} µs "
           f"{s['flush'] / p['flush']:>12.2f}x",
           f"{'compaction, seconds (one thread)':<34} {p['compaction']:>12.2f} s {s['compaction']:>12.2f} s "
           f"{s['compaction'] / p['compaction']:>12.2f}x",
           f"{'hot bytes after compaction':<34} {p['bytes']:>14,} {s['bytes']:>14,} {s['bytes'] / p['bytes']:>12.4f}x",
           f"{'files sealed':<34} {p['sealed_files']:>8} of {p['files']:<3} {s['sealed_files']:>8} of {s['files']:<3}"]
    for kind, what in (("counts", "count per minute x severity"), ("rare", "rare-token count (LIKE)")):
        (pw, pc), (sw, sc) = p[kind], s[kind]
        out.append(f"{what:<34} {pw:>12.3f} s {sw:>12.3f} s {sw / pw:>12.2f}x   (CPU {pc:.2f} / {sc:.2f} s; "
                   f"medians of {args.runs}; answers equal)")
    return "\n".join(out)


if __name__ == "__main__":
    main()
