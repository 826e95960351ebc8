"""bench/archive: the archive against a real S3-compatible server (SeaweedFS on loopback).

Measures, in one run:
  (a) bytes at rest / raw bytes, per loghub file (each line wrapped as RFC 5424 and sent to a
      tenant of its own) and for COUNT bench/query lines: the hot store after compaction and the
      archive, beside `zstd -3` and `zstd -19` of the same raw text;
  (b) upload throughput: Meniscus restarted with the archive on over a compacted, unarchived
      store; MB of Parquet archived per second of wall time and per CPU-second of the server;
  (c) the same queries (count per minute x severity over the span; a rare-token count) on hot
      data, then on archived data only (short-term retention cut so the hot copies go):
      cold (Meniscus restarted before each run: empty local cache, every object fetched and
      decrypted) and warm (objects cached): cold / hot and warm / hot, medians of RUNS; the
      answers must be equal.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(REPO, "bench", "lib"))
from benchproc import (STARTED, cpu_seconds, free_port, listening,  # noqa: E402
                       parse_prometheus, stop_all, wait_until)

TENANT, TOKEN = "q", "q-token"
ACCESS, SECRET = "bench", "bench-secret-key"


def log(*a):
    print("[archive]", *a, file=sys.stderr, flush=True)


def rfc3339(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def zstd_size(path, level):
    out = subprocess.run(["zstd", f"-{level}", "-T2", "-c", path], capture_output=True, check=True, timeout=3600)
    return len(out.stdout)


WEEDS = []


class Weed:
    def __init__(self, binary, work):
        self.ports = [free_port() for _ in range(10)]
        WEEDS.append(self)
        os.makedirs(os.path.join(work, "weed"), exist_ok=True)
        cfg = os.path.join(work, "s3.json")
        with open(cfg, "w") as f:
            json.dump({"identities": [{"name": "bench", "credentials": [{"accessKey": ACCESS, "secretKey": SECRET}],
                                       "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}, f)
        p = self.ports
        args = [binary, "mini", f"-dir={work}/weed", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                f"-master.port={p[0]}", f"-master.port.grpc={p[1]}", f"-volume.port={p[2]}",
                f"-volume.port.grpc={p[3]}", f"-filer.port={p[4]}", f"-filer.port.grpc={p[5]}",
                f"-s3.port={p[6]}", f"-s3.port.grpc={p[7]}", f"-admin.port={p[8]}", f"-admin.port.grpc={p[9]}",
                "-s3.port.iceberg=0", "-s3.port.lance=0", "-admin.port.legacy=0", "-webdav=false",
                "-admin.ui=false", "-master.telemetry=false", "-s3.autoCreateBucket=false",
                "-bucket=archive", f"-s3.config={cfg}"]
        self.logf = open(os.path.join(work, "weed.log"), "ab")
        self.p = subprocess.Popen(args, stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        STARTED.append(self.p)
        wait_until(lambda: listening(p[6]), 120, "the S3 gateway", pid=self.p.pid, interval=0.2)
        time.sleep(2)  # the gateway listens before the filer behind it answers

    def endpoint(self):
        return f"http://127.0.0.1:{self.ports[6]}"

    def remove_sockets(self):
        """Deletes the gRPC sockets weed mini leaves at fixed paths in /tmp (seaweedfs-KIND-PORT.sock)."""
        suffixes = tuple(f"-{port}.sock" for port in self.ports)
        for name in os.listdir("/tmp"):
            if name.startswith("seaweedfs-") and name.endswith(suffixes):
                try:
                    os.remove(os.path.join("/tmp", name))
                except OSError:
                    pass


class Meniscus:
    def __init__(self, args, work, conf_text, name):
        self.args = args
        self.http, self.ops = free_port(), free_port()
        self.conf = os.path.join(work, f"{name}.yaml")
        with open(self.conf, "w") as f:
            f.write(conf_text.replace("{http}", str(self.http)).replace("{ops}", str(self.ops)))
        self.logf = open(os.path.join(work, "meniscus.log"), "ab")
        self.p = subprocess.Popen([args.meniscus_bin, "standalone", "--data-dir", args.data, "--config", self.conf],
                                  stdout=self.logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        STARTED.append(self.p)
        self.pid = self.p.pid
        try:
            wait_until(lambda: listening(self.http), 300, "meniscus", pid=self.pid, interval=0.1)
        except RuntimeError:
            self.logf.flush()
            tail = open(os.path.join(work, "meniscus.log"), "rb").read()[-3000:].decode(errors="replace")
            raise RuntimeError(f"meniscus ({name}) exited at start:\n{tail}") from None

    def request(self, method, path, body=None, tenant=TENANT, token=TOKEN):
        req = urllib.request.Request(f"http://127.0.0.1:{self.http}{path}",
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"MESSAGE-TOKEN": token, "Content-Type": "application/json"},
                                     method=method)
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path} -> {e.code}: {e.read()[:500]!r}") from None

    def sql(self, sql, tenant=TENANT, token=TOKEN):
        return self.request("POST", f"/v1/tenant/{tenant}/sql", {"sql": sql}, tenant, token)

    def prom(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ops}/metrics", timeout=10) as r:
            return parse_prometheus(r.read().decode())

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(timeout=300)
        STARTED.remove(self.p)
        self.logf.close()


def hot_manifest(data):
    return json.load(open(os.path.join(data, "hot", "MANIFEST.json")))["files"]


def archive_manifest(data):
    path = os.path.join(data, "archive", "ARCHIVE.json")
    return json.load(open(path))["objects"] if os.path.exists(path) else []


def config(args, weed, loghub_ports, archive_on, short_term):
    tenants = [(TENANT, TOKEN)] + [(t, f"{t}-token") for t, _ in loghub_ports]
    listeners = [f'  - {{protocol: tcp, address: "127.0.0.1:{args.tcp}", framing: octet-counting, tenant: {TENANT}}}']
    listeners += [f'  - {{protocol: tcp, address: "127.0.0.1:{port}", framing: lf, tenant: {t}}}' for t, port in loghub_ports]
    text = "listeners:\n" + "\n".join(listeners) + "\n"
    text += 'http: {address: "127.0.0.1:{http}"}\nops: {address: "127.0.0.1:{ops}"}\n'
    text += "limits: {maxResultRows: 100000, queryTimeout: 600s}\n"
    text += f"storage: {{compactionGrace: 1s, retentionCheckInterval: 1s{', ' + args.storage if args.storage else ''}}}\n"
    text += f"""archive:
  enabled: {'true' if archive_on else 'false'}
  url: s3://archive/bench
  uploadInterval: 1s
  options: {{aws_endpoint: "{weed.endpoint()}", aws_allow_http: "true", aws_region: us-east-1, aws_access_key_id: {ACCESS}, aws_secret_access_key: {SECRET}}}
tenants:
"""
    for tenant, token in tenants:
        text += f"  - {{id: {tenant}, tokens: [{{value: {token}}}], retention: {{shortTerm: {short_term}, longTerm: 3650d}}}}\n"
    return text


def send_lf(port, path, stamp):
    """Sends every line of a loghub file as RFC 5424, newline-framed."""
    with open(path, "rb") as f, socket.create_connection(("127.0.0.1", port)) as s:
        out = bytearray()
        for line in f.read().splitlines():
            out += b"<13>1 " + stamp.encode() + b" loghub app - - - " + line + b"\n"
        s.sendall(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--qgen", required=True)
    ap.add_argument("--weed", required=True)
    ap.add_argument("--corpus", required=True, help="the loghub folder (read in place)")
    ap.add_argument("--count", type=int, default=2_000_000)
    ap.add_argument("--span", type=int, default=6 * 3600)
    ap.add_argument("--rare", type=int, default=10)
    ap.add_argument("--token", default="qzx7RAREb4f1")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--meniscus-bin", default=os.environ.get("MENISCUS_BIN"))
    ap.add_argument("--storage", default="", help="more storage settings, YAML flow-map entries "
                    "(e.g. 'compactionZstdLevel: 19, compactionSplitMessages: true')")
    ap.add_argument("--out", default=os.path.join(REPO, "bench", "results", "archive.txt"))
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(143)))
    work = tempfile.mkdtemp(prefix="bench-archive-", dir=os.path.join(os.environ.get("MENISCUS_CACHE") or os.path.expanduser("~/.cache/meniscus"), "bench"))
    args.data = os.path.join(work, "data")
    args.tcp = free_port()
    try:
        report = run(args, work)
    finally:
        stop_all()
        for weed in WEEDS:
            weed.remove_sockets()
        shutil.rmtree(work, ignore_errors=True)
    print(report)
    with open(args.out, "w") as f:
        f.write(report + "\n")


def run(args, work):
    lines = []
    weed = Weed(args.weed, work)
    files = sorted(f for f in os.listdir(args.corpus) if f.endswith(".log"))
    loghub = [(f.split("_")[0].lower(), free_port()) for f in files]

    # ------------------------------------------------------------ ingest and compact, no archive
    end = int(time.time()) // 3600 * 3600 - 3600
    base = end - args.span
    qlines = os.path.join(work, "lines.txt")
    out = subprocess.run([args.qgen, "render", qlines, str(args.count), str(base), str(args.span),
                          args.token, str(args.rare)], capture_output=True, text=True, check=True, timeout=900)
    raw_q = int(dict(x.split("=") for x in out.stdout.split())["bytes"])
    srv = Meniscus(args, work, config(args, weed, loghub, False, "3650d"), "phase1")
    subprocess.run([args.qgen, "send", qlines, "127.0.0.1", str(args.tcp), "2"], capture_output=True, check=True, timeout=1800)
    stamp = rfc3339(end - 1800)
    for (tenant, port), name in zip(loghub, files):
        send_lf(port, os.path.join(args.corpus, name), stamp)
    expected = args.count + sum(sum(1 for _ in open(os.path.join(args.corpus, n), "rb")) for n in files)
    wait_until(lambda: sum(v for k, v in srv.prom().items() if k.startswith("meniscus_store_stored_events_total")) >= expected,
               1800, "every event stored", pid=srv.pid, interval=0.5)
    srv.stop()  # memory -> Parquet
    srv = Meniscus(args, work, config(args, weed, loghub, False, "3650d"), "phase1b")
    wait_until(lambda: all(f["compacted"] for f in hot_manifest(args.data)), 1800, "compaction", pid=srv.pid, interval=0.5)
    srv.stop()

    # ------------------------------------------------------------ (b) upload
    files_before = hot_manifest(args.data)
    srv = Meniscus(args, work, config(args, weed, loghub, True, "3650d"), "phase2")
    c0, w0, wc0 = cpu_seconds(srv.pid), time.monotonic(), cpu_seconds(weed.p.pid)
    wait_until(lambda: len(archive_manifest(args.data)) >= len(files_before), 1800, "every file archived",
               pid=srv.pid, interval=0.1)
    upload_wall, upload_cpu = time.monotonic() - w0, cpu_seconds(srv.pid) - c0
    weed_cpu = cpu_seconds(weed.p.pid) - wc0
    objects = archive_manifest(args.data)
    # What the archive took in: the compacted Parquet files (objects re-encode their rows).
    plain = sum(f["bytes"] for f in files_before)
    stored = sum(o["storedBytes"] for o in objects)
    lines.append("bench/archive: Meniscus standalone archiving to SeaweedFS (weed mini) on loopback; 2 cores, release build"
                 + (f"; storage: {args.storage}" if args.storage else ""))
    lines.append(f"upload: {len(objects)} objects of {plain / 1e6:.1f} MB of compacted Parquet, stored as {stored / 1e6:.1f} MB, "
                 f"in {upload_wall:.2f} s wall (from start, 1 s upload interval included), Meniscus CPU {upload_cpu:.2f} s, "
                 f"SeaweedFS CPU {weed_cpu:.2f} s: {plain / 1e6 / upload_cpu:.1f} MB of Parquet per Meniscus CPU-second, "
                 f"{plain / 1e6 / upload_wall:.1f} MB/s wall")

    # ------------------------------------------------------------ (a) bytes at rest
    hot_by_tenant, arch_by_tenant = {}, {}
    for f in files_before:
        hot_by_tenant[f["tenant"]] = hot_by_tenant.get(f["tenant"], 0) + f["bytes"]
    for o in objects:
        arch_by_tenant[o["tenant"]] = arch_by_tenant.get(o["tenant"], 0) + o["storedBytes"]
    lines.append("")
    lines.append("bytes at rest / raw bytes (hot: compacted Parquet; archive: the objects as stored)")
    lines.append(f"{'corpus':<34} {'raw':>12} {'hot':>7} {'archive':>8} {'zstd -3':>8} {'zstd -19':>9}")
    sums = [0, 0, 0, 0, 0]
    for (tenant, _), name in zip(loghub, files):
        path = os.path.join(args.corpus, name)
        raw = os.path.getsize(path)
        z3, z19 = zstd_size(path, 3), zstd_size(path, 19)
        row = [raw, hot_by_tenant.get(tenant, 0), arch_by_tenant.get(tenant, 0), z3, z19]
        sums = [a + b for a, b in zip(sums, row)]
        lines.append(f"loghub {name:<27} {raw:>12,} {row[1] / raw:>7.3f} {row[2] / raw:>8.3f} {z3 / raw:>8.3f} {z19 / raw:>9.3f}")
    lines.append(f"{'loghub, all eight':<34} {sums[0]:>12,} {sums[1] / sums[0]:>7.4f} {sums[2] / sums[0]:>8.4f} "
                 f"{sums[3] / sums[0]:>8.4f} {sums[4] / sums[0]:>9.4f}")
    z3 = zstd_size(qlines, 3)
    lines.append(f"{'bench/query lines, ' + format(args.count, ','):<34} {raw_q:>12,} {hot_by_tenant[TENANT] / raw_q:>7.3f} "
                 f"{arch_by_tenant[TENANT] / raw_q:>8.3f} {z3 / raw_q:>8.3f} {'(see query.txt)':>9}")

    # ------------------------------------------------------------ (c) hot vs archived queries
    counts_sql = ("SELECT date_bin(INTERVAL '60 seconds', ts, TIMESTAMP '1970-01-01T00:00:00Z') AS m, severity, "
                  "count(*) AS n FROM events GROUP BY 1, 2 ORDER BY 1, 2")
    rare_sql = f"SELECT count(*) AS n FROM events WHERE msg LIKE '%{args.token}%'"

    def timed(server, sql):
        c, t = cpu_seconds(server.pid), time.monotonic()
        rows = server.sql(sql)
        return rows, time.monotonic() - t, cpu_seconds(server.pid) - c

    results = {}
    # What one cold query fetched from the S3 server: bytes, runs of chunks, objects opened.
    fetched = {}

    def fetch_counters(server):
        prom = server.prom()
        return (prom.get("meniscus_archive_fetched_bytes_total", 0.0),
                prom.get("meniscus_archive_range_reads_total", 0.0),
                prom.get('meniscus_archive_fetches_total{result="miss"}', 0.0))

    def measure(label, server_factory, restart_each, warm_up=False):
        server = None if restart_each else server_factory()
        if warm_up:
            for sql in (counts_sql, rare_sql):
                server.sql(sql)
        for kind, sql in (("counts", counts_sql), ("rare", rare_sql)):
            walls, cpus, answer = [], [], None
            for _ in range(args.runs):
                if restart_each:
                    server = server_factory()
                rows, wall, cpu = timed(server, sql)
                if answer is not None and rows["rows"] != answer:
                    raise RuntimeError(f"{label} {kind}: answers differ between runs")
                answer = rows["rows"]
                walls.append(wall)
                cpus.append(cpu)
                if rows.get("unreadable"):
                    raise RuntimeError(f"{label} {kind}: unreadable {rows['unreadable']}")
                if restart_each:
                    if label == "cold":
                        fetched[kind] = fetch_counters(server)
                    server.stop()
            results[(label, kind)] = (statistics.median(walls), statistics.median(cpus), answer)
        if not restart_each:
            server.stop()

    srv.stop()
    hot_conf = config(args, weed, loghub, True, "3650d")
    measure("hot", lambda: Meniscus(args, work, hot_conf, "hot"), False)
    # Short-term retention cut to one hour: every hot file goes (they are all archived).
    cold_conf = config(args, weed, loghub, True, "1h")
    srv = Meniscus(args, work, cold_conf, "expire")
    wait_until(lambda: not any(f["tenant"] == TENANT for f in hot_manifest(args.data)), 600, "hot copies to expire",
               pid=srv.pid, interval=0.2)
    srv.stop()
    measure("cold", lambda: Meniscus(args, work, cold_conf, "cold"), True)
    measure("warm", lambda: Meniscus(args, work, cold_conf, "warm"), False, warm_up=True)

    lines.append("")
    lines.append(f"queries over {args.count:,} events in {args.span // 3600} h (medians of {args.runs}; "
                 "cold: Meniscus restarted before each run, so every object is opened from the bucket)")
    for kind, what in (("counts", "count per minute x severity"), ("rare", "rare-token count (LIKE)")):
        hw, hc, ha = results[("hot", kind)]
        for label in ("cold", "warm"):
            w, c, a = results[(label, kind)]
            if a != ha:
                raise RuntimeError(f"{label} {kind}: the archived answer differs from the hot one")
        cw, cc, _ = results[("cold", kind)]
        ww, wc, _ = results[("warm", kind)]
        lines.append(f"{what:<30} hot {hw:.3f} s ({hc:.2f} CPU-s), archive cold {cw:.3f} s ({cc:.2f}), warm {ww:.3f} s ({wc:.2f}); "
                     f"cold/hot {cw / hw:.2f}x, warm/hot {ww / hw:.2f}x; answers equal")
        if kind in fetched:
            fb, gets, opened = fetched[kind]
            lines.append(f"{'':<30} cold: {opened:.0f} objects opened, {gets:.0f} runs of chunks fetched, "
                         f"{fb / 1e6:.1f} MB fetched of the tenant's {arch_by_tenant[TENANT] / 1e6:.1f} MB of objects")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
