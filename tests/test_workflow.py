"""The Snakemake workflow: lint, dry-runs of every config, config errors before any job, and config/tiny.yaml end
to end (every rule, a few minutes on 2 CPU cores) with its gathered rows and tables checked. The plan itself (grid,
settings, run names, errors) is unit-tested without Snakemake in tests/test_plan.py; here, that Snakemake turns it
into the jobs and commands it should.

Every run writes under tmp_path (--config results_dir=... tables_dir=...), never into the repo's results/.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SNAKEMAKE, TINY

CONFIGS = ["config/config.yaml", "config/paper.yaml", "config/tiny.yaml"]


def snakemake(*args, timeout=120) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return subprocess.run([str(SNAKEMAKE), *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def out_of(p: subprocess.CompletedProcess) -> str:
    return p.stdout + p.stderr


def job_counts(text: str) -> dict[str, int]:
    """The 'Job stats' table of a dry-run: rule -> jobs."""
    counts, inside = {}, False
    for line in text.splitlines():
        if line.startswith("Job stats:"):
            inside, counts = True, {}
            continue
        parts = line.split()
        if inside and len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
        elif inside and not parts:
            inside = False
    return counts


def plan(config: str, tmp_path: Path, *targets: str) -> subprocess.CompletedProcess:
    return snakemake("-n", "--nolock", *(targets or ("all_tables", "all_figures")), "--configfile", config,
                     "--config", f"results_dir={tmp_path / 'results'}", f"tables_dir={tmp_path / 'tables'}")


def test_lint():
    p = snakemake("--lint")
    assert p.returncode == 0, out_of(p)


@pytest.mark.parametrize("config", CONFIGS)
def test_dry_run_plans_every_stage(config, tmp_path):
    p = plan(config, tmp_path)
    assert p.returncode == 0, out_of(p)
    counts = job_counts(out_of(p))
    for rule in ("prepare_data", "finetune_teacher", "compress", "distill_pretrain", "distill_task", "evaluate_task",
                 "evaluate_lm", "gather", "table_all", "table_presets", "figures", "count_preset"):
        assert counts.get(rule, 0) >= 1, (rule, counts)
    if config != "config/paper.yaml":
        assert counts["pretrain_lm"] == 1  # the self-pretrained GPT-2 base
    if config == "config/config.yaml":
        # distill_task: the MiniLM and GPT-2 students, MiniLM's three Table 6 ablations and init-nkp, GPT-2's
        # distil student; compress: kronecker's two students and init-nkp's own student0
        assert counts["finetune_teacher"] == 2 and counts["distill_task"] == 2 + 4 + 1, counts
        assert (counts["compress"], counts["distill_pretrain"]) == (3, 3), counts
        assert (counts["baseline_rosita"], counts["baseline_distil"]) == (1, 1), counts
    if config == "config/tiny.yaml":
        assert (counts["baseline_rosita"], counts["distill_task"]) == (1, 1 + 2), counts
    assert "huggingface.co" not in out_of(p)


def smk_rules() -> dict[str, str]:
    """From workflow/rules/*.smk: rule name -> its text."""
    blocks = {}
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        for block in re.split(r"^(?=rule \w+:)", smk.read_text(), flags=re.M):
            if m := re.match(r"rule (\w+):", block):
                blocks[m[1]] = block
    return blocks


def training_rules() -> set[str]:
    """Rules whose command starts with the config's launcher (`{params.cmd}`: the ones that train)."""
    return {rule for rule, text in smk_rules().items() if "{params.cmd}" in text}


def test_every_torch_rule_declares_its_threads():
    """Snakemake exports a job's threads as OMP_NUM_THREADS (torch's thread count): training and compress rules
    take config `threads` (TORCH_THREADS), as do the evaluate rules (they score, they do not time); compare_latency
    takes all of --cores (LATENCY_THREADS) so that nothing of ours runs beside the timed forwards. The integration
    test sees the latter in the rows' latency_setup."""
    blocks = smk_rules()
    for rule in sorted({r for r in training_rules() if r in blocks} | {"compress"}):
        assert "threads: TORCH_THREADS" in blocks[rule], f"rule {rule} does not declare threads: TORCH_THREADS"
    for rule in ("evaluate_task", "evaluate_lm"):
        assert "threads: TORCH_THREADS" in blocks[rule], f"rule {rule} does not declare threads: TORCH_THREADS"
    assert "threads: LATENCY_THREADS" in blocks["compare_latency"]
    light = {r for r, text in blocks.items() if "threads:" not in text}
    assert light == {"prepare_data", "tokenize_corpus", "count_preset", "gather", "table_presets", "table_all",
                     "figures"}, light


def slurm_profile(**env) -> dict:
    """profiles/slurm as Snakemake reads it (YTE rendered with KRONBENCH_SLURM_* = env): key -> value, with
    set-resources as rule -> {resource: value} and set-threads as rule -> threads."""
    from snakemake.profiles import ProfileConfigFileParser

    old = {k: v for k, v in os.environ.items() if k.startswith("KRONBENCH_SLURM_")}
    for k in old:
        del os.environ[k]
    os.environ.update({f"KRONBENCH_SLURM_{k}": str(v) for k, v in env.items()})
    try:
        with open(ROOT / "profiles/slurm/config.yaml") as f:
            parsed = dict(ProfileConfigFileParser().parse(f))
    finally:
        for k in env:
            del os.environ[f"KRONBENCH_SLURM_{k}"]
        os.environ.update(old)
    resources: dict[str, dict] = {}
    for entry in parsed["set-resources"]:
        rule, assign = entry.split(":", 1)
        key, value = assign.split("=", 1)
        resources.setdefault(rule, {})[key] = value
    parsed["set-resources"] = resources
    parsed["set-threads"] = {r: int(t) for r, t in (e.split("=") for e in parsed["set-threads"])}
    parsed["default-resources"] = dict(e.split("=", 1) for e in parsed["default-resources"])
    return parsed


class _Resources(dict):
    __getattr__ = dict.get  # the plugin reads job.resources.gres as well as job.resources.get("gres")


EVALUATE_RULES = {"evaluate_task", "evaluate_lm"}


def test_slurm_profile_gives_every_training_rule_a_gpu(tmp_path):
    """profiles/slurm: each training rule asks for a GPU through the plugin's `gres` resource (the plugin refuses
    --gres inside slurm_extra: it checks this with the plugin's own validation), with threads = cpus_per_task (a
    rule left out would run on the CPU partition for the 60-minute default); the evaluate rules ask for one GPU
    (they score on it, evaluate.device auto) with the evaluate threads; compare_latency stays a CPU job with a node
    alone; every rule it names exists; the KRONBENCH_SLURM_* variables change what they document (GRES empty: no
    GPU anywhere); Snakemake with the SLURM executor plugin plans config/retention.yaml (rounds included) with it."""
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm.utils import set_gres_string
    from snakemake_executor_plugin_slurm.validation import validate_slurm_extra

    profile = slurm_profile()
    resources, threads = profile["set-resources"], profile["set-threads"]
    trains = training_rules()
    assert {"finetune_teacher", "distill_pretrain", "distill_task", "baseline_distil", "baseline_rosita"} <= trains
    for rule in sorted(trains):
        assert rule in resources and rule in threads, f"profiles/slurm has no resources for training rule {rule}"
        assert resources[rule]["slurm_partition"] == "gpu" and resources[rule]["gres"] == "gpu:1", rule
        assert threads[rule] == int(resources[rule]["cpus_per_task"]) == 8, rule
    for rule, res in resources.items():
        job = SimpleNamespace(resources=_Resources(res), name=rule)
        validate_slurm_extra(job)  # raises WorkflowError on executor-managed options such as --gres
        assert set_gres_string(job) == (" --gres=gpu:1" if rule in trains | EVALUATE_RULES else ""), rule
    assert "slurm_account" not in profile["default-resources"]  # the plugin picks the user's default account
    for rule in EVALUATE_RULES:
        assert resources[rule]["slurm_partition"] == "gpu", rule
    latency = resources["compare_latency"]
    assert (latency["slurm_partition"], latency.get("gres"), latency["slurm_extra"]) == ("cpu", None, "--exclusive")

    assert threads["evaluate_task"] == int(resources["evaluate_task"]["cpus_per_task"]) == 8  # EVAL_CPUS = CPUS
    custom = slurm_profile(ACCOUNT="proj42", PARTITION="short", GPU_PARTITION="a100", GRES="gpu:a100:4", CPUS=16,
                           EVAL_CPUS=4, MAX_MEM_MB=20000)
    for rule, res in custom["set-resources"].items():
        assert res["slurm_account"] == "proj42" and int(res["mem_mb"]) <= 20000, (rule, res)
        want = (("a100", "gpu:a100:4", "16") if rule in trains else  # evaluate: one GPU of the same type
                ("a100", "gpu:a100:1", "4") if rule in EVALUATE_RULES else ("short", None, res.get("cpus_per_task")))
        assert (res["slurm_partition"], res.get("gres"), res.get("cpus_per_task")) == want, (rule, res)
    assert custom["set-threads"]["distill_task"] == 16 and custom["set-threads"]["evaluate_lm"] == 4
    assert custom["set-resources"]["evaluate_lm"]["cpus_per_task"] == "4"
    cpu_only = slurm_profile(GRES="")  # a CPU-only check of the profile: no GPU requested anywhere
    assert not any("gres" in res for res in cpu_only["set-resources"].values())

    listed = snakemake("--list-rules")
    assert listed.returncode == 0, out_of(listed)
    rules = set(listed.stdout.split())
    assert set(resources) | set(threads) <= rules, sorted((set(resources) | set(threads)) - rules)
    p = snakemake("-n", "--nolock", "all_tables", "--configfile", "config/retention.yaml", "--workflow-profile",
                  "profiles/slurm", "--config", f"results_dir={tmp_path}", f"tables_dir={tmp_path / 'tables'}")
    assert p.returncode == 0, out_of(p)
    counts = job_counts(out_of(p))  # three runs of one KD pre-training (rounds), from one tokenised corpus
    assert (counts["distill_pretrain"], counts["tokenize_corpus"]) == (3, 1), counts


@pytest.mark.parametrize("keep", [False, True])
def test_evaluate_device_and_keep_intermediate_reach_the_commands(tmp_path, keep):
    """evaluate.device (default auto) reaches every `kronbench evaluate`; keep_intermediate adds --keep-intermediate
    to every training command, and only to those."""
    extra = ["keep_intermediate=True", "evaluate={device: cpu}"] if keep else []  # --config takes True, not true
    p = snakemake("-n", "--nolock", "-p", "all_tables", "--configfile", "config/tiny.yaml", "--config",
                  f"results_dir={tmp_path}", f"tables_dir={tmp_path / 'tables'}", *extra)
    text = out_of(p)
    assert p.returncode == 0, text
    lines = text.splitlines()
    evals = [ln for ln in lines if re.search(r"kronbench evaluate-(task|lm) ", ln)]
    assert evals and all(f"--device {'cpu' if keep else 'auto'} " in ln for ln in evals), evals[:2]
    trains = [ln for ln in lines if re.search(r"kronbench (finetune-teacher|pretrain-lm|distill-\w+|baseline-\w+) ", ln)]
    assert len(trains) >= 6 and all(("--keep-intermediate" in ln) == keep for ln in trains), trains[:2]
    assert not any("--keep-intermediate" in ln for ln in lines if ln not in trains)


def write_config(tmp_path: Path, edit) -> Path:
    cfg = yaml.safe_load((ROOT / "config/tiny.yaml").read_text())
    edit(cfg)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _assert_plan_fails(tmp_path, edit, headline, names):
    """The edited default config stops the plan with `headline` and every one of `names` in its message."""
    p = plan(str(write_config(tmp_path, edit)), tmp_path)
    assert p.returncode != 0
    text = out_of(p)
    assert headline in text, text
    for name in names:
        assert name in text, (name, text)


@pytest.mark.parametrize("edit, names", [
    (lambda c: c["models"]["minilm-l6"].update(bogus_key=1), ["bogus_key", "Additional properties"]),
    (lambda c: c["stages"]["distill_task"]["train"].__setitem__("max_steps", "two"), ["max_steps"]),
    (lambda c: c.update(seed=[0]), ["seed"]),
    (lambda c: c["stages"]["baseline_rosita"]["rosita"].update(target={}), ["target"]),
    (lambda c: c["stages"]["baseline_rosita"]["train"].update(middle={"max_steps": 1}), ["middle"]),
    (lambda c: c.update(threads=0), ["threads", "minimum"]),
])
def test_invalid_config_stops_before_any_job(tmp_path, edit, names):
    _assert_plan_fails(tmp_path, edit, "Error validating config", names)
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("edit, names", [  # every name check: tests/test_plan.py; here, that the plan stops the run
    (lambda c: c["models"]["minilm-l6"].update(presets=["kb9"]), ["models.minilm-l6.presets", "kb9"]),
    (lambda c: c.update(overrides=[{"method": "rosita2", "set": {}}]), ["overrides[0].method", "rosita2"]),
])
def test_unknown_names_stop_before_any_job(tmp_path, edit, names):
    _assert_plan_fails(tmp_path, edit, "Invalid names in the config", names)


def test_target_after_configfile_stops_with_the_fix():
    """`--configfile config/tiny.yaml all_tables` swallows the target as a config file: a clear stop, no jobs."""
    p = snakemake("-n", "--nolock", "--configfile", "config/tiny.yaml", "all_tables", "all_figures")
    text = out_of(p)
    assert p.returncode != 0 and "all_tables, all_figures after --configfile was read as a config file" in text
    assert "Put targets first: snakemake all_tables --configfile" in text and "FileNotFoundError" not in text


def test_paper_jobs_and_commands(tmp_path):
    """The paper grid's dry run: job counts per rule (3 presets x 11 trained tasks x seeds, 5 for CoLA/RTE/MRPC;
    distil and rosita-kb8 beside them; KB8's Table 6 ablations on MNLI, SST-2, MRPC; mnli-mm scored by the MNLI
    models, never trained), and the plan's settings, students and tokens reaching the commands."""
    p = snakemake("-n", "--nolock", "-p", "all_tables", "--configfile", "config/paper.yaml", "--config",
                  f"results_dir={tmp_path}", f"tables_dir={tmp_path / 'tables'}")
    text = out_of(p)
    assert p.returncode == 0, text
    counts = job_counts(text)
    bert_runs = 8 * 3 + 3 * 5  # (task, seed) pairs: 12 tasks less mnli-mm, CoLA/RTE/MRPC with 5 seeds
    gpt_runs = 6 * 3 + 3 * 5  # 10 GLUE tasks less mnli-mm
    assert counts["finetune_teacher"] == bert_runs + 2 * gpt_runs, counts  # gpt2 and distilgpt2
    kronecker, distil, ablations = 3 * bert_runs + gpt_runs, bert_runs + gpt_runs, 3 * (3 + 3 + 5)
    assert counts["distill_task"] == kronecker + distil + ablations, counts
    assert (counts["compress"], counts["baseline_rosita"], counts["baseline_distil"]) == (4, bert_runs, 2 * 5)
    assert counts["tokenize_corpus"] == 2 and "pretrain_lm" not in counts  # hub models

    def command(out):
        return next(ln for ln in text.splitlines() if f"--out {tmp_path}/runs/{out} " in ln)

    def settings(line):
        return json.loads(re.search(r"--config '([^']*)'", line)[1])

    line = command("bert-base-uncased/cola/kronecker-kb8/seed4")  # Table 8: KB8 CoLA 5e-5, 20 epochs; seed 4
    assert "Shell command: kronbench distill-task --student " in line and "--method kronecker " in line
    assert {k: settings(line)["train"][k] for k in ("lr", "epochs", "seed")} == {"lr": 5e-5, "epochs": 20, "seed": 4}
    line = command("bert-base-uncased/mnli/decompose-only-kb8/seed0")  # student0, no teacher, CE only
    assert "_general/kronecker-kb8/compressed/model " in line and "--teacher" not in line
    assert settings(line)["loss"] == {"weights": {"ce": 1.0}}
    line = command("bert-base-uncased/mrpc/no-kd-pretrain-kb8/seed3")
    assert "/compressed/model --teacher " in line and "mrpc/teacher/seed3/model " in line
    line = command("bert-base-uncased/sst2/rosita-kb8/seed0")
    assert "baseline-rosita --teacher " in line and "--preset kb8 " in line
    assert settings(line)["train"]["final"]["lr"] == 1e-5
    line = command("gpt2/_general/distil/seed0")
    assert "baseline-distil --teacher gpt2@607a30d783dfa663caf39e06633721c8d4cfcd7e " in line
    assert f"--tokens {tmp_path}/tokens/wikitext-103/gpt2-1024.npz " in line
    line = command("bert-base-uncased/_general/kronecker-kb8/seed0")
    assert "distill-pretrain " in line and "--teacher bert-base-uncased@86b5e093" in line
    assert f"--tokens {tmp_path}/tokens/wikitext-103/bert-base-uncased-512.npz " in line
    # mnli-mm: rows of the MNLI models, no run trains on it
    assert not re.search(rf"--out {tmp_path}/runs/[^ ]*/mnli-mm/", text)
    evals = [ln for ln in text.splitlines() if f"{tmp_path}/rows/bert-base-uncased/mnli-mm/kronecker-kb8/seed0/" in ln
             and "kronbench evaluate-task" in ln]
    assert evals and f"{tmp_path}/runs/bert-base-uncased/mnli/kronecker-kb8/seed0/model" in evals[0], evals


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.integration
def test_tiny_end_to_end(tiny_local, tmp_path):
    res, tab, p = tiny_local  # conftest: --cores 2 all_tables all_figures --configfile config/tiny.yaml
    assert p.returncode == 0, out_of(p)[-5000:]
    args = [*TINY, f"results_dir={res}", f"tables_dir={tab}"]

    rows = [json.loads(line) for line in (res / "all_results.jsonl").read_text().splitlines()]
    cells = {(r["model"], r["method"], r["preset"], r["task"], r["split"], r["protocol"]) for r in rows}
    for task in ("embedded-pair", "embedded-pair-news"):  # the task and its OOD set (source_task)
        assert ("minilm-l6", "teacher", None, task, "validation", None) in cells
        assert ("minilm-l6", "kronecker", "cf=8", task, "validation", None) in cells
    for method, preset in (("teacher", None), ("kronecker", "kngpt2")):
        assert ("gpt2-embedded", method, preset, "embedded-lm-news", "test", "zeroshot-stride") in cells
    ood = [r for r in rows if r["task"] == "embedded-pair-news"]
    assert ood and all(r["source_task"] == "embedded-pair" for r in ood)
    # latency from the compare_latency jobs (one per family), with its spread and the ratio to the teacher
    keys = ("latency_ms", "latency_iqr_ms", "latency_repeats", "latency_noisy", "latency_vs_teacher")
    assert all(r[k] is not None for r in rows for k in keys), [r for r in rows if None in map(r.get, keys)][:1]
    assert all(r["latency_vs_teacher"] == 1.0 for r in rows if r["method"] == "teacher")
    # compare_latency takes all of --cores (LATENCY_THREADS): 2 threads, not 1 beside a training job
    assert {r["latency_setup"].split("), ")[1].split(",")[0] for r in rows} == {"2 threads"}
    assert len(list((res / "latency").glob("*/seed0.json"))) == 2  # bert and gpt2 families
    metrics = json.loads((tab / "metrics.json").read_text())
    assert metrics["rows"] == len(rows) and "kronecker-cf=8" in metrics["scores"]["minilm-l6"]

    # The baseline and the ablation: ROSITA on the task and its OOD set, decompose-only on the task
    for task in ("embedded-pair", "embedded-pair-news"):
        assert ("minilm-l6", "rosita", "cf=8", task, "validation", None) in cells
    assert ("minilm-l6", "decompose-only", "cf=8", "embedded-pair", "validation", None) in cells
    assert ("minilm-l6", "decompose-only", "cf=8", "embedded-pair-news", "validation", None) not in cells
    # issue 21: kronecker from the activation-fitted student0 (tiny.yaml), init-nkp from NKP's, both recorded
    inits = {(r["method"], r["init"]) for r in rows if r["model"] == "minilm-l6"}
    assert {("kronecker", "activation"), ("init-nkp", "nkp"), ("decompose-only", "activation"),
            ("teacher", None), ("rosita", None)} <= inits, inits
    summary = json.loads(next(res.glob("runs/minilm-l6/_general/kronecker-cf=8/compressed/summary.json")).read_text())
    assert summary["init"] == "activation" and set(summary["errors"]["mean_in_model"]) == {"nkp", "activation"}

    glue = [r for r in read_csv(tab / "glue.csv") if r["source"] == "ours" and r["method"] != "chance"]
    assert {(r["model"], r["method"], r["preset"]) for r in glue} == {
        ("minilm-l6", "teacher", "–"), ("minilm-l6", "kronecker", "cf=8"), ("minilm-l6", "decompose-only", "cf=8"),
        ("minilm-l6", "init-nkp", "cf=8"), ("minilm-l6", "rosita", "cf=8")}
    assert all(r["embedded-pair accuracy"] != "–" for r in glue)
    ablation = {r["method"]: r for r in read_csv(tab / "ablation.csv") if r["source"] == "ours"}
    assert set(ablation) == {"chance", "teacher", "kronecker", "decompose-only", "init-nkp", "rosita"}  # chance: 18
    assert (ablation["kronecker"]["init"], ablation["init-nkp"]["init"], ablation["rosita"]["init"]) == (
        "activation", "nkp", "–")
    assert ablation["init-nkp"]["params vs kronecker (%)"] == "100.0"  # the same budget
    assert ablation["decompose-only"]["params vs kronecker (%)"] == "100.0"
    assert abs(float(ablation["rosita"]["params vs kronecker (%)"]) - 100) < 5  # targets set to cf=8's budget
    rosita = json.loads(next(res.glob("runs/minilm-l6/embedded-pair/rosita-cf=8/seed0/summary.json")).read_text())
    assert abs(rosita["params_ratio"] - 1) <= 0.05 and rosita["preset"] == "cf=8"
    lm = [r for r in read_csv(tab / "lm.csv") if r["source"] == "ours"]
    assert {(r["method"], r["protocol"]) for r in lm} == {("teacher", "zeroshot-stride"),
                                                          ("kronecker", "zeroshot-stride")}
    assert len(list((tab / "figures").glob("*.png"))) == 7
    assert (tab / "presets.md").is_file()

    # Nothing left to do; a deleted rows file reruns its evaluation and the summaries, no training.
    p = snakemake("-n", *args)
    assert "Nothing to be done" in out_of(p), out_of(p)
    next(res.glob("rows/minilm-l6/embedded-pair/kronecker-*/seed0/validation.jsonl")).unlink()
    counts = job_counts(out_of(snakemake("-n", *args)))
    assert counts == {"evaluate_task": 1, "gather": 1, "table_all": 1, "figures": 1, "all_tables": 1,
                      "all_figures": 1, "total": 6}, counts

    p = snakemake("--report", tmp_path / "report.html", *args)
    assert p.returncode == 0 and (tmp_path / "report.html").stat().st_size > 0, out_of(p)
