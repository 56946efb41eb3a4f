"""The stage settings contract: which sections each training stage takes, and the one check of a settings
document before a stage runs.

A job gets its settings as one mapping {section: {key: value}} (the plan's resolved stages.<stage> plus
overrides, or a user's `--config` file and `--set` flags). `check` validates the sections and the keys this
module owns; the train keys are LoopConfig's (kronbench.distill.loop) and the loss keys the loss terms'
(kronbench.distill.losses), each checked where it is defined. The config file's JSON schema
(workflow/schemas/config.schema.yaml) describes the same keys for people writing YAML.

The stage functions (kronbench.distill.stages, kronbench.baselines.stages) take their inputs, the run directory and
the checked sections as arguments: `train_cfg` (the train section), then `loss=`, `**data`, `**model` or the rosita
keys, plus `meta` (row labels) and `keep_intermediate`; kronbench.distill.runner owns what they write.
"""

from __future__ import annotations

from kronbench.errors import KronbenchError

# stage (= rule = CLI subcommand, with - for _) -> the sections its settings may have
STAGE_SECTIONS = {"pretrain_lm": ("train", "model"), "finetune_teacher": ("train",),
                  "distill_pretrain": ("train", "loss", "data"), "distill_task": ("train", "loss", "data"),
                  "baseline_distil": ("train", "loss", "data"), "baseline_rosita": ("train", "loss", "rosita"),
                  "compress": ("init", "calibration")}
# sections that hold one value, not a mapping: (stage, section) -> the values allowed
SCALARS = {("compress", "init"): ("nkp", "activation")}
# keys of the sections owned here, per stage
KEYS = {("distill_pretrain", "data"): ("block_size", "format", "copies", "transfer", "hard_fraction"),
        ("distill_task", "data"): ("block_size", "format", "copies", "transfer", "hard_fraction"),
        ("baseline_distil", "data"): ("block_size",),
        ("baseline_rosita", "rosita"): ("targets", "taylor_batches", "width_teacher", "prune_steps"),
        ("pretrain_lm", "model"): ("vocab_size", "block_size"),
        ("compress", "calibration"): ("corpus", "sentences", "heldout", "seq", "seed", "batch_size",
                                      "count_sentences", "target", "ridge", "iters", "sequential")}


def check(stage: str, settings: dict) -> dict:
    """`settings` with every section present ({} when absent), or a KronbenchError naming the section or key."""
    sections = STAGE_SECTIONS[stage]
    unknown = sorted(set(settings) - set(sections))
    if unknown:
        raise KronbenchError(f"settings: unknown section(s) {unknown} for {stage}; valid: {', '.join(sections)}")
    out = {}
    for s in sections:
        if (stage, s) in SCALARS:
            choices = SCALARS[stage, s]
            value = settings.get(s, choices[0])
            if value not in choices:
                raise KronbenchError(f"{s}: {value!r} is not one of {', '.join(choices)}")
            out[s] = value
        else:
            out[s] = dict(settings.get(s) or {})
    for section in (s for s in sections if (stage, s) not in SCALARS):
        valid = KEYS.get((stage, section))
        bad = sorted(set(out[section]) - set(valid)) if valid is not None else []
        if bad:
            raise KronbenchError(f"{section}: unknown key(s) {bad}; valid: {', '.join(valid)}")
    return out
