# Config validation, names, paths and the helpers of the workflow. Rules hold no logic beyond this file; each
# names inputs, outputs, log and params and calls one `kronbench` subcommand.
#
# Run ids (one directory per job, so parallel jobs never collide):
#   {R}/runs/<model>/<task>/teacher/seed<k>/               finetune-teacher(base, task)
#   {R}/runs/<model>/<task>/kronecker-<preset>/seed<k>/    distill --stage task (student2)
#   {R}/runs/<model>/_general/teacher/seed<k>/             pretrain-lm (the self-pretrained GPT-2 base)
#   {R}/runs/<model>/_general/kronecker-<preset>/compressed/  compress (student0; NKP init, seed-independent)
#   {R}/runs/<model>/_general/kronecker-<preset>/seed<k>/  distill --stage pretrain (student1)
#   {R}/runs/<model>/_general/kronecker-<preset>/seed<k>-round<j>/  its earlier runs (stages.distill_pretrain.rounds)
#   {R}/runs/<model>/_general/distil/seed<k>/              baseline distil (half-depth KD-pretrained student)
#   {R}/runs/<model>/<task>/distil/seed<k>/                distill --stage task --method distil
#   {R}/runs/<model>/<task>/rosita-<preset>/seed<k>/       baseline rosita (at <preset>'s budget)
#   {R}/runs/<model>/<task>/<ablation>-<preset>/seed<k>/   distill --stage task --method <ablation> (Table 6)
# Rows: {R}/rows/<model>/<eval task>/<method>[-<preset>]/seed<k>/<split>[-<protocol>].jsonl
# Method and preset share one path component, <method>-<preset>: methods are a fixed list (PRESET_METHODS,
# PLAIN_METHODS below), none a prefix of another followed by a dash, so kronecker-cf=8 and no-kd-pretrain-kb8
# split one way only (parse_run). Model, task and preset wildcards never contain a slash; tasks never start with
# an underscore, so _general is no task.
import copy
import json
import os
import re
import shlex
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

validate(config, schema="../schemas/config.schema.yaml")

# Rules call `kronbench` (and the launcher, e.g. accelerate) from the bin directory of the Python running Snakemake
# (.venv/bin), put first on PATH here, so they work without an activated venv. Not a {KB} variable holding its
# absolute path: `snakemake --lint` rejects globals in shell commands, and as a param the path would rerun every
# job once the checkout moves.
BIN = os.path.dirname(sys.executable)
os.environ.update(PATH=os.pathsep.join([BIN, os.environ.get("PATH", "")]))
ENV = "../envs/kronbench.yaml"

# Snakemake exports a job's threads as OMP_NUM_THREADS, which torch takes as its thread count.
# Training and compress jobs: config `threads` (default 1: one-thread jobs side by side, the best throughput for a
# wide DAG on few cores; null = all of --cores, for a linear chain such as config/retention.yaml).
# compare_latency jobs take all of --cores: nothing of ours runs beside the timed forwards on one machine.
# The SLURM profile's set-threads replaces both per rule.
CORES = workflow.resource_settings.cores or 1  # None under a cluster executor without --cores
TORCH_THREADS = config["threads"] or CORES
LATENCY_THREADS = CORES

R = os.path.normpath(config["results_dir"])
T = os.path.normpath(config["tables_dir"])
MODELS = config["models"]
STAGE_SECTIONS = {"pretrain_lm": ("train", "model"), "finetune_teacher": ("train",),
                  "distill_pretrain": ("train", "loss", "data"), "distill_task": ("train", "loss", "data"),
                  "baseline_distil": ("train", "loss", "data"), "baseline_rosita": ("train", "loss", "rosita")}
ROUNDS = {"distill_pretrain": ("rounds",)}  # a stage that may run as several runs (distill_pretrain_round)
ROSITA_SEGMENTS = ("depth", "width", "final")  # baseline_rosita's per-segment train sub-sections
# Methods that carry a preset ("<method>-<preset>") and those that do not.
PRESET_METHODS = ["kronecker", "decompose-only", "no-kd-pretrain", "no-task-kd", "rosita"]
PLAIN_METHODS = ["teacher", "distil"]
BASELINES = ["distil", "rosita"]
# KroneckerBERT Table 6 as configurations of `distill --stage task` (kronbench/baselines/stages.py): the student
# it starts from (student0 = compress, student1 = KD pre-training) and whether the fine-tuned teacher distils it.
ABLATIONS = {"decompose-only": {"student": "compressed", "kd": False},
             "no-kd-pretrain": {"student": "compressed", "kd": True},
             "no-task-kd": {"student": "kd-pretrained", "kd": False}}

wildcard_constraints:
    model=r"[^/]+",
    task=r"[a-z0-9][^/]*",
    preset=r"[^/]+",
    seed=r"\d+",
    run=r"[^/]+",
    split=r"train|validation|test",
    protocol=r"[^/]+",
    arch=r"[^/]+",
    ablation="|".join(ABLATIONS),


# ------------------------------------------------------------------------------------------- name validation
def _names_errors():
    """Every task, preset and model name of the config, checked against kronbench's registries (no jobs yet)."""
    from kronbench.data.registry import get_task
    from kronbench.errors import KronbenchError
    from kronbench.models.presets import get_spec  # torch-free, like the registries: a no-op rerun stays fast
    from kronbench.models.registry import ARCHITECTURES
    from kronbench.models.sources import EMBEDDED

    errors = []

    def task(name, where, kinds=None, need=None):
        try:
            t = get_task(name)
        except KronbenchError as e:
            errors.append(f"{where}: {e}")
            return None
        if kinds and t.kind not in kinds:
            errors.append(f"{where}: task {name!r} is of kind {t.kind}; expected {' or '.join(kinds)}")
        if need == "train" and (t.eval_only or "train" not in t.splits):
            errors.append(f"{where}: task {name!r} has no train split (eval_only); list it under ood_tasks or "
                          f"lm_tasks instead")
        source = data_source(name)
        if source not in t.sources:
            errors.append(f"{where}: task {name!r} has no {source!r} source (it has {', '.join(t.sources)}); set "
                          f"data.task_sources.{name}")
        return t

    def preset(name, where):
        try:
            get_spec(name)
        except KronbenchError as e:
            errors.append(f"{where}: {e}")

    if data_source_used("local") and not config["data"]["data_dir"]:
        errors.append("data.data_dir: required when a task's source is local")
    for name, m in MODELS.items():
        where = f"models.{name}"
        if (m["base"] is None) == (m["pretrain"] is None):
            errors.append(f"{where}: give exactly one of base (a pretrained model) or pretrain (build it)")
        elif m["pretrain"] is not None:
            if m["pretrain"]["arch"] not in ARCHITECTURES:
                errors.append(f"{where}.pretrain.arch: unknown architecture {m['pretrain']['arch']!r}; known: "
                              f"{', '.join(ARCHITECTURES)}")
            task(m["pretrain"]["data"], f"{where}.pretrain.data", kinds=("lm",), need="train")
        else:
            base = m["base"]
            hub_id = re.fullmatch(r"[\w.-]+/[\w.-]+", base)
            if m["revision"] and (base in EMBEDDED or os.path.isdir(base)):
                errors.append(f"{where}.revision: {base!r} is not a Hub id; a revision pins Hub models only")
            if not (base in EMBEDDED or base in ARCHITECTURES or hub_id or os.path.isdir(base)):
                errors.append(f"{where}.base: unknown model {base!r}: not embedded ({', '.join(EMBEDDED)}), not a "
                              f"known Hub architecture ({', '.join(ARCHITECTURES)}), not an owner/name Hub id "
                              f"and not an existing directory")
        for p in m["presets"]:
            preset(p, f"{where}.presets")
        for t in m["tasks"]:
            kinds = ("single_classification", "pair_classification", "regression", "span_qa")
            tt = task(t, f"{where}.tasks", kinds=kinds)
            if tt is None:
                continue
            if tt.source_task is None:
                task(t, f"{where}.tasks", kinds=kinds, need="train")
            elif tt.source_task not in m["tasks"]:  # mnli-mm: scored with the MNLI models, never trained
                errors.append(f"{where}.tasks: {t!r} is an evaluation of the {tt.source_task} models (its YAML's "
                              f"source_task); add {tt.source_task!r} to {where}.tasks")
        _comparators_errors(name, m, errors)
        for t in m["lm_tasks"]:
            lt = task(t, f"{where}.lm_tasks", kinds=("lm",))
            for proto in config["lm_protocols"] if lt else ():
                if proto not in (lt.protocols or {}):
                    errors.append(f"{where}.lm_tasks: task {t!r} has no protocol {proto!r} (lm_protocols); it has "
                                  f"{', '.join(lt.protocols or {})}")
    if any(m["presets"] or "distil" in m["baselines"] for m in MODELS.values()):
        task(config["kd_corpus"], "kd_corpus", kinds=("lm",), need="train")
    for t in config["ood_tasks"]:
        ot = task(t, "ood_tasks")
        if ot is not None and not ot.source_task:
            errors.append(f"ood_tasks: task {t!r} has no source_task (the task whose model scores it)")
    for t in config["task_seeds"]:
        task(t, "task_seeds")
    for t in config["data"]["task_sources"]:
        task(t, "data.task_sources")
    for arch, presets in config["count"]["presets"].items():
        if arch not in ARCHITECTURES:
            errors.append(f"count.presets: unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
        for p in presets:
            preset(p, f"count.presets.{arch}")
    for i, o in enumerate(config["overrides"]):
        where = f"overrides[{i}]"
        for stage in _as_list(o.get("stage")):
            if stage not in STAGE_SECTIONS:
                errors.append(f"{where}.stage: unknown stage {stage!r}; stages: {', '.join(STAGE_SECTIONS)}")
        for name in _as_list(o.get("model")):
            if name not in MODELS:
                errors.append(f"{where}.model: {name!r} is not in models ({', '.join(MODELS)})")
        for p in _as_list(o.get("preset")):
            preset(p, f"{where}.preset")
        for method in _as_list(o.get("method")):
            if method not in PLAIN_METHODS + PRESET_METHODS:
                errors.append(f"{where}.method: unknown method {method!r}; methods: "
                              f"{', '.join(PLAIN_METHODS + PRESET_METHODS)}")
        for t in _as_list(o.get("task")):
            task(t, f"{where}.task")
    for stage, sections in STAGE_SECTIONS.items():
        extra = [k for k, v in config["stages"][stage].items() if v and k not in sections + ROUNDS.get(stage, ())]
        if extra:
            errors.append(f"stages.{stage}: section(s) {extra} are not used by {stage} (it takes "
                          f"{', '.join(sections)})")
        segments = [k for k in ROSITA_SEGMENTS if k in config["stages"][stage].get("train", {})]
        if segments and stage != "baseline_rosita":
            errors.append(f"stages.{stage}.train: {segments} are baseline_rosita's segment settings")
    for i, o in enumerate(config["overrides"]):
        stages = [s for s in _as_list(o.get("stage")) if s in STAGE_SECTIONS] or list(STAGE_SECTIONS)
        allowed = {sec for s in stages for sec in STAGE_SECTIONS[s] + ROUNDS.get(s, ())}
        extra = [k for k, v in o["set"].items() if v and k not in allowed]
        if extra:
            errors.append(f"overrides[{i}].set: section(s) {extra} are not used by {', '.join(stages)}")
    return errors


def _comparators_errors(name, m, errors):
    """models.<name>.baselines / ablations / compare_presets / ablation_tasks: known names, and what each needs."""
    where = f"models.{name}"
    for b in m["baselines"]:
        if b not in BASELINES:
            errors.append(f"{where}.baselines: unknown baseline {b!r}; baselines: {', '.join(BASELINES)}")
    if "distil" in m["baselines"] and m["base_method"] == "distil":
        errors.append(f"{where}.baselines: distil is this model's base_method already (its rows are the base "
                      f"model's); drop one")
    for a in m["ablations"]:
        if a not in ABLATIONS:
            errors.append(f"{where}.ablations: unknown ablation {a!r}; ablations: {', '.join(ABLATIONS)}")
    for p in m["compare_presets"] or ():
        if p not in m["presets"]:
            errors.append(f"{where}.compare_presets: {p!r} is not in {where}.presets ({', '.join(m['presets'])})")
    for t in m["ablation_tasks"] or ():
        if t not in m["tasks"]:
            errors.append(f"{where}.ablation_tasks: {t!r} is not in {where}.tasks ({', '.join(m['tasks'])})")
    if ("rosita" in m["baselines"] or m["ablations"]) and not compare_presets(name, m):
        errors.append(f"{where}: rosita and the ablations need a Kronecker preset (presets or compare_presets)")


def compare_presets(model, m=None):
    """The presets that get the ablations and a ROSITA student at their budget (default: all presets)."""
    m = m or MODELS[model]
    return m["presets"] if m["compare_presets"] is None else m["compare_presets"]


def ablation_tasks(model):
    m = MODELS[model]
    return m["tasks"] if m["ablation_tasks"] is None else m["ablation_tasks"]


def _as_list(x):
    return [] if x is None else [x] if isinstance(x, str) else list(x)


def data_source(task):
    return config["data"]["task_sources"].get(task, config["data"]["source"])


def max_rows_flag(task):
    """--max-rows for `kronbench data prepare` (data.max_rows, data.max_lm_rows for LM tasks), or ""."""
    d = config["data"]
    n = (d["max_lm_rows"] or d["max_rows"]) if get_task(task).kind == "lm" else d["max_rows"]
    return f"--max-rows {n}" if n else ""


def data_source_used(source):
    return config["data"]["source"] == source or source in config["data"]["task_sources"].values()


_errors = _names_errors()
if _errors:
    raise WorkflowError("Invalid names in the config (nothing was run):\n  " + "\n  ".join(_errors))


# ----------------------------------------------------------------------------------------------- tasks, seeds
def get_task(name):
    from kronbench.data.registry import get_task as _get

    return _get(name)


def train_task(task):
    """The task whose fine-tuned models score `task`: its YAML source_task (mnli-mm -> mnli, MRPC's PAWS), else
    the task itself."""
    return get_task(task).source_task or task


def seeds_for(task):
    """Seeds of a task's models; an evaluation-only task (mnli-mm) has those of the models that score it."""
    return config["task_seeds"].get(train_task(task), config["seeds"])


def eval_split(task):
    """evaluate.split where the task has it labelled, else validation, else test (IMDb has only test)."""
    t = get_task(task)
    for split in (config["evaluate"]["split"], "validation", "test"):
        if split in t.splits and split not in t.unlabelled:
            return split
    raise WorkflowError(f"task {task}: no labelled validation or test split to evaluate on")


def lm_split(task, protocol):
    return get_task(task).protocols[protocol].get("split") or "test"


def ood_of(task):
    """The configured OOD sets whose YAML source_task is `task`."""
    return [o for o in config["ood_tasks"] if get_task(o).source_task == task]


def base_seed(model):
    """Seed of the base model's own run (pretrain-lm); hub/embedded bases count as seed 0."""
    if MODELS[model]["pretrain"] is None:
        return 0
    return stage_settings("pretrain_lm", model)["train"].get("seed", 0)


# ------------------------------------------------------------------------------------------------ settings
def _merge(into, new):
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = copy.deepcopy(v)
    return into


# The method each stage trains for, matched by overrides[].method unless a rule names another (the distil and
# ablation task stages run distill_task for their own method).
STAGE_METHODS = {"distill_pretrain": "kronecker", "distill_task": "kronecker", "baseline_distil": "distil",
                 "baseline_rosita": "rosita"}


def _stage_config(stage, model, preset=None, task=None, method=None):
    """stages.<stage>, then every matching override in order, unfiltered (rounds included)."""
    s = copy.deepcopy(config["stages"][stage])
    method = method or STAGE_METHODS.get(stage, MODELS[model]["base_method"])
    keys = {"stage": stage, "model": model, "preset": preset, "task": task, "method": method}
    for o in config["overrides"]:
        if all(o.get(k) is None or keys[k] in _as_list(o[k]) for k in keys):
            _merge(s, o["set"])
    return s


def stage_settings(stage, model, preset=None, task=None, seed=None, method=None):
    """stages.<stage>, then every matching override in order; the seed wildcard sets train.seed."""
    s = _stage_config(stage, model, preset, task, method)
    if seed is not None:
        s.setdefault("train", {})["seed"] = int(seed)
    # an override without `stage` may carry sections other stages use (loss): keep this stage's own
    s = {k: v for k, v in s.items() if v and k in STAGE_SECTIONS[stage]}
    if stage == "distill_task" and s.get("data", {}).get("transfer"):
        s["data"]["transfer"] = data_dir(config["kd_corpus"])  # true in the config: the KD corpus's pairs
    return s


def pretrain_runs(model, preset):
    """Settings of each KD pre-training run, without the seed: the stage's own, then each entry of
    stages.distill_pretrain.rounds merged on top of them (one run if there are no rounds)."""
    s = stage_settings("distill_pretrain", model, preset, config["kd_corpus"])
    rounds = _stage_config("distill_pretrain", model, preset, config["kd_corpus"]).get("rounds") or []
    return [s] + [_merge(copy.deepcopy(s), r) for r in rounds]


def pretrain_run_dir(model, preset, seed, k, runs):
    """Run k (1-based) of `runs`: the last is seed<seed>/ (student1), the earlier ones seed<seed>-round<k>/."""
    return kd_pretrain_run(model, preset, seed) + ("" if k == runs else f"-round{k}")


def pretrain_run_index(w):
    """Which KD pre-training run a job is (the round wildcard for distill_pretrain_round, else the last run), with
    every run's settings (pretrain_runs)."""
    runs = pretrain_runs(w.model, w.preset)
    k = int(w.round) if "round" in w.keys() else len(runs)
    if k > len(runs):
        raise ValueError(f"KD pre-training of {w.model} {w.preset} has {len(runs)} run(s) (1 + the length of "
                         f"stages.distill_pretrain.rounds), so there is no run {k}: target seed<k>/ for the last")
    return k, runs


def pretrain_student(w):
    """summary.json of the model a KD pre-training run starts from: the NKP-initialised student for run 1, else
    the run before."""
    k, runs = pretrain_run_index(w)
    if k == 1:
        return f"{compress_run(w.model, w.preset)}/summary.json"
    return f"{pretrain_run_dir(w.model, w.preset, w.seed, k - 1, len(runs))}/summary.json"


def pretrain_flags(w):
    """The run's settings; run k draws its pairs with train.seed = seed + k - 1, so every run sees fresh
    partners."""
    k, runs = pretrain_run_index(w)
    s = runs[k - 1]
    s.setdefault("train", {})["seed"] = int(w.seed) + k - 1
    return set_flags(s)


def corpus_tokens(model, settings):
    """The tokenize_corpus file a KD pre-training run of `model` with these stage settings reads:
    {R}/tokens/<kd_corpus>/<model>-<data.block_size>.npz, or <model>-sentences.npz for data.format sentence_pairs
    (the tokenised sentences the pairs are drawn from). The model key names the tokenizer (one per model). Not
    under {R}/data/<corpus>/: DVC tracks those directories whole, and prepare swaps them whole."""
    data = settings.get("data", {})
    # 128: the stages' default block_size; the stage checks the file's block size against its own anyway
    what = "sentences" if data.get("format") == "sentence_pairs" else data.get("block_size", 128)
    return f"{R}/tokens/{config['kd_corpus']}/{model}-{what}.npz"


def pretrain_tokens(w):
    """corpus_tokens of a KD pre-training run (a round may change data.format or data.block_size)."""
    k, runs = pretrain_run_index(w)
    return corpus_tokens(w.model, runs[k - 1])


def distil_tokens(w):
    """corpus_tokens of baseline_distil (always blocks)."""
    return corpus_tokens(w.model, stage_settings("baseline_distil", w.model, task=config["kd_corpus"], seed=w.seed))


def revision_flag(task):
    """`--revision <commit>` for `kronbench data prepare` where config data.revisions pins the task's hub dataset
    (keyed by its hub path, e.g. nyu-mll/glue), else ""; only with the hub source."""
    pins = config["data"].get("revisions") or {}
    path = get_task(task).sources.get("hub", {}).get("path")
    return f"--revision {shlex.quote(pins[path])}" if data_source(task) == "hub" and path in pins else ""


def transfer_input(w, method=None):
    """[the KD corpus's manifest] when the task stage adds its unlabelled transfer set (data.transfer), else []."""
    s = stage_settings("distill_task", w.model, getattr(w, "preset", None), w.task, w.seed, method)
    return [data_done(config["kd_corpus"])] if s.get("data", {}).get("transfer") else []


def _value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "null"
    if isinstance(v, (list, dict)):
        return json.dumps(v, separators=(",", ":"))  # YAML flow, read back by the CLI's --set parser
    return str(v)


def set_flags(settings, prefix=""):
    """{train: {lr: 1e-4}, loss: {weights: {att_mse: 1}}} -> "--set train.lr=0.0001 --set loss.weights.att_mse=1"."""
    flags = []
    for k, v in settings.items():
        if isinstance(v, dict) and v:
            flags.append(set_flags(v, f"{prefix}{k}."))
        else:
            flags.append(f"--set {shlex.quote(f'{prefix}{k}={_value(v)}')}")
    return " ".join(flags)


def stage_flags(stage, model, preset=None, task=None, seed=None, method=None):
    return set_flags(stage_settings(stage, model, preset, task, seed, method))


def ablation_flags(w):
    """distill_task's settings (its overrides too, `method` selecting the ablation); without KD the loss is CE only
    (no teacher, so no ILKD settings either)."""
    s = stage_settings("distill_task", w.model, w.preset, w.task, w.seed, method=w.ablation)
    if not ABLATIONS[w.ablation]["kd"]:
        s["loss"] = {"weights": {"ce": 1.0}}
        s.pop("data", None)  # an unlabelled transfer set needs the teacher's targets
    return set_flags(s)


def launcher():
    """The training rules' command: kronbench, or config `launcher` (e.g. torchrun --standalone --nproc_per_node 4
    -m kronbench.cli), found on PATH (the venv's bin first). Every launch gets its own rendezvous port, so two
    multi-process jobs on one node never meet on the default 29500: torchrun without a rendezvous option gets
    --standalone (it binds a free port itself), accelerate launch without --main_process_port gets one the job's
    shell picks when it starts."""
    words = shlex.split(config["launcher"])
    if not words:
        return "kronbench"
    rendezvous = ("--standalone", "--rdzv", "--master", "--nnodes")
    if words[0] == "torchrun" and not any(w.startswith(rendezvous) for w in words):
        words.insert(1, "--standalone")
    elif words[:2] == ["accelerate", "launch"] and not any(w.startswith("--main_process_port") for w in words):
        words[2:2] = ["--main_process_port", "$(python -m kronbench.free_port)"]
    return " ".join(w if w.startswith("$(") else shlex.quote(w) for w in words)


def keep_flag(w, output):
    """--keep-intermediate when config keep_intermediate is true. It takes `output` so that Snakemake counts the
    param as derived from the output and leaves it out of its params rerun trigger: the flag only decides what
    stays on disk, so toggling it must not retrain anything."""
    return "--keep-intermediate" if config["keep_intermediate"] else ""


def latency_flags():
    lat = config["evaluate"]["latency"]
    return (f"--batch {lat['batch']} --seq {lat['seq']} --device {lat['device']} --target {lat['target']} "
            f"--max-seconds {lat['max_seconds']} --min-rounds {lat['min_rounds']}")


# --------------------------------------------------------------------------------------------------- paths
def data_dir(task):
    return f"{R}/data/{task}"


def data_done(task):
    return f"{R}/data/{task}/manifest.json"


def base_run(model):
    return f"{R}/runs/{model}/_general/teacher/seed{base_seed(model)}"


def base_model(model):
    """What --model/--teacher gets for the pretrained base: the pretrain-lm model dir, or the configured name."""
    m = MODELS[model]
    if m["pretrain"] is not None:
        return f"{base_run(model)}/model"
    return f"{m['base']}@{m['revision']}" if m["revision"] else m["base"]


def base_inputs(model):
    return [f"{base_run(model)}/summary.json"] if MODELS[model]["pretrain"] is not None else []


def teacher_run(model, task, seed):
    return f"{R}/runs/{model}/{task}/teacher/seed{seed}"


def compress_run(model, preset):
    return f"{R}/runs/{model}/_general/kronecker-{preset}/compressed"


def kd_pretrain_run(model, preset, seed):
    return f"{R}/runs/{model}/_general/kronecker-{preset}/seed{seed}"


def student_run(model, task, preset, seed):
    return f"{R}/runs/{model}/{task}/kronecker-{preset}/seed{seed}"


def distil_pretrain_run(model, seed):
    return f"{R}/runs/{model}/_general/distil/seed{seed}"


def distil_run(model, task, seed):
    return f"{R}/runs/{model}/{task}/distil/seed{seed}"


def rosita_run(model, task, preset, seed):
    return f"{R}/runs/{model}/{task}/rosita-{preset}/seed{seed}"


def ablation_run(model, task, ablation, preset, seed):
    return f"{R}/runs/{model}/{task}/{ablation}-{preset}/seed{seed}"


def ablation_student(w):
    """The run an ablation's task stage starts from: student0 (compress) or the Kronecker student1."""
    if ABLATIONS[w.ablation]["student"] == "compressed":
        return compress_run(w.model, w.preset)
    return kd_pretrain_run(w.model, w.preset, w.seed)


def ablation_teacher(w):
    """[the fine-tuned teacher's run dir] where the ablation distils from it, else []."""
    return [teacher_run(w.model, w.task, w.seed)] if ABLATIONS[w.ablation]["kd"] else []


def ablation_teacher_flag(w):
    return " ".join(f"--teacher {shlex.quote(os.path.join(run, 'model'))}" for run in ablation_teacher(w))


def run_name(method, preset=None):
    return f"{method}-{preset}" if preset else method


def parse_run(run):
    """'kronecker-cf=8' -> ('kronecker', 'cf=8'); 'teacher' -> ('teacher', None)."""
    if run in PLAIN_METHODS:
        return run, None
    for method in sorted(PRESET_METHODS, key=len, reverse=True):
        head, dash, preset = run.partition(f"{method}-")
        if not head and dash and preset:
            return method, preset
    raise WorkflowError(f"run {run!r}: not <method> ({', '.join(PLAIN_METHODS)}) or <method>-<preset> "
                        f"({', '.join(PRESET_METHODS)})")


def rows_path(model, task, run, seed, split, protocol=None):
    name = f"{split}-{protocol}" if protocol else split
    return f"{R}/rows/{model}/{task}/{run}/seed{seed}/{name}.jsonl"


# Checkpoints scored by the evaluate rules: method -> function(model, train task, preset, seed) -> run dir. The
# base model's own method (teacher, or distil for distilgpt2) is resolved before this table.
TASK_CHECKPOINTS = {"kronecker": student_run,
                    "distil": lambda model, task, preset, seed: distil_run(model, task, seed),
                    "rosita": rosita_run,
                    **{a: lambda model, task, preset, seed, a=a: ablation_run(model, task, a, preset, seed)
                       for a in ABLATIONS}}
# LM rows score task-independent students: student1, and the distil student after its KD pre-training.
LM_CHECKPOINTS = {"kronecker": kd_pretrain_run,
                  "distil": lambda model, preset, seed: distil_pretrain_run(model, seed)}


def eval_target(w, lm):
    """(model argument, input files) of the checkpoint an evaluate job scores."""
    method, preset = parse_run(w.run)
    m = MODELS[w.model]
    if lm:
        if method == m["base_method"]:
            return base_model(w.model), base_inputs(w.model)
        if method not in LM_CHECKPOINTS:
            raise WorkflowError(f"{w.run}: no LM checkpoint rule for method {method!r}")
        run = LM_CHECKPOINTS[method](w.model, preset, w.seed)
    else:
        trained_on = train_task(w.task)
        if method == m["base_method"]:
            run = teacher_run(w.model, trained_on, w.seed)
        elif method in TASK_CHECKPOINTS:
            run = TASK_CHECKPOINTS[method](w.model, trained_on, preset, w.seed)
        else:
            raise WorkflowError(f"{w.run}: no checkpoint rule for method {method!r}")
    return f"{run}/model", [f"{run}/summary.json"]


# ------------------------------------------------------------------------------------------------- targets
def task_runs(model):
    """Runs scored on each task and its OOD sets: the base model, the Kronecker students and the baselines."""
    m = MODELS[model]
    runs = [m["base_method"]] + [run_name("kronecker", p) for p in m["presets"]]
    runs += ["distil"] if "distil" in m["baselines"] else []
    runs += [run_name("rosita", p) for p in compare_presets(model)] if "rosita" in m["baselines"] else []
    return runs


def lm_runs(model):
    """Task-independent runs with LM rows (LM_CHECKPOINTS), besides the base model."""
    m = MODELS[model]
    return [run_name("kronecker", p) for p in m["presets"]] + (["distil"] if "distil" in m["baselines"] else [])


def experiment_rows():
    """Every rows file of the grid: base-model, Kronecker and baseline rows on each task and its OOD sets, per
    seed; the ablation rows on ablation_tasks (no OOD sets: Table 6 has none); LM rows of the base model, the
    KD-pretrained students and the distil student."""
    rows = []
    for model, m in MODELS.items():
        for task in m["tasks"]:
            for seed in seeds_for(task):
                for et in [task] + ood_of(task):
                    rows += [rows_path(model, et, run, seed, eval_split(et)) for run in task_runs(model)]
                if task in ablation_tasks(model):
                    rows += [rows_path(model, task, run_name(a, p), seed, eval_split(task))
                             for a in m["ablations"] for p in compare_presets(model)]
        for task in m["lm_tasks"]:
            for proto in config["lm_protocols"]:
                split = lm_split(task, proto)
                rows.append(rows_path(model, task, m["base_method"], base_seed(model), split, proto))
                rows += [rows_path(model, task, run, seed, split, proto)
                         for run in lm_runs(model) for seed in config["seeds"]]
    return rows


def training_logs():
    """label=path pairs of the training curves drawn by `kronbench figures`: every stage behind each model's
    first task at its first seed (labels drop '=', which --logs uses as separator)."""
    logs = {}
    if not config["figures"]["curves"]:
        return logs
    for model, m in MODELS.items():
        if m["pretrain"] is not None:
            logs[f"{model} pretrain-lm"] = base_run(model)
        trained = [t for t in m["tasks"] if train_task(t) == t]
        if not trained:
            continue
        task = trained[0]
        seed = seeds_for(task)[0]
        logs[f"{model} teacher {task}"] = teacher_run(model, task, seed)
        for p in m["presets"]:
            name = p.replace("=", "")
            runs = len(pretrain_runs(model, p))
            for k in range(1, runs + 1):  # every run of a KD pre-training in rounds
                label = f"{model} {name} kd-pretrain" + (f" {k}/{runs}" if runs > 1 else "")
                logs[label] = pretrain_run_dir(model, p, seed, k, runs)
            logs[f"{model} {name} task-kd {task}"] = student_run(model, task, p, seed)
    return logs


# ------------------------------------------------------------------------------------------------- latency
def latency_plan(fam, seed):
    """The checkpoints compare_latency times side by side for one model family (bert, gpt2) and seed: one per
    (model, run, head) the rows of that seed need, each with the key of its teacher (same model, or for a model
    without teacher rows, e.g. distilgpt2, the teacher whose name it contains) and the same head."""
    from types import SimpleNamespace

    from kronbench.evaluate.latency import head_of, latency_key
    from kronbench.report.tables import family

    plan = {}

    def add(model, run_id, head, task, lm):
        method, preset = parse_run(run_id)
        key = latency_key(model, method, preset, head)
        if key not in plan:
            w = SimpleNamespace(model=model, run=run_id, task=task, seed=seed)
            ckpt, inputs = eval_target(w, lm=lm)
            plan[key] = {"key": key, "checkpoint": ckpt, "inputs": inputs, "model": model, "head": head}

    for model, m in MODELS.items():
        if family(model) != fam:
            continue
        for task in m["tasks"]:
            if int(seed) in seeds_for(task):
                runs = task_runs(model)
                if task in ablation_tasks(model):
                    runs += [run_name(a, p) for a in m["ablations"] for p in compare_presets(model)]
                for run_id in runs:
                    add(model, run_id, head_of(get_task(task).kind), task, lm=False)
        if m["lm_tasks"]:  # the base model at its own seed, and as every seed's reference
            add(model, m["base_method"], "lm", m["lm_tasks"][0], lm=True)
            if int(seed) in config["seeds"]:
                for run_id in lm_runs(model):
                    add(model, run_id, "lm", m["lm_tasks"][0], lm=True)
    teachers = {(e["model"], e["head"]): key for key, e in plan.items() if key.split("|")[1] == "teacher"}
    for e in plan.values():
        inside = [t for (t, h) in teachers if h == e["head"] and t in e["model"]]
        t = e["model"] if (e["model"], e["head"]) in teachers else (inside[0] if len(inside) == 1 else None)
        e["teacher"] = teachers.get((t, e["head"]))
    return list(plan.values())


def latency_seeds(fam):
    """Seeds with rows in this family: the tasks' seeds, and for LM rows the run seeds and the base's own."""
    from kronbench.report.tables import family

    seeds = set()
    for model, m in MODELS.items():
        if family(model) == fam:
            seeds |= {s for t in m["tasks"] for s in seeds_for(t)}
            seeds |= set(config["seeds"]) | {base_seed(model)} if m["lm_tasks"] else set()
    return sorted(seeds)


def latency_files():
    """Every compare_latency output of the grid (none when evaluate.latency.enabled is false)."""
    from kronbench.report.tables import family

    if not config["evaluate"]["latency"]["enabled"]:
        return []
    return [f"{R}/latency/{fam}/seed{s}.json" for fam in sorted({family(m) for m in MODELS})
            for s in latency_seeds(fam)]


def count_targets():
    return [f"{R}/counts/{model}/{preset}.json"
            for model, presets in config["count"]["presets"].items() for preset in presets]


TABLES = ["glue", "squad", "ood", "lm", "ablation", "summary"]
FIGURES = [f"score_vs_{x}_{fam}" for x in ("params", "flops", "latency_ms") for fam in ("bert", "gpt2")] + [
    "training_curves"]
