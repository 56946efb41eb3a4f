"""Write a table as Markdown, CSV and LaTeX next to each other, atomically (temp file, then rename)."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    tmp.replace(path)


def write_table(df: pd.DataFrame, prefix: str | os.PathLike, title: str = "", note: str = "") -> list[Path]:
    prefix = Path(prefix)
    md = (f"# {title}\n\n" if title else "") + df.to_markdown(index=False) + "\n" + (f"\n{note}\n" if note else "")
    outs = {".md": md, ".csv": df.to_csv(index=False), ".tex": df.to_latex(index=False, escape=True)}
    paths = []
    for ext, text in outs.items():
        path = prefix.with_name(prefix.name + ext)
        atomic_write_text(path, text)
        paths.append(path)
    return paths
