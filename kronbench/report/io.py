"""Write a table as Markdown, CSV and LaTeX next to each other, atomically (temp file, then rename)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from kronbench import atomic
from kronbench.errors import KronbenchError


def iter_jsonl(path: Path, text: str, hint: str) -> Iterator[tuple[int, object]]:
    """(line number, parsed value) of every non-blank line of `text`, read from `path`; bad JSON names file:line."""
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as e:
            raise KronbenchError(f"{path}:{n}: invalid JSON ({e.msg}); {hint}") from None


def write_table(df: pd.DataFrame, prefix: str | os.PathLike, title: str = "", note: str = "",
                parts: list[list[str]] | None = None) -> list[Path]:
    """<prefix>.md, .csv and .tex. `parts` (column lists, e.g. tables.column_parts) splits the Markdown and LaTeX
    into several tables that each fit a page, every part repeating its key columns; the CSV stays one table."""
    prefix = Path(prefix)
    parts = parts or [list(df.columns)]
    missing = sorted({c for cols in parts for c in cols} - set(df.columns))
    if missing:
        raise KronbenchError(f"{prefix}: table parts name column(s) {', '.join(missing)} that the table lacks; "
                             "build the parts from this table's columns")
    k = len(parts)
    md = "\n".join((f"## Part {i} of {k}\n\n" if k > 1 else "") + df[cols].to_markdown(index=False) + "\n"
                   for i, cols in enumerate(parts, 1))
    tex = "\n".join((f"% part {i} of {k}\n" if k > 1 else "") + df[cols].to_latex(index=False, escape=True)
                    for i, cols in enumerate(parts, 1))
    md = (f"# {title}\n\n" if title else "") + md + (f"\n{note}\n" if note else "")
    outs = {".md": md, ".csv": df.to_csv(index=False), ".tex": tex}
    paths = []
    for ext, text in outs.items():
        path = prefix.with_name(prefix.name + ext)
        atomic.write_text(path, text)
        paths.append(path)
    return paths
