"""`kronbench gather`: the rows files of every evaluation -> results/all_results.jsonl, the one input of tables and
figures (tables are pure functions of it: a table never retrains anything).

    gather(["results/rows/.../validation.jsonl", ...], "results/all_results.jsonl",
           metrics="paper_tables/metrics.json")

Each line is checked as `kronbench table-all` will read it (kronbench.report.tables.load_rows: a JSON object with
model, method, task, split, a known task and metric, a finite value for ok rows, a reason otherwise); the first bad
line stops the gather with its file and line number. Two rows for the same cell and seed from different files
are an error too: they would mean two runs claim the same identity. The output is written to a temp file and
renamed, so readers never see half a file. `metrics` adds a small JSON of mean main-metric scores per cell (for
`dvc metrics show/diff`).
"""

from __future__ import annotations

import json
from pathlib import Path

from kronbench import atomic
from kronbench.errors import KronbenchError
from kronbench.report.io import iter_jsonl

# What identifies one score; equal keys from two files are a clash (tables would silently keep the later one).
IDENTITY = ("model", "method", "preset", "task", "split", "seed", "metric", "protocol", "source_task")


def read_rows(path) -> list[tuple[int, dict]]:
    """(line number, validated row) of one rows file; an empty file or a bad line raises KronbenchError naming
    file:line."""
    from kronbench.report.tables import _check_row

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise KronbenchError(f"{path}: cannot read rows file ({e.strerror})") from None
    rows = [(n, _check_row(row, f"{path}:{n}"))
            for n, row in iter_jsonl(path, text, "rerun the evaluate job that wrote it")]
    if not rows:
        raise KronbenchError(f"{path}: no result rows; rerun the evaluate job that wrote it")
    return rows


def gather(inputs, out, metrics=None, latency=()) -> dict:
    """Concatenate `inputs` (in the given order) into `out`; returns {"rows": n, "files": k, "out": path}.
    With `latency` files (kronbench.evaluate.latency), every row gets the latency_* fields of its checkpoint's
    family comparison; a row whose checkpoint was not timed is an error."""
    from kronbench.data.registry import get_task
    from kronbench.evaluate.latency import head_of, latency_key, read_latency

    if not inputs:
        raise KronbenchError("gather: no rows files given")
    timed = read_latency(latency) if latency else None
    seen: dict[tuple, str] = {}
    lines, rows = [], []
    for path in inputs:
        for n, row in read_rows(path):
            key = tuple(json.dumps(row.get(k), sort_keys=True) for k in IDENTITY)
            where = f"{path}:{n}"
            if key in seen:
                raise KronbenchError(f"{where}: same {'/'.join(IDENTITY)} as {seen[key]}: "
                                     f"{dict(zip(IDENTITY, (row.get(k) for k in IDENTITY)))}")
            seen[key] = where
            if timed is not None and row["status"] == "ok":  # a failed run has no checkpoint to time
                head = head_of(get_task(row["task"]).kind)
                lk = latency_key(row["model"], row["method"], row.get("preset"), head)
                plain = latency_key(row["model"], row["method"], None, head)  # distil's run name lacks its L2
                if (row.get("seed"), lk) not in timed and (row.get("seed"), plain) in timed:
                    lk = plain
                if (row.get("seed"), lk) not in timed:
                    raise KronbenchError(f"{where}: no latency entry {lk!r} for seed {row.get('seed')} in "
                                         f"{', '.join(map(str, latency))}; rerun compare_latency for its family")
                row = {**row, **timed[(row.get("seed"), lk)]}
            rows.append(row)
            lines.append(json.dumps(row, default=str) + "\n")
    atomic.write_text(Path(out), "".join(lines))
    if metrics:
        atomic.write_text(Path(metrics), json.dumps(summary_metrics(rows), indent=2, sort_keys=True) + "\n")
    return {"rows": len(rows), "files": len(inputs), "out": str(out)}


def summary_metrics(rows: list[dict]) -> dict:
    """{"rows": n, "scores": {model: {method[-preset]: {task/split[/protocol]: {metric: mean, "n": seeds}}}}} for
    each task's main metric, mean over the ok rows' seeds; nested, so `dvc metrics diff` lists one line a cell."""
    from kronbench.data.registry import get_task

    cells: dict[tuple, list[float]] = {}
    for r in rows:
        if (r.get("status") or "ok") != "ok" or r["metric"] != get_task(r["task"]).main_metric:
            continue
        run = r["method"] + (f"-{r['preset']}" if r.get("preset") else "")
        where = f"{r['task']}/{r['split']}" + (f"/{r['protocol']}" if r.get("protocol") else "")
        cells.setdefault((r["model"], run, where, r["metric"]), []).append(float(r["value"]))
    scores: dict = {}
    for (model, run, where, metric), values in sorted(cells.items()):
        scores.setdefault(model, {}).setdefault(run, {})[where] = {
            metric: round(sum(values) / len(values), 4), "n": len(values)}
    return {"rows": len(rows), "scores": scores}


