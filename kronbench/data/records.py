"""Canonical records: how one raw source row becomes a row of a prepared split.

Every source (hub, the official local layouts, embedded builders) yields raw rows keyed by its own column names;
`Converter` maps them to the columns in `registry.KINDS` through the task's `fields`, and labels to class ids
through `labels`, `label_transform` and the source's `label_map`. Doing this in one place is what makes a split
prepared from the hub and from the official files agree row for row.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator

import pyarrow as pa

from kronbench.data.registry import Task
from kronbench.errors import KronbenchError

_ANSWERS = pa.struct([("text", pa.list_(pa.string())), ("answer_start", pa.list_(pa.int32()))])
SCHEMAS = {  # parquet schema of a prepared split, per kind (same column order as registry.KINDS)
    "single_classification": pa.schema([("sentence", pa.string()), ("label", pa.int64())]),
    "pair_classification": pa.schema([("sentence1", pa.string()), ("sentence2", pa.string()),
                                      ("label", pa.int64())]),
    "regression": pa.schema([("sentence1", pa.string()), ("sentence2", pa.string()), ("label", pa.float64())]),
    "span_qa": pa.schema([("id", pa.string()), ("title", pa.string()), ("context", pa.string()),
                          ("question", pa.string()), ("answers", _ANSWERS)]),
    "lm": pa.schema([("text", pa.string())]),
}
UNLABELLED = -1  # label of rows in unlabelled splits (GLUE test); NaN for regression


class Converter:
    """Raw rows of one source -> canonical records of one task.

    `features` are the `datasets` features of hub-style rows: a ClassLabel there names the integer labels.
    `hint` is appended to structural errors (missing column, no rows) to say what the source should look like.
    """

    def __init__(self, task: Task, source: dict, features=None, hint: str = ""):
        self.task = task
        self.fields = {**task.fields, **source.get("fields", {})}
        # YAML reads `0: x` with an int key; label values are compared as strings
        self.label_map = {str(k): v for k, v in {**(task.label_transform or {}),
                                                 **source.get("label_map", {})}.items()}
        label = (features or {}).get(self.fields.get("label"))
        self.class_names = list(label.names) if hasattr(label, "names") else None  # a ClassLabel
        self.index = {name: i for i, name in enumerate(task.labels or [])}
        self.hint = hint

    def records(self, rows: Iterable[tuple[dict, str]], name: str, labelled: bool = True) -> list[dict]:
        """Canonical records of (raw row, where) pairs read from `name`; `where` ("file:line") prefixes errors."""
        out = [self.record(row, where, labelled) for row, where in rows]
        if not out:
            self.fail(name, "no rows", layout=True)
        return out

    def record(self, row: dict, where: str, labelled: bool = True) -> dict:
        rec = {}
        for canon, col in self.fields.items():
            if canon == "label" and not labelled:
                rec["label"] = math.nan if self.task.kind == "regression" else UNLABELLED
                continue
            if col not in row:
                self.fail(where, f"missing column {col!r} (for {canon!r}); found {sorted(row)}", layout=True)
            value = row[col]
            if canon == "label":
                rec["label"] = self.label(value, where)
            elif canon == "answers":
                rec["answers"] = self.answers(value, where)
            elif isinstance(value, str):
                rec[canon] = value
            else:
                self.fail(where, f"column {col!r} must be text, got {value!r}")
        return rec

    def label(self, value, where: str):
        if self.task.kind == "regression":
            try:
                score = float(value)
            except (TypeError, ValueError):
                score = math.nan
            if math.isnan(score):
                self.fail(where, f"label {value!r} is not a number")
            return score
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if self.class_names is not None and is_int:
            if not 0 <= value < len(self.class_names):
                self.fail(where, f"label {value} is not a class id of {self.class_names} (-1 = unlabelled row "
                                 f"in a split the task does not list under `unlabelled`)")
            value, is_int = self.class_names[value], False
        name = self.label_map.get(str(value), str(value))
        if name in self.index:
            return self.index[name]
        if is_int and 0 <= value < len(self.index):  # untyped ids (json dumps) follow the `labels` order
            return value
        self.fail(where, f"unknown label {value!r}; expected one of {self.task.labels}"
                         + (f" or a key of {self.label_map}" if self.label_map else ""))

    def answers(self, value, where: str) -> dict:
        ok = isinstance(value, dict) and isinstance(value.get("text"), list) \
            and isinstance(value.get("answer_start"), list) and len(value["text"]) == len(value["answer_start"])
        ok = ok and all(isinstance(t, str) for t in value["text"]) \
            and all(isinstance(s, int) and s >= 0 for s in value["answer_start"])
        if not ok:
            self.fail(where, f"answers must be {{'text': [str], 'answer_start': [int]}} of equal length, got {value!r}")
        return {"text": list(value["text"]), "answer_start": list(value["answer_start"])}

    def fail(self, where: str, message: str, layout: bool = False):
        """Raise; structural errors (`layout`) also say what the source should look like."""
        raise KronbenchError(f"{where}: {message}" + (f". Expected: {self.hint}" if layout and self.hint else ""))


def wikitext_documents(lines: Iterable[str]) -> Iterator[str]:
    """Group WikiText lines into articles: one document per level-1 heading ` = Title = `.

    Lines that are only whitespace become "" first, exactly as the hub's `Salesforce/wikitext` rows store them,
    so documents built from the raw files and from the hub rows are identical. A document is the concatenation
    of its lines (each non-empty line keeps its trailing newline).
    """
    doc: list[str] = []
    for line in lines:
        line = line if line.strip() else ""
        head = line.rstrip("\n")
        if head.startswith(" = ") and not head.startswith(" = = ") and head.endswith(" = ") and any(doc):
            yield "".join(doc)
            doc = []
        doc.append(line)
    if any(doc):
        yield "".join(doc)
