"""kronbench.plan.estimate: a hand-made dry-run plan and a fake smoke results dir -> FLOPs, GPU-hours and disk
computed by hand below."""

import json
from pathlib import Path

import pytest
from conftest import ROOT

from kronbench.cli import main
from kronbench.plan import load_config
from kronbench.plan.estimate import estimate, parse_plan

R = "/x/results"
# The three formats a dry run prints: a rule's message (`Job N: ...` + Reason + Shell command, -n -p), a rule
# without message (`rule X:` + output:), and the Job stats table the parsed jobs are checked against.
PLAN = f"""Building DAG of jobs...
Job stats:
job                 count
----------------  -------
baseline_rosita         1
distill_task            1
distill_pretrain        1
evaluate_task           1
finetune_teacher        1
prepare_data            1
tokenize_corpus         1
total                   7


[Thu Dec  3 04:10:24 2026]
Job 1: Fine-tuning the bert-base-uncased teacher on rte, seed 0
Reason: Missing output files: {R}/runs/bert-base-uncased/rte/teacher/seed0/summary.json; Input files updated by another job: {R}/data/rte/manifest.json
Shell command: kronbench finetune-teacher --model bert-base-uncased --data {R}/data/rte --out {R}/runs/bert-base-uncased/rte/teacher/seed0 --config '{{"train":{{"batch_size":32,"epochs":3,"lr":2e-05,"seed":0}}}}' > {R}/logs/x.log 2>&1

[Thu Dec  3 04:10:24 2026]
Job 2: KD pre-training bert-base-uncased kb8 on {R}/data/wikitext-103, seed 0
Reason: Missing output files: {R}/runs/bert-base-uncased/_general/kronecker-kb8/seed0/summary.json
Shell command: kronbench distill-pretrain --out {R}/runs/bert-base-uncased/_general/kronecker-kb8/seed0 --config '{{"data":{{"block_size":512}},"train":{{"batch_size":64,"epochs":3,"seed":0}}}}' > {R}/logs/y.log 2>&1

[Thu Dec  3 04:10:24 2026]
Job 3: ROSITA baseline of bert-base-uncased at kb8's budget on mrpc, seed 0
Reason: Missing output files: {R}/runs/bert-base-uncased/mrpc/rosita-kb8/seed0/summary.json
Shell command: kronbench baseline-rosita --teacher {R}/runs/bert-base-uncased/mrpc/teacher/seed0/model --set train.batch_size=64 --set train.depth.lr=2e-05 --set train.depth.epochs=2 --set train.width.epochs=0.05 --set train.final.epochs=4.5 --set train.seed=0 > {R}/logs/z.log 2>&1

[Thu Dec  3 04:10:24 2026]
Job 4: Scoring bert-base-uncased kronecker-kb8 seed 0 on rte/validation
Reason: Missing output files: {R}/rows/bert-base-uncased/rte/kronecker-kb8/seed0/validation.jsonl
Shell command: kronbench evaluate-task --model {R}/runs/bert-base-uncased/rte/kronecker-kb8/seed0/model > {R}/logs/e.log 2>&1

[Thu Dec  3 04:10:24 2026]
rule distill_task:
    input: {R}/runs/gpt2/_general/distil/seed1/summary.json
    output: {R}/runs/gpt2/sst2/distil/seed1/summary.json
    jobid: 5
    reason: Missing output files: {R}/runs/gpt2/sst2/distil/seed1/summary.json
    wildcards: model=gpt2, task=sst2, seed=1

[Thu Dec  3 04:10:24 2026]
Job 6: Preparing rte (hub)
Reason: Missing output files: {R}/data/rte/manifest.json
Shell command: kronbench prepare-data rte --source hub --out {R}/data/rte > {R}/logs/p.log 2>&1

[Thu Dec  3 04:10:24 2026]
Job 7: Tokenising wikitext-103 for bert-base-uncased (blocks of 512)
Reason: Missing output files: {R}/tokens/wikitext-103/bert-base-uncased-512.npz
Shell command: kronbench tokenize-corpus > {R}/logs/t.log 2>&1
This was a dry-run (flag -n). The order of jobs does not reflect the order of execution.
"""
# What the gpt2 distil task stage (no command printed) reads its settings from: paper.yaml's distill_task (10
# epochs, batch 32; the CoLA override does not match sst2), as the plan resolves them.
CONFIG = load_config([ROOT / "config/paper.yaml"])

P = 12 * (4 * 768 * 768 + 2 * 768 * 3072)  # BERT-base / GPT-2 dense non-embedding weights: 84,934,656
P8 = 8 * (4 * 768 * 768 + 2 * 768 * 3072)  # ROSITA's 8-layer depth model
P6 = 6 * (4 * 768 * 768 + 2 * 768 * 3072)  # the half-depth distil student


def _write(path: Path, size: int | None = None, text: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text) if text is not None else path.write_bytes(b"x" * size)


@pytest.fixture
def smoke(tmp_path):
    s = tmp_path / "smoke"
    t1 = s / "runs/bert-base-uncased/rte/teacher/seed0"
    _write(t1 / "model/w.bin", 1000)
    _write(t1 / "summary.json", 10)
    _write(t1 / "checkpoints/step-2/w.bin", 5000)  # deleted at paper scale: not counted
    t2 = s / "runs/bert-base-uncased/squad/teacher/seed0"
    _write(t2 / "model/w.bin", 2000)
    _write(t2 / "summary.json", 10)
    kd = s / "runs/bert-base-uncased/_general/kronecker-kb8/seed0"
    _write(kd / "model/w.bin", 300)
    _write(kd / "summary.json", 10)
    ro = s / "runs/bert-base-uncased/rte/rosita-kb8/seed0"
    _write(ro / "model/w.bin", 100)
    _write(ro / "summary.json", 10)
    _write(ro / "segments/00-depth/model/w.bin", 7000)  # a segment model: deleted at paper scale
    _write(ro / "segments/00-depth/kept.json", 5)
    _write(s / "rows/bert-base-uncased/rte/teacher/seed0/validation.jsonl", 40)
    _write(s / "rows/bert-base-uncased/rte/kronecker-kb8/seed0/validation.jsonl", 60)
    rows = {"train": 32, "validation": 32, "test": 32}
    manifest = json.dumps({"task": "rte", "kind": "pair_classification", "rows": rows})
    _write(s / "data/rte/manifest.json", text=manifest)
    _write(s / "data/rte/train.parquet", 3200)
    _write(s / "data/rte/validation.parquet", 640)
    _write(s / "data/rte/test.parquet", 640)
    _write(s / "tokens/wikitext-103/bert-base-uncased-64.npz", 2000)
    _write(s / "tokens/wikitext-103/bert-base-uncased-64.json", text=json.dumps({"tokens": 1000}))
    return s


def _costs(result):
    return {j["job"].path.replace(R + "/", ""): j["cost"] for j in result["jobs"]}


def test_plan_parsing_finds_every_job_and_its_flags():
    plan = parse_plan(PLAN)
    assert plan.problems == []  # the job stats agree with the parsed jobs
    kinds = sorted(j.kind for j in plan.jobs)
    assert kinds == ["baseline_rosita", "distil_task", "distill_pretrain", "evaluate_task", "finetune_teacher",
                     "prepare_data", "tokenize_corpus"]
    rosita = next(j for j in plan.jobs if j.kind == "baseline_rosita")
    assert (rosita.model, rosita.task, rosita.method, rosita.preset, rosita.seed) == \
        ("bert-base-uncased", "mrpc", "rosita", "kb8", 0)
    assert rosita.flags["train"]["width"] == {"epochs": 0.05}
    cut = parse_plan(PLAN.replace("evaluate_task           1", "evaluate_task           5"))
    assert any("evaluate_task" in p and "5 job(s), 1 were parsed" in p for p in cut.problems)


def test_flops_and_gpu_hours_by_hand(smoke):
    result = estimate(PLAN, CONFIG, smoke=None, tflops=100)
    c = _costs(result)
    # Teacher, RTE: 2,490 rows // 32 = 77 steps/epoch, x 3 = 231 steps of 32 x 128 tokens; 6 P per token.
    t = c["runs/bert-base-uncased/rte/teacher/seed0/summary.json"]
    assert (t["steps"], t["tokens"]) == (231, 231 * 32 * 128) == (231, 946_176)
    assert t["flops"] == 6 * P * 946_176
    assert t["gpu_hours"] == pytest.approx(6 * P * 946_176 / 100e12 / 3600)
    # KD pre-training: 120 M WordPieces / 510 inner tokens = 235,294 blocks; // 64 = 3,676 steps/epoch, x 3;
    # the Kronecker student charged at the dense teacher: (6 + 2) P.
    k = c["runs/bert-base-uncased/_general/kronecker-kb8/seed0/summary.json"]
    assert (k["steps"], k["tokens"]) == (11_028, 11_028 * 64 * 512)
    assert k["flops"] == 8 * P * 361_365_504
    # ROSITA, MRPC, the shared batch 64 in every segment: 3,668 // 64 = 57 steps/epoch. depth 2 epochs = 114 steps
    # (8-layer student, 12-layer teacher); 9 width segments of ceil(0.05 x 57) = 3 steps and final ceil(4.5 x 57)
    # = 257 steps (taught by the 8-layer depth model).
    r = c["runs/bert-base-uncased/mrpc/rosita-kb8/seed0/summary.json"]
    depth, later = 114 * 64 * 128, (9 * 3 + 257) * 64 * 128
    assert r["steps"] == 114 + 9 * 3 + 257
    assert r["tokens"] == depth + later
    assert r["flops"] == depth * (6 * P8 + 2 * P) + later * (6 * P8 + 2 * P8)
    # distil task stage, no flags printed: the config's distill_task settings (10 epochs, batch 32).
    # 67,349 // 32 = 2,104 steps/epoch; half-depth student, full teacher.
    d = c["runs/gpt2/sst2/distil/seed1/summary.json"]
    assert d["settings_from"] == "config"
    assert (d["steps"], d["tokens"]) == (21_040, 21_040 * 32 * 128)
    assert d["flops"] == 21_040 * 32 * 128 * (6 * P6 + 2 * P)
    # Scoring a Kronecker student on RTE dev: 277 rows x 128 tokens x 2 P (charged dense).
    e = c["rows/bert-base-uncased/rte/kronecker-kb8/seed0/validation.jsonl"]
    assert (e["tokens"], e["flops"]) == (277 * 128, 2 * P * 277 * 128)
    total = t["flops"] + k["flops"] + r["flops"] + d["flops"] + e["flops"]
    assert result["gpu_hours"] == pytest.approx(total / 100e12 / 3600)
    assert result["settings_sources"] == {"flags": 3, "config": 1}
    assert result["disk"] is None  # no smoke given: pending


def test_disk_from_the_smoke_by_hand(smoke):
    result = estimate(PLAN, CONFIG, smoke=smoke)
    disk = result["disk"]
    runs = {(lab, p): v for (m, lab, p), v in disk["runs"].items()}
    # teacher: the median of the smoke's RTE (1,010 B) and SQuAD (2,010 B) teachers, checkpoints/ left out
    assert runs[("teacher (fine-tuned)", None)] == {"runs": 1, "each": 1510, "n_measured": 2}
    assert runs[("KD-pretrained (student1)", "kb8")]["each"] == 310
    assert runs[("rosita", "kb8")]["each"] == 115  # model + summary + kept.json, the segment model left out
    assert disk["runs_total"] == 1510 + 310 + 115
    # the gpt2 distil task student has no counterpart in this smoke: left out, and said so
    assert any("distil task student" in p for p in result["problems"])
    manifest = (smoke / "data/rte/manifest.json").stat().st_size
    assert disk["data"]["rte"]["bytes"] == pytest.approx(manifest + 3200 / 32 * 2490 + 640 / 32 * 277
                                                       + 640 / 32 * 3000)
    assert disk["tokens"][f"{R}/tokens/wikitext-103/bert-base-uncased-512.npz"]["bytes"] == pytest.approx(2 * 120e6)
    assert disk["rows"] == {"files": 1, "each": 50, "bytes": 50}
    assert disk["total"] == pytest.approx(1935 + manifest + 249_000 + 5_540 + 60_000 + 240e6 + 50)


def test_cli_writes_the_markdown(smoke, tmp_path, capsys):
    plan, config, out = tmp_path / "plan.txt", ROOT / "config/paper.yaml", tmp_path / "cost.md"
    plan.write_text(PLAN)
    assert main(["estimate-paper", "--plan", str(plan), "--config", str(config), "--smoke", str(smoke),
                 "--tflops", "50", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# Paper grid: estimated cost")
    assert "charged at the DENSE teacher's P" in text  # the method statement is printed
    assert "50 TFLOP/s" in text and "Total disk:" in text and "| rte |" in text
    assert capsys.readouterr().out.strip() == text.strip()
