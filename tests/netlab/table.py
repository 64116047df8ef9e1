#!/usr/bin/env python3
"""Markdown figures table from `tests/netlab/run --figures FILE` JSON lines (the last line
of each scenario wins); each scenario's loopback figure beside it (its own loopback twin,
else clean's).

  tests/netlab/table.py figures.jsonl [more.jsonl ...]
"""
import json
import sys


def main(paths):
    rows = {}
    for p in paths:
        with open(p) as f:
            for line in f:
                d = json.loads(line)
                if not d.get("error"):
                    rows[d["scenario"]] = d
    cols = [("converge_rounds", "converge after heal (rounds)"),
            ("write_all_p50_ms", "write→all p50 ms"), ("write_all_p99_ms", "p99 ms"),
            ("false_deaths", "false deaths"), ("detect_s", "detection s"),
            ("bytes_per_node_s", "bytes/node/s"), ("delivered", "datagrams delivered"),
            ("bulk_spread_s", "burst spread s"), ("violations", "violations")]
    print("| scenario | " + " | ".join(c[1] for c in cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    base = rows.get("clean (loopback)", {})
    for name, d in rows.items():
        if name.endswith("(loopback)"):
            continue
        lo = rows.get(name + " (loopback)", base)
        cells = []
        for k, _ in cols:
            v, b = d.get(k, ""), lo.get(k, "")
            if k == "detect_s":
                v = ",".join(str(x) for x in v) if v else "–"
                b = ""
            if k == "violations":
                b = ""
            cells.append("%s%s" % (v if v != "" else "–", " (%s)" % b if b not in ("", None) else ""))
        print("| %s | %s |" % (name, " | ".join(cells)))


if __name__ == "__main__":
    main(sys.argv[1:])
