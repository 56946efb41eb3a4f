"""Tables that do not flatter (issue 18): chance levels, meaningful ret%, backbone params, dropped empty columns,
wide tables split into parts, latency columns."""

import json

import pandas as pd
from conftest import pick

from kronbench.data.registry import get_task
from kronbench.report import tables

DASH = "–"
BASE = dict(model="bert-base-uncased", method="teacher", preset=None, task="rte", split="validation", seed=0,
            metric="accuracy", value=70.0, params=109.5e6, params_no_head=109.4e6, flops=21.7e9, latency_ms=10.0,
            latency_setup="cpu, 2 threads", train_seconds=100.0, config_hash="h", git_sha="g", versions={},
            protocol=None, source_task=None, chance=50.0, chance_se=2.5)


def row(**k):
    return {**BASE, **k}


def test_chance_row_and_scores_at_or_below_chance_get_no_retention():
    df = pd.DataFrame([row(), row(method="kronecker", preset="kb8", value=50.0),  # exactly chance
                       row(method="kronecker", preset="kb5", value=54.9),  # within 2 SE
                       row(method="distil", preset="L6", value=65.0),  # clearly above
                       row(method="rosita", preset="kb8", value=40.0)])  # > 2 SE below
    g = tables.glue_table(df, reported=False)
    chance = pick(g, method="chance")
    assert chance["rte accuracy"] == "50.00 (majority, SE 2.50)" and chance["rte accuracy Δ"] == DASH
    assert chance["rte accuracy ret%"] == DASH and chance["source"] == "ours" and chance["avg"] == DASH
    assert list(g["method"]).index("chance") == 0  # before ours rows
    at = pick(g, method="kronecker", preset="kb8")
    assert at["rte accuracy"] == "50.00 ±– (n=1) ≈ chance" and at["rte accuracy ret%"] == DASH
    assert at["rte accuracy Δ"] == "-20.00"  # Δ is still shown
    assert pick(g, preset="kb5")["rte accuracy ret%"] == DASH
    above = pick(g, method="distil")
    assert above["rte accuracy"] == "65.00 ±– (n=1)" and above["rte accuracy ret%"] == "92.9"
    below = pick(g, method="rosita")
    assert below["rte accuracy"] == "40.00 ±– (n=1) < chance" and below["rte accuracy ret%"] == DASH
    assert pick(g, method="teacher")["rte accuracy ret%"] == "100.0" and "≈ chance" in g.attrs["note"]


def test_all_positive_mrpc_student_is_at_chance():
    """The issue's case: F1 of all-positive predictions on MRPC (81.2) read as 75 % retention."""
    mrpc = dict(task="mrpc", metric="f1", chance=81.2, chance_se=1.6)
    df = pd.DataFrame([row(value=90.0, **mrpc), row(method="kronecker", preset="kb8", value=81.2, **mrpc)])
    kb8 = pick(tables.glue_table(df, reported=False), method="kronecker")
    assert kb8["mrpc f1"].endswith("≈ chance") and kb8["mrpc f1 ret%"] == DASH


def test_negative_or_at_chance_teacher_gives_no_retention():
    stsb = dict(task="stsb", metric="pearson", chance=0.0, chance_se=2.4)
    for teacher in (-5.0, 1.0):  # negative; within 2 SE of chance
        df = pd.DataFrame([row(value=teacher, **stsb), row(method="kronecker", preset="kb8", value=30.0, **stsb),
                           row(method="distil", preset="L6", value=-30.0, **stsb)])
        g = tables.glue_table(df, reported=False)
        assert "stsb pearson ret%" not in g.columns, g.T  # no cell has a retention
        assert pick(g, method="kronecker")["stsb pearson Δ"] == f"{30.0 - teacher:+.2f}"


def test_old_rows_without_chance_keep_retention_but_not_negative_ones():
    old = {k: v for k, v in BASE.items() if k not in ("chance", "chance_se")}
    df = pd.DataFrame([old, {**old, "method": "kronecker", "preset": "kb8", "value": 50.0},
                       {**old, "method": "distil", "preset": "L6", "value": -5.0}])
    g = tables.glue_table(df, reported=False)
    assert "chance" not in set(g["method"]) and pick(g, method="kronecker")["rte accuracy ret%"] == "71.4"
    assert pick(g, method="distil")["rte accuracy ret%"] == DASH


def test_params_vs_kronecker_compares_backbones():
    """Heads differ per task (3 MNLI classes vs 1 STS-B output): the whole-model mean read 100.7 %."""
    backbone = dict(params_no_head=14.0e6, preset="kb8")
    df = pd.DataFrame([
        row(method="kronecker", task="mnli", metric="accuracy", value=80.0, params=14.0e6 + 2307, **backbone),
        row(method="kronecker", task="stsb", metric="spearman", value=80.0, params=14.0e6 + 769, **backbone),
        row(method="decompose-only", task="stsb", metric="spearman", value=70.0, params=14.0e6 + 769, **backbone),
        row(method="rosita", task="stsb", metric="spearman", value=70.0, params=7.7e6 + 769, params_no_head=7.0e6,
            preset="kb8"),
        row(task="stsb", metric="spearman", value=88.0, tune_seconds=4.0)])
    ab = tables.ablation_table(df, reported=False)
    assert pick(ab, method="decompose-only")["params vs kronecker (%)"] == "100.0"
    assert pick(ab, method="kronecker")["params vs kronecker (%)"] == "100.0"
    assert pick(ab, method="rosita")["params vs kronecker (%)"] == "50.0"
    assert "params_no_head" in ab.attrs["note"] and "tune (s)" in ab.attrs["note"]
    cols = list(ab.columns)
    assert cols.index("tune (s)") == cols.index("train (s)") + 1
    assert pick(ab, method="teacher")["tune (s)"] == "4.00" and pick(ab, method="rosita")["tune (s)"] == DASH


def test_empty_task_columns_are_dropped():
    df = pd.DataFrame([row(), row(task="cola", metric=None, value=None, status="failed", reason=None)])  # no text
    g = tables.glue_table(df, reported=False)
    assert "rte accuracy" in g.columns and not any(c.startswith("cola") for c in g.columns)
    assert g.attrs["scores"] == ["rte accuracy"]
    paper = tables.glue_table(df)  # a paper-only column with a paper value stays
    assert "cola mcc" in paper.columns and (paper["cola mcc"] != DASH).any()


def test_latency_columns_noisy_mark_and_ratio():
    df = pd.DataFrame([row(seed=0, latency_noisy=False, latency_vs_teacher=1.0, latency_iqr_ms=0.1),
                       row(method="kronecker", preset="kb8", seed=0, latency_ms=4.0, latency_noisy=False,
                           latency_vs_teacher=0.4, value=60.0),
                       row(method="kronecker", preset="kb8", seed=1, latency_ms=5.0, latency_noisy=True,
                           latency_vs_teacher=0.5, value=61.0)])
    s = tables.summarize(df).set_index("method")
    assert bool(s.loc["kronecker", "latency_noisy"]) and s.loc["kronecker", "latency_vs_teacher"] == 0.45
    assert not s.loc["teacher", "latency_noisy"] and s.loc["teacher", "latency_iqr_ms"] == 0.1
    g = tables.glue_table(df, reported=False)
    kb8 = pick(g, method="kronecker")
    assert kb8["latency (ms)"] == "4.50*" and kb8["× teacher latency"] == "0.45"
    assert pick(g, method="teacher")["latency (ms)"] == "10.00"
    note = g.attrs["note"]
    assert "round-robin" in note and "does not predict GPU speed-ups" in note and "* = noisy" in note


def test_wide_table_is_split_into_parts_in_markdown_not_csv(tmp_path):
    glue = ("mnli", "mnli-mm", "sst2", "mrpc", "cola", "qqp", "qnli", "rte")  # 8 tasks, main metric each
    rows = [row(task=t, metric=get_task(t).main_metric, method=m, preset=p, value=v)
            for t in glue for m, p, v in (("teacher", None, 80.0), ("kronecker", "kb8", 75.0))]
    path = tmp_path / "all_results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    g = tables.glue_table(tables.load_rows(path), reported=False)
    parts = tables.column_parts(g)
    assert len(parts) == 2 and all(p[:5] == ["source", "model", "method", "preset", "split"] for p in parts)
    assert all("params (M)" in p and "latency (ms)" in p for p in parts) and "avg" in parts[1]
    assert sum(c in tables.column_parts(g)[0] for c in g.attrs["scores"]) == 6
    tables.table_all(path, tmp_path / "t")
    md = (tmp_path / "t" / "glue.md").read_text()
    assert md.count("## Part ") == 2 and "## Part 2 of 2" in md and md.count("| params (M)") == 2
    csv = (tmp_path / "t" / "glue.csv").read_text().splitlines()
    assert "Part" not in "".join(csv) and all(f"{t} " in csv[0] for t in glue)
    assert (tmp_path / "t" / "glue.tex").read_text().count("\\begin{tabular}") == 2
    assert tables.column_parts(tables.glue_table(pd.DataFrame(rows[:2]), reported=False)) is None


def test_check_grid_finds_every_cell_and_reports_a_missing_one(tmp_path):
    """kronbench check-grid (run by ci/paper-smoke.sh): each (model, method, preset, task) of the rows has a row
    with a score in its task's table, mnli-mm in the GLUE table (scored by the MNLI model), paws in the OOD one."""
    from kronbench.report.check import grid_cells, missing_cells

    rows = [row(task=t, method=m, preset=p, source_task=s, metric=get_task(t).main_metric, value=v)
            for t, s in (("mnli", None), ("mnli-mm", "mnli"), ("paws", "mrpc"), ("squad", None))
            for m, p, v in (("teacher", None, 80.0), ("kronecker", "kb8", 75.0), ("rosita", "kb8", 60.0))]
    path = tmp_path / "all_results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tables.table_all(path, tmp_path / "t")
    assert len(grid_cells(path)) == 12 and missing_cells(path, tmp_path / "t") == []
    assert "mnli-mm accuracy" in (tmp_path / "t" / "glue.csv").read_text().splitlines()[0]
    ood = pd.read_csv(tmp_path / "t" / "ood.csv", dtype=str, keep_default_na=False)
    ood[ood.columns[ood.columns.str.startswith("mrpc→paws")]] = ""  # a cell lost between rows and table
    ood[ood["method"] != "rosita"].to_csv(tmp_path / "t" / "ood.csv", index=False)  # and a whole row
    assert missing_cells(path, tmp_path / "t") == [
        "bert-base-uncased kronecker-kb8 paws: ood.csv has no score in ['mrpc→paws accuracy (validation)']",
        "bert-base-uncased rosita-kb8 paws: ood.csv has no row",
        "bert-base-uncased teacher paws: ood.csv has no score in ['mrpc→paws accuracy (validation)']"]
