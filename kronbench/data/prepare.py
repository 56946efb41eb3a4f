"""`prepare`: one task's data from one source -> `out_dir/<split>.parquet` + `out_dir/manifest.json`.

Atomic: everything is read and converted first, then written into a temporary directory next to `out_dir` and
renamed into place, so an error leaves `out_dir` as it was (absent, or the previous complete output).
Deterministic: rows keep the source order, the parquet schema is fixed per kind and the manifest holds no
timestamp, so the same input gives the same bytes (and the same sha256 in the manifest).
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import kronbench
from kronbench import atomic
from kronbench.data.records import SCHEMAS
from kronbench.data.registry import Task, get_task
from kronbench.data.sources import load_splits
from kronbench.errors import KronbenchError


def prepare_data(task: str | Task, source: str, out_dir: str | Path, data_dir: str | Path | None = None,
            max_rows: int | None = None, revision: str | None = None) -> dict:
    """Write the prepared splits of `task` from `source` ("hub", "local", "embedded") and return the manifest.

    `revision` pins a hub dataset (config data.revisions), overriding the YAML's; the manifest's provenance records
    it and the commit actually loaded (`resolved_revision`, null when the caches do not tell).

    `max_rows` keeps a seeded sample of at most that many rows per split, in source order (config data.max_rows:
    the paper smoke on the official files, whose HANS has 30 k rows and IMDb 25 k reviews)."""
    task = get_task(task) if isinstance(task, str) else task
    out = Path(out_dir)
    _check_out(out)
    splits, provenance = load_splits(task, source, data_dir, revision=revision)
    if max_rows is not None:
        if max_rows < 1:
            raise KronbenchError(f"--max-rows {max_rows}: must be at least 1 (or absent: every row)")
        provenance = {**provenance, "max_rows": max_rows, "source_rows": {s: len(r) for s, r in splits.items()}}
        splits = {s: sample_rows(r, max_rows) for s, r in splits.items()}
    with atomic.directory(out) as tmp:
        files = {}
        for split, records in splits.items():
            path = tmp / f"{split}.parquet"
            pq.write_table(pa.Table.from_pylist(records, schema=SCHEMAS[task.kind]), path)
            files[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
        manifest = {"task": task.name, "version": task.version, "kind": task.kind, "source": source,
                    "provenance": provenance, "rows": {s: len(r) for s, r in splits.items()}, "sha256": files,
                    "created_by": f"kronbench {kronbench.__version__}"}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _check_out(out: Path) -> None:
    """Refuse to replace anything but an empty directory or a previous `prepare` output."""
    if out.exists() and not out.is_dir():
        raise KronbenchError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise KronbenchError(f"--out {out} is not empty and holds no manifest.json of an earlier `kronbench data "
                             f"prepare`; refusing to overwrite it (choose another --out or empty it)")


def sample_rows(records: list, n: int, seed: int = 0) -> list:
    """At most n records, drawn without replacement by a fixed seed and kept in source order (the first n would
    be one class where files are sorted by label, as aclImdb's neg/ then pos/)."""
    if len(records) <= n:
        return records
    keep = sorted(random.Random(seed).sample(range(len(records)), n))
    return [records[i] for i in keep]

