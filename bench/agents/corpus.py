"""The events every protocol of bench/agents sends: the same text, host, app, time and severity,
so that the protocols differ only in how they carry it. Shared by agents.py (stdlib Python) and
encode.py (the protobuf bodies, run with the agents' venv), so both render identical events.

Event `seq` is bench/e2e's message (blast.c): RFC 5424, PRI 134 (local0.info), timestamp
`base + seq` microseconds, host `bench-host`, APP-NAME `bench` (the producer `bench`), PROCID
1000, MSGID ID47, no structured data, and a MSG of `seq=NNNNNNNNNN conn=00 GET
/api/v1/items/N status=200 user=uNNN msg=` padded with "the quick brown fox..." to `size`
bytes for the whole RFC 5424 message. Other protocols carry that MSG as their line / message /
body, with the same time, host, app and severity (info).
"""

import time

HOST = "bench-host"
APP = "bench"
PROCID = "1000"
MSGID = "ID47"
PRI = 134  # local0.info
SEVERITY_TEXT = "info"
FILLER = "the quick brown fox jumps over the lazy dog "

_seconds = {}


def _second(sec):
    """'YYYY-MM-DDTHH:MM:SS' of a Unix second (cached: a phase spans a second or two)."""
    text = _seconds.get(sec)
    if text is None:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        _seconds[sec] = text
    return text


def timestamp(base_us, seq):
    """RFC 3339 UTC with microseconds of event seq (base + seq µs), as blast.c writes it."""
    us = base_us + seq
    return f"{_second(us // 1_000_000)}.{us % 1_000_000:06d}Z"


def time_ns(base_us, seq):
    return (base_us + seq) * 1000


def header(stamp):
    """The RFC 5424 header up to the MSG (no structured data): constant length for a stamp."""
    return f"<{PRI}>1 {stamp} {HOST} {APP} {PROCID} {MSGID} - "


def msg(seq, size, header_len):
    """The MSG of event seq, padded (blast.c's way) so header + MSG is `size` bytes."""
    body = (f"seq={seq:010d} conn=00 GET /api/v1/items/{seq * 7919 % 1000003} "
            f"status=200 user=u{seq % 997:03d} msg=")
    n = header_len + len(body)
    if n < size:
        pad = [FILLER[i % len(FILLER)] for i in range(n, size)]
        body += "".join(pad)
    return body


def events(first, count, size, base_us):
    """(stamp, time_ns, msg) of events first .. first+count-1."""
    out = []
    for seq in range(first, first + count):
        stamp = timestamp(base_us, seq)
        out.append((stamp, time_ns(base_us, seq), msg(seq, size, len(header(stamp)))))
    return out
