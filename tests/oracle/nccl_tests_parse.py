#!/usr/bin/env python3
"""Parse nccl-tests output (all_reduce_perf and the other *_perf programs) as scripts that collect
nccl-tests logs do: comment lines start with '#'; a result row is whitespace-separated fields,
size count type redop root, then time algbw busbw #wrong out-of-place and the same four in-place
(fields past these, like nccl-tests' optional timestamp, are ignored); the footer line
'# Avg bus bandwidth : X' gives the mean bus bandwidth. Written from nccl-tests' own printf
formats (src/common.cu, v2.13), independently of tpsim. Prints JSON: {"rows": [...], "avg_busbw": X}.

    python3 tests/oracle/nccl_tests_parse.py LOG   (or - for stdin)
"""
import json
import re
import sys

ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s+(\w+)\s+(\w+)\s+(-?\d+)"
                 r"\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)"
                 r"\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)(\s.*)?$")
AVG = re.compile(r"^# Avg bus bandwidth\s*:\s*([0-9.eE+-]+)")


def number(text):
    return None if text == "N/A" else float(text)


def parse(lines):
    rows, avg = [], None
    for line in lines:
        line = line.rstrip("\n")
        m = AVG.match(line)
        if m:
            avg = float(m.group(1))
            continue
        if line.startswith("#") or not line.strip():
            continue
        m = ROW.match(line)
        if not m:
            raise ValueError(f"not an nccl-tests row: {line!r}")
        g = m.groups()
        rows.append({"size": int(g[0]), "count": int(g[1]), "type": g[2], "redop": g[3], "root": int(g[4]),
                     "time_us": float(g[5]), "algbw": float(g[6]), "busbw": float(g[7]), "wrong": number(g[8]),
                     "in_place": {"time_us": float(g[9]), "algbw": float(g[10]), "busbw": float(g[11]),
                                  "wrong": number(g[12])}})
    if avg is None:
        raise ValueError("no '# Avg bus bandwidth' footer")
    return {"rows": rows, "avg_busbw": avg}


if __name__ == "__main__":
    source = sys.stdin if len(sys.argv) < 2 or sys.argv[1] == "-" else open(sys.argv[1])
    print(json.dumps(parse(source)))
