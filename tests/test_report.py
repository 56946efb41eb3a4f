"""Result tables and figures from synthetic result rows: seeds, Δ/retention, failures, protocols, paper rows, files."""

import json
import math

import pytest
from conftest import pick

from kronbench.errors import KronbenchError
from kronbench.report import figures, presets, tables
from kronbench.report.tables import load_rows, summarize

BASE = dict(model="bert-base-uncased", method="teacher", preset=None, task="mrpc", split="validation", seed=0,
            metric="f1", value=90.0, params=109.5e6, params_no_head=109.4e6, flops=21.7e9, latency_ms=10.0,
            latency_setup="cpu, 2 threads, batch 16 x seq 128, fp32", train_seconds=100.0, config_hash="h",
            git_sha="g", versions={"torch": "x"}, protocol=None, source_task=None)
KB8 = dict(method="kronecker", preset="kb8", params=14.3e6, flops=5.2e9, latency_ms=4.0)


def row(**k):
    return {**BASE, **k}


ROWS = [
    *(row(seed=s, value=v) for s, v in enumerate([90.0, 91.0, 92.0])),                 # teacher: 91 ± 1, n=3
    *(row(**KB8, seed=s, value=v) for s, v in enumerate([88.0, 89.0])),                # kb8: 88.5 ± 0.71, n=2
    row(**KB8, seed=2, metric=None, value=None, status="failed", reason="CUDA out of memory"),
    row(method="kronecker", preset="kb21", seed=0, metric=None, value=None, status="skipped", reason="no kb21 ckpt"),
    row(**KB8, seed=9, metric=None, value=None, status="failed", reason="superseded"),  # a later ok row replaces it
    row(**KB8, seed=9, metric="accuracy", value=85.0),
    row(task="paws", metric="accuracy", value=61.0),                                   # OOD: source_task from registry
    row(**KB8, task="paws", metric="accuracy", value=60.0),
    row(**{**KB8, "method": "no-kd-pretrain"}, value=70.0),
    *(row(model="gpt2", task="wikitext-103", split="test", metric="perplexity", value=v, protocol=p,
          method=m, preset=pr, seed=s)
      for p, vals in {"zeroshot-stride": (30.0, 40.0), "finetuned": (17.0, 21.0)}.items()
      for (m, pr), v in zip([("teacher", None), ("kronecker", "kngpt2")], vals) for s in (0, 1)),
    row(model="minilm-l6", task="embedded-pair", metric="accuracy", value=80.0),
    row(model="minilm-l6", method="kronecker", preset="cf=8", task="embedded-pair", metric="accuracy", value=78.0),
]


@pytest.fixture
def rows_path(tmp_path):
    path = tmp_path / "all_results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    return path


def test_summarize_means_stds_counts_and_failures(rows_path):
    s = summarize(load_rows(rows_path)).set_index(["model", "method", "preset", "task", "metric", "protocol"])
    t = s.loc[("bert-base-uncased", "teacher", "", "mrpc", "f1", "")]
    assert (t["mean"], t["std"], t["n"]) == (91.0, 1.0, 3)
    k = s.loc[("bert-base-uncased", "kronecker", "kb8", "mrpc", "f1", "")]
    assert (k["mean"], k["n"]) == (88.5, 2) and k["std"] == pytest.approx(math.sqrt(0.5))
    assert k["failed"] == "failed: CUDA out of memory"  # "superseded" is gone: seed 9 later ran
    assert k["params"] == 14.3e6 and k["latency_ms"] == 4.0
    assert s.loc[("bert-base-uncased", "kronecker", "kb8", "mrpc", "accuracy", ""), "n"] == 1
    skipped = s.loc[("bert-base-uncased", "kronecker", "kb21", "mrpc", "accuracy", "")]  # no metric -> every metric
    assert skipped["n"] == 0 and skipped["failed"] == "skipped: no kb21 ckpt" and math.isnan(skipped["mean"])
    assert s.loc[("bert-base-uncased", "teacher", "", "paws", "accuracy", ""), "source_task"] == "mrpc"
    one = s.loc[("bert-base-uncased", "no-kd-pretrain", "kb8", "mrpc", "f1", "")]
    assert one["n"] == 1 and math.isnan(one["std"])
    zs = s.loc[("gpt2", "kronecker", "kngpt2", "wikitext-103", "perplexity", "zeroshot-stride")]
    assert (zs["mean"], zs["n"]) == (40.0, 2)


def test_glue_table_cells_delta_retention_failures_and_paper_rows(rows_path):
    g = tables.glue_table(load_rows(rows_path))
    ours = g[g["source"] == "ours"]
    teacher = pick(ours, model="bert-base-uncased", method="teacher")
    assert teacher["mrpc f1"] == "91.00 ± 1.00 (n=3)" and teacher["mrpc f1 ret%"] == "100.0"
    kb8 = pick(ours, method="kronecker", preset="kb8")
    assert kb8["mrpc f1"] == "88.50 ± 0.71 (n=2); failed: CUDA out of memory"
    assert kb8["mrpc f1 Δ"] == "-2.50" and kb8["mrpc f1 ret%"] == "97.3"
    assert kb8["mrpc accuracy"] == "85.00 ±– (n=1); failed: CUDA out of memory"
    assert kb8["params (M)"] == "14.30" and kb8["GFLOPs"] == "5.20" and kb8["latency (ms)"] == "4.00"
    kb21 = pick(ours, method="kronecker", preset="kb21")
    assert kb21["mrpc f1"] == kb21["mrpc accuracy"] == "skipped: no kb21 ckpt"
    assert kb21["sst2 accuracy"] == "–" and kb21["params (M)"] == "–"
    cf8 = pick(ours, model="minilm-l6", method="kronecker")  # embedded task, its own teacher (minilm-l6)
    assert cf8["embedded-pair accuracy Δ"] == "-2.00" and cf8["embedded-pair accuracy ret%"] == "97.5"
    assert "embedded-pair ~ MRPC/QQP" in g.attrs["note"] and "paws" not in g.columns
    paper = pick(g, source="KroneckerBERT Table 2", preset="kb8")  # KroneckerBERT Table 2, KB8 row
    assert paper["mnli accuracy"] == "83" and paper["cola mcc"] == "39.8" and paper["avg"] == "77.7"
    assert paper["mnli accuracy Δ"] == "-0.90" and paper["params (M)"] == "14.30"
    assert pick(g, source="KroneckerBERT Table 4", preset="kb8")["qqp accuracy"] == "90.9"
    assert pick(g, source="KnGPT2 summary [S]", split="test", method="kronecker")["avg"] == "77.42"
    assert list(g["source"]).index("ours") == 0 and not g.isna().any().any() and not (g == "").any().any()


def test_ood_lm_squad_and_ablation_tables(rows_path):
    df = load_rows(rows_path)
    ood = tables.ood_table(df)
    col = "mrpc→paws accuracy (validation)"
    assert pick(ood, source="ours", preset="kb8")[col + " Δ"] == "-1.00"
    assert pick(ood, source="KroneckerBERT Table 9", preset="kb8")[col] == "61.4"
    assert pick(ood, source="KroneckerBERT Table 9", method="teacher")["sst2→imdb accuracy (test)"] == "88"

    lm = tables.lm_table(df)
    zs = pick(lm, source="ours", method="kronecker", protocol="zeroshot-stride")
    ft = pick(lm, source="ours", method="kronecker", protocol="finetuned")  # protocols never share a row
    assert zs["wikitext-103 perplexity"] == "40.00 ± 0.00 (n=2)" and zs["wikitext-103 perplexity Δ"] == "+10.00"
    assert zs["wikitext-103 perplexity ret%"] == "75.0" and ft["wikitext-103 perplexity ret%"] == "81.0"
    assert "teacher / ours" in lm.attrs["note"]
    card = pick(lm, source="DistilGPT2 model card", method="distil")
    assert card["wikitext-103 perplexity"] == "21.1" and card["protocol"] == "finetuned"
    assert pick(lm, source="KnGPT2 summary [S]", method="kronecker")["wikitext-103 perplexity Δ"] == "–"

    sq = tables.squad_table(df)
    assert sq.attrs["ours"] == 0
    assert pick(sq, source="KroneckerBERT Table 5", preset="kb21")["squad exact_match"] == "70.7"

    ab = tables.ablation_table(df)
    assert pick(ab, source="ours", method="no-kd-pretrain")["mrpc f1 ret%"] == "76.9"
    assert pick(ab, source="ours", preset="kb8", method="kronecker")["train (s)"] == "100.00"
    assert pick(ab, source="KroneckerBERT Table 6", method="no-task-kd")["sst2 accuracy"] == "88.8"
    assert "gpt2" not in set(ab["model"][ab["source"] == "ours"])  # no ablation or baseline ran on wikitext-103


def test_teacher_fallback_only_by_name():
    import pandas as pd

    lm = dict(task="wikitext-103", split="test", metric="perplexity", protocol="zeroshot-stride")
    df = pd.DataFrame([row(model="gpt2", value=30.0, **lm), row(model="distilgpt2", method="distil", value=45.0, **lm),
                       row(model="bert-base-uncased", task="sst2", metric="accuracy", value=92.0),
                       row(model="tiny-student", method="distil", task="sst2", metric="accuracy", value=80.0)])
    distil = pick(tables.lm_table(df, reported=False), model="distilgpt2")  # no distilgpt2 teacher: gpt2's
    assert distil["wikitext-103 perplexity Δ"] == "+15.00" and distil["wikitext-103 perplexity ret%"] == "66.7"
    glue = tables.glue_table(df, reported=False)  # bert-base-uncased is not tiny-student's teacher
    assert pick(glue, model="tiny-student")["sst2 accuracy Δ"] == "–"


def test_lm_table_shows_non_embedding_params():
    """The LM table (only it) has a non-embedding params column, from the perplexity rows' params_no_embedding."""
    import pandas as pd

    lm = dict(task="embedded-lm", split="test", metric="perplexity", protocol="zeroshot-1024")
    df = pd.DataFrame([row(model="smollm2-135m", value=20.0, params=134.5e6, params_no_embedding=106.2e6, **lm),
                       row(model="smollm2-135m", method="kronecker", preset="cf=4", value=60.0, params=40e6,
                           params_no_embedding=27e6, **lm)])
    table = tables.lm_table(df)
    assert pick(table, source="ours", method="teacher")["non-emb. params (M)"] == "106.20"
    assert pick(table, source="ours", preset="cf=4")["embedded-lm perplexity ret%"] == "33.3"
    assert pick(table, source="krony-PT README [S]", method="teacher")["non-emb. params (M)"] == "–"
    assert "non-emb. params (M)" not in tables.glue_table(df, reported=False)


def test_write_all_tables_and_figures(rows_path, tmp_path):
    paths = tables.table_all(rows_path, tmp_path / "tables")
    names = {p.name for p in paths}
    assert {f"{t}.{e}" for t in ("glue", "squad", "ood", "lm", "ablation", "summary") for e in ("md", "csv", "tex")} \
        == names and all(p.stat().st_size for p in paths)
    assert f"no rows for this table in {rows_path}" in (tmp_path / "tables" / "squad.md").read_text()
    assert "failed: CUDA out of memory" in (tmp_path / "tables" / "glue.csv").read_text()

    log = tmp_path / "log.jsonl"
    log.write_text('{"step": 1, "loss": 4.0, "lr": 1e-4}\n{"step": 1, "eval_loss": 3.0}\n{"step": 2, "loss": 3.0}\n')
    figs = figures.figures(rows_path, {"kb8": str(log)}, tmp_path / "figs")
    assert len(figs) == 14 and {p.suffix for p in figs} == {".png", ".pdf"} and all(p.stat().st_size for p in figs)
    assert not list((tmp_path / "figs").glob(".*.tmp"))


def test_empty_rows_still_write_every_output(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert len(tables.table_all(empty, tmp_path / "t")) == 18
    assert "no rows for this table" in (tmp_path / "t" / "lm.md").read_text()
    paths = figures.score_vs(load_rows(empty), "flops", tmp_path / "f") + figures.training_curves({}, tmp_path / "f")
    assert [p.name for p in paths] == ["score_vs_flops_bert.png", "score_vs_flops_bert.pdf", "score_vs_flops_gpt2.png",
                                       "score_vs_flops_gpt2.pdf", "training_curves.png", "training_curves.pdf"]


@pytest.mark.parametrize("line, message", [
    ("{not json", "all_results.jsonl:2: invalid JSON"),
    (json.dumps({k: v for k, v in row().items() if k != "split"}), "all_results.jsonl:2: missing key(s) split"),
    (json.dumps(row(status="failed", value=None)), "missing key(s) reason"),
    (json.dumps(row(value="88")), "not a finite number"),
    (json.dumps(row(task="mrcp")), "unknown task 'mrcp'"),
    (json.dumps(row(metric="mcc")), "metric 'mcc' is not one of task mrpc's"),
    (json.dumps(row(status="crashed")), "status 'crashed'"),
])
def test_bad_rows_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "all_results.jsonl"
    path.write_text(json.dumps(row()) + "\n" + line + "\n")
    with pytest.raises(KronbenchError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_rows(path)


def test_missing_files_and_bad_log_args(tmp_path):
    with pytest.raises(KronbenchError, match="no such results file"):
        load_rows(tmp_path / "nope.jsonl")
    with pytest.raises(KronbenchError, match="LABEL=PATH"):
        figures.parse_logs(["kb8"])
    assert figures.parse_logs(["a=b=c.jsonl"]) == {"a": "b=c.jsonl"}
    with pytest.raises(KronbenchError, match="no such training log"):
        figures.training_curves({"x": tmp_path / "none.jsonl"}, tmp_path)


def test_reported_yaml_sections_load_and_bad_entries_are_named(monkeypatch):
    for section in ("glue_test", "glue_dev", "squad", "ood", "ablation", "lm"):
        assert len(tables.reported(section))
    assert set(presets.reported()["preset"]) == {"teacher", "kb8", "kb21", "kb5", "kngpt2"}  # Table 1 still loads
    monkeypatch.setattr(tables, "_reported_yaml", lambda: {"ood": [
        {"source": "x", "model": "m", "method": "teacher", "split": "validation", "scores": {"paws": {"mcc": 1}}}]})
    with pytest.raises(KronbenchError, match=r"reported.yaml: ood\[0\].scores.paws.mcc"):
        tables.reported("ood")


def test_zero_teacher_score_has_no_retention(tmp_path):
    """A teacher scoring 0 (e.g. MCC of a tiny model) gives Δ but no retention, instead of dividing by zero."""
    from kronbench.report import tables

    rows = [{"model": "m", "method": m, "preset": p, "task": "embedded-pair", "split": "validation", "seed": 0,
             "metric": "f1", "value": v, "params": 1, "params_no_head": 1, "flops": 1, "latency_ms": None,
             "latency_setup": None, "train_seconds": 1.0, "config_hash": "x", "git_sha": None, "versions": {},
             "protocol": None, "source_task": None} for m, p, v in (("teacher", None, 0.0), ("kronecker", "cf=2", 5.0))]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = tables.glue_table(tables.load_rows(path), reported=False)
    ours = table[table["method"] == "kronecker"].iloc[0]
    assert ours["embedded-pair f1 Δ"] == "+5.00" and "embedded-pair f1 ret%" not in table.columns


def test_compare_rows_ignores_timings_only(tmp_path):
    """ci/compare-rows.py: rows equal but for timings, latency and the git sha agree; a changed score, a changed
    config hash or a missing row are each reported, with exit 1."""
    import subprocess
    import sys

    from conftest import ROOT

    row = {"model": "m", "method": "kronecker", "preset": "cf=8", "task": "t", "split": "validation", "seed": 0,
           "metric": "accuracy", "protocol": None, "value": 61.5, "config_hash": "abc", "train_seconds": 3.0,
           "latency_ms": 10.0, "latency_noisy": False, "git_sha": "1"}
    other = {**row, "metric": "f1", "value": 40.0}

    def run(old, new, *extra):
        a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
        a.write_text("".join(json.dumps(r) + "\n" for r in old))
        b.write_text("".join(json.dumps(r) + "\n" for r in new))
        return subprocess.run([sys.executable, str(ROOT / "ci/compare-rows.py"), str(a), str(b), *extra],
                              capture_output=True, text=True)

    p = run([row, other], [{**other, "train_seconds": 9.0}, {**row, "latency_ms": 12.5, "git_sha": "2"}])
    assert p.returncode == 0 and p.stdout.startswith("same rows: 2 rows"), p.stdout + p.stderr
    p = run([row, other], [{**row, "value": 61.6}, {**other, "config_hash": "abd"}])
    assert p.returncode == 1 and "value: 61.5 != 61.6" in p.stdout and "config_hash: 'abc' != 'abd'" in p.stdout
    p = run([row, other], [row])
    assert p.returncode == 1 and "only in the first" in p.stdout
    here, there = {**row, "base": "local:/ck/a/runs/m"}, {**row, "base": "local:/ck/b/runs/m"}  # two checkouts
    assert run([here], [there]).returncode == 1
    assert run([here], [there], "--roots", "/ck/a", "/ck/b").returncode == 0
