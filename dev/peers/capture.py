#!/usr/bin/env python3
"""Stand-in syslog target: accept TCP (optionally TLS) connections on 127.0.0.1
and append every received byte, unmodified, to a file. Used to check what the
peers put on the wire (framing, format, SD) without Meniscus.

  capture.py PORT OUTFILE [--tls CERT KEY [--client-ca CA]] [--timeout SECONDS]

Prints "listening PORT" on stdout once bound. Exits on SIGTERM or after --timeout.
"""
import argparse
import signal
import socket
import ssl
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("outfile")
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--client-ca")
    ap.add_argument("--timeout", type=float, default=600)
    a = ap.parse_args()

    ctx = None
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*a.tls)
        if a.client_ca:
            ctx.load_verify_locations(a.client_ca)
            ctx.verify_mode = ssl.CERT_REQUIRED

    lock = threading.Lock()
    out = open(a.outfile, "ab", buffering=0)
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", a.port))
    srv.listen(64)
    print("listening", srv.getsockname()[1], flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    def serve(conn):
        try:
            if ctx:
                conn = ctx.wrap_socket(conn, server_side=True)
                peer = conn.getpeercert()
                if peer:
                    print("client cert subject", peer.get("subject"), flush=True)
            while True:
                b = conn.recv(1 << 16)
                if not b:
                    break
                with lock:
                    out.write(b)
        except (OSError, ssl.SSLError) as e:
            print("connection error:", e, flush=True)
        finally:
            conn.close()

    deadline = time.time() + a.timeout
    srv.settimeout(0.5)
    while time.time() < deadline:
        try:
            conn, _ = srv.accept()
        except socket.timeout:
            continue
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
