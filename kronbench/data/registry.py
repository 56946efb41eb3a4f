"""Task registry: one small YAML record per task in `kronbench/data/tasks/`, validated when first used.

    >>> from kronbench.data.registry import get_task, list_tasks
    >>> get_task("mrpc").main_metric
    'f1'
    >>> [t.name for t in list_tasks() if t.group == "ood"][:3]
    ['advglue-mnli', 'advglue-mnli-mm', 'advglue-qnli']

A new task is a new YAML file; no Python changes (lm-eval style). The record schema is documented in
`kronbench/data/tasks/README.md`; this module enforces it, so a typo in a key fails at load time with the file
and key named instead of surfacing later as a wrong number.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kronbench.errors import KronbenchError

TASKS_DIR = Path(__file__).parent / "tasks"
GROUPS = ("glue", "squad", "ood", "lm", "embedded")
SPLITS = ("train", "validation", "test")
# kind -> columns of every prepared split (the contract with the rest of the harness)
KINDS = {
    "single_classification": ("sentence", "label"),
    "pair_classification": ("sentence1", "sentence2", "label"),
    "regression": ("sentence1", "sentence2", "label"),
    "span_qa": ("id", "title", "context", "question", "answers"),
    "lm": ("text",),
}
CLASSIFICATION = ("single_classification", "pair_classification")
_QA = ("exact_match", "f1", "HasAns_exact_match", "HasAns_f1", "NoAns_exact_match", "NoAns_f1")
METRICS = {  # kind -> metric names kronbench.evaluate.metrics can compute for it
    "single_classification": ("accuracy", "f1", "mcc"),
    "pair_classification": ("accuracy", "f1", "mcc"),
    "regression": ("pearson", "spearman"),
    "span_qa": _QA,
    "lm": ("perplexity",),
}
LAYOUTS = ("tsv", "squad_json", "wikitext_raw", "imdb_dirs", "advglue_json", "jsonl")
_SOURCE_KEYS = {  # key -> (python type, required), as _KEYS below
    "hub": {"path": (str, True), "name": (str, False), "revision": (str, False), "splits": (dict, True),
            "fields": (dict, False), "label_map": (dict, False), "line_rows": (bool, False)},
    "local": {"layout": (str, True), "subdir": (str, False), "files": (dict, True), "fields": (dict, False),
              "label_map": (dict, False), "no_header": (dict, False), "key": (str, False)},
}


@dataclass(frozen=True)
class Task:
    """One validated task record; attribute names are the YAML keys."""

    name: str
    group: str
    kind: str
    version: int
    description: str
    fields: dict
    metrics: list
    main_metric: str
    max_length: int
    splits: list
    sources: dict
    labels: list | None = None
    construction: str | None = None
    eval_only: bool = False
    source_task: str | None = None
    label_transform: dict | None = None
    unlabelled: list = field(default_factory=list)
    protocols: dict | None = None
    notes: str | None = None
    path: str = ""

    @property
    def columns(self) -> tuple[str, ...]:
        return KINDS[self.kind]

    def source(self, kind: str) -> dict:
        if kind not in self.sources:
            raise KronbenchError(f"task {self.name!r} has no {kind!r} source (it has: {', '.join(self.sources)}); "
                                 f"see {self.path}")
        return self.sources[kind]


# key -> (python type, required). Optional keys default to the dataclass defaults above.
_KEYS = {
    "name": (str, True), "group": (str, True), "kind": (str, True), "version": (int, True),
    "description": (str, True), "construction": (str, False), "fields": (dict, True), "labels": (list, False),
    "metrics": (list, True), "main_metric": (str, True), "max_length": (int, True), "eval_only": (bool, False),
    "source_task": (str, False), "label_transform": (dict, False), "splits": (list, True),
    "sources": (dict, True), "unlabelled": (list, False), "protocols": (dict, False), "notes": (str, False),
}


def get_task(name: str) -> Task:
    """The task called `name`; an unknown name raises KronbenchError listing the valid ones."""
    tasks = _load_all()
    if name not in tasks:
        raise KronbenchError(f"unknown task {name!r}; valid tasks: {', '.join(tasks)}")
    return tasks[name]


def list_tasks() -> list[Task]:
    """All tasks, sorted by name."""
    return list(_load_all().values())


@functools.cache
def _load_all() -> dict[str, Task]:
    tasks = {}
    for path in sorted(TASKS_DIR.glob("*.yaml")):
        task = _load(path)
        tasks[task.name] = task
    for task in tasks.values():
        _check_source_task(task, tasks)
    return dict(sorted(tasks.items()))


def _load(path: Path) -> Task:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise KronbenchError(f"{path}: not valid YAML: {e}") from e
    _require(isinstance(raw, dict), path, None, "must be a mapping of keys to values")
    _check_keys(raw, _KEYS, path, "")
    task = Task(**{k: v for k, v in raw.items() if v is not None}, path=str(path))
    _check(task, path)
    return task


def _check(t: Task, path: Path) -> None:
    _require(t.name == path.stem, path, "name", f"must equal the file name stem {path.stem!r}")
    _require(t.group in GROUPS, path, "group", f"must be one of {GROUPS}")
    _require(t.kind in KINDS, path, "kind", f"must be one of {tuple(KINDS)}")
    _require(t.version >= 1, path, "version", "must be >= 1")
    _require(t.max_length >= 1, path, "max_length", "must be >= 1")
    _check_fields(t.fields, t.kind, path, "fields", complete=True)
    if t.kind in CLASSIFICATION:
        ok = t.labels is not None and len(t.labels) >= 2 and len(set(t.labels)) == len(t.labels)
        _require(ok and all(isinstance(x, str) for x in t.labels), path, "labels",
                 "must list at least two distinct class names (list order = label id)")
    else:
        _require(t.labels is None, path, "labels", f"must be null for kind {t.kind}")
    bad = [m for m in t.metrics if m not in METRICS[t.kind]]
    _require(t.metrics and not bad, path, "metrics", f"for kind {t.kind} must be among {METRICS[t.kind]}")
    _require(t.main_metric in t.metrics, path, "main_metric", "must be one of `metrics`")
    _require("f1" not in t.metrics or t.kind == "span_qa" or len(t.labels) == 2, path, "metrics",
             "f1 is the binary F1 of label 1 and needs exactly two labels")
    _require(t.splits and set(t.splits) <= set(SPLITS) and len(set(t.splits)) == len(t.splits), path, "splits",
             f"must be distinct names among {SPLITS}")
    _require(not (t.eval_only and "train" in t.splits), path, "splits", "an eval_only task has no train split")
    _require(set(t.unlabelled) <= set(t.splits), path, "unlabelled", "must be a subset of `splits`")
    _check_label_map(t.label_transform, t, path, "label_transform")
    _require(t.group != "embedded" or t.construction, path, "construction", "is required for embedded tasks")
    _require(t.kind != "lm" or t.protocols, path, "protocols", "is required for lm tasks (perplexity protocols)")
    _require(bool(t.sources) and set(t.sources) <= {"hub", "local", "embedded"}, path, "sources",
             "must have at least one of hub, local, embedded")
    for kind, cfg in t.sources.items():
        _check_source(t, kind, cfg, path)


def _check_source(t: Task, kind: str, cfg, path: Path) -> None:
    key = f"sources.{kind}"
    _require(isinstance(cfg, dict), path, key, "must be a mapping")
    if kind == "embedded":
        _require(isinstance(cfg.get("builder"), str), path, key + ".builder", "is required (a builder name)")
        return
    _check_keys(cfg, _SOURCE_KEYS[kind], path, key + ".")
    split_key = "splits" if kind == "hub" else "files"
    names = cfg[split_key]
    _require(set(names) == set(t.splits) and all(_is_name(v, kind) for v in names.values()), path,
             f"{key}.{split_key}", f"must map exactly the task's splits {t.splits} to source names"
             + (" (a local file may be a list of alternatives, the first existing one is read)" if kind == "local"
                else ""))
    if "fields" in cfg:
        _check_fields(cfg["fields"], t.kind, path, f"{key}.fields", complete=False)
    _check_label_map(cfg.get("label_map"), t, path, f"{key}.label_map")
    if kind == "local":
        _require(cfg["layout"] in LAYOUTS, path, f"{key}.layout", f"must be one of {LAYOUTS}")
        _require(cfg["layout"] != "advglue_json" or "key" in cfg, path, f"{key}.key", "is required by advglue_json")
        no_header = cfg.get("no_header", {})
        _require(isinstance(no_header, dict) and set(no_header) <= set(t.splits), path, f"{key}.no_header",
                 "must map split names to the column names of header-less files")


def _is_name(value, kind: str) -> bool:
    """A split's source name: a string, or for local files a non-empty list of alternative paths."""
    alternatives = kind == "local" and isinstance(value, list) and value
    return isinstance(value, str) or bool(alternatives and all(isinstance(v, str) for v in value))


def _check_keys(mapping: dict, spec: dict, path: Path, prefix: str) -> None:
    """Required keys present, no unknown keys, values of the declared type (null = absent)."""
    for key, (typ, required) in spec.items():
        value = mapping.get(key)
        _require(value is not None or not required, path, prefix + key, "is required")
        ok = value is None or (isinstance(value, typ) and not (typ is int and isinstance(value, bool)))
        _require(ok, path, prefix + key, f"must be a {typ.__name__}, got {type(value).__name__}")
    unknown = sorted(set(mapping) - set(spec))
    _require(not unknown, path, prefix + (unknown[0] if unknown else ""),
             f"is not a known key; known: {', '.join(spec)}")


def _check_fields(fields: dict, kind: str, path: Path, key: str, complete: bool) -> None:
    want = set(KINDS[kind])
    ok = set(fields) == want if complete else set(fields) <= want
    _require(ok and all(isinstance(v, str) for v in fields.values()), path, key,
             f"must map the canonical columns {KINDS[kind]} of kind {kind} to source column names")


def _check_label_map(mapping, t: Task, path: Path, key: str) -> None:
    if mapping is None:
        return
    _require(isinstance(mapping, dict) and t.labels is not None, path, key,
             "must map source label values to class names, and only for classification tasks")
    bad = [v for v in mapping.values() if v not in t.labels]
    _require(not bad, path, key, f"maps to {bad[:1]}, which is not in `labels` {t.labels}")


def _check_source_task(t: Task, tasks: dict[str, Task]) -> None:
    _require(not (t.group == "ood" and t.source_task is None), Path(t.path), "source_task",
             "is required for OOD tasks (the task whose fine-tuned model is scored here)")
    if t.source_task is None:
        return
    src = tasks.get(t.source_task)
    _require(src is not None, Path(t.path), "source_task", f"names an unknown task {t.source_task!r}")
    _require(src.kind == t.kind and src.labels == t.labels, Path(t.path), "source_task",
             f"{src.name!r} must have the same kind and labels (its model's head is reused): "
             f"{src.kind} {src.labels} vs {t.kind} {t.labels}")


def _require(ok, path: Path, key: str | None, message: str) -> None:
    if not ok:
        where = f"{path}: key {key!r} " if key else f"{path}: "
        raise KronbenchError(where + message)
