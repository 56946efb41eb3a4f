"""kronbench.plan without Snakemake: the grid of the default, tiny and paper configs, each job's settings and
starting point, run names, and config errors that name the key. (tests/test_workflow.py checks that Snakemake
turns the same plan into the same jobs.)"""

from __future__ import annotations

import copy

import pytest
from conftest import ROOT

from kronbench.errors import KronbenchError
from kronbench.methods import METHODS, parse_run, run_name, run_pattern
from kronbench.plan import FIGURES, Plan, config_errors, load_config

R = "/r"  # results_dir of every plan here: paths compare as strings


@pytest.fixture(scope="module")
def configs() -> dict[str, dict]:
    return {name: load_config([ROOT / f"config/{name}.yaml"], {"results_dir": R, "tables_dir": f"{R}/t"})
            for name in ("config", "tiny", "paper", "retention", "llm")}


def plan_of(configs, name, edit=None) -> Plan:
    config = copy.deepcopy(configs[name])
    if edit:
        edit(config)
    return Plan(config)


def rows_of(plan: Plan) -> set[str]:
    rows = plan.experiment_rows()
    assert len(rows) == len(set(rows)), "a rows file listed twice"
    return {r.removeprefix(f"{R}/rows/") for r in rows}


# ------------------------------------------------------------------------------------------------- registries
def test_run_names_split_one_way():
    """<method>-<preset> parses back for every method and awkward presets; no method with a preset is a prefix of
    another followed by a dash; the distill_task wildcard pattern takes exactly the methods of that stage."""
    import re

    for m in METHODS.values():
        for preset in (["kb8", "cf=8", "kronecker-x", "no-kd"] if m.preset else [None]):
            assert parse_run(run_name(m.name, preset)) == (m.name, preset)
    names = [m.name for m in METHODS.values() if m.preset]
    assert not [(a, b) for a in names for b in names if a != b and b.startswith(f"{a}-")]
    with pytest.raises(KronbenchError, match="not <method>"):
        parse_run("kronecker")  # a preset method without its preset
    pattern = re.compile(f"(?:{run_pattern('distill_task')})$")
    assert {r for r in ("kronecker-kb8", "distil", "decompose-only-cf=8", "no-task-kd-kb8", "teacher", "rosita-kb8",
                        "distil-kb8") if pattern.match(r)} == {"kronecker-kb8", "distil", "decompose-only-cf=8",
                                                               "no-task-kd-kb8"}


def test_every_config_is_valid(configs):
    for name, config in configs.items():
        assert config_errors(config) == [], name


# ------------------------------------------------------------------------------------------------------ grids
def test_default_grid(configs):
    rows = rows_of(plan_of(configs, "config"))
    assert len(rows) == 22
    for want in ("minilm-l6/embedded-pair/kronecker-cf=8/seed0/validation.jsonl",
                 "minilm-l6/embedded-pair/init-nkp-cf=8/seed0/validation.jsonl",     # issue 21's init ablation
                 "minilm-l6/embedded-pair-news/rosita-cf=8/seed0/validation.jsonl",  # OOD set of its task
                 "minilm-l6/embedded-pair/no-task-kd-cf=8/seed0/validation.jsonl",   # Table 6 ablation
                 "gpt2-embedded/embedded-lm-news/distil/seed0/test-zeroshot-stride.jsonl"):
        assert want in rows, want
    assert "minilm-l6/embedded-pair-news/no-task-kd-cf=8/seed0/validation.jsonl" not in rows  # no OOD ablations


def test_paper_grid(configs):
    """3 presets + distil + rosita-kb8 beside the teacher on 12 GLUE/SQuAD tasks (5 seeds for CoLA/RTE/MRPC) and
    their OOD sets; mnli-mm scored by the MNLI models; KB8's Table 6 ablations on MNLI, SST-2 and MRPC."""
    p = plan_of(configs, "paper")
    rows = rows_of(p)
    assert len(rows) == 759 + 24  # evaluate_task and evaluate_lm jobs of the paper dry run
    assert p.task_runs("bert-base-uncased") == ["teacher", "kronecker-kb8", "kronecker-kb21", "kronecker-kb5",
                                                 "distil", "rosita-kb8"]
    assert p.seeds_for("mnli-mm") == p.seeds_for("mnli") == [0, 1, 2] and len(p.seeds_for("rte")) == 5
    assert p.eval_target("bert-base-uncased", "mnli-mm", "kronecker-kb8", 1, lm=False) == (
        f"{R}/runs/bert-base-uncased/mnli/kronecker-kb8/seed1/model",
        [f"{R}/runs/bert-base-uncased/mnli/kronecker-kb8/seed1/summary.json"])
    for want in ("bert-base-uncased/imdb/teacher/seed0/test.jsonl",  # IMDb has only a test split
                 "bert-base-uncased/paws/kronecker-kb8/seed4/validation.jsonl",  # MRPC -> PAWS, 5 seeds
                 "gpt2/lambada/distil/seed2/test-zeroshot-stride.jsonl",
                 "distilgpt2/mrpc/distil/seed0/validation.jsonl",  # base_method distil
                 "bert-base-uncased/mrpc/no-task-kd-kb8/seed4/validation.jsonl"):
        assert want in rows, want
    for absent in ("bert-base-uncased/cola/no-task-kd-kb8", "bert-base-uncased/mnli/decompose-only-kb21",
                   "bert-base-uncased/mnli/rosita-kb21"):
        assert not any(r.startswith(absent + "/") for r in rows), absent
    assert p.latency_files() == [f"{R}/latency/bert/seed{s}.json" for s in range(5)] + [
        f"{R}/latency/gpt2/seed{s}.json" for s in range(5)]


def test_llm_grid(configs):
    """config/llm.yaml: SmolLM2-135M's LM rows only, for the teacher, the three KD-pretrained students, the distil
    student and each preset's student0 (decompose-only: the perplexity right after initialisation); its own
    latency family and figures, while the default and paper configs keep their BERT/GPT-2 figures only."""
    p = plan_of(configs, "llm")
    rows = rows_of(p)
    runs = ["kronecker-knllama", "kronecker-cf=2", "kronecker-cf=4", "distil", "decompose-only-knllama",
            "decompose-only-cf=2", "decompose-only-cf=4"]
    assert p.lm_runs("smollm2-135m") == runs
    assert rows == {f"smollm2-135m/{t}/{r}/seed0/test-zeroshot-1024.jsonl" for t in ("embedded-lm", "embedded-lm-news")
                    for r in ["teacher", *runs]}
    assert p.eval_target("smollm2-135m", "embedded-lm", "decompose-only-cf=2", 0, lm=True)[0] == (
        f"{R}/runs/smollm2-135m/_general/kronecker-cf=2/compressed/model")  # student0 of the kronecker chain
    assert p.eval_target("smollm2-135m", "embedded-lm", "teacher", 0, lm=True)[0] == "smollm2-135m"
    assert p.latency_files() == [f"{R}/latency/llama/seed0.json"]
    assert p.figure_families() == ["bert", "gpt2", "llama"] and "score_vs_params_llama" in p.figures()
    for name in ("config", "paper"):
        assert plan_of(configs, name).figures() == FIGURES, name


def test_tiny_latency_plan_pairs_each_checkpoint_with_its_teacher(configs):
    p = plan_of(configs, "tiny")
    plan = {e["key"]: e for e in p.latency_plan("bert", 0)}
    assert set(plan) == {"minilm-l6|teacher|cls", "minilm-l6|kronecker-cf=8|cls", "minilm-l6|rosita-cf=8|cls",
                         "minilm-l6|decompose-only-cf=8|cls", "minilm-l6|init-nkp-cf=8|cls"}
    assert {e["teacher"] for e in plan.values()} == {"minilm-l6|teacher|cls"}
    lm = {e["key"]: e for e in p.latency_plan("gpt2", 0)}
    assert lm["gpt2-embedded|kronecker-kngpt2|lm"]["checkpoint"] == (
        f"{R}/runs/gpt2-embedded/_general/kronecker-kngpt2/seed0/model")


def test_init_ablation_runs_the_kronecker_chain_from_its_own_student0(configs):
    """init-nkp: compress with init nkp into its own run, KD pre-training with kronecker's settings from it, then
    task ILKD; kronecker itself follows stages.compress.init (activation in the default config)."""
    p = plan_of(configs, "config")
    gen = f"{R}/runs/minilm-l6/_general"
    assert p.start_run("minilm-l6", "init-nkp-cf=8", 0) == f"{gen}/init-nkp-cf=8/seed0"
    assert p.pretrain_student("minilm-l6", "cf=8", 0, "", "init-nkp") == f"{gen}/init-nkp-cf=8/compressed"
    assert p.pretrain_student("minilm-l6", "cf=8", 0) == f"{gen}/kronecker-cf=8/compressed"
    assert p.compress_settings("minilm-l6", "cf=8", "init-nkp") == {"init": "nkp",
                                                                   "calibration": {"corpus": "embedded-lm"}}
    assert p.compress_settings("minilm-l6", "cf=8")["init"] == "activation"
    assert p.compress_inputs("minilm-l6", "cf=8", "init-nkp") == [f"{R}/data/embedded-lm/manifest.json"]
    assert p.task_teacher("minilm-l6", "embedded-pair", "init-nkp-cf=8", 0) == [
        f"{R}/runs/minilm-l6/embedded-pair/teacher/seed0"]
    assert p.task_settings("minilm-l6", "embedded-pair", "init-nkp-cf=8", 0) == p.task_settings(
        "minilm-l6", "embedded-pair", "kronecker-cf=8", 0)  # equal budget: kronecker's task stage
    # the paper keeps KroneckerBERT's NKP: no init in its stages, so compress's default
    assert "init" not in plan_of(configs, "paper").compress_settings("bert-base-uncased", "kb8")


# --------------------------------------------------------------------------------------------- job settings
def test_paper_task_settings_follow_table_8(configs):
    """Overrides in order: KB21 5e-4 except QQP 1e-4; KB8 CoLA 5e-5 and CoLA's 20 epochs; the seed sets
    train.seed; distil's task stage takes CoLA's epochs but not KB8's lr."""
    p = plan_of(configs, "paper")
    s = p.task_settings("bert-base-uncased", "sst2", "kronecker-kb21", 1)
    assert (s["train"]["lr"], s["train"]["seed"]) == (5e-4, 1)
    assert p.task_settings("bert-base-uncased", "qqp", "kronecker-kb21", 0)["train"]["lr"] == 1e-4
    s = p.task_settings("bert-base-uncased", "cola", "kronecker-kb8", 4)["train"]
    assert (s["lr"], s["epochs"]) == (5e-5, 20)
    s = p.task_settings("bert-base-uncased", "cola", "distil", 4)["train"]
    assert (s["lr"], s["epochs"]) == (1e-4, 20)
    rosita = p.settings("baseline_rosita", "bert-base-uncased", "kb8", "sst2", 0)
    assert rosita["train"]["final"]["lr"] == 1e-5
    assert p.settings("baseline_rosita", "bert-base-uncased", "kb8", "mnli", 0)["train"]["batch_size"] == 64
    assert p.distil_settings("gpt2", 0)["data"] == {"block_size": 1024}


def test_ablations_start_where_their_record_says(configs):
    """decompose-only: student0, no teacher, CE only; no-kd-pretrain: student0 with the teacher and ILKD;
    no-task-kd: student1, no teacher. Kronecker and distil students start from their KD pre-training."""
    p = plan_of(configs, "paper")
    general = f"{R}/runs/bert-base-uncased/_general"
    cases = {"decompose-only-kb8": (f"{general}/kronecker-kb8/compressed", False),
             "no-kd-pretrain-kb8": (f"{general}/kronecker-kb8/compressed", True),
             "no-task-kd-kb8": (f"{general}/kronecker-kb8/seed3", False),
             "kronecker-kb8": (f"{general}/kronecker-kb8/seed3", True),
             "distil": (f"{general}/distil/seed3", True)}
    for run, (start, kd) in cases.items():
        assert p.start_run("bert-base-uncased", run, 3) == start, run
        teacher = p.task_teacher("bert-base-uncased", "mrpc", run, 3)
        assert teacher == ([f"{R}/runs/bert-base-uncased/mrpc/teacher/seed3"] if kd else []), run
        loss = p.task_settings("bert-base-uncased", "mrpc", run, 3).get("loss")
        assert (loss == {"weights": {"ce": 1.0}}) == (not kd), (run, loss)
    with pytest.raises(KronbenchError, match="no distill_task student"):
        p.start_run("bert-base-uncased", "rosita-kb8", 0)


def test_pretrain_rounds_chain(configs):
    """config/retention.yaml's KD pre-training as three runs: each from the run before, with its own passes and
    seed; the last is seed<k>/ (student1), which the task stage starts from."""
    p = plan_of(configs, "retention")
    general = f"{R}/runs/minilm-l6/_general/kronecker-cf=8"
    for round, student, seed, copies in (("-round1", f"{general}/compressed", 0, 3),
                                         ("-round2", f"{general}/seed0-round1", 1, 2),
                                         ("", f"{general}/seed0-round2", 2, 4)):
        assert p.pretrain_student("minilm-l6", "cf=8", 0, round) == student
        s = p.pretrain_settings("minilm-l6", "cf=8", 0, round)
        assert (s["train"]["seed"], s["data"]["copies"], s["train"]["lr"]) == (seed, copies, 5e-4)
    assert p.start_run("minilm-l6", "kronecker-cf=8", 0) == f"{general}/seed0"
    with pytest.raises(KronbenchError, match="no round 3"):
        p.pretrain_run("minilm-l6", "cf=8", 0, "-round3")
    assert p.corpus_tokens("minilm-l6", s) == f"{R}/tokens/embedded-lm/minilm-l6-sentences.npz"


def test_kd_corpus_tokens_per_model_and_block(configs):
    p = plan_of(configs, "paper")
    s = p.pretrain_settings("bert-base-uncased", "kb21", 2)
    assert p.corpus_tokens("bert-base-uncased", s) == f"{R}/tokens/wikitext-103/bert-base-uncased-512.npz"
    assert p.corpus_tokens("gpt2", p.distil_settings("gpt2", 0)) == f"{R}/tokens/wikitext-103/gpt2-1024.npz"


def test_settings_arg_round_trips_through_the_stage_check(configs):
    """The one settings document a job gets parses back to the same mapping, and the stage's check accepts it."""
    import json
    import shlex

    from kronbench.settings import check

    p = plan_of(configs, "paper")
    s = p.settings("baseline_rosita", "bert-base-uncased", "kb8", "qnli", 1)
    (text,) = shlex.split(p.settings_arg(s))
    assert json.loads(text) == s
    assert check("baseline_rosita", json.loads(text))["train"]["depth"]["lr"] == 3e-5
    with pytest.raises(KronbenchError, match=r"data: unknown key\(s\) \['bogus'\]"):
        check("distill_task", {"data": {"bogus": 1}})
    with pytest.raises(KronbenchError, match=r"unknown section\(s\) \['rosita'\] for distill_task"):
        check("distill_task", {"rosita": {}})


def test_prepare_data_flags(configs):
    def local(c):
        c["data"].update(source="local", data_dir="/data dir", max_rows=16)

    p = plan_of(configs, "paper", local)
    assert p.prepare_data_flags("rte") == "--source local --data-dir '/data dir' --max-rows 16"
    hub = plan_of(configs, "paper").prepare_data_flags("rte")
    assert hub.startswith("--source hub --revision ") and len(hub.split()[-1]) == 40  # pinned nyu-mll/glue


@pytest.mark.parametrize("launcher, want", [
    ("", "kronbench"),
    ("torchrun --nproc_per_node 2 -m kronbench.cli", "torchrun --standalone --nproc_per_node 2 -m kronbench.cli"),
    ("torchrun --rdzv-endpoint localhost:0 -m kronbench.cli", "torchrun --rdzv-endpoint localhost:0 -m kronbench.cli"),
    ("accelerate launch --num_processes 2 -m kronbench.cli",
     "accelerate launch --main_process_port $(python -m kronbench.free_port) --num_processes 2 -m kronbench.cli"),
    ("accelerate launch --main_process_port 1234 -m kronbench.cli",
     "accelerate launch --main_process_port 1234 -m kronbench.cli"),
])
def test_launcher_gets_a_free_rendezvous_port(configs, launcher, want):
    """Every multi-process launch binds its own port (two jobs on one node both on torchrun's default 29500 would
    collide); a port or rendezvous the user gives is kept."""
    assert plan_of(configs, "tiny", lambda c: c.update(launcher=launcher)).launcher() == want


# ------------------------------------------------------------------------------------------------ config errors
@pytest.mark.parametrize("edit, names", [
    (lambda c: c["models"]["minilm-l6"].update(tasks=["embedded-pairz"]), ["models.minilm-l6.tasks",
                                                                          "embedded-pairz"]),
    (lambda c: c["models"]["minilm-l6"].update(presets=["kb9"]), ["models.minilm-l6.presets", "kb9"]),
    (lambda c: c["models"]["minilm-l6"].update(base="minilm-l7"), ["models.minilm-l6.base", "minilm-l7"]),
    (lambda c: c.update(ood_tasks=["embedded-lm"]), ["ood_tasks", "source_task"]),
    (lambda c: c["models"]["gpt2-embedded"].update(lm_tasks=["embedded-pair"]), ["lm_tasks", "kind"]),
    (lambda c: c["models"]["minilm-l6"].update(baselines=["distill"]), ["models.minilm-l6.baselines", "distill"]),
    (lambda c: c["models"]["minilm-l6"].update(ablations=["no-kd"]), ["models.minilm-l6.ablations", "no-kd"]),
    (lambda c: c["models"]["minilm-l6"].update(compare_presets=["kb8"]), ["models.minilm-l6.compare_presets",
                                                                          "kb8"]),
    (lambda c: c["models"]["minilm-l6"].update(ablation_tasks=["embedded-qa"]), ["ablation_tasks", "embedded-qa"]),
    (lambda c: c["models"]["gpt2-embedded"].update(ablations=["no-task-kd"], presets=[]), ["models.gpt2-embedded",
                                                                                           "need a Kronecker preset"]),
    (lambda c: c.update(overrides=[{"method": "rosita2", "set": {}}]), ["overrides[0].method", "rosita2"]),
    (lambda c: c.update(overrides=[{"stage": "distill", "set": {}}]), ["overrides[0].stage", "distill"]),
    (lambda c: c["stages"]["distill_task"]["train"].update(final={"max_steps": 1}), ["stages.distill_task.train",
                                                                                     "baseline_rosita"]),
    (lambda c: c["stages"]["distill_task"].update(rounds=[{"data": {"copies": 2}}]), ["stages.distill_task",
                                                                                      "rounds"]),
    (lambda c: c["data"].update(source="local"), ["data.data_dir"]),
])
def test_config_errors_name_the_key(configs, edit, names):
    config = copy.deepcopy(configs["config"])
    edit(config)
    errors = "\n".join(config_errors(config))
    for name in names:
        assert name in errors, (name, errors)


def test_load_config_fills_schema_defaults_and_rejects_unknown_keys(tmp_path):
    config = load_config([ROOT / "config/tiny.yaml"])
    assert config["keep_intermediate"] is False and config["evaluate"]["device"] == "auto"
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "config/tiny.yaml").read_text() + "\nbogus_key: 1\n")
    with pytest.raises(Exception, match="bogus_key"):
        load_config([bad])


def test_the_schema_names_what_the_registries_hold():
    """The config schema (what a user reads) and the registries (what the plan runs) list the same methods,
    baselines, ablations and stages."""
    import yaml

    from kronbench.methods import ABLATIONS, BASE_METHODS, BASELINES
    from kronbench.settings import STAGE_SECTIONS

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    model = schema["$defs"]["model"]["properties"]
    assert tuple(model["base_method"]["enum"]) == BASE_METHODS
    assert all(b in model["baselines"]["description"] for b in BASELINES)
    assert all(a in model["ablations"]["description"] for a in ABLATIONS)
    override = schema["properties"]["overrides"]["items"]["properties"]
    assert all(m in override["method"]["description"] for m in METHODS)
    assert all(s in override["stage"]["description"] for s in STAGE_SECTIONS)
    assert set(schema["properties"]["stages"]["properties"]) == set(STAGE_SECTIONS)


def test_the_cli_reads_the_plans_settings_document_as_json(configs):
    """What a job's command carries parses back to the plan's mapping, numbers as numbers: YAML 1.1 alone would
    read JSON's 2e-05 as the string '2e-05' (the paper smoke's GPT-2 teacher once died on it in AdamW)."""
    import argparse
    import shlex

    from kronbench.cli import _settings

    p = plan_of(configs, "paper")
    s = p.settings("finetune_teacher", "gpt2", task="sst2", seed=0)
    assert s["train"]["lr"] == 2e-5
    (doc,) = shlex.split(p.settings_arg(s))
    assert "2e-05" in doc
    got = _settings(argparse.Namespace(config=doc, set=None, command="finetune-teacher"))
    assert got["train"] == s["train"] and isinstance(got["train"]["lr"], float)
    flow = _settings(argparse.Namespace(config="{train: {lr: 1.0e-4}}", set=["train.seed=3"],
                                        command="finetune-teacher"))
    assert flow["train"] == {"lr": 1e-4, "seed": 3}  # a YAML flow mapping typed by hand works too
