#!/usr/bin/env python3
"""Query benchmark: Meniscus standalone over stored events vs grep/mawk over the same raw lines.

Run through bench/query/run.sh, which compiles the generator (qgen.c) and calls this.

1. qgen renders COUNT realistic RFC 5424 lines (~200 bytes, 50 hosts, 20 app names, 8
   severities, timestamps spread over SPAN seconds ending at least an hour ago, a rare TOKEN in
   RARE lines) into LINES (a file; raw bytes = the lines without their LF).
2. Meniscus standalone (one tenant, a TCP listener bound to it, octet-counting) ingests them
   over CONNS connections; done when meniscus_store_stored_events_total says COUNT, then
   SELECT count(*) must agree. Then SIGTERM (memory is flushed to Parquet), bounded wait.
3. Footprint after the flushes: du -sb DATA/hot (and DATA/wal) / raw bytes; zstd -3 and gzip -6 of
   the raw file as a reference.
4. Restart (queries read Parquet only); wait until meniscus_hot_compaction_backlog_files is 0
   (every hour has ended, so compaction rewrites them all once they have been quiet for two
   minutes) and take the footprint again from the manifest's live files. Then run each query
   RUNS times: wall time, server CPU
   (utime+stime of the Meniscus process from /proc/PID/stat around the request), result checked
   against the reference. Peers run RUNS times over LINES (page cache warm for both):
   grep -c -F TOKEN, and a mawk pass counting lines per (minute, severity).
5. Median per query; MB/s = raw bytes / wall; MB/s per core = raw bytes / CPU seconds.
Every wait is bounded; every process started is killed on exit.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "bench", "lib"))
from benchproc import (STARTED, alive, cpu_seconds, free_port, listening,  # noqa: E402
                       parse_prometheus, status_kb, stop_all, wait_until)
TENANT, TOKEN_HDR = "q", "q-token"


def log(*a):
    print("[query]", *a, file=sys.stderr, flush=True)


def du_bytes(path):
    if not os.path.exists(path):
        return 0
    out = subprocess.run(["du", "-sb", path], capture_output=True, text=True, timeout=60, check=True)
    return int(out.stdout.split()[0])


def rfc3339(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- Meniscus

class Server:
    def __init__(self, args, data, http_port, tcp_port, conf, logpath, ops_port):
        self.args, self.data, self.http_port, self.tcp_port = args, data, http_port, tcp_port
        self.ops_port = ops_port
        self.logf = open(logpath, "ab")
        self.logpath = logpath
        self.p = subprocess.Popen([args.meniscus_bin, "standalone", "--data-dir", data, "--config", conf],
                                  stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        STARTED.append(self.p)
        self.pid = self.p.pid
        wait_until(lambda: listening(tcp_port) and listening(http_port), args.start_timeout,
                   f"meniscus to listen on {tcp_port} and {http_port}", pid=self.pid)

    def request(self, method, path, body=None, timeout=None):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}",
            data=None if body is None else json.dumps(body).encode(),
            headers={"MESSAGE-TOKEN": TOKEN_HDR, "X-Scope-OrgID": TENANT, "Content-Type": "application/json"},
            method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.args.query_timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path} -> {e.code}: {e.read()[:500]!r}") from None

    def sql(self, sql, timeout=None):
        return self.request("POST", f"/v1/tenant/{TENANT}/sql", {"sql": sql}, timeout)

    def count(self, timeout=None):
        rows = self.sql("SELECT count(*) AS n FROM events", timeout)["rows"]
        return int(rows[0]["n"]) if rows else 0

    def prom(self):
        # The ops listener: the public /metrics leaves out every series labelled by tenant.
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ops_port}/metrics", timeout=10) as r:
            return parse_prometheus(r.read().decode())

    def prom_sum(self, prefix):
        return sum(v for k, v in self.prom().items() if k.split("{")[0] == prefix)

    def stop(self, timeout):
        """SIGTERM, wait (bounded) for the flush and the exit; returns (exit code, seconds)."""
        t0 = time.monotonic()
        self.p.send_signal(signal.SIGTERM)
        try:
            rc = self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log(f"meniscus did not exit {timeout}s after SIGTERM; killing it")
            self.p.kill()
            rc = self.p.wait(timeout=10)
        STARTED.remove(self.p)
        self.logf.close()
        return rc, time.monotonic() - t0

    def log_tail(self, n=3000):
        self.logf.flush()
        return open(self.logpath, "rb").read()[-n:].decode(errors="replace")


def timed_server(server, fn):
    """Runs fn() against the server: (result, wall s, server CPU s)."""
    c0 = cpu_seconds(server.pid)
    t0 = time.monotonic()
    result = fn()
    wall = time.monotonic() - t0
    return result, wall, cpu_seconds(server.pid) - c0


def timed_peer(cmd, stdout_path=None):
    """Runs a shell command; (stdout text, wall s, CPU s of it and its children)."""
    out = open(stdout_path, "wb") if stdout_path else subprocess.PIPE
    env = dict(os.environ, LC_ALL="C")
    t0 = time.monotonic()
    p = subprocess.Popen(["sh", "-c", cmd], stdout=out, stderr=subprocess.PIPE, env=env)
    STARTED.append(p)
    # wait4 gives the rusage of the shell and everything it waited for.
    data = b""
    if not stdout_path:
        data = p.stdout.read()
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    STARTED.remove(p)
    if stdout_path:
        out.close()
    err = p.stderr.read().decode(errors="replace")
    if p.returncode not in (0, 1):  # grep -c exits 1 on no match
        raise RuntimeError(f"{cmd!r} failed ({p.returncode}): {err}")
    return data.decode(), wall, ru.ru_utime + ru.ru_stime


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qgen", required=True)
    ap.add_argument("--count", type=int, default=10_000_000)
    ap.add_argument("--span", type=int, default=86400, help="seconds of timestamps")
    ap.add_argument("--rare", type=int, default=10, help="lines carrying the rare token")
    ap.add_argument("--token", default="qzx7RAREb4f1")
    ap.add_argument("--conns", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--meniscus-bin", default=os.environ.get("MENISCUS_BIN") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR") or os.path.join(REPO, "target"), "release", "meniscus"))
    ap.add_argument("--work", default=os.path.join(os.environ.get("MENISCUS_CACHE") or
                                                   os.path.expanduser("~/.cache/meniscus"), "bench", "query"))
    ap.add_argument("--ingest-timeout", type=float, default=1200)
    ap.add_argument("--start-timeout", type=float, default=120)
    ap.add_argument("--stop-timeout", type=float, default=180)
    ap.add_argument("--query-timeout", type=float, default=600)
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "query.txt"))
    ap.add_argument("--keep", action="store_true", help="keep the lines file and the data dir")
    ap.add_argument("--storage", default="", help="the server's storage settings as a YAML flow map, "
                    "e.g. '{compactionSplitMessages: true, compactionZstdLevel: 15}' (default: none)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
    if not os.access(args.meniscus_bin, os.X_OK):
        sys.exit(f"no meniscus executable at {args.meniscus_bin} (set MENISCUS_BIN)")
    loadavg = " ".join(open("/proc/loadavg").read().split()[:3])
    shutil.rmtree(args.work, ignore_errors=True)
    os.makedirs(args.work)
    lines_path = os.path.join(args.work, "lines.txt")
    data = os.path.join(args.work, "data")
    os.makedirs(data)
    try:
        return run(args, loadavg, lines_path, data)
    finally:
        stop_all()
        if not args.keep:
            shutil.rmtree(args.work, ignore_errors=True)
        else:
            log("kept", args.work)


def run(args, loadavg, lines_path, data):
    notes = []
    # Timestamps: SPAN seconds ending at least an hour before now, on an hour boundary.
    end = int(time.time()) // 3600 * 3600 - 3600
    base = end - args.span
    t0 = time.monotonic()
    out = subprocess.run([args.qgen, "render", lines_path, str(args.count), str(base), str(args.span),
                          args.token, str(args.rare)], capture_output=True, text=True, timeout=900, check=True)
    kv = dict(x.split("=") for x in out.stdout.split())
    raw_bytes, rare = int(kv["bytes"]), int(kv["rare"])
    log(f"rendered {args.count:,} lines, {raw_bytes:,} raw bytes ({raw_bytes / args.count:.1f} B/line), "
        f"{rare} with the token, in {time.monotonic() - t0:.1f}s -> {lines_path}")

    tcp_port, http_port, ops_port = free_port(), free_port(), free_port()
    conf = os.path.join(args.work, "meniscus.yaml")
    with open(conf, "w") as f:
        f.write(f"""# Generated by bench/query/query.py
listeners:
  - protocol: tcp
    address: "127.0.0.1:{tcp_port}"
    framing: octet-counting
    tenant: {TENANT}
http:
  address: "127.0.0.1:{http_port}"
ops:
  address: "127.0.0.1:{ops_port}"   # /metrics with the per-tenant series (the public one has none)
limits:
  maxResultRows: 100000        # 1,440 minutes x 8 severities = 11,520 rows > the default 10,000
  queryTimeout: {int(args.query_timeout)}s
tenants:
  - id: {TENANT}
    tokens:
      - value: {TOKEN_HDR}
""")
        if args.storage:
            f.write(f"storage: {args.storage}\n")
    logpath = os.path.join(args.work, "meniscus.log")

    # ------------------------------------------------------------ ingest
    srv = Server(args, data, http_port, tcp_port, conf, logpath, ops_port)
    wait_until(lambda: _try(srv.count) == 0, args.start_timeout, "the SQL endpoint", pid=srv.pid, interval=0.2)
    g = subprocess.Popen([args.qgen, "send", lines_path, "127.0.0.1", str(tcp_port), str(args.conns)],
                         stdout=subprocess.PIPE, text=True)
    STARTED.append(g)
    first = g.stdout.readline()
    if not first.startswith("rendered"):
        raise RuntimeError(f"sender said {first!r}")
    c0, t0 = cpu_seconds(srv.pid), time.monotonic()
    deadline = time.time() + args.ingest_timeout
    stored, last_log = 0, time.time()
    while True:
        stored = int(_try(lambda: srv.prom_sum("meniscus_store_stored_events_total")) or 0)
        if stored >= args.count:
            break
        if time.time() > deadline:
            raise TimeoutError(f"only {stored:,} of {args.count:,} stored after {args.ingest_timeout}s")
        if not alive(srv.pid):
            raise RuntimeError("meniscus exited during ingest:\n" + srv.log_tail())
        if time.time() - last_log > 10:
            log(f"ingest: {stored:,} stored, RSS {status_kb(srv.pid, 'VmRSS') / 1024:.0f} MB")
            last_log = time.time()
        time.sleep(0.2)
    ingest_wall = time.monotonic() - t0
    ingest_cpu = cpu_seconds(srv.pid) - c0
    gout, _ = g.communicate(timeout=120)
    STARTED.remove(g)
    gkv = dict(x.split("=") for x in gout.split())
    n_sql = srv.count()
    prom = srv.prom()
    ingest_rss = status_kb(srv.pid, "VmHWM") / 1024
    counters = {k: v for k, v in prom.items() if any(s in k for s in (
        "backpressure", "received_events", "stored_events", "parse_errors", "rejected", "auth_failures",
        "hot_flushes", "wal_bytes"))}
    log(f"ingest: {args.count:,} in {ingest_wall:.1f}s = {args.count / ingest_wall:,.0f} msg/s, "
        f"{ingest_cpu * 1e6 / args.count:.2f} µs CPU/msg, peak RSS {ingest_rss:.0f} MB, count(*)={n_sql:,}")
    log("counters:", json.dumps(counters))
    if n_sql != args.count:
        notes.append(f"WARNING: count(*) after ingest = {n_sql:,}, sent {args.count:,}")
    rc, stop_s = srv.stop(args.stop_timeout)
    log(f"SIGTERM: exit {rc} after {stop_s:.1f}s")
    if rc != 0:
        notes.append(f"WARNING: meniscus exited {rc} after SIGTERM")
    hot_bytes, wal_bytes = du_bytes(os.path.join(data, "hot")), du_bytes(os.path.join(data, "wal"))
    manifest = json.load(open(os.path.join(data, "hot", "MANIFEST.json")))
    files = manifest["files"]
    parquet_rows = sum(f["rows"] for f in files)
    log(f"hot: {hot_bytes:,} B in {len(files)} files, {parquet_rows:,} rows; wal: {wal_bytes:,} B")
    if parquet_rows != args.count:
        notes.append(f"WARNING: Parquet holds {parquet_rows:,} rows after the SIGTERM flush, sent {args.count:,}")

    # Reference compressors over the raw lines (one run: the size is what matters).
    zstd_b = gzip_b = None
    if shutil.which("zstd"):
        o, _, _ = timed_peer(f"zstd -3 -T1 -c {lines_path} | wc -c")
        zstd_b = int(o)
    o, _, _ = timed_peer(f"gzip -6 -c {lines_path} | wc -c")
    gzip_b = int(o)

    # ------------------------------------------------------------ queries (Parquet only)
    srv = Server(args, data, http_port, tcp_port, conf, logpath, ops_port)
    wait_until(lambda: _try(lambda: srv.count(timeout=60)) == args.count, args.start_timeout,
               "the restarted server to answer count(*) = COUNT", pid=srv.pid, interval=0.5)
    # Every window is closed: let compaction finish (the steady state queries meet), then read
    # the live footprint from the manifest (replaced files linger a few minutes for running
    # queries, so du would count them twice).
    t_compact = time.monotonic()
    time.sleep(3)
    wait_until(lambda: _try(lambda: srv.prom_sum("meniscus_hot_compaction_backlog_files")) == 0,
               args.ingest_timeout, "compaction to finish", pid=srv.pid, interval=1)
    compact_s = time.monotonic() - t_compact - 3
    # The restarted server has done little else yet: its CPU so far is compaction's.
    compact_cpu = cpu_seconds(srv.pid)
    compacted = json.load(open(os.path.join(data, "hot", "MANIFEST.json")))["files"]
    compacted_bytes = sum(f["bytes"] for f in compacted)
    # Skip indexes: the sidecar (NAME.skip) of each live compacted file.
    skip_bytes = sum(os.path.getsize(p) for p in (os.path.join(data, "hot", f["path"][:-len(".parquet")] + ".skip")
                                                  for f in compacted) if os.path.exists(p))
    compactions = int(_try(lambda: srv.prom_sum("meniscus_hot_compactions_total")) or 0)
    log(f"compaction: {compactions} runs in ~{compact_s:.0f}s (after the restart); live files {len(compacted)}, "
        f"{compacted_bytes:,} B, {sum(f['rows'] for f in compacted):,} rows")
    rss_idle = status_kb(srv.pid, "VmRSS") / 1024
    compaction_rss = status_kb(srv.pid, "VmHWM") / 1024
    frm, to = rfc3339(base), rfc3339(end)
    rows = []  # (name, kind, [(wall, cpu)], check)

    # References first (they also warm nothing Meniscus reads).
    ref_counts = {}
    mawk = shutil.which("mawk") or "awk"
    prog = ("'{ p = substr($1, 2, index($1, \">\") - 2); "
            "c[substr($2, 1, 16) \" \" (p % 8)]++ } END { for (k in c) print k, c[k] }'")
    peer_counts, peer_grep = [], []
    ref_path = os.path.join(args.work, "ref-counts.txt")
    for _ in range(args.runs):
        _, w, c = timed_peer(f"{mawk} {prog} {lines_path}", ref_path)
        peer_counts.append((w, c))
    for line in open(ref_path):
        minute, sev, n = line.split()
        ref_counts[(minute, int(sev))] = int(n)
    grep_n = None
    for _ in range(args.runs):
        o, w, c = timed_peer(f"grep -c -F {args.token} {lines_path}")
        grep_n = int(o)
        peer_grep.append((w, c))
    log(f"references: {len(ref_counts)} (minute, severity) cells, grep -c = {grep_n}")

    def check_buckets(buckets, key):
        got = {}
        for b in buckets:
            got[(b["bucket"][:16], int(b["severity"]))] = int(b[key])
        if got == ref_counts:
            return "= mawk"
        diff = sum(1 for k in set(got) | set(ref_counts) if got.get(k) != ref_counts.get(k))
        return f"DIFFERS from mawk in {diff} cells ({sum(got.values()):,} vs {sum(ref_counts.values()):,} events)"

    # (a) counts per minute and severity, API and SQL
    q = urllib.parse.urlencode({"from": frm, "to": to, "bucket": "1m", "group_by": "severity"})
    runs, res = [], None
    for _ in range(args.runs):
        res, w, c = timed_server(srv, lambda: srv.request("GET", f"/v1/tenant/{TENANT}/metrics?{q}"))
        runs.append((w, c))
    chk = check_buckets(res["buckets"], "count") + (", TRUNCATED" if res.get("truncated") else "")
    rows.append(("GET /metrics bucket=1m group_by=severity (24 h)", "meniscus", runs, chk))
    sql_bins = ("SELECT date_bin(INTERVAL '1 minute', ts, TIMESTAMP '1970-01-01T00:00:00Z') AS bucket, "
                f"severity, count(*) AS count FROM events WHERE ts >= TIMESTAMP '{frm}' AND ts < TIMESTAMP '{to}' "
                "GROUP BY 1, 2 ORDER BY 1, 2")
    runs = []
    for _ in range(args.runs):
        res, w, c = timed_server(srv, lambda: srv.sql(sql_bins))
        runs.append((w, c))
    chk = check_buckets(res["rows"], "count") + (", TRUNCATED" if res.get("truncated") else "")
    rows.append(("SQL date_bin(1 minute), severity, count(*)", "meniscus", runs, chk))
    rows.append(("mawk: count per (minute, severity)", "peer", peer_counts, f"{len(ref_counts)} cells"))

    # (a') the same question in LogQL (Grafana's Loki data source): the window of the step at
    # t is (t - 1m, t], so its SQL twin bins ts - 1 µs and labels the bin by its end.
    severities = ["emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"]
    logql = 'sum by (severity) (count_over_time({transport="tcp"}[1m]))'
    q = urllib.parse.urlencode({"query": logql, "start": base, "end": end, "step": 60})
    runs = []
    for _ in range(args.runs):
        res, w, c = timed_server(srv, lambda: srv.request("GET", f"/loki/api/v1/query_range?{q}"))
        runs.append((w, c))
    got = {}
    for series in res["data"]["result"]:
        code = severities.index(series["metric"]["severity"])
        for t, v in series["values"]:
            got[(int(t), code)] = int(v)
    sql_twin = ("SELECT CAST(to_unixtime(date_bin(INTERVAL '1 minute', ts - INTERVAL '1 microsecond', "
                "TIMESTAMP '1970-01-01T00:00:00Z')) AS BIGINT) + 60 AS t, severity, count(*) AS count FROM events "
                f"WHERE ts > to_timestamp_micros({(base - 60) * 1_000_000}) AND ts <= to_timestamp_micros({end * 1_000_000}) "
                "GROUP BY 1, 2")
    twin = {(int(r["t"]), int(r["severity"])): int(r["count"]) for r in srv.sql(sql_twin)["rows"]}
    chk = "= SQL (same windows)" if got == twin else (
        f"DIFFERS from SQL in {sum(1 for k in set(got) | set(twin) if got.get(k) != twin.get(k))} cells")
    chk += f", {sum(got.values()):,} events"
    rows.append(("LogQL sum by (severity) (count_over_time[1m])", "meniscus", runs, chk))

    # (b) rare token, API and SQL
    q = urllib.parse.urlencode({"q": args.token, "from": frm, "to": to, "limit": 100})
    runs = []
    for _ in range(args.runs):
        res, w, c = timed_server(srv, lambda: srv.request("GET", f"/v1/tenant/{TENANT}/events?{q}"))
        runs.append((w, c))
    evs = res["events"]
    ok = len(evs) == grep_n and all(args.token in e["msg"] for e in evs) and res.get("next_cursor") is None
    rows.append(("GET /events?q=<token> (24 h)", "meniscus", runs,
                 f"{len(evs)} events" + (" = grep" if ok else f" (grep: {grep_n}) MISMATCH")))
    runs = []
    like = f"SELECT count(*) AS n FROM events WHERE msg LIKE '%{args.token}%'"
    for _ in range(args.runs):
        res, w, c = timed_server(srv, lambda: srv.sql(like))
        runs.append((w, c))
    n = int(res["rows"][0]["n"])
    rows.append(("SQL count(*) WHERE msg LIKE '%<token>%'", "meniscus", runs,
                 f"{n}" + (" = grep" if n == grep_n else f" (grep: {grep_n}) MISMATCH")))
    rows.append(("grep -c -F <token> lines.txt", "peer", peer_grep, f"{grep_n}"))
    # count(*) alone: the fixed cost of a query over every file
    runs = []
    for _ in range(args.runs):
        res, w, c = timed_server(srv, lambda: srv.count())
        runs.append((w, c))
    rows.append(("SQL count(*) (no scan: Parquet metadata)", "meniscus", runs, f"{res:,}"))

    query_rss = status_kb(srv.pid, "VmHWM") / 1024
    rc2, _ = srv.stop(args.stop_timeout)

    # ------------------------------------------------------------ report
    mb = raw_bytes / 1e6
    out = []
    out.append(f"# bench/query: {args.count:,} RFC 5424 lines, {raw_bytes:,} raw bytes ({raw_bytes / args.count:.1f} B/line), "
               f"{args.span // 3600} h of timestamps, 50 hosts, 20 apps, 8 severities, token in {rare} lines")
    out.append(f"# {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, {os.cpu_count()} cpus, load average at start {loadavg}; "
               f"binary {args.meniscus_bin}; storage settings: {args.storage or 'defaults'}")
    out.append(f"# median of {args.runs} runs; MB/s = raw bytes / wall; MB/s/core = raw bytes / CPU s "
               "(Meniscus: server utime+stime around the request; peers: the command and its children)")
    out.append("# Meniscus queries run after a SIGTERM flush and a restart: every event is read from Parquet; "
               "the page cache holds both the raw file and the Parquet files")
    out.append("")
    hdr = f"{'query':<48} {'wall s':>7} {'cpu s':>7} {'MB/s':>8} {'MB/s/core':>9}  result"
    out.append(hdr)
    out.append("-" * (len(hdr) + 30))
    med = {}
    for name, kind, runs, chk in rows:
        w = statistics.median(r[0] for r in runs)
        c = statistics.median(r[1] for r in runs)
        med[name] = (w, c)
        per_core = f"{mb / c:>9,.0f}" if c > 0 else f"{'-':>9}"
        out.append(f"{name:<48} {w:>7.3f} {c:>7.2f} {mb / w:>8,.0f} {per_core}  {chk}")
    out.append("")

    def ratio(a, b, i):
        return med[a][i] / med[b][i] if med[b][i] > 0 else float("nan")
    api_m, sql_m, peer_m = ("GET /metrics bucket=1m group_by=severity (24 h)",
                            "SQL date_bin(1 minute), severity, count(*)", "mawk: count per (minute, severity)")
    api_s, sql_s, peer_s = ("GET /events?q=<token> (24 h)", "SQL count(*) WHERE msg LIKE '%<token>%'",
                            "grep -c -F <token> lines.txt")
    out.append("# ratios (Meniscus / peer; > 1 = Meniscus slower or costlier)")
    logql_m = "LogQL sum by (severity) (count_over_time[1m])"
    for a, b in ((api_m, peer_m), (sql_m, peer_m), (logql_m, sql_m), (api_s, peer_s), (sql_s, peer_s)):
        out.append(f"#   {a} / {b}: wall x{ratio(a, b, 0):.2f}, CPU x{ratio(a, b, 1):.2f}")
    out.append("")
    out.append(f"# ingest: {args.count:,} events over {args.conns} TCP conns (octet-counted, listener bound to the tenant) "
               f"in {ingest_wall:.1f} s = {args.count / ingest_wall:,.0f} msg/s, server {ingest_cpu * 1e6 / args.count:.2f} µs CPU/msg "
               f"(sender alone: {float(gkv['rate']):,.0f} msg/s); peak RSS {ingest_rss:.0f} MB")
    out.append("# ingest counters: " + ", ".join(f"{k}={v:,.0f}" for k, v in sorted(counters.items())))
    out.append(f"# SIGTERM -> exit {rc} in {stop_s:.1f} s; Parquet: {len(files)} files, {parquet_rows:,} rows")
    ratio_s = f"{hot_bytes / raw_bytes:.3f}"
    out.append(f"# footprint after flushes: du -sb DATA/hot = {hot_bytes:,} B = {ratio_s} x raw; DATA/wal = {wal_bytes:,} B")
    out.append(f"# footprint after compaction (live files in the manifest): {compacted_bytes:,} B = "
               f"{compacted_bytes / raw_bytes:.3f} x raw (goal <= 0.15), {len(compacted)} files; "
               f"compaction after the restart ~{compact_s:.0f} s ({compactions} runs, some may have run during ingest), "
               f"server CPU since the restart {compact_cpu:.1f} s = {compact_cpu * 1e6 / args.count:.1f} µs/event")
    out.append(f"# skip indexes (NAME.skip beside the compacted files, not counted above): {skip_bytes:,} B = "
               f"{skip_bytes / max(compacted_bytes, 1):.3f} x the Parquet, {skip_bytes / raw_bytes:.4f} x raw, "
               f"{skip_bytes / args.count:.2f} B/event")
    refs = []
    if zstd_b:
        refs.append(f"zstd -3 {zstd_b / raw_bytes:.3f}")
    refs.append(f"gzip -6 {gzip_b / raw_bytes:.3f}")
    out.append("# reference: the raw lines compressed whole: " + ", ".join(refs) + " x raw")
    out.append(f"# after the restart: peak RSS {compaction_rss:.0f} MB while compacting, {rss_idle:.0f} MB once done; "
               f"peak {query_rss:.0f} MB by the end of the queries; second stop exit {rc2}")
    out.extend("# " + n for n in notes)
    text = "\n".join(out) + "\n"
    print(text, end="")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        f.write(text)
    log("written", args.out)


def _try(fn):
    try:
        return fn()
    except (urllib.error.URLError, OSError, ValueError, KeyError, RuntimeError):
        return None


if __name__ == "__main__":
    main()
