"""`kronbench check-grid`: every (model, method, preset, task) with rows in all_results.jsonl has a row and a
score in the table its task belongs to (tables.table_of). ci/paper-smoke.sh runs it after the paper grid: a job
that succeeded but whose rows never reach a table (a renamed method, a task filed under the wrong table) fails CI.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from kronbench.errors import KronbenchError
from kronbench.report.tables import DASH, OURS, load_rows, table_of


def grid_cells(rows_path) -> set[tuple[str, str, str, str]]:
    """(model, method, preset, task) of every row of ours ("" = no preset)."""
    df = load_rows(rows_path)[["model", "method", "preset", "task"]].fillna("").astype(str)
    return {tuple(r) for r in df.itertuples(index=False) if r.task}


def missing_cells(rows_path, tables_dir, cells=None) -> list[str]:
    """What of the grid (`cells`, default grid_cells(rows_path)) the tables lack, one line each (empty: every cell
    is there with a score)."""
    tables, problems = {}, []
    for model, method, preset, task in sorted(grid_cells(rows_path) if cells is None else cells):
        name = table_of(task)
        if name not in tables:
            path = Path(tables_dir) / f"{name}.csv"
            if not path.is_file():
                raise KronbenchError(f"{path}: missing; run `kronbench table-all` first")
            tables[name] = pd.read_csv(path, dtype=str, keep_default_na=False)
        t = tables[name]
        hit = t[(t.get("source", OURS) == OURS) & (t["model"] == model) & (t["method"] == method)
                & (t["preset"].replace(DASH, "") == preset)]
        where = f"{model} {method}{'-' + preset if preset else ''} {task}: {name}.csv"
        if hit.empty:
            problems.append(f"{where} has no row")
            continue
        cols = [c for c in t.columns if _scores(c, task)]
        if not any(v not in ("", DASH) for c in cols for v in hit[c]):
            problems.append(f"{where} has no score in {cols or 'any column'}")
    return problems


def _scores(column: str, task: str) -> bool:
    """A score column of `task`: '<task> <metric> ...' or '<source>→<task> <metric> ...', not Δ / ret%."""
    head = column.split(" ")[0]
    return (head == task or head.endswith(f"→{task}")) and not column.endswith((" Δ", " ret%"))
