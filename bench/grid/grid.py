"""Drives bench/grid/run.sh: see there."""
import argparse, asyncio, json, os, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from benchproc import STARTED, cpu_seconds, free_port, peak_rss_mb, stop, stop_all, wait_until, listening  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


async def request(host, port, method, path, headers=None, body=None):
    """One HTTP/1.1 request on its own connection; returns (status, parsed JSON body)."""
    reader, writer = await asyncio.open_connection(host, port)
    data = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: c\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
    for name, value in (headers or {}).items():
        head += f"{name}: {value}\r\n"
    writer.write(head.encode() + b"\r\n" + data)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    status = int(raw[9:12])
    payload = raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw else b""
    return status, (json.loads(payload) if payload else None)


class KeepAlive:
    """A worker's keep-alive connection for heartbeats (Content-Length bodies only)."""

    def __init__(self, host, port):
        self.host, self.port, self.reader, self.writer = host, port, None, None

    async def post(self, path, headers, body):
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        data = json.dumps(body).encode()
        head = f"POST {path} HTTP/1.1\r\nHost: c\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        for name, value in headers.items():
            head += f"{name}: {value}\r\n"
        self.writer.write(head.encode() + b"\r\n" + data)
        await self.writer.drain()
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await self.reader.readexactly(length)
        return int(status_line[9:12])


async def run(args, port):
    host = "127.0.0.1"
    t0 = time.monotonic()
    workers = []
    for index in range(args.workers):
        status, paired = await request(host, port, "POST", "/v1/pair", body={
            "secret": "bench-secret", "personas": ["storage" if index % 4 == 0 else "correlator"],
            "advertise": f"10.0.{index // 250}.{index % 250}:7000", "capacity": 1000})
        assert status == 200, paired
        workers.append({"X-Meniscus-Worker": paired["workerId"], "Authorization": "Bearer " + paired["credential"]})
    pair_s = time.monotonic() - t0

    # Heartbeats: every worker once a second, spread over the second.
    conns = [KeepAlive(host, port) for _ in workers]
    sent = 0
    cpu0 = cpu_seconds(args.pid)
    h0 = time.monotonic()

    async def beat(i):
        nonlocal sent
        await asyncio.sleep(i / len(workers))
        while time.monotonic() - h0 < args.heartbeat_seconds:
            assert await conns[i].post("/v1/heartbeat", workers[i], {"eventsInPerSecond": 100.0, "queueDepth": i % 7}) == 200
            sent += 1
            await asyncio.sleep(1.0)
    await asyncio.gather(*(beat(i) for i in range(len(workers))))
    hb_wall = time.monotonic() - h0
    hb_cpu = cpu_seconds(args.pid) - cpu0
    for conn in conns:
        if conn.writer:
            conn.writer.close()

    # A route change reaching every long-polling worker: through the broadcasters when there
    # are any (workers spread over them), from the coordinator itself otherwise.
    status, snap = await request(host, port, "GET", "/v1/snapshot", workers[0])
    version, tenants = snap["routes"]["version"], snap["tenants"]["version"]
    arrived = []
    sources = args.broadcaster_ports or [port]

    async def follow(index, headers):
        source = sources[index % len(sources)]
        status, update = await request(host, source, "GET", f"/v1/updates?route={version}&tenants={tenants}", headers)
        assert status == 200 and update["routes"]["version"] > version, (status, update)
        arrived.append(time.monotonic())
    followers = [asyncio.create_task(follow(i, h)) for i, h in enumerate(workers)]
    await asyncio.sleep(3)  # every follower is waiting
    cpu1 = cpu_seconds(args.pid)
    args.broadcaster_cpu0 = sum(cpu_seconds(pid) for pid in args.broadcaster_pids)
    change = time.monotonic()
    status, _ = await request(host, port, "POST", "/v1/pair", body={
        "secret": "bench-secret", "personas": ["storage"], "advertise": "10.9.9.9:7000"})
    assert status == 200
    await asyncio.gather(*followers)
    spread = max(arrived) - change
    fan_cpu = cpu_seconds(args.pid) - cpu1
    args.broadcaster_cpu = sum(cpu_seconds(pid) for pid in args.broadcaster_pids) - args.broadcaster_cpu0
    snapshot_bytes = len(json.dumps(snap))
    return pair_s, sent, hb_wall, hb_cpu, spread, fan_cpu, snapshot_bytes


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=1000)
    ap.add_argument("--heartbeat-seconds", type=int, default=20)
    ap.add_argument("--broadcasters", type=int, default=0, help="broadcaster processes the workers follow")
    ap.add_argument("--out", default=None, help="default: bench/results/grid.txt (grid-broadcasters.txt with --broadcasters)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(143)))
    work = tempfile.mkdtemp(prefix="bench-grid-")
    try:
        for name, value in (("pairing", "bench-secret"), ("admin", "bench-admin")):
            with open(os.path.join(work, name), "w") as f:
                f.write(value)
        port = free_port()
        binary = os.environ["MENISCUS_BIN"]
        proc = subprocess.Popen([binary, "worker", "--persona", "coordinator", "--listen", f"127.0.0.1:{port}",
                                 "--data-dir", os.path.join(work, "data"), "--pairing-secret-file", os.path.join(work, "pairing"),
                                 "--admin-credential-file", os.path.join(work, "admin"), "--heartbeat-timeout-seconds", "60"],
                                stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "log"), "w"))
        STARTED.append(proc)
        wait_until(lambda: listening(port), 30, "the coordinator listening", pid=proc.pid)
        args.pid = proc.pid
        args.broadcaster_ports, args.broadcaster_pids = [], []
        for index in range(args.broadcasters):
            bport = free_port()
            b = subprocess.Popen([binary, "worker", "--persona", "broadcaster", "--coordinator", f"http://127.0.0.1:{port}",
                                  "--listen", f"127.0.0.1:{bport}", "--data-dir", os.path.join(work, f"broadcaster-{index}"),
                                  "--pairing-secret-file", os.path.join(work, "pairing")],
                                 stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, f"broadcaster-{index}.log"), "w"))
            STARTED.append(b)
            wait_until(lambda: listening(bport), 30, "a broadcaster listening", pid=b.pid)
            args.broadcaster_ports.append(bport)
            args.broadcaster_pids.append(b.pid)
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        pair_s, sent, hb_wall, hb_cpu, spread, fan_cpu, snapshot_bytes = asyncio.run(run(args, port))
        rss = peak_rss_mb(proc.pid)
        stop(proc)
    finally:
        stop_all()
        shutil.rmtree(work, ignore_errors=True)
    lines = [
        f"bench/grid: {args.workers} simulated workers (asyncio, one process) against meniscus worker --persona coordinator; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cpus, release build",
        f"pairing: {args.workers} workers in {pair_s:.2f} s ({pair_s * 1000 / args.workers:.2f} ms each, one state-file write each)",
        f"heartbeats: {sent:,} in {hb_wall:.1f} s ({sent / hb_wall:,.0f}/s); coordinator CPU {hb_cpu:.2f} s = {hb_cpu * 1e6 / max(sent, 1):.0f} µs per heartbeat",
        (f"route change -> all {args.workers} long-polling workers through {args.broadcasters} broadcaster(s): {spread:.3f} s (goal < 2 s), "
         f"coordinator CPU {fan_cpu:.2f} s, broadcasters' CPU {args.broadcaster_cpu:.2f} s; snapshot {snapshot_bytes:,} B each"
         if args.broadcasters else
         f"route change -> all {args.workers} long-polling workers, no broadcaster (the coordinator answers every worker itself): "
         f"{spread:.3f} s (goal < 2 s), coordinator CPU {fan_cpu:.2f} s; snapshot {snapshot_bytes:,} B each"),
        f"coordinator peak RSS {rss:.0f} MB",
    ]
    report = "\n".join(lines)
    args.out = args.out or os.path.join(REPO, "bench", "results", "grid-broadcasters.txt" if args.broadcasters else "grid.txt")
    print(report)
    with open(args.out, "w") as f:
        f.write(report + "\n")


if __name__ == "__main__":
    main()
