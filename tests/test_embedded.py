"""The embedded task suite: built from gensim's real text, deterministic, article-level splits, balanced labels."""

import collections
import hashlib
import json
import os
import random
import subprocess
import sys

import pytest

from kronbench.data import corpora, embedded
from kronbench.data.registry import list_tasks
from kronbench.errors import KronbenchError

TASKS = {t.name: t for t in list_tasks() if t.group == "embedded"}


def _params(task):
    return {k: v for k, v in task.sources["embedded"].items() if k != "builder"}


@pytest.fixture(scope="module")
def built():
    """Every embedded task built once from its YAML record (the corpora are parsed once per process)."""
    return {name: embedded.build(t.sources["embedded"]["builder"], **_params(t)) for name, t in TASKS.items()}


def _digest(splits) -> str:
    return hashlib.sha256(json.dumps(splits, sort_keys=True).encode()).hexdigest()


def test_suite_is_complete_and_every_builder_exists():
    assert set(TASKS) == {"embedded-pair", "embedded-acceptability", "embedded-similarity", "embedded-qa",
                          "embedded-lm", "embedded-pair-news", "embedded-lm-news"}
    for t in TASKS.values():
        assert t.sources["embedded"]["builder"] in embedded.BUILDERS, t.name


def test_splits_columns_and_sizes(built):
    for name, t in TASKS.items():
        splits = built[name]
        assert list(splits) == t.splits, name
        for split, rows in splits.items():
            cap = _params(t)["max_train" if split == "train" else "max_eval"]
            assert len(rows) == cap if cap else len(rows) > 0, (name, split, len(rows))
            assert all(set(r) == set(t.columns) for r in rows), name


def test_deterministic_across_builds_and_hash_seeds(built):
    again = embedded.build("pair", **_params(TASKS["embedded-pair"]))
    assert again == built["embedded-pair"]
    # A fresh process with another string-hash seed must produce the same bytes (no set/dict-order leaks).
    code = ("import hashlib, json; from kronbench.data.registry import get_task; from kronbench.data.embedded "
            "import build\nfor n in %r:\n s = get_task(n).sources['embedded']\n"
            " print(hashlib.sha256(json.dumps(build(**s), sort_keys=True).encode()).hexdigest())" % sorted(TASKS))
    env = dict(os.environ, PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == [_digest(built[n]) for n in sorted(TASKS)]


def test_article_level_splits_are_disjoint():
    docs = corpora.load_corpus("enwiki")
    splits = corpora.split_documents(docs, embedded.DEFAULT_FRACTIONS, seed=0)
    titles = {s: {d.title for d in ds} for s, ds in splits.items()}
    assert not (titles["train"] & titles["validation"] or titles["train"] & titles["test"]
                or titles["validation"] & titles["test"])
    assert sum(map(len, titles.values())) == len(docs)
    chars = {s: sum(len(d.text) for d in ds) for s, ds in splits.items()}
    assert 0.05 < chars["test"] / sum(chars.values()) < 0.15


def test_rows_come_from_their_own_split(built):
    splits = corpora.split_documents(corpora.load_corpus("enwiki"), embedded.DEFAULT_FRACTIONS, seed=0)
    sents = {s: {x for d in ds for p in d.paragraphs for x in p} for s, ds in splits.items()}
    for row in built["embedded-pair"]["test"]:
        assert row["sentence1"] in sents["test"] and row["sentence1"] not in sents["train"]
    qa_titles = {s: {r["title"] for r in rows} for s, rows in built["embedded-qa"].items()}
    assert not qa_titles["train"] & (qa_titles["validation"] | qa_titles["test"])


def test_labels_are_balanced(built):
    for name in ("embedded-pair", "embedded-acceptability", "embedded-pair-news"):
        for split, rows in built[name].items():
            counts = collections.Counter(r["label"] for r in rows)
            assert set(counts) == {0, 1} and abs(counts[0] - counts[1]) <= 1, (name, split, counts)
    for split, rows in built["embedded-similarity"].items():
        counts = collections.Counter(r["label"] for r in rows)
        assert set(counts) == {0.0, 1.0, 2.0, 3.0, 4.0, 5.0} and max(counts.values()) - min(counts.values()) <= 1


def test_qa_answer_spans_point_at_their_answers(built):
    for rows in built["embedded-qa"].values():
        assert len({r["id"] for r in rows}) == len(rows)
        for r in rows:
            (text,), (start,) = r["answers"]["text"], r["answers"]["answer_start"]
            assert r["context"][start:start + len(text)] == text and text
            assert r["question"].endswith("?") and "what" in r["question"].lower()


def test_sentence_splitter_keeps_abbreviations_and_initials():
    text = "Dr. Smith met J. R. Tolkien in the U.S. in 1950. It rained! Was it 3.5 m? Yes."
    assert corpora.split_sentences(text) == [
        "Dr. Smith met J. R. Tolkien in the U.S. in 1950.", "It rained!", "Was it 3.5 m?", "Yes."]


def test_perturbation_moves_only_inner_words():
    s = "The quick brown fox jumps over the lazy dog."
    for seed in range(20):
        p = embedded.perturb_word_order(s, random.Random(seed)).split()
        assert p != s.split() and sorted(p) == sorted(s.split())
        assert p[0] == "The" and p[-1] == "dog."


def test_bad_builder_params_and_missing_gensim(monkeypatch):
    with pytest.raises(KronbenchError, match="valid builders: pair, acceptability, similarity, qa, lm"):
        embedded.build("nope")
    with pytest.raises(KronbenchError, match="unknown params"):
        embedded.build("lm", hard_fraction=0.5)
    real = corpora.importlib.util.find_spec
    monkeypatch.setattr(corpora.importlib.util, "find_spec", lambda n: None if n == "gensim" else real(n))
    with pytest.raises(KronbenchError, match="pip install gensim"):
        corpora.corpus_path("enwiki")
