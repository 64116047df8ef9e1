#!/usr/bin/env python3
"""Checks every #include of the tree against the folder dependency matrix (DESIGN §6).

    wire <- engine <- io <- node <- api <- tools     (each may include the ones before it)
    sim: engine, wire                                  bench/, tests/: anything

A file may include its own folder and the folders the matrix allows; an include of
another project folder (a backward arrow, e.g. engine/ including io/) fails. Two
third-party rules ride along: only wire/ includes flatbuffers, only io/ (and bench/)
includes liburing. The CMake targets enforce the same arrows at link time; this catches
the header-only includes the linker never sees.

    python3 tests/layering_test.py [--root DIR]
Exit 0 when clean, 1 listing each violation as file:line. It first checks that a
made-up backward include is caught, so it cannot pass by checking nothing.
"""
import argparse
import os
import re
import sys

# folder -> folders it may include (besides itself)
ALLOWED = {
    "wire": set(),
    "engine": {"wire"},
    "io": {"wire", "engine"},
    "node": {"wire", "engine", "io"},
    "api": {"wire", "engine", "io", "node"},
    "tools": {"wire", "engine", "io", "node", "api", "sim"},
    "sim": {"wire", "engine"},
}
ANYTHING = {"bench", "tests"}
PROJECT = set(ALLOWED) | ANYTHING
# third-party include prefix -> folders that may include it
THIRD_PARTY = {
    "flatbuffers/": {"wire"},
    "liburing.h": {"io", "bench"},
    "xdp/": {"io"},
    "bpf/": {"io"},
    "libmnl/": {"io"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]')
SOURCE = (".h", ".cc", ".hpp", ".cpp")


def violations(folder, lines, name):
    """Yields 'name:line: reason' for each include `folder` may not have."""
    for n, line in enumerate(lines, 1):
        m = INCLUDE.match(line)
        if not m:
            continue
        inc = m.group(1)
        top = inc.split("/", 1)[0] if "/" in inc else None
        if top in PROJECT and folder not in ANYTHING and top != folder \
                and top not in ALLOWED[folder]:
            yield f"{name}:{n}: {folder}/ may not include {inc} ({top}/ is not below it)"
        for prefix, who in THIRD_PARTY.items():
            if inc.startswith(prefix) and folder not in who:
                yield f"{name}:{n}: {folder}/ may not include {inc} (only {sorted(who)})"


def check_tree(root):
    found, files = [], 0
    for folder in sorted(PROJECT):
        base = os.path.join(root, folder)
        for dirpath, _, names in os.walk(base):
            for f in sorted(names):
                if not f.endswith(SOURCE):
                    continue
                path = os.path.join(dirpath, f)
                files += 1
                with open(path, encoding="utf-8", errors="replace") as fh:
                    found += violations(folder, fh.read().splitlines(),
                                        os.path.relpath(path, root))
    return found, files


def self_test():
    bad = list(violations("engine", ['#include "io/transport.h"'], "x"))
    bad += list(violations("sim", ['#include "node/node.h"'], "x"))
    bad += list(violations("engine", ["#include <liburing.h>"], "x"))
    good = list(violations("api", ['#include "node/node.h"', '#include "absl/x.h"'], "x"))
    good += list(violations("tests", ['#include "api/metrics.h"'], "x"))
    if len(bad) != 3 or good:
        sys.exit(f"layering_test self-test failed: bad={bad} good={good}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    a = ap.parse_args()
    self_test()
    found, files = check_tree(a.root)
    if files == 0:
        sys.exit(f"layering_test: no sources under {a.root}")
    for v in found:
        print(v)
    print(f"layering_test: {files} files, {len(found)} violations")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
