"""Readers for the official distribution layouts (`--source local --data-dir DIR`).

A reader turns one split's file (or directory) into raw rows keyed by the file's own column names, each with a
`where` string ("path:line") for error messages; `records.Converter` does the rest. Every file is decoded as
strict UTF-8 line by line, so a bad byte is reported with its line, and its line ends are normalised to "\n" in
`lines` (CRLF and CR-only copies read as the LF original). Layouts (the `layout` key of a local source):

- `tsv`: GLUE-style tab-separated files, header row unless the split is listed under `no_header`. GLUE files
  contain unbalanced quotes, so no quote character is special (csv.QUOTE_NONE); one example per line.
- `squad_json`: the official SQuAD v1.1/v2.0 json (data -> paragraphs -> qas; `is_impossible` in v2.0).
- `wikitext_raw`: `wiki.{train,valid,test}.raw`, grouped into one document per article.
- `imdb_dirs`: `aclImdb/<split>/{neg,pos}/*.txt`, one review per file, label = directory name.
- `advglue_json`: AdvGLUE `dev.json`, a dict keyed by task (`key`), each a list of records.
- `jsonl`: one JSON object per line (LAMBADA's `lambada_test.jsonl`; also `<split>.jsonl` dumps).
`<split>.parquet` dumps written by `datasets` are read by `read_parquet`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from kronbench.data.records import wikitext_documents
from kronbench.errors import KronbenchError

Rows = Iterator[tuple[dict, str]]
IMDB_CLASSES = ("neg", "pos")  # aclImdb directory names, read in this order


def read(layout: str, path: Path, source: dict, split: str) -> Rows:
    """Raw rows of one split stored at `path` in `layout`."""
    return _READERS[layout](path, source, split)


def lines(path: Path) -> Iterator[str]:
    """Decoded lines of a text file, each ending in "\n" (but perhaps the last); undecodable bytes and empty files
    raise with the line.

    Line endings are normalised here, once for every reader: "\r\n" (Windows) becomes "\n", and a file with no
    "\n" at all is split at each "\r" (old Mac). A lone "\r" in a file that has "\n" line ends is text, kept
    where it stands (a stray one inside a TSV field stays in that field), so LF and CRLF copies of a file read
    the same.
    """
    n = 0
    with open(path, "rb") as f:
        for chunk in f:
            # binary iteration cuts after each "\n": a first chunk without one is the whole file, a CR-only file
            if n == 0 and not chunk.endswith(b"\n"):
                pieces = [p[:-1] + b"\n" if p.endswith(b"\r") else p for p in chunk.splitlines(keepends=True)]
            else:
                pieces = [chunk[:-2] + b"\n" if chunk.endswith(b"\r\n") else chunk]
            for raw in pieces:
                n += 1
                yield _decode(raw, path, n)
    if n == 0:
        raise KronbenchError(f"{path}: empty file")


def _decode(raw: bytes, path: Path, n: int) -> str:
    try:
        return raw.decode("utf-8-sig" if n == 1 else "utf-8")
    except UnicodeDecodeError as e:
        raise KronbenchError(f"{path}:{n}: not valid UTF-8 (byte {raw[e.start]:#04x} at column {e.start + 1}); "
                             f"re-download the file or convert it to UTF-8") from None


def _tsv(path: Path, source: dict, split: str) -> Rows:
    # No quoting at all: a line is one example, split on tabs (what csv.QUOTE_NONE does, minus csv's handling of
    # stray carriage returns inside a line: `lines` keeps them as text and has already made CRLF ends "\n").
    header = source.get("no_header", {}).get(split)
    for n, line in enumerate(lines(path), 1):
        line = line.removesuffix("\n")
        if header is None:
            header = line.split("\t")
            continue
        if not line:  # a blank line, e.g. at the end of the file
            continue
        row = line.split("\t")
        if len(row) != len(header):
            raise KronbenchError(f"{path}:{n}: {len(row)} tab-separated fields, expected {len(header)} {header}")
        yield dict(zip(header, row)), f"{path}:{n}"


def _json(path: Path):
    try:
        return json.loads("".join(lines(path)))
    except json.JSONDecodeError as e:
        raise KronbenchError(f"{path}:{e.lineno}: invalid JSON ({e.msg})") from None


def _get(obj, key, where: str, typ: type):
    if not isinstance(obj, dict) or not isinstance(obj.get(key), typ):
        raise KronbenchError(f"{where}: expected key {key!r} holding a {typ.__name__}")
    return obj[key]


def _squad(path: Path, source: dict, split: str) -> Rows:
    doc = _json(path)
    for a, article in enumerate(_get(doc, "data", str(path), list)):
        where = f"{path}: data[{a}]"
        title = _get(article, "title", where, str)
        for p, para in enumerate(_get(article, "paragraphs", where, list)):
            context = _get(para, "context", f"{where}.paragraphs[{p}]", str)
            for q, qa in enumerate(_get(para, "qas", f"{where}.paragraphs[{p}]", list)):
                at = f"{where}.paragraphs[{p}].qas[{q}]"
                gold = [] if qa.get("is_impossible") else _get(qa, "answers", at, list)
                row = {"id": _get(qa, "id", at, str), "title": title, "context": context,
                       "question": _get(qa, "question", at, str),
                       "answers": {"text": [_get(x, "text", at, str) for x in gold],
                                   "answer_start": [_get(x, "answer_start", at, int) for x in gold]}}
                yield row, at


def _wikitext(path: Path, source: dict, split: str) -> Rows:
    for i, doc in enumerate(wikitext_documents(lines(path))):
        yield {"text": doc}, f"{path}: article {i}"


def _imdb(path: Path, source: dict, split: str) -> Rows:
    for label in IMDB_CLASSES:
        files = sorted((path / label).glob("*.txt"))
        if not files:
            raise KronbenchError(f"{path / label}: no *.txt reviews (expected aclImdb/<split>/{{neg,pos}}/*.txt)")
        for f in files:
            yield {"text": "".join(lines(f)), "label": label}, str(f)


def _advglue(path: Path, source: dict, split: str) -> Rows:
    key = source["key"]
    for i, row in enumerate(_get(_json(path), key, str(path), list)):
        yield row, f"{path}: [{key!r}][{i}]"


def _jsonl(path: Path, source: dict, split: str) -> Rows:
    for n, line in enumerate(lines(path), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise KronbenchError(f"{path}:{n}: invalid JSON ({e.msg})") from None
        if not isinstance(row, dict):
            raise KronbenchError(f"{path}:{n}: expected a JSON object per line")
        yield row, f"{path}:{n}"


def read_parquet(path: Path) -> tuple[list[dict], dict]:
    """Rows of a `<split>.parquet` dump and its `datasets` features (ClassLabel names survive in the metadata)."""
    import datasets
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise KronbenchError(f"{path}: not a readable parquet file ({e})") from None
    return table.to_pylist(), datasets.Features.from_arrow_schema(table.schema)


_READERS = {"tsv": _tsv, "squad_json": _squad, "wikitext_raw": _wikitext, "imdb_dirs": _imdb,
            "advglue_json": _advglue, "jsonl": _jsonl}
