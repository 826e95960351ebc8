#!/usr/bin/env python3
"""How far a CLP-style template/variable split takes the message text alone, beside general
compressors, on real logs: the question behind the archive's bytes-at-rest goal (<= 0.05 of
raw for the whole archive on loghub, issue 14).

    bench/templates/split.py [--corpus DIR] [--out FILE]

Each line of each `*.log` file (loghub's samples by default, read in place) is split into
tokens at delimiters; a token holding a digit is a variable (a decimal integer, or else a
string), the rest of the line is its template. Streams, each compressed on its own:
  - templates: the distinct templates, one per line;
  - order: each line's template number (LEB128);
  - integers: per template and variable position, in line order, deltas from the previous
    value in that position (zigzag LEB128), positions one after another;
  - strings: per template and position, NUL-terminated, positions one after another.
Lines decode back exactly (the split is checked on every line). This is a measurement of the
message text only: no timestamps, hosts or other columns, no container, no encryption. With
Python's `brotli` module installed (`pip install brotli`), a column for Brotli at quality 11
(what the archive format uses for small objects) is added.
"""
import argparse
import lzma
import os
import re
import subprocess
import sys

DELIMITERS = re.compile(rb'([\s=:,\[\]\(\)\{\}"\'/;@<>|]+)')
INTEGER = re.compile(rb'^-?(0|[1-9][0-9]{0,17})$')
INT_SLOT, STR_SLOT, ESCAPE = b'\x11', b'\x13', b'\x10'


def leb128(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def zigzag(n):
    return (n << 1) ^ (n >> 63)


def escape(text):
    for marker in (ESCAPE, INT_SLOT, STR_SLOT):
        text = text.replace(marker, ESCAPE + marker)
    return text


def split(line):
    template, values = [], []
    for index, part in enumerate(DELIMITERS.split(line)):
        if index % 2 == 1 or not any(48 <= c <= 57 for c in part):
            template.append(escape(part))
        elif INTEGER.match(part):
            template.append(INT_SLOT)
            values.append(int(part))
        else:
            template.append(STR_SLOT)
            values.append(part)
    return b''.join(template), values


def join(template, values):
    out, values, at = bytearray(), iter(values), 0
    while at < len(template):
        byte = template[at:at + 1]
        if byte == ESCAPE:
            out += template[at + 1:at + 2]
            at += 2
            continue
        if byte == INT_SLOT:
            out += str(next(values)).encode()
        elif byte == STR_SLOT:
            out += next(values)
        else:
            out += byte
        at += 1
    return bytes(out)


def streams(lines):
    templates, order, slots = {}, [], {}
    for line in lines:
        template, values = split(line)
        if join(template, values) != line:
            raise SystemExit(f"split.py: a line does not decode back: {line[:200]!r}")
        number = templates.setdefault(template, len(templates))
        order.append(number)
        for position, value in enumerate(values):
            slots.setdefault((number, position), []).append(value)
    integers, strings = bytearray(), bytearray()
    for key in sorted(slots):
        previous = 0
        for value in slots[key]:
            if isinstance(value, int):
                integers += leb128(zigzag(value - previous))
                previous = value
            else:
                strings += value + b'\0'
    return {"templates": b'\n'.join(templates), "order": b''.join(leb128(n) for n in order),
            "integers": bytes(integers), "strings": bytes(strings)}, len(templates)


def zstd(data, level):
    return len(subprocess.run(["zstd", f"-{level}", "-q", "-c"], input=data, capture_output=True, check=True).stdout)


def xz(data):
    return len(lzma.compress(data, format=lzma.FORMAT_RAW,
                             filters=[{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME}]))


def brotli11(data):
    try:
        import brotli
    except ImportError:
        return None
    return len(brotli.compress(data, quality=11, lgwin=24))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    repo = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", default=os.environ.get("CORPUS") or os.path.join(repo, "..", "shared", "corpus", "loghub"))
    ap.add_argument("--out", default=os.path.join(repo, "bench", "results", "templates.txt"))
    args = ap.parse_args()
    files = sorted(name for name in os.listdir(args.corpus) if name.endswith(".log"))
    if not files:
        raise SystemExit(f"split.py: no .log files in {args.corpus}")
    with_brotli = brotli11(b"probe") is not None
    rows = ["bench/templates: the message text alone, split CLP-style into templates and variables, "
            "each stream compressed on its own; bytes / raw bytes",
            f"{'file':<22}{'raw':>11}{'templates':>10}{'zstd -19':>10}{'split+zstd -19':>16}{'split+xz -9e':>14}"
            + (f"{'split+brotli 11':>17}" if with_brotli else "")]
    totals = [0, 0, 0, 0, 0]
    for name in files:
        raw = open(os.path.join(args.corpus, name), "rb").read()
        parts, count = streams(raw.splitlines())
        figures = [len(raw), zstd(raw, 19), sum(zstd(data, 19) for data in parts.values()),
                   sum(xz(data) for data in parts.values()),
                   sum(brotli11(data) for data in parts.values()) if with_brotli else 0]
        totals = [total + figure for total, figure in zip(totals, figures)]
        rows.append(f"{name:<22}{figures[0]:>11,}{count:>10}{figures[1] / figures[0]:>10.4f}"
                    f"{figures[2] / figures[0]:>16.4f}{figures[3] / figures[0]:>14.4f}"
                    + (f"{figures[4] / figures[0]:>17.4f}" if with_brotli else ""))
    rows.append(f"{'all':<22}{totals[0]:>11,}{'':>10}{totals[1] / totals[0]:>10.4f}"
                f"{totals[2] / totals[0]:>16.4f}{totals[3] / totals[0]:>14.4f}"
                + (f"{totals[4] / totals[0]:>17.4f}" if with_brotli else ""))
    report = "\n".join(rows)
    print(report)
    with open(args.out, "w") as out:
        out.write(report + "\n")


if __name__ == "__main__":
    sys.exit(main())
