"""Every name of a config checked against kronbench's registries before any job is planned.

`config_errors(config)` returns messages that name the key and the fix (the workflow stops on any, with nothing
run); the config is the schema-validated one (defaults filled, kronbench.plan.load_config).
"""

from __future__ import annotations

import os
import re

from kronbench.methods import ABLATIONS, BASELINES, METHODS
from kronbench.plan.settings import as_list, section_errors
from kronbench.settings import STAGE_SECTIONS


def data_source(config: dict, task: str) -> str:
    return config["data"]["task_sources"].get(task, config["data"]["source"])


def data_source_used(config: dict, source: str) -> bool:
    return config["data"]["source"] == source or source in config["data"]["task_sources"].values()


def compare_presets(m: dict) -> list:
    """The presets that get the ablations and a ROSITA student at their budget (default: all presets)."""
    return m["presets"] if m["compare_presets"] is None else m["compare_presets"]


def config_errors(config: dict) -> list[str]:
    """Every task, preset, method and model name of the config, checked against the registries."""
    # imported here, not at the top: `import kronbench.plan` (every Snakemake start) stays light
    from kronbench.data.registry import get_task
    from kronbench.errors import KronbenchError
    from kronbench.models.presets import get_spec
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
        source = data_source(config, name)
        if source not in t.sources:
            errors.append(f"{where}: task {name!r} has no {source!r} source (it has {', '.join(t.sources)}); set "
                          f"data.task_sources.{name}")
        return t

    def preset(name, where):
        try:
            get_spec(name)
        except KronbenchError as e:
            errors.append(f"{where}: {e}")

    if data_source_used(config, "local") and not config["data"]["data_dir"]:
        errors.append("data.data_dir: required when a task's source is local")
    MODELS = config["models"]
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
        for stage in as_list(o.get("stage")):
            if stage not in STAGE_SECTIONS:
                errors.append(f"{where}.stage: unknown stage {stage!r}; stages: {', '.join(STAGE_SECTIONS)}")
        for name in as_list(o.get("model")):
            if name not in MODELS:
                errors.append(f"{where}.model: {name!r} is not in models ({', '.join(MODELS)})")
        for p in as_list(o.get("preset")):
            preset(p, f"{where}.preset")
        for method in as_list(o.get("method")):
            if method not in METHODS:
                errors.append(f"{where}.method: unknown method {method!r}; methods: "
                              f"{', '.join(METHODS)}")
        for t in as_list(o.get("task")):
            task(t, f"{where}.task")
    errors += section_errors(config)
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
    at_a_budget = [b for b in m["baselines"] if b in METHODS and METHODS[b].preset] + list(m["ablations"])
    if at_a_budget and not compare_presets(m):  # rosita-<preset>, <ablation>-<preset>
        errors.append(f"{where}: {', '.join(at_a_budget)} need a Kronecker preset (presets or compare_presets)")
