#!/usr/bin/env python3
"""Same results before and after a change: two all_results.jsonl files compared row by row, every key except the
run-specific ones (wall-clock timings, latency, the git sha: kronbench.rows.RUN_SPECIFIC).

    .venv/bin/python ci/compare-rows.py OLD/all_results.jsonl NEW/all_results.jsonl [--roots OLD_DIR NEW_DIR ...]
Exit 0 and one summary line when they agree; else every difference and exit 1. --roots (repeatable): the two
runs were made in different checkouts; OLD_DIR in the first file's values (a local base model's path, the data
directory) reads as NEW_DIR. Issue 20 ran it on the tiny and paper-smoke grids before and after its refactoring
(docs/measurements.md).
"""

import json
import sys

from kronbench.rows import RUN_SPECIFIC, differences


def read(path, roots=()):
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    for old, new in roots:  # JSON-escaped, so each replacement stays inside string values
        old, new = json.dumps(old)[1:-1], json.dumps(new)[1:-1]
        lines = [line.replace(old, new) for line in lines]
    return [json.loads(line) for line in lines]


def main(argv):
    roots = []
    while "--roots" in argv:
        i = argv.index("--roots")
        roots.append(tuple(argv[i + 1:i + 3]))
        argv = argv[:i] + argv[i + 3:]
    if len(argv) != 2 or any(len(r) != 2 for r in roots):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    old, new = read(argv[0], roots), read(argv[1])
    diff = differences(old, new)
    if diff:
        print("\n".join(diff))
        print(f"{len(diff)} difference(s) between {argv[0]} ({len(old)} rows) and {argv[1]} ({len(new)} rows)")
        return 1
    compared = len({k for r in old for k in r} - set(RUN_SPECIFIC))
    print(f"same rows: {len(old)} rows, {compared} keys compared (ignored: {', '.join(RUN_SPECIFIC)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
