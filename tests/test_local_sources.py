"""Sources: every official layout (fixtures written in `official_layouts`), dumps, hub offline, embedded."""

import json
import math
import shutil
import time
import types

import pytest
from official_layouts import EXPECTED, OWNED, WIKITEXT, WIKITEXT_DOCS, write_all, write_tsv

from kronbench.cli import main
from kronbench.data.prepare import prepare_data
from kronbench.data.records import wikitext_documents
from kronbench.data.registry import get_task
from kronbench.data.sources import load_splits
from kronbench.errors import KronbenchError


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
    with pytest.raises(KronbenchError, match=r"not validation\.parquet \(or \.jsonl\): a dump needs every labelled"):
        load("sst2", tmp_path)
    (tmp_path / "validation.jsonl").write_text('{"sentence": "b", "label": 1}\n')
    splits, provenance = load_splits(get_task("sst2"), "local", tmp_path)  # test: unlabelled, optional
    assert list(splits) == ["train", "validation"] and list(provenance["local"]["skipped"]) == ["test"]


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
    by_hub_split = {"validation_mismatched": "validation", "test_mismatched": "test"}  # no train: mnli's
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
    assert provenance == {"hub": {"path": "nyu-mll/glue", "name": "mnli", "revision": None,
                                  "resolved_revision": None}}  # in-memory rows: no cache tells the commit


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


# ------------------------------------------------------------------------------------- line endings (issue 19)
def _endings(path, ending: bytes):
    path.write_bytes(path.read_bytes().replace(b"\n", ending))


@pytest.mark.parametrize("ending", [b"\r\n", b"\r"], ids=["crlf", "cr"])
def test_crlf_and_cr_files_read_as_their_lf_copy(dirs, tmp_path, ending):
    """Windows (CRLF) and old-Mac (CR) copies give the same WikiText articles and GLUE rows as the LF original."""
    wiki, glue = tmp_path / "wikitext2", tmp_path / "glue_data"
    shutil.copytree(dirs["wikitext-2"], wiki)
    shutil.copytree(dirs["cola"], glue)
    for path in [*wiki.rglob("*.raw"), *glue.rglob("*.tsv")]:
        _endings(path, ending)
    assert load("wikitext-2", wiki) == load("wikitext-2", dirs["wikitext-2"])
    assert [r["text"] for r in load("wikitext-2", wiki)["test"]] == WIKITEXT_DOCS  # two articles, not one
    for task in ("cola", "mrpc", "mnli", "stsb"):
        assert load(task, glue) == load(task, dirs[task]), task


def test_lone_carriage_return_in_a_tsv_field_is_text(tmp_path):
    """In a file with "\\n" line ends a stray "\\r" is part of its field, in the LF and the CRLF copy alike."""
    rows = [["0", "Ann bought\ra car.", "Ann owns a car.", "entailment"]]
    for ending in (b"\n", b"\r\n"):
        root = tmp_path / repr(ending)
        write_tsv(root / "RTE" / "train.tsv", ["index", "sentence1", "sentence2", "label"], rows)
        write_tsv(root / "RTE" / "dev.tsv", ["index", "sentence1", "sentence2", "label"], rows)
        _endings(root / "RTE" / "train.tsv", ending)
        assert load("rte", root)["train"] == [{"sentence1": "Ann bought\ra car.", "sentence2": "Ann owns a car.",
                                               "label": 0}], ending


# ------------------------------------------------------------------------------- layouts users have (issue 19)
def test_missing_unlabelled_test_files_are_skipped(dirs, tmp_path):
    """GLUE without test.tsv (MNLI: test_matched.tsv): prepared from train/dev, the skip named in the manifest;
    a missing dev file still fails, naming every file the task reads."""
    glue = tmp_path / "glue_data"
    shutil.copytree(dirs["cola"], glue)
    for path in glue.rglob("test*.tsv"):
        path.unlink()
    manifest = prepare_data("cola", "local", tmp_path / "out", glue)
    assert list(manifest["rows"]) == ["train", "validation"]
    assert manifest["provenance"]["local"]["skipped"] == {
        "test": "CoLA/test.tsv not found (unlabelled split, optional)"}
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.json", "train.parquet",
                                                                     "validation.parquet"]
    assert list(load("mnli", glue)) == ["train", "validation"]
    (glue / "MNLI" / "dev_matched.tsv").unlink()
    with pytest.raises(KronbenchError, match=r"MNLI/dev_matched\.tsv not found: --data-dir for mnli holds "
                                             r"MNLI/train\.tsv, MNLI/dev_matched\.tsv and optionally "
                                             r"MNLI/test_matched\.tsv"):
        load("mnli", glue)


def test_advglue_dev_json_directly_in_the_data_dir(dirs, tmp_path):
    shutil.copy(dirs["advglue-rte"] / "dev" / "dev.json", tmp_path / "dev.json")  # as dev.zip unpacks
    assert load("advglue-rte", tmp_path) == load("advglue-rte", dirs["advglue-rte"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(KronbenchError, match=r"none of \S+/empty/dev\.json, \S+/empty/dev/dev\.json found: "
                                             r"--data-dir for advglue-rte holds dev\.json or dev/dev\.json"):
        load("advglue-rte", tmp_path / "empty")


@pytest.mark.parametrize("folder", ["wikitext-103-raw-v1/wikitext-103-raw", "wikitext-103-raw-v1", "wikitext-103"])
def test_wikitext_alternative_folders(dirs, tmp_path, folder):
    shutil.copytree(dirs["wikitext-103"] / "wikitext-103-raw", tmp_path / folder)
    splits, provenance = load_splits(get_task("wikitext-103"), "local", tmp_path)
    assert splits == load("wikitext-103", dirs["wikitext-103"])
    assert sorted(provenance["local"]["inputs"]) == [f"{folder}/wiki.{s}.raw" for s in ("test", "train", "valid")]


def test_missing_wikitext_names_every_candidate(tmp_path):
    with pytest.raises(KronbenchError, match=r"none of .*/wikitext-2-raw/wiki\.train\.raw, .*/wikitext-2-raw-v1/"
                                             r"wikitext-2-raw/wiki\.train\.raw, .*/wikitext-2-raw-v1/wiki\.train\.raw, "
                                             r".*/wikitext-2/wiki\.train\.raw found"):
        load("wikitext-2", tmp_path)


# ------------------------------------------------------------------------------------ hub revision (issue 19)
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_hub_revision_override_and_resolved_commit(dirs, monkeypatch, tmp_path):
    """--revision overrides the YAML's; the manifest records the commit the `datasets` cache files were built at."""
    import datasets

    rows = load("rte", dirs["rte"])
    features = datasets.Features({"sentence1": datasets.Value("string"), "sentence2": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["entailment", "not_entailment"])})
    asked = []

    def load_dataset(path, name, revision=None, split=None):  # a cached dataset, as datasets >= 3 lays it out
        asked.append(revision)
        cache = tmp_path / "datasets" / "nyu-mll___glue" / "rte" / "0.0.0" / COMMIT / f"glue-{split}.arrow"
        return types.SimpleNamespace(to_list=lambda: rows[split],
                                     features=features, cache_files=[{"filename": str(cache)}])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    manifest = prepare_data("rte", "hub", tmp_path / "out", revision="v1.0")
    assert asked == ["v1.0"] * 3
    assert manifest["provenance"] == {"hub": {"path": "nyu-mll/glue", "name": "rte", "revision": "v1.0",
                                              "resolved_revision": COMMIT}}
    with pytest.raises(KronbenchError, match="--revision v1.0 pins a hub dataset; it is only allowed with --source"):
        load_splits(get_task("rte"), "local", dirs["rte"], revision="v1.0")
    assert main(["prepare-data", "rte", "--source", "hub", "--revision", COMMIT, "--out", str(tmp_path / "o")]) == 0
    assert asked[-1] == COMMIT and json.loads((tmp_path / "o" / "manifest.json").read_text())["provenance"]["hub"][
        "revision"] == COMMIT


def test_hub_commit_from_the_hub_cache_or_unknown(monkeypatch):
    """Rows without cache files: the HF hub cache's snapshot of the dataset card, else a full-commit revision,
    else None (offline, nothing cached)."""
    import huggingface_hub

    from kronbench.data.sources import hub_commit

    seen = []

    def cached(repo_id, filename, revision=None, repo_type=None):
        seen.append((repo_id, filename, revision, repo_type))
        return f"/hf/hub/datasets--x--y/snapshots/{COMMIT}/README.md" if revision is None else None

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", cached)
    assert hub_commit("x/y", None) == COMMIT and seen == [("x/y", "README.md", None, "dataset")]
    assert hub_commit("x/y", "f" * 40) == "f" * 40
    assert hub_commit("x/y", "main") is None
