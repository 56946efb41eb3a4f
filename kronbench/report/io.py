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


def write_table(df: pd.DataFrame, prefix: str | os.PathLike, title: str = "", note: str = "") -> list[Path]:
    prefix = Path(prefix)
    md = (f"# {title}\n\n" if title else "") + df.to_markdown(index=False) + "\n" + (f"\n{note}\n" if note else "")
    outs = {".md": md, ".csv": df.to_csv(index=False), ".tex": df.to_latex(index=False, escape=True)}
    paths = []
    for ext, text in outs.items():
        path = prefix.with_name(prefix.name + ext)
        atomic.write_text(path, text)
        paths.append(path)
    return paths
