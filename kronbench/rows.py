"""The result row: one JSON object per (checkpoint, task split, metric), written by evaluate, completed by gather
(latency), read by tables, figures and check-grid. One schema for all of them.

Values are x100 (accuracy, F1, MCC, Pearson, EM), perplexity raw. A row that could not be scored carries
status failed/skipped and a reason instead of metric and value. docs/library.md describes every key.
"""

from __future__ import annotations

IDENTITY = ("model", "method", "preset", "task", "split", "seed", "metric", "protocol")  # one row of a run
CELL = ("model", "method", "preset", "task", "split", "metric", "protocol", "source_task")  # a table cell (seeds)
REQUIRED = ("model", "method", "task", "split")  # every row; ok rows also need metric and value
STATUSES = ("ok", "failed", "skipped")
# written by evaluate (kronbench.evaluate.run)
SCORED = ("model", "method", "preset", "task", "split", "seed", "metric", "value", "params", "params_no_head",
          "flops", "latency_ms", "latency_setup", "train_seconds", "tune_seconds", "config_hash", "git_sha",
          "versions", "protocol", "source_task", "chance", "chance_se", "base", "data_source", "data_sha256",
          "eval_device", "init")
# added by gather from compare_latency (kronbench.evaluate.latency), with latency_setup
LATENCY = ("latency_ms", "latency_iqr_ms", "latency_repeats", "latency_noisy", "latency_vs_teacher")
# what differs between two runs of the same config and code on one machine: wall-clock measurements and the commit
TIMINGS = (*LATENCY, "latency_setup", "train_seconds", "tune_seconds")
RUN_SPECIFIC = (*TIMINGS, "git_sha")


def key(row: dict) -> tuple:
    return tuple(row.get(k) for k in IDENTITY)


def differences(old: list[dict], new: list[dict], ignore=RUN_SPECIFIC) -> list[str]:
    """Where two sets of rows disagree, key by key except `ignore`: rows only on one side, and each differing
    value (the check that a refactoring changed no result: ci/compare-rows.py)."""
    a, b = ({key(r): r for r in rows} for rows in (old, new))
    out = [f"only in the first: {k}" for k in a.keys() - b.keys()]
    out += [f"only in the second: {k}" for k in b.keys() - a.keys()]
    for k in sorted(a.keys() & b.keys(), key=str):
        for name in sorted((set(a[k]) | set(b[k])) - set(ignore)):
            if a[k].get(name) != b[k].get(name):
                out.append(f"{k}: {name}: {a[k].get(name)!r} != {b[k].get(name)!r}")
    return out
