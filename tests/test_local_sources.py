"""Sources: every official layout (fixtures written in `official_layouts`), dumps, hub offline, embedded."""

import json
import math
import time

import pytest

from kronbench.data.records import wikitext_documents
from kronbench.data.registry import get_task
from kronbench.data.sources import load_splits
from kronbench.errors import KronbenchError
from official_layouts import EXPECTED, OWNED, WIKITEXT, WIKITEXT_DOCS, write_all, write_tsv


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("official"))


def load(task: str, data_dir):
    return load_splits(get_task(task), "local", data_dir)[0]


@pytest.mark.parametrize("task", OWNED)
def test_official_layout_gives_canonical_columns(dirs, task):
    t = get_task(task)
    splits = load(task, dirs[task])
    assert list(splits) == t.splits
    for split, records in splits.items():
        assert all(list(r) == list(t.columns) for r in records)
        if task in EXPECTED:
            labels = [None if isinstance(r["label"], float) and math.isnan(r["label"]) else r["label"]
                      for r in records]
            assert labels == EXPECTED[task][split], split


def test_tsv_keeps_unbalanced_quotes_and_reads_headerless_cola(dirs):
    cola = load("cola", dirs["cola"])
    assert cola["train"][0] == {"sentence": 'The dog barked "loudly.', "label": 1}
    assert cola["test"] == [{"sentence": "A cat sat.", "label": -1}]
    assert load("mrpc", dirs["mrpc"])["train"][1]["sentence2"] == 'Sales "fell.'
    mnli = load("mnli-mm", dirs["mnli-mm"])
    assert mnli["validation"][0] == {"sentence1": "Rain fell.", "sentence2": "It was dry.", "label": 2}


def test_squad_json_is_flattened_like_the_hub(dirs):
    v1 = load("squad", dirs["squad"])["validation"]
    assert v1[0] == {"id": "q1", "title": "Rivers", "context": "The Nile is long. The Amazon is wide.",
                     "question": "Which river is long?",
                     "answers": {"text": ["The Nile", "Nile"], "answer_start": [0, 4]}}
    v2 = load("squad-v2", dirs["squad-v2"])["validation"]
    assert v2[2]["id"] == "q3" and v2[2]["answers"] == {"text": [], "answer_start": []}


def test_wikitext_articles_match_hub_line_rows(dirs):
    docs = [r["text"] for r in load("wikitext-103", dirs["wikitext-103"])["test"]]
    assert docs == WIKITEXT_DOCS
    hub_rows = [line if line.strip() else "" for line in WIKITEXT.splitlines(keepends=True)]
    assert list(wikitext_documents(hub_rows)) == docs


def test_ood_labels_follow_the_source_task(dirs):
    hans = load("hans", dirs["hans"])["validation"]
    assert hans[1] == {"sentence1": "The doctor saw the lawyer .", "sentence2": "The lawyer saw the doctor .",
                       "label": get_task("rte").labels.index("not_entailment")}
    imdb = load("imdb", dirs["imdb"])["test"]
    assert imdb[0] == {"sentence": "Dull.<br /><br />Awful.", "label": 0}
    assert load("advglue-qnli", dirs["advglue-qnli"])["validation"] == [
        {"sentence1": "Who won?", "sentence2": "The game was lnog.", "label": 1}]


def test_parquet_dump_equals_official_tsv(dirs, tmp_path):
    """Hub data pre-downloaded with datasets' to_parquet (ClassLabel kept) gives the same records."""
    import datasets

    official = load("mrpc", dirs["mrpc"])
    features = datasets.Features({"sentence1": datasets.Value("string"), "sentence2": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["not_equivalent", "equivalent"]),
                                  "idx": datasets.Value("int32")})
    for split, records in official.items():
        rows = [dict(r, idx=i) for i, r in enumerate(records)]
        datasets.Dataset.from_list(rows, features=features).to_parquet(str(tmp_path / f"{split}.parquet"))
    assert load("mrpc", tmp_path) == official


def test_hub_label_names_go_through_label_transform(dirs, tmp_path):
    """HANS on the hub stores ClassLabel(entailment, non-entailment); RTE's model needs not_entailment."""
    import datasets

    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["entailment", "non-entailment"])})
    rows = [{"premise": r["sentence1"], "hypothesis": r["sentence2"], "label": r["label"]}
            for r in load("hans", dirs["hans"])["validation"]]
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(tmp_path / "validation.parquet"))
    assert [r["label"] for r in load("hans", tmp_path)["validation"]] == EXPECTED["hans"]["validation"]


def test_wikitext_dump_of_hub_line_rows_gives_articles(dirs, tmp_path):
    lines = [line if line.strip() else "" for line in WIKITEXT.splitlines(keepends=True)]
    for split in ("train", "validation", "test"):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in lines))
    assert load("wikitext-2", tmp_path) == load("wikitext-2", dirs["wikitext-2"])


def test_jsonl_dump_with_integer_labels(tmp_path):
    rows = {"validation": [{"premise": "p", "hypothesis": "h", "label": 1}]}
    (tmp_path / "validation.jsonl").write_text(json.dumps(rows["validation"][0]) + "\n")
    assert load("advglue-mnli", tmp_path) == {"validation": [{"sentence1": "p", "sentence2": "h", "label": 1}]}


def test_incomplete_dump_names_missing_split(tmp_path):
    (tmp_path / "train.jsonl").write_text('{"sentence": "a", "label": 0}\n')
    with pytest.raises(KronbenchError, match="not validation.parquet, test.parquet"):
        load("sst2", tmp_path)


def test_field_count_mismatch_names_line(tmp_path):
    write_tsv(tmp_path / "RTE" / "train.tsv", ["index", "sentence1", "sentence2", "label"],
              [["0", "a", "b", "entailment"], ["1", "a\tb", "c", "entailment"]])
    for name in ("dev.tsv", "test.tsv"):
        write_tsv(tmp_path / "RTE" / name, ["index", "sentence1", "sentence2"], [["0", "a", "b"]])
    with pytest.raises(KronbenchError, match=r"RTE/train\.tsv:3: 5 tab-separated fields, expected 4"):
        load("rte", tmp_path)


def test_hub_source_maps_splits_and_classlabels(dirs, monkeypatch):
    """nyu-mll/glue stores premise/hypothesis, ClassLabel ids and -1 on test: same records as the official TSVs."""
    import datasets

    official = load("mnli-mm", dirs["mnli-mm"])
    names = ["entailment", "neutral", "contradiction"]
    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=names), "idx": datasets.Value("int32")})
    by_hub_split = {"train": "train", "validation_mismatched": "validation", "test_mismatched": "test"}
    calls = []

    def load_dataset(path, name, revision=None, split=None):
        calls.append((path, name, split))
        rows = [{"premise": r["sentence1"], "hypothesis": r["sentence2"], "label": r["label"], "idx": i}
                for i, r in enumerate(official[by_hub_split[split]])]
        return datasets.Dataset.from_list(rows, features=features)

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    splits, provenance = load_splits(get_task("mnli-mm"), "hub")
    assert splits == official
    assert calls == [("nyu-mll/glue", "mnli", s) for s in by_hub_split]
    assert provenance == {"hub": {"path": "nyu-mll/glue", "name": "mnli", "revision": None}}


def test_hub_offline_fails_fast_with_the_fix():
    start = time.monotonic()
    with pytest.raises(KronbenchError, match=r"nyu-mll/glue \(config mrpc, split train\).*--source local"):
        load_splits(get_task("mrpc"), "hub")
    assert time.monotonic() - start < 10  # HF_*_OFFLINE (conftest) avoids the ~25 s of retries


def test_source_arguments_are_checked(dirs):
    with pytest.raises(KronbenchError, match="--data-dir is required"):
        load_splits(get_task("mrpc"), "local")
    with pytest.raises(KronbenchError, match="unknown source 'ftp'"):
        load_splits(get_task("mrpc"), "ftp")
    with pytest.raises(KronbenchError, match="task 'mrpc' has no 'embedded' source"):
        load_splits(get_task("mrpc"), "embedded")
