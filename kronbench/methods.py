"""The method registry: every way a row's checkpoint can be made, as one record each.

A method is a record, not a branch (lm-evaluation-harness's tasks and models): the plan reads it for the rule
that makes the checkpoint and what that rule starts from, the report for the table order and the figure marker.
Adding a baseline or an ablation that runs through an existing stage is one record here; a new kind of stage is
one module plus one record.

Run directories and rows name a method with its preset as one path component, `<method>-<preset>` (kronecker-kb8,
rosita-cf=8), or the method alone where it has none (teacher, distil). No name with a preset may be another's
prefix followed by a dash, so that component splits one way only (`test_methods.py` checks it).
"""

from __future__ import annotations

from dataclasses import dataclass

from kronbench.errors import KronbenchError


@dataclass(frozen=True)
class Method:
    name: str
    preset: bool          # its run directory is <name>-<preset>
    stage: str            # the rule (= CLI subcommand, library function) that makes its task checkpoint
    kind: str             # base (the model itself), kronecker, baseline or ablation: the config key that lists it
    student: str | None   # distill_task's starting point: kd-pretrained (student1), compressed (student0), distil
    kd: bool              # whether the fine-tuned teacher distils it in its task stage
    lm: str | None        # the task-independent checkpoint its LM rows score (None: no LM rows)
    marker: str           # matplotlib marker in the figures
    about: str            # one line for tables' notes and `--help`
    init: str | None = None  # compress's init for a chain of its own (compress, KD pre-training); None: kronecker's


METHODS: dict[str, Method] = {m.name: m for m in (
    Method("teacher", False, "finetune_teacher", "base", None, False, "base", "*",
           "the pretrained base fine-tuned on the task"),
    Method("kronecker", True, "distill_task", "kronecker", "kd-pretrained", True, "kd-pretrained", "o",
           "KroneckerBERT/KnGPT2: NKP init, KD pre-training, task ILKD"),
    # KroneckerBERT Table 6: the task stage from another starting point, with or without the teacher
    # Its LM rows score student0 itself: the compressed model before any training
    Method("decompose-only", True, "distill_task", "ablation", "compressed", False, "compressed", "X",
           "NKP initialisation, task fine-tuning without KD"),
    Method("no-kd-pretrain", True, "distill_task", "ablation", "compressed", True, None, "v",
           "task ILKD without KD pre-training"),
    Method("no-task-kd", True, "distill_task", "ablation", "kd-pretrained", False, None, "^",
           "KD pre-training, task fine-tuning without KD"),
    # compress's initialisation at equal budget (issue 21): the kronecker chain from its own student0
    Method("init-nkp", True, "distill_task", "ablation", "kd-pretrained", True, "kd-pretrained", "P",
           "NKP initialisation (KroneckerBERT §3.4), KD pre-training, task ILKD", init="nkp"),
    Method("init-activation", True, "distill_task", "ablation", "kd-pretrained", True, "kd-pretrained", "h",
           "factors fitted to the layers' outputs on calibration text, KD pre-training, task ILKD",
           init="activation"),
    Method("distil", False, "distill_task", "baseline", "distil", True, "distil", "s",
           "DistilBERT/DistilGPT2-style half-depth student, KD pre-training, task KD"),
    Method("rosita", True, "baseline_rosita", "baseline", None, True, None, "D",
           "ROSITA-style depth and width pruning of the fine-tuned teacher with KD"),
)}

BASELINES = [m.name for m in METHODS.values() if m.kind == "baseline"]
ABLATIONS = [m.name for m in METHODS.values() if m.kind == "ablation"]
BASE_METHODS = ("teacher", "distil")  # models.<m>.base_method: a ready-made distilled model's rows are distil's


# The runs compress and distill_pretrain make: kronecker's, and one per method with an init of its own.
CHAINS = ["kronecker"] + [m.name for m in METHODS.values() if m.init]


def chain(method: str) -> str:
    """The compress / KD pre-training run a method's student comes from: its own with an init, else kronecker."""
    return method if get_method(method).init else "kronecker"


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise KronbenchError(f"unknown method {name!r}; methods: {', '.join(METHODS)}")
    return METHODS[name]


def run_name(method: str, preset: str | None = None) -> str:
    """The path component of a run: kronecker-kb8, teacher."""
    return f"{method}-{preset}" if preset else method


def parse_run(run: str) -> tuple[str, str | None]:
    """'kronecker-cf=8' -> ('kronecker', 'cf=8'); 'teacher' -> ('teacher', None)."""
    if run in METHODS and not METHODS[run].preset:
        return run, None
    for m in sorted((m for m in METHODS.values() if m.preset), key=lambda m: len(m.name), reverse=True):
        head, dash, preset = run.partition(f"{m.name}-")
        if not head and dash and preset:
            return m.name, preset
    plain = [m.name for m in METHODS.values() if not m.preset]
    with_preset = [m.name for m in METHODS.values() if m.preset]
    raise KronbenchError(f"run {run!r}: not <method> ({', '.join(plain)}) or <method>-<preset> "
                         f"({', '.join(with_preset)})")


def run_pattern(stage: str) -> str:
    """Regex of the run names a stage makes (a Snakemake wildcard constraint): kronecker-[^/]+|distil|..."""
    return "|".join(f"{m.name}-[^/]+" if m.preset else m.name for m in METHODS.values() if m.stage == stage)
