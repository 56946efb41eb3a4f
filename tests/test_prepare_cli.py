"""`kronbench prepare-data`, `kronbench tasks`, `kronbench score`: outputs, atomicity and error messages."""

import dataclasses
import json
import re
import shutil
import sys
import types

import pyarrow.parquet as pq
import pytest
from official_layouts import OWNED, write_all

import kronbench.data
from kronbench.cli import main
from kronbench.data.prepare import prepare_data
from kronbench.data.records import SCHEMAS
from kronbench.data.registry import get_task


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    return write_all(tmp_path_factory.mktemp("official"))


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("task", OWNED)
def test_prepare_every_task_from_official_files(dirs, tmp_path, capsys, task):
    out = tmp_path / task
    code, stdout, err = run(capsys, "prepare-data", task, "--source", "local", "--data-dir", dirs[task],
                            "--out", out)
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    t = get_task(task)
    assert (manifest["task"], manifest["version"], manifest["source"]) == (task, t.version, "local")
    assert list(manifest["rows"]) == t.splits and f"{task} v{t.version} from local" in stdout
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{s}.parquet" for s in t.splits] + ["manifest.json"])
    for split in t.splits:
        table = pq.read_table(out / f"{split}.parquet")
        assert table.schema.equals(SCHEMAS[t.kind]) and table.num_rows == manifest["rows"][split]
    assert manifest["provenance"]["local"]["inputs"]  # sha256 of every input file


def test_output_is_deterministic(dirs, tmp_path):
    for task in ("squad-v2", "mnli", "imdb"):
        a, b = tmp_path / f"{task}-a", tmp_path / f"{task}-b"
        prepare_data(task, "local", a, dirs[task])
        prepare_data(task, "local", b, dirs[task])
        assert {p.name: p.read_bytes() for p in a.iterdir()} == {p.name: p.read_bytes() for p in b.iterdir()}


def _glue_copy(dirs, tmp_path):
    root = tmp_path / "glue_data"
    shutil.copytree(dirs["mrpc"], root)
    return root


def _corrupt(kind: str, root):
    """Break the official GLUE copy at `root`; return (task, --data-dir, expected error regex)."""
    if kind == "missing column":
        path = root / "MRPC" / "train.tsv"
        path.write_text(path.read_text().replace("Quality", "Qualiti", 1))
        return "mrpc", root, r"MRPC/train\.tsv:2: missing column 'Quality'"
    if kind == "unknown label":
        path = root / "RTE" / "dev.tsv"
        path.write_text(path.read_text().replace("not_entailment", "maybe"))
        return "rte", root, r"RTE/dev\.tsv:2: unknown label 'maybe'; expected one of \['entailment'"
    if kind == "empty file":
        (root / "SST-2" / "dev.tsv").write_text("")
        return "sst2", root, r"SST-2/dev\.tsv: empty file"
    if kind == "header only":
        (root / "QNLI" / "dev.tsv").write_text("index\tquestion\tsentence\tlabel\n")
        return "qnli", root, r"QNLI/dev\.tsv: no rows. Expected: --data-dir for qnli holds QNLI/train\.tsv"
    if kind == "undecodable bytes":
        path = root / "CoLA" / "train.tsv"
        path.write_bytes(path.read_bytes() + b"ks08\t1\t\tna\xefve caf\xe9\n")
        return "cola", root, r"CoLA/train\.tsv:3: not valid UTF-8 \(byte 0xef at column 11\)"
    if kind == "wrong layout":
        return "mrpc", root / "MRPC", r"MRPC/MRPC/train\.tsv not found: --data-dir for mrpc holds MRPC/train\.tsv"
    if kind == "bad number":
        path = root / "STS-B" / "dev.tsv"
        path.write_text(path.read_text().replace("0.500", "n/a"))
        return "stsb", root, r"STS-B/dev\.tsv:2: label 'n/a' is not a number"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing column", "unknown label", "empty file", "header only",
                                  "undecodable bytes", "wrong layout", "bad number"])
def test_bad_input_names_file_and_line_and_leaves_no_output(dirs, tmp_path, capsys, kind):
    task, data_dir, pattern = _corrupt(kind, _glue_copy(dirs, tmp_path))
    out = tmp_path / "out" / task
    code, _, err = run(capsys, "prepare-data", task, "--source", "local", "--data-dir", data_dir, "--out", out)
    assert code == 2 and err.startswith("kronbench prepare-data: error: ") and len(err.strip().splitlines()) == 1
    assert re.search(pattern, err), err
    assert not (tmp_path / "out").exists()  # input is read before anything is written


def test_bad_squad_json_names_line_and_key(dirs, tmp_path, capsys):
    squad = tmp_path / "squad"
    shutil.copytree(dirs["squad"], squad)
    (squad / "dev-v1.1.json").write_text('{"version": "1.1",\n "data": [\n')
    code, _, err = run(capsys, "prepare-data", "squad", "--source", "local", "--data-dir", squad, "--out",
                       tmp_path / "o")
    assert code == 2 and "dev-v1.1.json:3: invalid JSON" in err
    doc = json.loads((squad / "train-v1.1.json").read_text())
    del doc["data"][0]["paragraphs"][0]["qas"][1]["id"]
    (squad / "dev-v1.1.json").write_text(json.dumps(doc))
    code, _, err = run(capsys, "prepare-data", "squad", "--source", "local", "--data-dir", squad, "--out",
                       tmp_path / "o")
    assert code == 2 and "dev-v1.1.json: data[0].paragraphs[0].qas[1]: expected key 'id' holding a str" in err
    assert not (tmp_path / "o").exists()


def test_rerun_replaces_previous_output_and_refuses_foreign_dirs(dirs, tmp_path, capsys):
    out = tmp_path / "rte"
    prepare_data("rte", "local", out, dirs["rte"])
    (out / "stale.parquet").write_text("old")
    prepare_data("rte", "local", out, dirs["rte"])
    assert not (out / "stale.parquet").exists() and (out / "manifest.json").is_file()
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    code, _, err = run(capsys, "prepare-data", "rte", "--source", "local", "--data-dir", dirs["rte"],
                       "--out", foreign)
    assert code == 2 and "refusing to overwrite" in err and (foreign / "notes.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "rte"]  # no temporary directories left


def test_embedded_source_calls_the_builder(tmp_path, monkeypatch):
    calls = []

    def build(builder, **params):
        calls.append((builder, params))
        return {s: [{"sentence": f"{s} text", "label": 1}] for s in ("train", "validation", "test")}

    fake = types.SimpleNamespace(build=build)
    monkeypatch.setitem(sys.modules, "kronbench.data.embedded", fake)
    monkeypatch.setattr(kronbench.data, "embedded", fake, raising=False)
    task = dataclasses.replace(get_task("sst2"), group="embedded", construction="test",
                               sources={"embedded": {"builder": "single", "seed": 3}})
    manifest = prepare_data(task, "embedded", tmp_path / "e")
    assert calls == [("single", {"seed": 3})] and manifest["rows"] == {"train": 1, "validation": 1, "test": 1}
    assert pq.read_table(tmp_path / "e" / "test.parquet").to_pylist() == [{"sentence": "test text", "label": -1}]


def test_tasks_json_lists_every_task(capsys):
    code, out, _ = run(capsys, "tasks", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and set(OWNED) <= set(rows)
    assert rows["paws"] == {"name": "paws", "group": "ood", "kind": "pair_classification",
                            "sources": ["hub", "local"], "metrics": ["accuracy", "f1"], "main_metric": "accuracy",
                            "version": 1, "source_task": "mrpc"}
    code, out, _ = run(capsys, "tasks")
    assert code == 0 and "squad-v2" in out


def test_score_reads_json_jsonl_and_prepared_splits(dirs, tmp_path, capsys):
    prepare_data("mrpc", "local", tmp_path / "mrpc", dirs["mrpc"])
    (tmp_path / "preds.jsonl").write_text("1\n1\n")
    code, out, err = run(capsys, "score", "mrpc", "--predictions", tmp_path / "preds.jsonl",
                         "--references", tmp_path / "mrpc" / "train.parquet", "--json")
    assert code == 0, err
    assert json.loads(out) == {"f1": pytest.approx(200 / 3), "accuracy": 50.0}
    (tmp_path / "qa.json").write_text(json.dumps({"q1": "Nile", "q2": "the Amazon"}))
    code, out, _ = run(capsys, "score", "squad", "--predictions", tmp_path / "qa.json",
                       "--references", dirs["squad"] / "dev-v1.1.json")
    assert code == 0 and "exact_match" in out and "100.0000" in out
    (tmp_path / "lm.json").write_text('{"nll_sum": 0.0, "tokens": 5}')
    code, out, _ = run(capsys, "score", "lambada", "--predictions", tmp_path / "lm.json", "--json")
    assert code == 0 and json.loads(out) == {"perplexity": 1.0}
    code, _, err = run(capsys, "score", "mrpc", "--predictions", tmp_path / "nope.json", "--references",
                       tmp_path / "qa.json")
    assert code == 2 and "nope.json: no such file" in err
