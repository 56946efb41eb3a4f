"""A job's stage settings: config stages.<stage>, then every matching overrides[] entry in order.

The result is the one settings document a training job receives (`--config '<json>'`, the same mapping a user
may write to a YAML file); the stage command validates it once (kronbench.settings.check).
"""

from __future__ import annotations

import copy

from kronbench.settings import STAGE_SECTIONS

ROUNDS = {"distill_pretrain": ("rounds",)}  # a stage that may run as several runs (distill_pretrain's round wildcard)
ROSITA_SEGMENTS = ("depth", "width", "final")  # baseline_rosita's per-segment train sub-sections
# The method each stage trains for, matched by overrides[].method unless the job names another (distill_task runs
# for kronecker, distil and the ablations); other stages train the model's base method (teacher, distil).
STAGE_METHODS = {"compress": "kronecker", "distill_pretrain": "kronecker", "distill_task": "kronecker",
                 "baseline_distil": "distil", "baseline_rosita": "rosita"}


def as_list(x) -> list:
    return [] if x is None else [x] if isinstance(x, str) else list(x)


def merge(into: dict, new: dict) -> dict:
    """Deep-merge `new` into `into` (mappings merge, everything else replaces), as Snakemake merges configfiles."""
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            merge(into[k], v)
        else:
            into[k] = copy.deepcopy(v)
    return into


def stage_config(config: dict, stage: str, model: str, preset=None, task=None, method=None) -> dict:
    """stages.<stage>, then every matching override in order, unfiltered (rounds included)."""
    s = copy.deepcopy(config["stages"][stage])
    method = method or STAGE_METHODS.get(stage, config["models"][model]["base_method"])
    keys = {"stage": stage, "model": model, "preset": preset, "task": task, "method": method}
    for o in config["overrides"]:
        if all(o.get(k) is None or keys[k] in as_list(o[k]) for k in keys):
            merge(s, o["set"])
    return s


def stage_settings(config: dict, stage: str, model: str, preset=None, task=None, seed=None, method=None) -> dict:
    """The sections `stage` takes, non-empty, with the seed wildcard as train.seed."""
    s = stage_config(config, stage, model, preset, task, method)
    if seed is not None:
        s.setdefault("train", {})["seed"] = int(seed)
    # an override without `stage` may carry sections other stages use (loss): keep this stage's own
    return {k: v for k, v in s.items() if v and k in STAGE_SECTIONS[stage]}


def pretrain_runs(config: dict, model: str, preset: str) -> list[dict]:
    """Settings of each KD pre-training run, without the seed: the stage's own, then each entry of
    stages.distill_pretrain.rounds merged on top of them (one run if there are no rounds)."""
    s = stage_settings(config, "distill_pretrain", model, preset, config["kd_corpus"])
    rounds = stage_config(config, "distill_pretrain", model, preset, config["kd_corpus"]).get("rounds") or []
    return [s] + [merge(copy.deepcopy(s), r) for r in rounds]


def section_errors(config: dict) -> list[str]:
    """stages.<stage> and overrides[].set sections that their stage does not take."""
    errors = []
    for stage, sections in STAGE_SECTIONS.items():
        given = config["stages"][stage]
        extra = [k for k, v in given.items() if v and k not in sections + ROUNDS.get(stage, ())]
        if extra:
            errors.append(f"stages.{stage}: section(s) {extra} are not used by {stage} (it takes "
                          f"{', '.join(sections)})")
        segments = [k for k in ROSITA_SEGMENTS if k in given.get("train", {})]
        if segments and stage != "baseline_rosita":
            errors.append(f"stages.{stage}.train: {segments} are baseline_rosita's segment settings")
    for i, o in enumerate(config["overrides"]):
        stages = [s for s in as_list(o.get("stage")) if s in STAGE_SECTIONS] or list(STAGE_SECTIONS)
        allowed = {sec for s in stages for sec in STAGE_SECTIONS[s] + ROUNDS.get(s, ())}
        extra = [k for k, v in o["set"].items() if v and k not in allowed]
        if extra:
            errors.append(f"overrides[{i}].set: section(s) {extra} are not used by {', '.join(stages)}")
    return errors
