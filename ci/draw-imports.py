#!/usr/bin/env python3
"""Draw kronbench's package-level import graph (grimp, import-linter's graph) as a Mermaid flowchart, layered as
pyproject.toml's import-linter contract lists them, highest first: docs/imports.md.

    .venv/bin/python ci/draw-imports.py > docs/imports.md
tests/test_architecture.py checks that the committed drawing is this script's output for the current code.
"""

import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def layers() -> list[list[str]]:
    contract = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"][0]
    return [[p.strip() for p in layer.split("|")] for layer in contract["layers"]]


def drawing() -> str:
    import grimp

    graph = grimp.build_graph("kronbench", cache_dir=None)
    names = [p for layer in layers() for p in layer]
    edges = [(a, b) for a in names for b in names if a != b and graph.direct_import_exists(
        importer=f"kronbench.{a}", imported=f"kronbench.{b}", as_packages=True)]
    out = ["# kronbench's imports", "",
           "Package-level imports of `kronbench/` (an arrow: the package at its tail imports from the one at its head),",
           "in the layers of `pyproject.toml`'s import-linter contract, highest first. Written by",
           "`ci/draw-imports.py`; `tests/test_architecture.py` checks it is current and that no arrow points up a",
           "layer or closes a cycle.", "", "```mermaid", "flowchart TD"]
    for i, layer in enumerate(layers()):
        out.append(f"    subgraph L{i} [\"layer {i}\"]")
        out += [f"        {p}" for p in layer]
        out.append("    end")
    out += [f"    {a} --> {b}" for a, b in edges]
    out += ["```", ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(drawing())
