#!/usr/bin/env python3
"""Same results before and after a change: two all_results.jsonl files compared row by row, every key except the
run-specific ones (wall-clock timings, latency, the git sha: kronbench.rows.RUN_SPECIFIC).

    .venv/bin/python ci/compare-rows.py OLD/all_results.jsonl NEW/all_results.jsonl [--roots OLD_DIR NEW_DIR]
Exit 0 and one summary line when they agree; else every difference and exit 1. --roots: the two runs were made in
different checkouts; OLD_DIR in the first file's values (e.g. a local base model's path) reads as NEW_DIR. Issue 20 ran it on the tiny and
paper-smoke grids before and after its refactoring (docs/measurements.md).
"""

import json
import sys

from kronbench.rows import RUN_SPECIFIC, differences


def read(path, roots=None):
    with open(path, encoding="utf-8") as f:
        lines = [line for line in f if line.strip()]
    if roots:  # JSON-escaped, so the replacement stays inside string values
        old, new = (json.dumps(r)[1:-1] for r in roots)
        lines = [line.replace(old, new) for line in lines]
    return [json.loads(line) for line in lines]


def main(argv):
    roots = None
    if "--roots" in argv:
        i = argv.index("--roots")
        roots, argv = argv[i + 1:i + 3], argv[:i] + argv[i + 3:]
    if len(argv) != 2 or (roots is not None and len(roots) != 2):
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
