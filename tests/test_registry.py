"""Task registry: the records issue 3 owns are all there and consistent; bad records fail naming file and key."""

import re
from pathlib import Path

import pytest
import yaml

from kronbench.data import registry
from kronbench.data.records import SCHEMAS
from kronbench.data.registry import KINDS, get_task, list_tasks
from kronbench.errors import KronbenchError
from official_layouts import ADVGLUE, OWNED



def test_every_task_is_registered_and_has_fixtures():
    names = [t.name for t in list_tasks()]
    assert names == sorted(names)
    assert set(OWNED) == {t.name for t in list_tasks() if t.group != "embedded"}


def test_embedded_tasks_arrive_with_their_builders():
    embedded = [t for t in list_tasks() if t.group == "embedded"]
    if (Path(registry.__file__).parent / "embedded.py").exists():
        assert embedded, "kronbench/data/embedded.py exists but no task has group: embedded"
    assert all(t.construction for t in embedded)


def test_unknown_task_lists_valid_names():
    with pytest.raises(KronbenchError, match="unknown task 'mrcp'.*mrpc"):
        get_task("mrcp")


def test_paper_metrics_and_transfer_pairs():
    assert get_task("cola").metrics == ["mcc"]
    assert set(get_task("mrpc").metrics) == set(get_task("qqp").metrics) == {"accuracy", "f1"}
    assert set(get_task("stsb").metrics) == {"pearson", "spearman"}
    assert get_task("squad-v2").metrics[:2] == ["exact_match", "f1"]
    assert {t: get_task(t).source_task for t in ("paws", "imdb", "hans")} == {"paws": "mrpc", "imdb": "sst2",
                                                                           "hans": "rte"}
    # AdvGLUE sets are scored by the model of their GLUE task; MNLI-mm's (and MNLI-mm itself) by the MNLI model
    assert all(get_task(t).source_task == t.removeprefix("advglue-").removesuffix("-mm") for t in ADVGLUE)
    assert get_task("mnli-mm").source_task == "mnli" and get_task("mnli-mm").eval_only
    assert get_task("hans").label_transform == {"non-entailment": "not_entailment"}
    assert get_task("mnli").sources["hub"]["splits"]["validation"] == "validation_matched"
    assert get_task("mnli-mm").sources["local"]["files"]["validation"] == "dev_mismatched.tsv"
    for name in ("wikitext-103", "wikitext-2"):
        assert {"zeroshot-stride", "finetuned"} <= set(get_task(name).protocols)
        assert get_task(name).protocols["zeroshot-stride"]["join"] == "\n\n"


def test_eval_only_tasks_have_no_train_split():
    for t in list_tasks():
        assert not (t.eval_only and "train" in t.splits), t.name
        if t.group == "ood":
            assert t.eval_only and t.source_task


def test_kind_columns_match_parquet_schemas():
    assert {k: tuple(SCHEMAS[k].names) for k in KINDS} == KINDS


# ---------------------------------------------------------------------------------------------- validation
@pytest.fixture
def tasks_dir(tmp_path, monkeypatch):
    """An isolated registry directory holding a copy of mrpc.yaml (and rte for source_task checks)."""
    for name in ("mrpc", "rte"):
        (tmp_path / f"{name}.yaml").write_text(Path(get_task(name).path).read_text())
    monkeypatch.setattr(registry, "TASKS_DIR", tmp_path)
    registry._load_all.cache_clear()
    yield tmp_path
    registry._load_all.cache_clear()


def _edit(d: dict, dotted: str, value):
    *parents, last = dotted.split(".")
    for key in parents:
        d = d[key]
    if value is _DELETE:
        del d[last]
    else:
        d[last] = value


_DELETE = object()


@pytest.mark.parametrize("key, value, message", [
    ("metrics", _DELETE, "'metrics' is required"),
    ("main_metric", "mcc", "'main_metric' must be one of `metrics`"),
    ("kind", "classification", "'kind' must be one of"),
    ("version", "1", "'version' must be a int"),
    ("max_length", True, "'max_length' must be a int"),
    ("labels", ["only_one"], "'labels' must list at least two"),
    ("metrics", ["accuracy", "pearson"], "'metrics' for kind pair_classification"),
    ("fields", {"sentence": "s", "label": "label"}, "'fields' must map the canonical columns"),
    ("name", "mrpc2", "'name' must equal the file name stem"),
    ("splitz", ["train"], "'splitz' is not a known key"),
    ("eval_only", True, "'splits' an eval_only task has no train split"),
    ("source_task", "nope", "'source_task' names an unknown task"),
    ("source_task", "rte", "'source_task' 'rte' must have the same kind and labels"),
    ("label_transform", {"x": "maybe"}, "'label_transform' maps to ['maybe']"),
    ("sources.local.layout", "csv", "'sources.local.layout' must be one of"),
    ("sources.local.files", {"train": "train.tsv"}, "'sources.local.files' must map exactly"),
    ("sources.local.files.train", [], "'sources.local.files' must map exactly"),  # alternatives: not empty
    ("sources.local.files.train", ["a.tsv", 3], "'sources.local.files' must map exactly"),
    ("sources.hub.splits.train", ["train", "dev"], "'sources.hub.splits' must map exactly"),  # lists: local only
    ("sources.hub.split", {}, "'sources.hub.split' is not a known key"),
    ("sources.hub.line_rows", "yes", "'sources.hub.line_rows' must be a bool"),
    ("sources.hub.path", None, "'sources.hub.path' is required"),
    ("sources.ftp", {"url": "x"}, "'sources' must have at least one of"),
    ("unlabelled", ["dev"], "'unlabelled' must be a subset"),
])
def test_bad_record_names_file_and_key(tasks_dir, key, value, message):
    path = tasks_dir / "mrpc.yaml"
    record = yaml.safe_load(path.read_text())
    _edit(record, key, value)
    path.write_text(yaml.safe_dump(record))
    with pytest.raises(KronbenchError, match=re.escape("mrpc.yaml: key " + message)):
        list_tasks()


def test_invalid_yaml_names_the_file(tasks_dir):
    (tasks_dir / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(KronbenchError, match=r"broken\.yaml: not valid YAML"):
        list_tasks()
