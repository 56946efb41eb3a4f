"""Where a task's data comes from: `hub`, `local` (official files, or `datasets` dumps) or `embedded`.

`load_splits(task, source, data_dir)` returns canonical records per split plus a provenance dict for the
manifest: for the hub the requested and the resolved revision (the commit actually loaded, `hub_commit`), for local
files their sha256 and the unlabelled splits skipped because their file is absent (GLUE's test.tsv). The
`--data-dir` convention per layout is in `kronbench/data/tasks/README.md`; a local source's `files` value may list
alternatives, the first existing one is read.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from kronbench.data import local
from kronbench.data.records import Converter, wikitext_documents
from kronbench.data.registry import Task
from kronbench.errors import KronbenchError

SOURCES = ("hub", "local", "embedded")
_DUMPS = ("parquet", "jsonl")  # `<split>.<ext>` files as written by datasets' to_parquet / to_json


def load_splits(task: Task, source: str, data_dir: str | Path | None = None,
                revision: str | None = None) -> tuple[dict[str, list[dict]], dict]:
    """Canonical records of every split of `task`, and where they came from. `revision` pins the hub dataset
    (a commit, branch or tag), overriding the task YAML's `sources.hub.revision`."""
    if source not in SOURCES:
        raise KronbenchError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    if (source == "local") != (data_dir is not None):
        raise KronbenchError("--data-dir is required with --source local and only allowed with it")
    if revision is not None and source != "hub":
        raise KronbenchError(f"--revision {revision} pins a hub dataset; it is only allowed with --source hub")
    if source == "hub":
        cfg = task.source("hub")
        return _hub(task, {**cfg, "revision": revision or cfg.get("revision")})
    if source == "embedded":
        return _embedded(task, task.source("embedded"))
    root = Path(data_dir)
    if not root.is_dir():
        raise KronbenchError(f"--data-dir {root} is not a directory")
    dumps = {s: root / f"{s}.{ext}" for s in task.splits for ext in _DUMPS if (root / f"{s}.{ext}").is_file()}
    return _dumps(task, root, dumps) if dumps else _local(task, task.source("local"), root)


def _hub(task: Task, cfg: dict) -> tuple[dict, dict]:
    import datasets  # ~1 s; only when the hub is used

    out, commits = {}, {}
    for split in task.splits:
        name, hub_split = cfg.get("name"), cfg["splits"][split]
        try:
            ds = datasets.load_dataset(cfg["path"], name, revision=cfg.get("revision"), split=hub_split)
        except Exception as e:  # offline, unknown id, removed script, missing split: all end the same way
            raise KronbenchError(
                f"could not load {cfg['path']} (config {name}, split {hub_split}) from the Hugging Face hub: "
                f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. Without internet use "
                f"`--source local --data-dir DIR` with the official files, or pre-download on a connected machine "
                f"(load_dataset(...).to_parquet('DIR/{split}.parquet')); see kronbench/data/tasks/README.md") from e
        out[split] = _table(task, cfg, split, ds.to_list(), ds.features, f"{cfg['path']}/{name}:{hub_split}")
        commits[split] = hub_commit(cfg["path"], cfg.get("revision"), ds)
    resolved = commits if len(set(commits.values())) > 1 else next(iter(commits.values()), None)
    return out, {"hub": {**{k: cfg.get(k) for k in ("path", "name", "revision")}, "resolved_revision": resolved}}


_COMMIT = re.compile(r"[0-9a-f]{40}")


def hub_commit(path: str, revision: str | None, ds=None) -> str | None:
    """The commit of hub dataset `path` that was loaded: the `<commit>` directory of the `datasets` cache files
    (datasets >= 3 keys them by the repo commit), else the HF hub cache's snapshot of the dataset card for
    `revision` (null = main), else `revision` itself when it is a full commit; None when none of them tells."""
    for f in getattr(ds, "cache_files", None) or []:
        found = [part for part in Path(f.get("filename", "")).parts if _COMMIT.fullmatch(part)]
        if found:
            return found[-1]
    try:
        from huggingface_hub import try_to_load_from_cache

        card = try_to_load_from_cache(path, "README.md", revision=revision, repo_type="dataset")
    except Exception:  # an invalid repo id or an unreadable cache: unknowable, not an error
        card = None
    if isinstance(card, str) and _COMMIT.fullmatch(Path(card).parent.name):
        return Path(card).parent.name
    return revision if revision and _COMMIT.fullmatch(revision) else None


def _dumps(task: Task, root: Path, files: dict[str, Path]) -> tuple[dict, dict]:
    missing = [s for s in task.splits if s not in files and s not in task.unlabelled]
    if missing:
        raise KronbenchError(f"{root} holds {', '.join(p.name for p in files.values())} but not "
                             f"{', '.join(m + '.parquet' for m in missing)} (or .jsonl): a dump needs every "
                             f"labelled split of {task.name}: {[s for s in task.splits if s not in task.unlabelled]}")
    skipped = {s: f"{s}.parquet / {s}.jsonl not found (unlabelled split, optional)"
               for s in task.splits if s not in files}
    cfg = task.sources.get("hub", {})
    out = {}
    for split, path in files.items():
        if path.suffix == ".parquet":
            rows, features = local.read_parquet(path)
        else:
            rows, features = [row for row, _ in local.read("jsonl", path, cfg, split)], {}
        out[split] = _table(task, cfg, split, rows, features, str(path))
    prov = {"layout": "dump", "data_dir": str(root), "inputs": _digests(root, files.values())}
    return out, {"local": {**prov, **({"skipped": skipped} if skipped else {})}}


def _table(task: Task, cfg: dict, split: str, rows: list[dict], features, where: str) -> list[dict]:
    """Records of hub-style rows (hub datasets and their dumps share column names and ClassLabels)."""
    conv = Converter(task, cfg, features, hint=f"the columns of {cfg.get('path', 'the hub dataset')} "
                                               f"mapped by `fields` in {task.path}")
    if cfg.get("line_rows"):  # rows are lines of the raw file (WikiText): regroup into documents
        col = conv.fields["text"]
        rows = [{col: doc} for doc in wikitext_documents(row[col] for row in rows)]
    return conv.records(((row, f"{where} row {i}") for i, row in enumerate(rows)), where,
                        split not in task.unlabelled)


def _local(task: Task, cfg: dict, root: Path) -> tuple[dict, dict]:
    base = root / cfg.get("subdir", "")
    candidates = {split: [base / f for f in _as_list(cfg["files"][split])] for split in task.splits}
    hint = (f"--data-dir for {task.name} holds {_expected(task, candidates, root)} (layout {cfg['layout']}; "
            f"see kronbench/data/tasks/README.md)")
    paths, skipped = {}, {}
    for split, options in candidates.items():
        found = next((p for p in options if _exists(p, cfg["layout"])), None)
        if found is not None:
            paths[split] = found
        elif split in task.unlabelled:  # GLUE's test files carry no labels: nothing downstream needs them
            skipped[split] = f"{_not_found(options, root)} (unlabelled split, optional)"
        else:
            raise KronbenchError(f"{_not_found(options)}: {hint}")
    conv = Converter(task, cfg, hint=hint)
    out = {split: conv.records(local.read(cfg["layout"], path, cfg, split), str(path), split not in task.unlabelled)
           for split, path in paths.items()}
    prov = {"layout": cfg["layout"], "data_dir": str(root), "inputs": _digests(root, paths.values())}
    return out, {"local": {**prov, **({"skipped": skipped} if skipped else {})}}


def _as_list(files: str | list[str]) -> list[str]:
    """A `files` value: one name, or alternatives tried in order (first existing wins)."""
    return [files] if isinstance(files, str) else list(files)


def _exists(path: Path, layout: str) -> bool:
    return path.is_dir() if layout == "imdb_dirs" else path.is_file()


def _not_found(paths: list[Path], root: Path | None = None) -> str:
    """"a not found" or "none of a, b found" (names relative to `root` when given)."""
    names = [str(p.relative_to(root) if root else p) for p in paths]
    return f"{names[0]} not found" if len(names) == 1 else f"none of {', '.join(names)} found"


def _expected(task: Task, candidates: dict[str, list[Path]], root: Path) -> str:
    """What --data-dir should hold: each split's file (alternatives joined by "or"), unlabelled ones optional."""
    def one(split):
        return " or ".join(str(p.relative_to(root)) for p in candidates[split])
    need = [one(s) for s in candidates if s not in task.unlabelled]
    optional = [one(s) for s in candidates if s in task.unlabelled]
    return ", ".join(need) + (f" and optionally {', '.join(optional)}" if optional else "")


def _embedded(task: Task, cfg: dict) -> tuple[dict, dict]:
    try:
        from kronbench.data import embedded
    except ModuleNotFoundError as e:
        if e.name != "kronbench.data.embedded":
            raise
        raise KronbenchError(f"task {task.name}: the embedded builders (kronbench/data/embedded.py) are not "
                             f"installed in this checkout") from None
    params = {k: v for k, v in cfg.items() if k != "builder"}
    built = embedded.build(cfg["builder"], **params)
    conv = Converter(task, {"fields": {c: c for c in task.columns}}, hint=f"builder {cfg['builder']!r}")
    out = {}
    for split in task.splits:
        if split not in built:
            raise KronbenchError(f"embedded builder {cfg['builder']!r} returned no {split!r} split "
                                 f"(got {sorted(built)}); task {task.name} lists {task.splits}")
        name = f"embedded builder {cfg['builder']!r}, split {split}"
        rows = ((row, f"{name}, row {i}") for i, row in enumerate(built[split]))
        out[split] = conv.records(rows, name, split not in task.unlabelled)
    return out, {"embedded": {"builder": cfg["builder"], "params": params}}


def _digests(root: Path, paths) -> dict[str, str]:
    """sha256 of every input, keyed by its path under --data-dir."""
    return {str(p.relative_to(root)): _sha256(p) for p in sorted(set(paths))}


def _sha256(path: Path) -> str:
    """A file's sha256; a directory's is the sha256 of its files' relative names and digests, in sorted order."""
    if path.is_file():
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(path)}\0{_sha256(f)}\n".encode())
    return h.hexdigest()
