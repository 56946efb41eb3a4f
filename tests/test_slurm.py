"""The cluster path on a real SLURM cluster: config/tiny.yaml through profiles/slurm with the README's command.

Needs a running cluster (`ci/slurm-up.sh` brings up slurmctld + slurmd + munge on this host; .ci/run does, as root,
and sets KRONBENCH_REQUIRE_SLURM=1 so that a cluster that did not come up fails the run instead of skipping it).
Elsewhere these tests skip and say why. The machine has no GPU: ci/slurm-up.sh declares GRES gpu (device files
linked to /dev/null) on the node, so the profile's GPU requests are submitted as written; the profile's knobs
(KRONBENCH_SLURM_*, _node_env) fit the jobs to the node; nothing in profiles/slurm is edited.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, SNAKEMAKE, TINY
from test_workflow import job_counts


def _cluster_problem() -> str | None:
    if shutil.which("sinfo") is None:
        return "no SLURM client (sinfo) on PATH; run ci/slurm-up.sh as root to start a one-node cluster"
    p = subprocess.run(["sinfo", "-h", "-o", "%P %t"], capture_output=True, text=True, timeout=30)
    if p.returncode != 0:
        return f"sinfo failed: {p.stderr.strip()[:300]}; run ci/slurm-up.sh as root"
    if not re.search(r"\b(idle|mix|alloc)\b", p.stdout):
        return f"no usable SLURM node: {p.stdout.strip()!r}"
    return None


PROBLEM = _cluster_problem()
if PROBLEM and os.environ.get("KRONBENCH_REQUIRE_SLURM") == "1":
    raise RuntimeError(f"KRONBENCH_REQUIRE_SLURM=1 but {PROBLEM}")
pytestmark = [pytest.mark.integration, pytest.mark.skipif(PROBLEM is not None, reason=str(PROBLEM))]


def _node_env() -> dict[str, str]:
    """The profile's knobs for this node (profiles/slurm/config.yaml): threads as in the local run it is compared
    with (training 1, evaluate 2 = its --cores); no GPU request unless the node declares GRES gpu (ci/slurm-up.sh
    declares fake ones, so the profile's own `gres: gpu:1` goes through sbatch); memory requests capped at a
    quarter of what the node declares, so that memory does not serialise the small jobs."""
    if PROBLEM:
        return {}
    p = subprocess.run(["sinfo", "-h", "-o", "%G|%m"], capture_output=True, text=True, timeout=30, check=True)
    gres, mem = p.stdout.split()[0].split("|")
    env = {"KRONBENCH_SLURM_CPUS": "1", "KRONBENCH_SLURM_EVAL_CPUS": "2",
           "KRONBENCH_SLURM_MAX_MEM_MB": str(int(mem.rstrip("+")) // 4)}
    if "gpu" not in gres:
        env["KRONBENCH_SLURM_GRES"] = ""  # the documented CPU-only check
    return env


NODE_ENV = _node_env()
PROFILE = ["--workflow-profile", "profiles/slurm"]
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+)")
TIMINGS = {"latency_ms", "latency_iqr_ms", "latency_repeats", "latency_noisy", "latency_vs_teacher", "latency_setup",
           "train_seconds", "tune_seconds"}  # latency_setup names the rounds timed
# Stage config hashes hash the stage's settings, which name the run's input paths (another results_dir here);
# `base` names the self-pretrained base model's directory (local:<results_dir>/runs/...).
PATH_HASHES = {"config_hash", "lineage", "base"}


def slurm_snakemake(*args, timeout=1800, env=None, **kw):
    env = {**os.environ, **NODE_ENV, **(env or {})}  # conftest sets HF_*_OFFLINE
    return subprocess.run([str(SNAKEMAKE), *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout, **kw)


def _rows(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    keep = [{k: v for k, v in r.items() if k not in TIMINGS | PATH_HASHES} for r in rows]
    return sorted(keep, key=lambda r: json.dumps(r, sort_keys=True))


def _sacct_states(jobids: list[str]) -> dict[str, str]:
    """SLURM's own record of the jobs (accounting): jobid -> state."""
    p = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(jobids)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return dict(line.split("|", 1) for line in p.stdout.split() if "|" in line)


def test_tiny_dag_through_slurm(tiny_local, tmp_path, capsys):
    """The README's check of a cluster: every job of the tiny DAG goes through sbatch (the summary rules run on the
    submitting host, `localrules`), SLURM records each as COMPLETED, and the rows equal the local run's in every key
    but timings and the path-dependent config hashes."""
    local_res, _, local = tiny_local
    assert local.returncode == 0, (local.stdout + local.stderr)[-3000:]
    res, tab = tmp_path / "results", tmp_path / "tables"
    t0 = time.perf_counter()
    p = slurm_snakemake(*TINY, f"results_dir={res}", f"tables_dir={tab}", *PROFILE)
    wall = time.perf_counter() - t0
    out = p.stdout + p.stderr
    assert p.returncode == 0, out[-6000:]

    submitted = dict(SUBMITTED.findall(out))
    plan = slurm_snakemake("-n", *TINY, f"results_dir={res}-plan", f"tables_dir={tab}-plan", *PROFILE)
    counts = job_counts(plan.stdout + plan.stderr)
    local_rules = {"gather", "table_presets", "table_all", "figures", "count_preset", "all_tables", "all_figures"}
    remote = counts["total"] - sum(n for rule, n in counts.items() if rule in local_rules)
    assert len(submitted) == remote, (len(submitted), counts)
    states = _sacct_states(list(submitted.values()))
    assert set(states.values()) == {"COMPLETED"} and len(states) == remote, states
    with capsys.disabled():  # the figures the README quotes, in CI's output
        print(f"\n[slurm] tiny DAG: {len(submitted)} jobs through sbatch (all COMPLETED in sacct), "
              f"{counts['total'] - remote} local, {wall:.0f} s wall")

    ours, theirs = _rows(res / "all_results.jsonl"), _rows(local_res / "all_results.jsonl")
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs):
        assert a == b, {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if a.get(k) != b.get(k)}
    with capsys.disabled():
        print(f"[slurm] {len(ours)} rows equal the local run's in every key but {sorted(TIMINGS | PATH_HASHES)}")
    assert (tab / "glue.csv").is_file() and len(list((tab / "figures").glob("*.png"))) == 7


def _teacher_run(res: Path) -> Path:
    return res / "runs/minilm-l6/embedded-pair/teacher/seed0"


def test_failing_job_is_a_failed_rule_naming_its_log(tmp_path):
    """A job that fails on the node (here a launcher that exits 1) stops the run with the rule's name, its log and
    SLURM's job log, and SLURM records the job FAILED."""
    res = tmp_path / "results"
    target = _teacher_run(res) / "summary.json"
    p = slurm_snakemake(target, "--configfile", "config/tiny.yaml", "--config", f"results_dir={res}",
                        f"tables_dir={tmp_path / 'tables'}", "launcher=false", *PROFILE,
                        "--retries", "0", timeout=900)
    out = p.stdout + p.stderr
    assert p.returncode != 0, out[-4000:]
    assert "Error in rule finetune_teacher" in out, out[-4000:]
    assert "logs/finetune_teacher/minilm-l6/embedded-pair/seed0.log" in out, out[-4000:]
    failed = [jobid for _, jobid in SUBMITTED.findall(out)]
    states = _sacct_states(failed)
    assert "FAILED" in states.values(), states
    assert re.search(r"slurm_logs/rule_finetune_teacher/\S+\.log", out), out[-4000:]


def test_cancelled_training_resumes_with_rerun_incomplete(tmp_path, capsys):
    """scancel a training job mid-run (after its first checkpoints): the run fails; the same command again
    (--rerun-incomplete, set by the profile) resubmits it and the stage resumes from its last checkpoint, ending
    with every step logged exactly once."""
    res = tmp_path / "results"
    steps = 40
    overlay = tmp_path / "long-teacher.yaml"
    overlay.write_text(yaml.safe_dump({"stages": {"finetune_teacher": {"train": {
        "max_steps": steps, "batch_size": 4, "log_every": 1, "checkpoint_every": 2}}}}))
    run_dir = _teacher_run(res)
    args = [run_dir / "summary.json", "--configfile", "config/tiny.yaml", overlay, "--config", f"results_dir={res}",
            f"tables_dir={tmp_path / 'tables'}", *PROFILE, "--retries", "0"]
    env = {**os.environ, **NODE_ENV}
    log = tmp_path / "first.log"
    with open(log, "w") as f:
        first = subprocess.Popen([str(SNAKEMAKE), *map(str, args)], cwd=ROOT, env=env, stdout=f, stderr=f)
        deadline = time.time() + 600
        while time.time() < deadline and first.poll() is None and not list(run_dir.glob("checkpoints/step-*")):
            time.sleep(1)
        assert first.poll() is None, log.read_text()[-4000:]
        jobid = SUBMITTED.findall(log.read_text())[-1][1]  # data preparation is done: the teacher's job is the last
        subprocess.run(["scancel", jobid], check=True, timeout=60)
        first.wait(timeout=600)
    text = log.read_text()
    assert first.returncode != 0, text[-4000:]
    assert not (run_dir / "summary.json").exists()
    done = max(json.loads(line)["step"] for line in (run_dir / "log.jsonl").read_text().splitlines())
    assert 2 <= done < steps, done

    second = slurm_snakemake(*args, timeout=900)
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]
    job_log = (res / "logs/finetune_teacher/minilm-l6/embedded-pair/seed0.log").read_text()
    assert re.search(r"resuming from step-\d+ \(step \d+/40\)", job_log), job_log[-3000:]
    logged = [json.loads(line)["step"] for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert logged == list(range(1, steps + 1)), logged
    assert json.loads((run_dir / "summary.json").read_text())["steps"] == steps
    with capsys.disabled():
        print(f"\n[slurm] scancel after step {done} of {steps}; the rerun resumed from its checkpoint and finished")


def test_unknown_partition_is_named(tmp_path):
    """A partition the cluster does not have stops the run at submission, naming it (README troubleshooting)."""
    res = tmp_path / "results"
    p = slurm_snakemake(res / "data/embedded-pair/manifest.json", "--configfile", "config/tiny.yaml", "--config",
                        f"results_dir={res}", f"tables_dir={tmp_path / 'tables'}", *PROFILE, timeout=300,
                        env={"KRONBENCH_SLURM_PARTITION": "nosuchpart"})
    out = p.stdout + p.stderr
    assert p.returncode != 0, out[-3000:]
    assert "invalid partition specified: nosuchpart" in out, out[-3000:]
