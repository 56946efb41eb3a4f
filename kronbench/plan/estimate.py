"""What the paper grid costs, disk and GPU-hours, counted job by job from the dry run's job list.

Jobs: every job the plan lists (the output of `snakemake -n [-p] all_tables --configfile config/paper.yaml`, or of
`-n --detailed-summary`). Each job's output path names its model, task, method, preset and seed (the run ids of
kronbench/plan/layout.py), so seeds (paper.yaml: 3, 5 for CoLA/RTE/MRPC), presets, baselines and ablations count
exactly as planned. A job's settings (train.epochs, batch_size, max_steps, data.block_size, ROSITA's segments) are
its printed `--config` document (`-p`), else the plan's resolution of the config (kronbench.plan.settings).

Training tokens: steps x batch x sequence length, steps = train.max_steps or ceil(epochs x floor(examples /
batch)), as kronbench.distill.loop counts them. Examples: the official train rows (DATASETS). Sequence: the task
YAML's max_length, every example charged at full length (batches are padded per batch, so GLUE costs less than
this, SQuAD about this); KD pre-training and the distil baseline: blocks of data.block_size over the KD corpus's
tokens (CORPUS_TOKENS, an approximation), so each epoch covers the corpus once.

FLOPs = tokens x (6 P_student + 2 P_teacher where the stage distils): forward and backward of the student, forward
of the teacher. P: the dense non-embedding weights of the architecture, L (4 h^2 + 2 h ffn) (Kaplan et al. 2020's
N). Not counted: embeddings, the LM/MLM head's logits (about h V per token, +27 % of P for BERT, +45 % for GPT-2 in
the stages with a vocabulary-sized output), attention score products, LayerNorm, the optimizer step. Kronecker
students (KD pre-training, task stage, ablations) are charged at the DENSE teacher's P: measured, a cf=8 Kronecker
student runs at 0.95-0.97x the dense teacher's latency on CPU at MiniLM shapes, so its FLOP savings do not become
time savings, and small GEMMs do no better on GPUs. Distil students: the dense half-depth model. ROSITA: the dense
depth-pruned model (8 of BERT-base's 12 layers) in every segment (width pruning is not credited either), taught
by the fine-tuned teacher in the depth segment and by the depth model after it (rosita.width_teacher: depth).
Evaluation: 2 P x tokens, tokens = the scored split's rows x max_length (LM sets: the test split's tokens).
GPU-hours = FLOPs / a sustained throughput (default 100 TFLOP/s, about 32 % of an A100's 312 dense bf16 TFLOP/s).
Not counted: compress (NKP, seconds), data preparation, compare_latency (CPU), GPU idle time and queueing.

Disk: the size of each kind of run directory (model, run kind, preset) in a finished smoke run (ci/paper-smoke.sh:
config/smoke.yaml runs the same architectures), median over its tasks and seeds, without checkpoints/ and ROSITA's
segment models (deleted at paper scale, keep_intermediate false). Saved models do not depend on steps, so these are
exact at paper scale; x the planned runs of each kind. Prepared data: the smoke's bytes per row x the official rows
(exact only where the smoke read the official files); tokenised corpus: the smoke's bytes per token x
CORPUS_TOKENS; rows files: the smoke's mean size. Not counted: logs, benchmarks, the Hugging Face cache. GB = 1e9 B.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from kronbench.errors import KronbenchError
from kronbench.methods import ABLATIONS, CHAINS, METHODS, parse_run
from kronbench.plan.settings import pretrain_runs, stage_settings

# ------------------------------------------------------------------------------------------------ dataset sizes
# Rows per split of the paper tasks. GLUE: Wang et al. 2019 (ICLR), Table 1 gives them rounded (MNLI 393k, QQP 364k,
# ...); the exact counts are the split sizes of the hub's nyu-mll/glue (= the official GLUE TSVs). GLUE's test splits
# (unlabelled, prepared but never scored) count for disk only. Rows of an LM corpus are articles (wikitext) or
# passages (LAMBADA): kronbench prepares one per row.
DATASETS: dict[str, dict] = {
    "mnli": {"train": 392_702, "validation": 9_815, "test": 9_796,
             "source": "GLUE (Wang et al. 2019) Table 1; hub nyu-mll/glue"},
    "mnli-mm": {"validation": 9_832, "test": 9_847, "source": "GLUE Table 1 (dev mismatched); hub nyu-mll/glue"},
    "qqp": {"train": 363_846, "validation": 40_430, "test": 390_965, "source": "GLUE Table 1; hub nyu-mll/glue"},
    "qnli": {"train": 104_743, "validation": 5_463, "test": 5_463, "source": "GLUE Table 1; hub nyu-mll/glue"},
    "sst2": {"train": 67_349, "validation": 872, "test": 1_821, "source": "GLUE Table 1; hub nyu-mll/glue"},
    "cola": {"train": 8_551, "validation": 1_043, "test": 1_063, "source": "GLUE Table 1; hub nyu-mll/glue"},
    "stsb": {"train": 5_749, "validation": 1_500, "test": 1_379, "source": "GLUE Table 1; hub nyu-mll/glue"},
    "mrpc": {"train": 3_668, "validation": 408, "test": 1_725, "source": "GLUE Table 1; hub nyu-mll/glue"},
    "rte": {"train": 2_490, "validation": 277, "test": 3_000, "source": "GLUE Table 1; hub nyu-mll/glue"},
    "wnli": {"train": 635, "validation": 71, "test": 146, "source": "GLUE Table 1; hub nyu-mll/glue"},
    # SQuAD: examples (questions); with doc stride a long context gives more than one feature (a few % more).
    "squad": {"train": 87_599, "validation": 10_570,
              "source": "SQuAD v1.1, Rajpurkar et al. 2016; hub rajpurkar/squad"},
    "squad-v2": {"train": 130_319, "validation": 11_873,
                 "source": "SQuAD 2.0, Rajpurkar et al. 2018; hub rajpurkar/squad_v2"},
    "paws": {"validation": 8_000, "source": "PAWS-Wiki labeled final dev, Zhang et al. 2019"},
    "imdb": {"test": 25_000, "source": "IMDb test, Maas et al. 2011"},
    "hans": {"validation": 30_000, "source": "HANS evaluation set, McCoy et al. 2019"},
    # AdvGLUE dev (Wang et al. 2021, NeurIPS D&B): num_examples in the dataset card of hub AI-Secure/adv_glue.
    "advglue-sst2": {"validation": 148, "source": "AdvGLUE dev, hub AI-Secure/adv_glue card"},
    "advglue-qqp": {"validation": 78, "source": "AdvGLUE dev, hub AI-Secure/adv_glue card"},
    "advglue-mnli": {"validation": 121, "source": "AdvGLUE dev, hub AI-Secure/adv_glue card"},
    "advglue-mnli-mm": {"validation": 162, "source": "AdvGLUE dev, hub AI-Secure/adv_glue card"},
    "advglue-qnli": {"validation": 148, "source": "AdvGLUE dev, hub AI-Secure/adv_glue card"},
    "advglue-rte": {"validation": 81, "source": "AdvGLUE dev, hub AI-Secure/adv_glue card"},
    # WikiText: Merity et al. 2016, Table 1 (articles; 103,227,021 / 217,646 / 245,569 words for WikiText-103,
    # 2,088,628 words of train for WikiText-2, the same valid/test articles).
    "wikitext-103": {"train": 28_475, "validation": 60, "test": 60, "source": "Merity et al. 2016 Table 1 (articles)"},
    "wikitext-2": {"train": 600, "validation": 60, "test": 60, "source": "Merity et al. 2016 Table 1 (articles)"},
    "lambada": {"test": 5_153, "source": "LAMBADA test passages, Paperno et al. 2016"},
}

# KD-pre-training corpus tokens per tokenizer family. APPROXIMATE: WikiText-103 train has 103 M words (Merity et al.
# 2016); ~1.16 WordPieces and ~1.14 GPT-2 BPE tokens per word are typical of English Wikipedia text, not counted here.
CORPUS_TOKENS: dict[tuple[str, str], float] = {("wikitext-103", "bert"): 120e6, ("wikitext-103", "gpt2"): 117e6,
                                               ("wikitext-2", "bert"): 2.4e6, ("wikitext-2", "gpt2"): 2.4e6}
# Tokens of the LM test splits scored by evaluate_lm (GPT-2 BPE). APPROXIMATE: the HF "perplexity of fixed-length
# models" guide counts 287,644 GPT-2 tokens for the joined WikiText-2 raw test split, which WikiText-103 shares;
# LAMBADA: 5,153 passages of 4-5 sentences, ~90 tokens each (rough). Evaluation FLOPs are negligible either way.
LM_EVAL_TOKENS: dict[str, float] = {"wikitext-103": 287_644, "wikitext-2": 287_644, "lambada": 5_153 * 90}

# Architectures by name (kronbench.models.registry holds the same configs; here without transformers).
ARCHS: dict[str, dict] = {
    "bert-base-uncased": {"family": "bert", "layers": 12, "hidden": 768, "ffn": 3072, "heads": 12},
    "gpt2": {"family": "gpt2", "layers": 12, "hidden": 768, "ffn": 3072, "heads": 12},
    "distilgpt2": {"family": "gpt2", "layers": 6, "hidden": 768, "ffn": 3072, "heads": 12},
    "minilm-l6": {"family": "bert", "layers": 6, "hidden": 384, "ffn": 1536, "heads": 12},
}
ROSITA_LAYERS = (8, 12)  # ROSITA's depth target, 8 of BERT-base's 12 layers (kronbench.baselines.rosita)
ROSITA_HEADS = (2, 12)
# Job kinds: the rules, with distill_task split by what it trains (distil_task: the distil student's task stage,
# ablation_task: a Table 6 ablation) and distill_pretrain's earlier rounds apart, as their runs differ in cost and size.
RULE_OF = {"distil_task": "distill_task", "ablation_task": "distill_task", "distill_pretrain_round": "distill_pretrain"}
TRAIN_KINDS = ("pretrain_lm", "finetune_teacher", "distill_pretrain", "distill_pretrain_round", "distill_task",
               "distil_task", "baseline_distil", "baseline_rosita", "ablation_task")
RUN_KINDS = TRAIN_KINDS + ("compress",)
DISK_LABEL = {"pretrain_lm": "pretrained base", "finetune_teacher": "teacher (fine-tuned)",
              "compress": "compressed (student0)", "distill_pretrain": "KD-pretrained (student1)",
              "distill_pretrain_round": "KD-pretrained, earlier round", "distill_task": "kronecker task student",
              "distil_task": "distil task student", "baseline_distil": "distil, KD-pretrained",
              "baseline_rosita": "rosita", "ablation_task": "ablation"}
GB = 1e9


def p_dense(arch: dict, layers: int | None = None) -> int:
    """Dense non-embedding weights: L (4 h^2 + 2 h ffn) (Q, K, V, O and the FFN; biases and LayerNorm left out)."""
    h, f = arch["hidden"], arch["ffn"]
    return (arch["layers"] if layers is None else layers) * (4 * h * h + 2 * h * f)


# ------------------------------------------------------------------------------------------------- the plan
@dataclass
class Job:
    kind: str
    path: str  # the output path that identified it
    model: str = ""
    task: str = ""
    method: str = ""
    preset: str | None = None
    seed: int | None = None
    round: int | None = None
    split: str | None = None
    protocol: str | None = None
    shell: str = ""
    flags: dict = field(default_factory=dict)


_RUN = re.compile(r"(?:^|/)runs/(?P<model>[^/\s]+)/(?P<task>[^/\s]+)/(?P<run>[^/\s]+)/"
                  r"(?:seed(?P<seed>\d+)(?:-round(?P<round>\d+))?|(?P<compressed>compressed))/summary\.json$")
_ROWS = re.compile(r"(?:^|/)rows/(?P<model>[^/\s]+)/(?P<task>[^/\s]+)/(?P<run>[^/\s]+)/seed(?P<seed>\d+)/"
                   r"(?P<name>[^/\s]+)\.jsonl$")
_DATA = re.compile(r"(?:^|/)data/(?P<task>[^/\s]+)/manifest\.json$")
_TOKENS = re.compile(r"(?:^|/)tokens/(?P<corpus>[^/\s]+)/(?P<model>.+)-(?P<what>\d+|sentences)\.npz$")
_LATENCY = re.compile(r"(?:^|/)latency/(?P<fam>[^/\s]+)/seed(?P<seed>\d+)\.json$")


def classify(path: str) -> Job | None:
    """The job that writes `path` (an output path of the plan), or None for outputs the estimate ignores."""
    path = path.strip().rstrip(",")
    if m := _RUN.search(path):
        model, task, run = m["model"], m["task"], m["run"]
        method, preset = parse_run(run)
        seed = None if m["compressed"] else int(m["seed"])
        rnd = int(m["round"]) if m["round"] else None
        general = task == "_general"
        if m["compressed"]:
            kind = "compress"
        elif general:
            kind = {"teacher": "pretrain_lm", "distil": "baseline_distil"}.get(
                method, "distill_pretrain" if method in CHAINS else None)  # kronecker's or an init ablation's
            if kind == "distill_pretrain" and rnd is not None:
                kind = "distill_pretrain_round"
        else:
            kind = {"teacher": "finetune_teacher", "kronecker": "distill_task", "distil": "distil_task",
                    "rosita": "baseline_rosita"}.get(method, "ablation_task" if method in ABLATIONS else None)
        if kind is None:
            return None
        return Job(kind, path, model, task, method, preset, seed, rnd)
    if m := _ROWS.search(path):
        method, preset = parse_run(m["run"])
        split, _, protocol = m["name"].partition("-")
        return Job("evaluate_lm" if protocol else "evaluate_task", path, m["model"], m["task"], method, preset,
                   int(m["seed"]), split=split, protocol=protocol or None)
    if m := _DATA.search(path):
        return Job("prepare_data", path, task=m["task"])
    if m := _TOKENS.search(path):
        return Job("tokenize_corpus", path, model=m["model"], task=m["corpus"], preset=m["what"])
    if m := _LATENCY.search(path):
        return Job("compare_latency", path, model=m["fam"], seed=int(m["seed"]))
    return None


def _value(text: str):
    """A --set value as the CLI reads it (int, float, true/false/null, JSON), else the string."""
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    low = text.lower()
    if low in ("true", "false", "null", "none"):
        return {"true": True, "false": False}.get(low)
    try:
        return json.loads(text)
    except ValueError:
        return text


def set_flags(shell: str) -> dict:
    """{section: {key: value}} of a shell command: its `--config '<mapping>'` (the workflow's), else its `--set
    a.b=c` flags."""
    try:
        words = shlex.split(shell)
    except ValueError:
        words = shell.split()
    for i, w in enumerate(words[:-1]):
        if w == "--config" and words[i + 1].lstrip().startswith("{"):
            try:
                return json.loads(words[i + 1])
            except json.JSONDecodeError:
                pass
    out: dict = {}
    for i, w in enumerate(words):
        item = words[i + 1] if w == "--set" and i + 1 < len(words) else w[6:] if w.startswith("--set=") else None
        if item is None or "=" not in item:
            continue
        key, _, val = item.partition("=")
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = _value(val)
    return out


@dataclass
class Plan:
    jobs: list[Job]
    stats: dict[str, int]  # the dry run's "Job stats" table (rule -> count), where it has one
    problems: list[str]


def parse_plan(text: str) -> Plan:
    """Jobs of a dry run's output: `snakemake -n` / `-n -p` (blocks with `output:` or `Reason: Missing output
    files:` and `Shell command:`), or `-n --summary` / `--detailed-summary` (tab-separated, first column the output
    file). One job per output path; a job's outputs other than the one classified are ignored."""
    jobs: dict[str, Job] = {}
    stats: dict[str, int] = {}
    problems: list[str] = []
    block_outputs: list[str] = []
    block_shell: list[str] = []

    def close():
        job = None
        for p in block_outputs:
            job = classify(p)
            if job is not None:
                break
        if job is not None:
            job.shell = " ".join(block_shell)
            job.flags = set_flags(job.shell)
            jobs.setdefault(job.path, job)
        block_outputs.clear()
        block_shell.clear()

    lines = text.splitlines()
    in_stats = in_shell = False
    for line in lines:
        s = line.strip()
        if "\t" in line:  # --summary / --detailed-summary: output_file date rule ... status plan
            cols = line.split("\t")
            if cols[0] == "output_file" or (cols[-1].strip() == "no update"):
                continue
            job = classify(cols[0])
            if job is not None:
                shell = cols[5] if len(cols) >= 8 and cols[5] != "-" else ""
                job.shell, job.flags = shell, set_flags(shell)
                jobs.setdefault(job.path, job)
            continue
        if s == "Job stats:":
            in_stats = True
            continue
        if in_stats:
            if m := re.fullmatch(r"([A-Za-z_]\w*)\s+(\d+)", s):
                if m[1] != "total":
                    stats[m[1]] = int(m[2])
                continue
            if s.startswith(("job", "---")) or not s:
                if not s and stats:
                    in_stats = False
                continue
            in_stats = False
        if re.match(r"^\[.*\d{4}\]$", s) or re.match(r"^(rule|localrule|checkpoint) \w+:$", s) or \
                re.match(r"^Job \d+: ", s):
            close()  # a new job's block (the date line, `rule X:` or a rule's message `Job N: ...`)
            in_shell = False
            continue
        if m := re.match(r"^\s*output:\s*(.+)$", line):
            block_outputs.extend(x.strip() for x in m[1].split(","))
        elif m := re.match(r"^\s*Reason:\s*Missing output files:\s*(.+?)(?:;|$)", line, re.I):
            block_outputs.extend(x.strip() for x in m[1].split(","))
        elif m := re.match(r"^\s*Shell command:\s*(.*)$", line):
            block_shell.append(m[1])
            in_shell = True
        elif in_shell and line.startswith((" ", "\t")) and s:
            block_shell.append(s)
        elif re.search(r"(RuleException|WorkflowError|Exception in rule|Traceback)", line):
            problems.append(f"the plan reports an error: {s[:200]}")
            in_shell = False
        else:
            in_shell = in_shell and bool(s)
    close()
    plan = Plan(list(jobs.values()), stats, problems)
    counts: dict[str, int] = {}
    for j in plan.jobs:
        counts[RULE_OF.get(j.kind, j.kind)] = counts.get(RULE_OF.get(j.kind, j.kind), 0) + 1
    for rule, n in stats.items():
        if rule in counts or rule in RUN_KINDS + ("evaluate_task", "evaluate_lm", "prepare_data", "tokenize_corpus",
                                                  "compare_latency"):
            if counts.get(rule, 0) != n:
                problems.append(f"rule {rule}: the plan's job stats list {n} job(s), {counts.get(rule, 0)} were "
                                f"parsed (a dry run cut short?)")
    return plan


# ------------------------------------------------------------------------------------------------ the config
def config_settings(config: dict, job: Job) -> dict:
    """The job's stage settings as the plan resolves them (kronbench.plan.settings), for a dry run that printed no
    commands; a KD pre-training round merges rounds[j] on top of the stage's own."""
    stage = RULE_OF.get(job.kind, job.kind)
    task = config.get("kd_corpus") if job.task == "_general" else job.task
    method = job.method if stage == "distill_task" else None
    if stage == "distill_pretrain":
        runs = pretrain_runs(config, job.model, job.preset)
        return runs[(job.round or len(runs)) - 1]
    return stage_settings(config, stage, job.model, job.preset, task, method=method)


# ------------------------------------------------------------------------------------------------ FLOPs
def _arch(config: dict, model: str) -> dict:
    base = ((config.get("models") or {}).get(model) or {}).get("base") or model
    for name in (base, model):
        if name in ARCHS:
            return ARCHS[name]
    raise KronbenchError(f"model {model!r} (base {base!r}): no architecture in kronbench.plan.estimate.ARCHS "
                         f"({', '.join(ARCHS)})")


def _task_info(task: str) -> tuple[int, list[str]]:
    from kronbench.data.registry import get_task

    t = get_task(task)
    return t.max_length, list(t.splits)


def _rows(task: str, split: str, config: dict) -> int:
    if task not in DATASETS or split not in DATASETS[task]:
        raise KronbenchError(f"no row count for {task}/{split} in kronbench.plan.estimate.DATASETS")
    n = DATASETS[task][split]
    cap = (config.get("data") or {}).get("max_rows")
    return min(n, cap) if cap else n


def _world(config: dict, shell: str) -> int:
    m = re.search(r"--nproc[_-]per[_-]node[= ](\d+)", shell or config.get("launcher") or "")
    return int(m[1]) if m else 1


def loop_tokens(examples: int, train: dict, seq: int, world: int = 1) -> tuple[int, int]:
    """(steps, tokens) of kronbench.distill.loop.train: steps = max_steps or ceil(epochs x floor(examples / (batch x
    world))) (the last partial batch dropped), tokens = steps x batch x world x seq."""
    batch = int(train.get("batch_size", 32))
    per_epoch = max(1, examples // (batch * world))
    steps = int(train["max_steps"]) if train.get("max_steps") else max(1, math.ceil(float(train.get("epochs", 1.0))
                                                                                     * per_epoch))
    return steps, steps * batch * world * seq


def train_cost(job: Job, settings: dict, config: dict, shell: str = "") -> dict:
    """{tokens, flops, detail} of one training job."""
    arch = _arch(config, job.model)
    pt = p_dense(arch)
    train = settings.get("train") or {}
    world = _world(config, shell)
    if job.kind in ("distill_pretrain", "distill_pretrain_round", "baseline_distil", "pretrain_lm"):
        corpus = config.get("kd_corpus", "wikitext-103") if job.kind != "pretrain_lm" else job.task
        data = settings.get("data") or {}
        block = int(data.get("block_size", 128))
        total = CORPUS_TOKENS.get((corpus, arch["family"]))
        if total is None:
            raise KronbenchError(f"no token count for corpus {corpus!r} ({arch['family']} tokenizer) in CORPUS_TOKENS")
        inner = block - 2 if arch["family"] == "bert" else block  # BERT blocks wrap [CLS] ... [SEP]
        blocks = int(total // inner)
        steps, tokens = loop_tokens(blocks, train, block, world)
        if job.kind == "baseline_distil":
            ps = p_dense(arch, arch["layers"] // 2)
            per = 6 * ps + 2 * pt
            detail = f"{blocks:,} blocks of {block}; 6 x {ps / 1e6:.1f} M (half depth) + 2 x {pt / 1e6:.1f} M"
        elif job.kind == "pretrain_lm":
            per = 6 * pt
            detail = f"{blocks:,} blocks of {block}; 6 x {pt / 1e6:.1f} M"
        else:
            per = 8 * pt
            detail = f"{blocks:,} blocks of {block}; (6 + 2) x {pt / 1e6:.1f} M (student charged dense)"
        return {"steps": steps, "tokens": tokens, "flops": tokens * per, "detail": detail}
    seq, _ = _task_info(job.task)
    n = _rows(job.task, "train", config)
    if job.kind == "baseline_rosita":
        # kronbench.baselines.stages.segment_configs: the shared keys, overridden by each segment's own
        shared = {a: b for a, b in train.items() if a not in ("depth", "width", "final")}
        segs = {k: {**shared, **(train.get(k) or {})} for k in ("depth", "width", "final")}
        rosita = settings.get("rosita") or {}
        heads_target = (rosita.get("targets") or {}).get("heads") or \
            max(1, math.floor(arch["heads"] * ROSITA_HEADS[0] / ROSITA_HEADS[1] + 0.5))
        prune_steps = int(rosita.get("prune_steps") or max(1, arch["heads"] - heads_target))
        layers = (rosita.get("targets") or {}).get("layers") or \
            max(1, math.floor(arch["layers"] * ROSITA_LAYERS[0] / ROSITA_LAYERS[1] + 0.5))
        p8 = p_dense(arch, layers)
        later_teacher = pt if rosita.get("width_teacher") == "teacher" else p8
        steps = tokens = flops = 0
        for name, count, teacher in (("depth", 1, pt), ("width", prune_steps - 1, later_teacher),
                                     ("final", 1, later_teacher)):
            s, t = loop_tokens(n, segs[name], seq, world)
            steps, tokens, flops = steps + count * s, tokens + count * t, flops + count * t * (6 * p8 + 2 * teacher)
        detail = (f"{n:,} examples x {seq}; depth + {prune_steps - 1} width + final segments; "
                  f"6 x {p8 / 1e6:.1f} M ({layers} layers) + 2 x teacher")
        return {"steps": steps, "tokens": tokens, "flops": flops, "detail": detail}
    steps, tokens = loop_tokens(n, train, seq, world)
    if job.kind == "finetune_teacher":
        per, detail = 6 * pt, f"6 x {pt / 1e6:.1f} M"
    elif job.kind == "distill_task":
        per, detail = 8 * pt, f"(6 + 2) x {pt / 1e6:.1f} M (student charged dense)"
    elif job.kind == "distil_task":
        ps = p_dense(arch, arch["layers"] // 2)
        per, detail = 6 * ps + 2 * pt, f"6 x {ps / 1e6:.1f} M + 2 x {pt / 1e6:.1f} M"
    else:  # ablation_task: CE only unless the ablation distils (the shell, where printed, shows a --teacher)
        kd = ("--teacher" in shell) if shell else METHODS[job.method].kd
        per = (8 if kd else 6) * pt
        detail = f"({'6 + 2' if kd else '6'}) x {pt / 1e6:.1f} M (student charged dense)"
    return {"steps": steps, "tokens": tokens, "flops": tokens * per,
            "detail": f"{n:,} examples x {seq} tokens; {detail}"}


def eval_cost(job: Job, config: dict) -> dict:
    arch = _arch(config, job.model)
    base_method = ((config.get("models") or {}).get(job.model) or {}).get("base_method") or "teacher"
    if job.method == "distil" and base_method != "distil":
        p = p_dense(arch, arch["layers"] // 2)
    elif job.method == "rosita":
        p = p_dense(arch, math.floor(arch["layers"] * ROSITA_LAYERS[0] / ROSITA_LAYERS[1] + 0.5))
    else:  # the base model, Kronecker students and ablations (charged dense)
        p = p_dense(arch)
    if job.kind == "evaluate_lm":
        tokens = LM_EVAL_TOKENS.get(job.task)
        if tokens is None:
            raise KronbenchError(f"no test token count for LM task {job.task!r} in LM_EVAL_TOKENS")
    else:
        seq, _ = _task_info(job.task)
        tokens = _rows(job.task, job.split, config) * seq
    return {"tokens": tokens, "flops": 2 * p * tokens}


# ------------------------------------------------------------------------------------------------ disk
def _dir_bytes(path: Path) -> int:
    """Bytes of the files under `path`, without checkpoints/ and ROSITA's segment models (deleted at paper scale)."""
    total = 0
    for f in path.rglob("*"):
        rel = f.relative_to(path).parts
        if "checkpoints" in rel or (rel and rel[0] == "segments" and "model" in rel) or \
                any(p.endswith(".deleting") for p in rel):
            continue
        if f.is_file() and not f.is_symlink():
            total += f.stat().st_size
    return total


def disk_key(job: Job) -> tuple:
    preset = job.method if job.kind == "ablation_task" and job.preset is None else job.preset
    label = f"{job.method} ablation" if job.kind == "ablation_task" else DISK_LABEL[job.kind]
    return job.model, label, preset


def measure_smoke(smoke: str | Path) -> dict:
    """Sizes measured in a finished smoke results dir: {"runs": {disk_key: [bytes, ...]}, "rows": [bytes, ...],
    "data": {task: {split: (bytes, rows)}, "manifest": bytes}, "kinds": {task: kind}, "tokens": {model: bytes per
    token}}."""
    smoke = Path(smoke)
    if not (smoke / "runs").is_dir():
        raise KronbenchError(f"--smoke {smoke}: no runs/ directory (run ci/paper-smoke.sh first)")
    runs: dict[tuple, list[int]] = {}
    for summary in sorted((smoke / "runs").glob("*/*/*/*/summary.json")):
        job = classify(summary.relative_to(smoke).as_posix())
        if job is None or job.kind not in RUN_KINDS:
            continue
        runs.setdefault(disk_key(job), []).append(_dir_bytes(summary.parent))
    rows = [f.stat().st_size for f in (smoke / "rows").rglob("*.jsonl")] if (smoke / "rows").is_dir() else []
    data: dict[str, dict] = {}
    for manifest in sorted((smoke / "data").glob("*/manifest.json")) if (smoke / "data").is_dir() else []:
        m = json.loads(manifest.read_text())
        entry = {"manifest": manifest.stat().st_size, "kind": m.get("kind"), "splits": {}}
        for split, n in (m.get("rows") or {}).items():
            f = manifest.parent / f"{split}.parquet"
            if f.is_file() and n:
                entry["splits"][split] = (f.stat().st_size, n)
        data[manifest.parent.name] = entry
    tokens: dict[str, float] = {}
    for npz in sorted((smoke / "tokens").glob("*/*.npz")) if (smoke / "tokens").is_dir() else []:
        meta = npz.with_suffix(".json")
        if meta.is_file():
            n = json.loads(meta.read_text()).get("tokens")
            job = classify(npz.relative_to(smoke).as_posix())
            if n and job is not None:
                tokens.setdefault(job.model, npz.stat().st_size / n)
    return {"runs": runs, "rows": rows, "data": data, "tokens": tokens}


def _data_bytes(task: str, sizes: dict) -> tuple[float | None, str]:
    """Paper-scale bytes of data/<task>/: the smoke's bytes per row of each split x the official rows; a task the
    smoke did not prepare takes the mean bytes per row of the smoke's tasks of its kind."""
    from kronbench.data.registry import get_task

    official = {k: v for k, v in DATASETS.get(task, {}).items() if k != "source"}
    if not official:
        return None, "no official row count"
    own = sizes["data"].get(task)
    kind = get_task(task).kind
    same = [e for e in sizes["data"].values() if e["kind"] == kind]
    if not same:
        return None, f"the smoke prepared no {kind} task"
    total, how = float(own["manifest"] if own else statistics.mean(e["manifest"] for e in same)), "measured"
    for split, n in official.items():
        if own and split in own["splits"]:
            b, r = own["splits"][split]
            total += b / r * n
        else:
            per = [b / r for e in same for (b, r) in e["splits"].values()]
            total += statistics.mean(per) * n
            how = f"bytes/row of the smoke's {kind} tasks"
    return total, how


# ------------------------------------------------------------------------------------------------ estimate
def estimate(plan_text: str, config: dict | None = None, smoke: str | Path | None = None,
             tflops: float = 100.0) -> dict:
    """The estimate as a dict: per-job costs, GPU-hours per (stage kind, model), disk per kind (None where the smoke
    is missing), problems found."""
    config = config or {}
    plan = parse_plan(plan_text)
    problems = list(plan.problems)
    if not plan.jobs:
        raise KronbenchError("the plan lists no job this estimate knows (give the output of `snakemake -n -p ...`)")
    rate = tflops * 1e12
    gpu: dict[tuple, dict] = {}
    sources = {"flags": 0, "config": 0}
    jobs_out = []
    for job in sorted(plan.jobs, key=lambda j: (j.kind, j.model, j.task, j.method, j.preset or "", j.seed or 0)):
        cost = None
        if job.kind in TRAIN_KINDS:
            if job.flags:
                settings, src = job.flags, "flags"
            elif config:
                settings, src = config_settings(config, job), "config"
            else:
                raise KronbenchError(f"{job.path}: the plan prints no --set flags for it (use `snakemake -n -p`) "
                                     f"and no config was given to read its settings from")
            sources[src] += 1
            data = settings.get("data") or {}
            if data.get("transfer") or data.get("format") == "sentence_pairs":
                problems.append(f"{job.path}: data.transfer / sentence_pairs are not modelled (charged as plain "
                                f"task data / blocks)")
            cost = train_cost(job, settings, config, job.shell)
            cost["settings_from"] = src
        elif job.kind in ("evaluate_task", "evaluate_lm"):
            cost = eval_cost(job, config)
        if cost is not None:
            cost["gpu_hours"] = cost["flops"] / rate / 3600
            key = (job.kind, job.model)
            g = gpu.setdefault(key, {"jobs": 0, "tokens": 0, "flops": 0, "gpu_hours": 0.0})
            g["jobs"] += 1
            g["tokens"] += cost["tokens"]
            g["flops"] += cost["flops"]
            g["gpu_hours"] += cost["gpu_hours"]
        jobs_out.append({"job": job, "cost": cost})
    counts: dict[str, int] = {}
    for j in plan.jobs:
        counts[j.kind] = counts.get(j.kind, 0) + 1
    result = {"tflops": tflops, "jobs": jobs_out, "counts": counts, "gpu": gpu,
              "gpu_hours": sum(g["gpu_hours"] for g in gpu.values()), "settings_sources": sources,
              "problems": problems, "disk": None, "smoke": str(smoke) if smoke else None}
    if smoke is not None and (Path(smoke) / "runs").is_dir():
        result["disk"] = _disk(plan.jobs, measure_smoke(smoke), problems)
    elif smoke is not None:
        problems.append(f"--smoke {smoke}: no runs/ there (yet); disk left pending (run ci/paper-smoke.sh)")
    return result


def _disk(jobs: list[Job], sizes: dict, problems: list[str]) -> dict:
    lines: dict[tuple, dict] = {}
    missing: dict[tuple, int] = {}
    for job in jobs:
        if job.kind not in RUN_KINDS:
            continue
        key = disk_key(job)
        measured = sizes["runs"].get(key)
        if not measured:
            missing[key] = missing.get(key, 0) + 1
            continue
        line = lines.setdefault(key, {"runs": 0, "each": statistics.median(measured), "n_measured": len(measured)})
        line["runs"] += 1
    for key, n in sorted(missing.items(), key=str):
        problems.append(f"disk: {n} planned run(s) of kind {key} have no measured counterpart in the smoke; left out")
    runs_total = sum(v["runs"] * v["each"] for v in lines.values())
    data: dict[str, dict] = {}
    for job in jobs:
        if job.kind == "prepare_data":
            b, how = _data_bytes(job.task, sizes)
            if b is None:
                problems.append(f"disk: data/{job.task}: {how}; left out")
                continue
            data[job.task] = {"bytes": b, "how": how}
    tokens: dict[str, dict] = {}
    for job in jobs:
        if job.kind == "tokenize_corpus":
            per = sizes["tokens"].get(job.model)
            arch = ARCHS.get(job.model)
            total = CORPUS_TOKENS.get((job.task, arch["family"])) if arch else None
            if per is None or total is None:
                problems.append(f"disk: {job.path}: no smoke token file of {job.model} or no corpus token count")
                continue
            tokens[job.path] = {"bytes": per * total, "bytes_per_token": per}
    n_rows = sum(1 for j in jobs if j.kind in ("evaluate_task", "evaluate_lm"))
    row_each = statistics.mean(sizes["rows"]) if sizes["rows"] else 0.0
    if n_rows and not sizes["rows"]:
        problems.append("disk: the smoke has no rows files; rows left out")
    total = runs_total + sum(d["bytes"] for d in data.values()) + sum(t["bytes"] for t in tokens.values()) + \
        n_rows * row_each
    return {"runs": lines, "runs_total": runs_total, "data": data, "tokens": tokens,
            "rows": {"files": n_rows, "each": row_each, "bytes": n_rows * row_each}, "total": total}


# ------------------------------------------------------------------------------------------------ markdown
def _g(x: float) -> str:
    return f"{x / GB:,.2f}"


def render_markdown(result: dict, plan_name: str = "", command: str = "") -> str:
    out = ["# Paper grid: estimated cost", ""]
    if command:
        out += [f"Command: `{command}`", ""]
    out += [f"Plan: `{plan_name}`; {sum(result['counts'].values())} jobs parsed; throughput "
            f"{result['tflops']:g} TFLOP/s sustained; training settings from `--set` flags for "
            f"{result['settings_sources']['flags']} job(s), from the config for "
            f"{result['settings_sources']['config']}.", "", "## Method", ""]
    out += [line for line in (__doc__ or "").strip().splitlines()] + [""]
    out += ["## Jobs", "", "| job kind | jobs |", "|---|---:|"]
    out += [f"| {k} | {n} |" for k, n in sorted(result["counts"].items())] + [""]
    out += ["## GPU-hours", "", "| stage | model | jobs | tokens (B) | PFLOP | GPU-hours |",
            "|---|---|---:|---:|---:|---:|"]
    by_kind: dict[str, float] = {}
    for (kind, model), g in sorted(result["gpu"].items()):
        by_kind[kind] = by_kind.get(kind, 0.0) + g["gpu_hours"]
        out.append(f"| {kind} | {model} | {g['jobs']} | {g['tokens'] / 1e9:,.3f} | {g['flops'] / 1e15:,.1f} | "
                   f"{g['gpu_hours']:,.2f} |")
    out += [f"| **total** | | {sum(g['jobs'] for g in result['gpu'].values())} | | "
            f"{sum(g['flops'] for g in result['gpu'].values()) / 1e15:,.1f} | **{result['gpu_hours']:,.1f}** |", ""]
    out += ["Per stage kind: " + "; ".join(f"{k} {v:,.1f} h" for k, v in sorted(by_kind.items(), key=lambda x: -x[1]))
            + f"; total {result['gpu_hours']:,.1f} GPU-hours.", ""]
    groups: dict[tuple, dict] = {}
    for j in result["jobs"]:
        c, job = j["cost"], j["job"]
        if c and "detail" in c:
            run = job.method + (f"-{job.preset}" if job.preset else "")
            g = groups.setdefault((job.kind, job.model, job.task, run), {"seeds": 0, "gpu_hours": 0.0, "cost": c})
            g["seeds"] += 1
            g["gpu_hours"] += c["gpu_hours"]
    top = sorted(groups.items(), key=lambda kv: -kv[1]["gpu_hours"])[:12]
    if top:
        out += ["Largest training groups (one run per seed):", "",
                "| stage | model | task | run | seeds | steps / run | tokens / run (M) | GPU-h / run | GPU-h | how |",
                "|---|---|---|---|---:|---:|---:|---:|---:|---|"]
        for (kind, model, task, run), g in top:
            c = g["cost"]
            out.append(f"| {kind} | {model} | {task} | {run} | {g['seeds']} | {c['steps']:,} | "
                       f"{c['tokens'] / 1e6:,.1f} "
                       f"| {c['gpu_hours']:,.2f} | {g['gpu_hours']:,.2f} | {c['detail']} |")
        out.append("")
    out += ["## Disk", ""]
    disk = result["disk"]
    if disk is None:
        out += ["Pending: no finished smoke run to measure (run `ci/paper-smoke.sh`, then pass "
                "`--smoke results/smoke`). Planned run directories per kind:", "",
                "| model | kind | preset | runs |", "|---|---|---|---:|"]
        per: dict[tuple, int] = {}
        for j in result["jobs"]:
            if j["job"].kind in RUN_KINDS:
                k = disk_key(j["job"])
                per[k] = per.get(k, 0) + 1
        out += [f"| {m} | {lab} | {p or ''} | {n} |" for (m, lab, p), n in sorted(per.items(), key=str)] + [""]
    else:
        out += [f"Measured in `{result['smoke']}`.", "", "| model | kind | preset | runs | each (GB) | total (GB) |",
                "|---|---|---|---:|---:|---:|"]
        for (m, lab, p), v in sorted(disk["runs"].items(), key=str):
            out.append(f"| {m} | {lab} | {p or ''} | {v['runs']} | {v['each'] / GB:,.3f} | "
                       f"{_g(v['runs'] * v['each'])} |")
        out += [f"| **run directories** | | | {sum(v['runs'] for v in disk['runs'].values())} | | "
                f"**{_g(disk['runs_total'])}** |", ""]
        if disk["data"]:
            out += ["| prepared data | GB | how |", "|---|---:|---|"]
            out += [f"| data/{t} | {d['bytes'] / GB:,.3f} | {d['how']} |" for t, d in sorted(disk["data"].items())]
            out.append("")
        for path, t in sorted(disk["tokens"].items()):
            out.append(f"- `{_short(path)}`: {_g(t['bytes'])} GB ({t['bytes_per_token']:.2f} B/token x corpus tokens)")
        out += [f"- rows files: {disk['rows']['files']} x {disk['rows']['each']:,.0f} B = "
                f"{_g(disk['rows']['bytes'])} GB",
                "", f"**Total disk: {_g(disk['total'])} GB** (run directories {_g(disk['runs_total'])} GB).", ""]
    if result["problems"]:
        out += ["## Warnings", ""] + [f"- {p}" for p in result["problems"]] + [""]
    out += ["## Dataset sizes used", "", "| task | rows per split | source |", "|---|---|---|"]
    for task, d in DATASETS.items():
        splits = ", ".join(f"{k} {v:,}" for k, v in d.items() if k != "source")
        out.append(f"| {task} | {splits} | {d['source']} |")
    out += ["", "KD corpus tokens (approximate): " + ", ".join(f"{c} / {f} {n / 1e6:g} M"
                                                              for (c, f), n in CORPUS_TOKENS.items()),
            "LM test tokens (approximate): " + ", ".join(f"{t} {n:,.0f}" for t, n in LM_EVAL_TOKENS.items()), ""]
    return "\n".join(out)


def _short(path: str) -> str:
    i = max(path.rfind("/runs/"), path.rfind("/tokens/"))
    return path[i + 1:] if i >= 0 else path
