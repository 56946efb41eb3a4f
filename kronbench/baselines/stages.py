"""The baselines as pipeline stages (`kronbench baseline-distil, baseline-rosita`), next to kronbench.distill.stages.

    baseline_distil   pretrained teacher + LM corpus  -> half-depth KD-pretrained student  (DistilBERT/DistilGPT2)
    baseline_rosita   fine-tuned teacher + task       -> depth+width-pruned task student    (ROSITA "KD Setting 4")

A distil student then goes through `kronbench distill-task` like a Kronecker student, with
`loss.layer_map` set to the summary's `layer_map` (its student blocks map to those teacher blocks). A ROSITA student
is finished: it is evaluated directly.

Run directories follow kronbench.distill.stages: `config.json`, `log.jsonl`, `model/` (checkpoints.save with
kronbench_run.json: method, preset, lineage, train_seconds, config_hash) and last `summary.json`, which marks the
stage done; under a multi-process launch the main process writes them and the others wait for them.
baseline_rosita trains in segments, each in `segments/<k>-<name>/` with the same layout, so an interrupted run
resumes inside the unfinished segment and skips the finished ones. Once the run's own model/ and summary.json are
written, the segments' models go too (no rule reads them; their logs, summaries and kept.json stay) unless
`keep_intermediate`; summary.json's `intermediate` lists them with the bytes freed, and a rerun trains afresh.

ROSITA condensed (docs/sources.md §3.2–3.3), deviations from llyx97/Rosita: depth pruning is one step (ROSITA prunes
12 → 8 one layer at a time, teacher "BERT(student)"; here the fine-tuned teacher stands in for that KD-trained
copy); Taylor scores come from the task loss on a few batches just before each step (ROSITA accumulates them
over the training window with the KD loss); each step starts a fresh optimizer and schedule, trained in its own
segment; no data augmentation; for regression `logit_kd` is MSE to the teacher's score (ROSITA: to the label).

The ablations of KroneckerBERT Table 6 need no code, only configurations of the existing stages (`meta["method"]`,
the CLI's --method, names the row):
    decompose-only  compress -> distill task, no teacher, loss.weights={ce: 1}
    no-kd-pretrain  compress -> distill task (ILKD from the fine-tuned teacher)
    no-task-kd      compress -> distill pretrain -> distill task, no teacher, loss.weights={ce: 1}
"""

from __future__ import annotations

import copy
import json
import os
import time
from pathlib import Path

import torch

from kronbench.baselines.distil import DISTIL_TEMPERATURE, DISTIL_WEIGHTS, make_distil_student
from kronbench.baselines.rosita import (count_target_params, drop_layers, layers_of, prune_step, rosita_targets,
                                        structure, taylor_importance, width_schedule)
from kronbench.data.features import task_of
from kronbench.distill import objectives
from kronbench.distill.loop import LoopConfig, finish, is_main
from kronbench.distill.runner import (chain_info, collator, config_hash, lineage_tune_seconds, run_stage,
                                      write_json)
from kronbench.distill.stages import corpus_dataset, drop_headless, loss_settings, task_dataset
from kronbench.errors import KronbenchError
from kronbench.models import checkpoints
from kronbench.models.counting import count_params
from kronbench.models.families import FAMILIES
from kronbench.models.registry import family_of

# ROSITA KD/train.py with --repr_distill --pred_distill (docs/sources.md §3.3): MSE on the embedding output and every
# mapped layer's hidden states, soft CE on the logits at T = 1, no attention term, no hard-label CE.
ROSITA_WEIGHTS = {"emb_mse": 1.0, "hid_mse": 1.0, "logit_kd": 1.0}
ROSITA_LOSS = {"temperature": 1.0, "kd_form": "soft_ce"}
# A headless teacher (MiniLM ships no MLM head) leaves DistilBERT's recipe only α_cos; hidden-state MSE over the
# distil layer map (TinyBERT/ROSITA's representation loss) stands in for the dropped α_ce and α_mlm terms.
DISTIL_HEADLESS_WEIGHTS = {"cos": 1.0, "hid_mse": 1.0}
ROSITA_SEGMENTS = ("depth", "width", "final")  # train config sections of baseline_rosita
PARAM_TOLERANCE = 0.05  # the pruned model's params vs count_target_params


# --------------------------------------------------------------------------------------------- helpers
def _no_stop(train_cfg: dict) -> dict:
    """The train config without `stop_after` (an interruption switch, not a setting) at any level, for hashing."""
    return {k: _no_stop(v) if isinstance(v, dict) else v for k, v in train_cfg.items() if k != "stop_after"}


def _parent(name: str) -> dict:
    return checkpoints.run_info(name) if os.path.isdir(name) else {}


# --------------------------------------------------------------------------------------------- distil
def baseline_distil(teacher: str, data_dir, run_dir, train_cfg: dict, loss: dict | None = None,
                    layers: str | list[int] = "alternate", block_size: int = 128, meta: dict | None = None,
                    keep_intermediate: bool = False, tokens: str | None = None) -> dict:
    """DistilBERT / DistilGPT2: the pretrained `teacher` with half its blocks (make_distil_student), KD-pretrained
    on a prepared LM corpus (docs/sources.md §4); `tokens`, a `kronbench tokenize-corpus` file of it (blocks), saves
    tokenising the corpus here.

    Loss (defaults; `loss` overrides keys as in kronbench.distill.stages.distill, e.g. {"weights": {...}}):
    α_ce·KL(T = 2) + α_mlm/α_clm·LM + α_cos·cos = DISTIL_WEIGHTS {logit_kd: 5, lm: 2, cos: 1}, `layer_map` = the
    kept teacher blocks. BERT masks 15% of tokens for `lm` (KL over every real token, where DistilBERT takes the
    masked ones only). A teacher without an LM head (MiniLM) has no `logit_kd`/`lm`: DISTIL_HEADLESS_WEIGHTS,
    cos + hid_mse over the distil layer map, instead. Returns the summary; its `layer_map` (teacher block of each
    student block) is what the task stage needs as loss.layer_map.
    """
    task = task_of(data_dir)
    cfg = LoopConfig.from_dict(train_cfg, "train")
    torch.manual_seed(cfg.seed)
    t_net, tok = checkpoints.load(teacher)
    family = family_of(t_net.config)
    student = make_distil_student(t_net, layers)
    chosen = list(student.config.kronbench_distil_layers)
    headless = t_net.get_output_embeddings() is None
    settings = loss_settings({"weights": dict(DISTIL_HEADLESS_WEIGHTS if headless else DISTIL_WEIGHTS),
                               "temperature": DISTIL_TEMPERATURE, "layer_map": chosen, **(loss or {})}, "distilbert")
    dropped = drop_headless(settings["weights"], student, t_net)  # lm/logit_kd asked for on a headless teacher
    weights = settings.pop("weights")
    causal = FAMILIES[family].causal
    kind = "lm" if causal else "bert_lm"
    mlm = {"tokenizer": tok, "prob": settings.get("mlm_prob", 0.15)} if kind == "bert_lm" and weights.get("lm") \
        else None
    settings.pop("mlm_prob", None)
    data = corpus_dataset(data_dir, tok, block_size, wrap=not causal, tokens=tokens)
    objective = objectives.ilkd(t_net, kind, weights, mlm=mlm, seed=cfg.seed, **settings)
    parent = _parent(teacher)  # a self-pretrained GPT-2's lineage counts, as in `compress`
    preset = f"L{len(chosen)}"
    info = {"model": (meta or {}).get("model", parent.get("model", teacher)),
            "method": (meta or {}).get("method", "distil"), "preset": preset, "spec": None, "task": task.name,
            "label": parent.get("label"), "lineage": parent.get("lineage", []), "teacher": teacher,
            "distil_layers": chosen}
    config = {"stage": "baseline-distil", "teacher": teacher, "task": task.name, "layers": chosen,
              "weights": weights, "dropped_terms": dropped, "headless_teacher": headless, **settings,
              "block_size": block_size, "train": _no_stop(train_cfg)}
    extra = {"method": info["method"], "preset": preset, "layer_map": chosen, "params": count_params(student),
             "teacher_params": count_params(t_net), "teacher_layers": len(layers_of(t_net)[1])}
    return run_stage(student, tok, data, objective, cfg, Path(run_dir), "baseline-distil", info, config,
                teacher=t_net, extra=extra, keep_intermediate=keep_intermediate)


# --------------------------------------------------------------------------------------------- rosita
def rosita_layer_map(n_teacher: int, n_student: int) -> list[int]:
    """Teacher block of each student block for ROSITA's representation loss (KD/train.py, docs/sources.md §3.3).

    ROSITA matches hidden_states (embedding output at 0): teacher index i·k when k = Lt/Ls is whole (block l ←
    (l + 1)·k − 1, = 'uniform'), else it keeps the teacher indices i with (i + 1) mod (Lt/Ls) ≠ 0 (here in exact
    integers) and zips them with the student's, so 6 → 4 gives blocks [0, 2, 3, 5] and 12 → 8 [0, 2, 3, 5, 6, 8, 9,
    11]. Where that rule keeps more indices than the student has, the extra ones are unused, as zip drops them.
    """
    if not 1 <= n_student <= n_teacher:
        raise KronbenchError(f"rosita_layer_map: student depth {n_student} must be in 1..{n_teacher} (the teacher's)")
    if n_teacher % n_student == 0:
        k = n_teacher // n_student
        return [(l + 1) * k - 1 for l in range(n_student)]
    reps = [i for i in range(n_teacher + 1) if ((i + 1) * n_student) % n_teacher != 0]  # hidden_states indices
    if len(reps) < n_student + 1:
        raise KronbenchError(f"rosita_layer_map: ROSITA's rule gives {len(reps)} teacher layers for a "
                             f"{n_student}-layer student of a {n_teacher}-layer teacher; pass loss.layer_map")
    return [r - 1 for r in reps[1:n_student + 1]]


def segment_configs(train_cfg: dict) -> dict[str, dict]:
    """{"depth", "width", "final"} train configs: shared keys, overridden per segment by train_cfg[segment]."""
    train_cfg = dict(train_cfg or {})
    per = {k: train_cfg.pop(k) for k in ROSITA_SEGMENTS if k in train_cfg}
    for k, v in per.items():
        if not isinstance(v, dict):
            raise KronbenchError(f"train.{k}: expected a mapping of train settings for ROSITA's {k} segment(s), "
                                 f"got {v!r}")
    return {k: {**train_cfg, **per.get(k, {})} for k in ROSITA_SEGMENTS}


def _check_targets(targets: dict, start: dict, layers: int) -> None:
    unknown = sorted(set(targets) - {"layers", "heads", "ffn", "emb_rank"})
    if unknown:
        raise KronbenchError(f"rosita targets: unknown key(s) {unknown}; valid: layers, heads, ffn, emb_rank")
    have = {"layers": layers, **start}
    for k, n in have.items():
        t = targets.get(k)
        if t is None and k == "emb_rank":
            continue  # keep the dense embedding
        if not isinstance(t, int) or not 1 <= t <= n:
            raise KronbenchError(f"rosita targets[{k!r}]={t!r}: give an integer in 1..{n} (the teacher's {k})")


def _taylor_batches(data: list[dict], collate, n: int, batch_size: int, seed: int, step: int, device) -> list[dict]:
    """The first n batches of a permutation seeded by (seed, step): the same on a rerun, another per step."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed * 7919 + 104_729 + step))
    order = order[:n * batch_size].tolist()
    return [{k: v.to(device) for k, v in collate([data[i] for i in order[j:j + batch_size]]).items()}
            for j in range(0, len(order), batch_size)]


def baseline_rosita(teacher: str, data_dir, run_dir, train_cfg: dict, targets: dict | None = None,
                    prune_steps: int | None = None, loss: dict | None = None, taylor_batches: int = 4,
                    width_teacher: str = "depth", meta: dict | None = None, keep_intermediate: bool = False) -> dict:
    """ROSITA's released setting ("KD Setting 4", docs/sources.md §3.2) on a prepared task, in three parts.

    1. depth: the student is a copy of the fine-tuned `teacher` keeping its bottom `targets["layers"]` blocks,
       KD-trained from the teacher (layer map: rosita_layer_map).
    2. width: `prune_steps` pruning steps; step s prunes heads, FFN neurons (first-order Taylor importance of the
       task loss on `taylor_batches` batches) and the word embedding's SVD rank to width_schedule(start, target,
       s, prune_steps). Steps 1..n−1 are each followed by KD training (segments `width-s`, train config "width").
    3. final: pruning step n reaches the targets, then KD training (segment `final`, train config "final").
    Each segment trains with a fresh optimizer in segments/<k>-<name>/. Width segments are distilled from the
    depth segment's model (`width_teacher="depth"`, ROSITA's BERT-8layer teacher; identity layer map) or from
    the fine-tuned teacher ("teacher").

    prune_steps=None takes ROSITA's own count, one head per step: teacher heads − target heads (MiniLM 12 → 2: 10).
    ROSITA finishes pruning within the first 1–10% of training (docs/sources.md §3.5, prune-period proportion), so give
    "width" a short budget and "final" most of it.
    train_cfg: LoopConfig keys shared by every segment, overridden by sub-mappings "depth", "width", "final".
    targets: {"layers", "heads", "ffn", "emb_rank"} (emb_rank None keeps the dense embedding); keys left out take
    rosita_targets(teacher config). loss: as in distill(); default ROSITA_WEIGHTS with ROSITA_LOSS (soft CE, T=1).
    meta: model, method (default rosita) and preset (default rosita; the workflow names the Kronecker preset whose
    budget the targets match) recorded in the checkpoint and so in its result rows.
    The final model's backbone must be within 5% of count_target_params, else KronbenchError.
    keep_intermediate: keep the segments' models and checkpoints (default: deleted once model/ and summary.json
    of the run are written; loop.finish).
    """
    if width_teacher not in ("depth", "teacher"):
        raise KronbenchError(f"rosita width_teacher={width_teacher!r}: use 'depth' or 'teacher'")
    if taylor_batches < 1:
        raise KronbenchError(f"rosita taylor_batches={taylor_batches}: use at least 1 batch")
    task = task_of(data_dir)
    if task.kind == "lm":
        raise KronbenchError(f"ROSITA prunes task models; {data_dir} holds the LM corpus {task.name}")
    run_dir = Path(run_dir)
    seg_train = segment_configs(train_cfg)
    cfgs = {k: LoopConfig.from_dict(v, f"train.{k}") for k, v in seg_train.items()}
    t_net, tok = checkpoints.load(teacher)
    if checkpoints.pruned_shape(t_net) is not None or getattr(t_net.config, "kronbench_spec", None) is not None:
        raise KronbenchError(f"rosita teacher {teacher}: give the dense fine-tuned teacher, not a pruned or "
                             f"Kronecker model")
    t_config = copy.deepcopy(t_net.config)
    family, blocks = layers_of(t_net)
    start = {"heads": structure(t_net)["heads"][0], "ffn": structure(t_net)["ffn"][0],
             "emb_rank": min(t_net.get_input_embeddings().weight.shape)}
    targets = {**rosita_targets(t_config), **(targets or {})}
    _check_targets(targets, start, len(blocks))
    if prune_steps is None:
        prune_steps = max(1, start["heads"] - targets["heads"])  # KD/train.py init_prun: max_prun_times
    if not isinstance(prune_steps, int) or prune_steps < 1:
        raise KronbenchError(f"rosita prune_steps={prune_steps!r}: use at least 1 pruning step")
    settings = loss_settings({"weights": dict(ROSITA_WEIGHTS), **ROSITA_LOSS, **(loss or {})}, "kroneckerbert")
    weights = settings.pop("weights")
    if settings.pop("mlm_prob", None) is not None:
        raise KronbenchError("loss.mlm_prob: ROSITA trains on the task, there is no MLM")
    depth_map = settings.pop("layer_map", None) or rosita_layer_map(len(blocks), targets["layers"])
    data = task_dataset(task, data_dir, tok, "train")
    collate = collator(tok)
    task_loss = objectives.supervised(task.kind)
    parent = _parent(teacher)
    # train_seconds counts what the Kronecker chain counts: the pretrained model's lineage (a self-pretrained GPT-2),
    # not the teacher's task fine-tuning, which every KD method shares.
    base_lineage = [x for x in parent.get("lineage", []) if x.get("stage") != "finetune-teacher"]
    base_info = {"model": (meta or {}).get("model", parent.get("model", teacher)),
                 "method": (meta or {}).get("method", "rosita"), "preset": (meta or {}).get("preset", "rosita"),
                 "spec": None,
                 "task": task.name, "label": parent.get("label"), "teacher": teacher, "targets": targets}
    plan_config = {"stage": "baseline-rosita", "teacher": teacher, "task": task.name, "targets": targets,
                   "prune_steps": prune_steps, "taylor_batches": taylor_batches, "width_teacher": width_teacher,
                   "weights": weights, **settings, "layer_map": depth_map, "train": _no_stop(train_cfg)}
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", plan_config)

    plan = [("depth", 0, "depth")] + [(f"width-{s}", s, "width") for s in range(1, prune_steps)] + \
        [("final", prune_steps, "final")]
    lineage, segments, prev, depth_dir = list(base_lineage), [], None, None
    for k, (name, step, section) in enumerate(plan):
        seg_dir = run_dir / "segments" / f"{k:02d}-{name}"
        cfg = cfgs[section]
        now = {"layers": targets["layers"], **{u: None if targets[u] is None else
                                                width_schedule(start[u], targets[u], step, prune_steps)
                                                for u in ("heads", "ffn", "emb_rank")}} if step else \
            {"layers": targets["layers"]}
        seg_config = {"stage": f"rosita-{name}", "segment": k, "step": step, "widths": now,
                      "plan": config_hash(plan_config), "train": _no_stop(seg_train[section])}
        done = seg_dir / "summary.json"
        if done.is_file() and (seg_dir / "model").is_dir():
            summary = json.loads(done.read_text())
            if summary.get("config_hash") != config_hash(seg_config):
                raise KronbenchError(f"{seg_dir} was written with another config (targets, steps, loss or train "
                                     f"settings changed); delete {run_dir} to start over")
            if is_main():
                print(f"[rosita] {seg_dir.name}: done, skipped")
        else:
            t0 = time.perf_counter()
            if step == 0:
                student = copy.deepcopy(t_net)
                drop_layers(student, list(range(targets["layers"])))
                kept, seg_teacher, layer_map = {"layers": list(range(targets["layers"]))}, t_net, depth_map
            else:
                student, _ = checkpoints.load(str(prev))
                device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
                student.to(device)
                batches = _taylor_batches(data, collate, taylor_batches, cfg.batch_size, cfg.seed, step, device)
                scores = taylor_importance(student, batches, lambda m, b: task_loss(m, b, 0)[0])
                kept = prune_step(student, scores, now)
                if width_teacher == "depth":
                    seg_teacher, _ = checkpoints.load(str(depth_dir))
                    layer_map = "identity"
                else:
                    seg_teacher, layer_map = t_net, depth_map
            prune_seconds = time.perf_counter() - t0
            seg_dir.mkdir(parents=True, exist_ok=True)
            write_json(seg_dir / "kept.json", kept)  # indices into the previous segment's model
            objective = objectives.ilkd(seg_teacher, task.kind, weights, layer_map=layer_map, seed=cfg.seed,
                                        **settings)
            info = {**base_info, "lineage": lineage}
            extra = {"segment": name, "widths": now, "structure": structure(student),
                     "params": count_params(student), "prune_seconds": round(prune_seconds, 2),
                     "layer_map": layer_map}
            summary = run_stage(student, tok, data, objective, cfg, seg_dir, f"rosita-{name}", info, seg_config,
                           teacher=seg_teacher, extra=extra, extra_seconds=prune_seconds,
                           keep_intermediate=keep_intermediate)
            if summary.get("interrupted"):
                return {**summary, "segment": name}
        lineage = checkpoints.run_info(seg_dir / "model")["lineage"]
        segments.append({k2: summary.get(k2) for k2 in ("segment", "steps", "train_seconds", "tune_seconds",
                                                         "prune_seconds", "structure", "params")})
        prev = seg_dir / "model"
        depth_dir = depth_dir or prev

    model, _ = checkpoints.load(str(prev))
    shape = structure(model)
    pooler = family == "bert" and getattr(model.base_model, "pooler", None) is not None
    target_params = count_target_params(t_config, targets, pooler=pooler)
    backbone = count_params(model.base_model)
    ratio = backbone / target_params
    if abs(ratio - 1) > PARAM_TOLERANCE:
        raise KronbenchError(f"rosita: the pruned backbone has {backbone:,} params, {ratio:.3f}x the "
                             f"{target_params:,} of count_target_params for targets {targets} (structure {shape}); "
                             f"more than {PARAM_TOLERANCE:.0%} off: a pruning step did not reach its target")
    h = config_hash(plan_config)
    info = chain_info(base_info, "baseline-rosita", cfgs["final"].seed, h, lineage)
    if is_main():
        checkpoints.save(model, tok, run_dir / "model", info)
    seconds = round(sum(x["train_seconds"] for x in lineage[len(base_lineage):]), 2)
    tuned = lineage_tune_seconds(lineage[len(base_lineage):])
    summary = {"stage": "baseline-rosita", "method": info["method"], "preset": info["preset"], "targets": targets,
               "structure": shape, "params": count_params(model), "params_backbone": backbone,
               "params_target": target_params, "params_ratio": round(ratio, 4),
               "teacher_params": count_params(t_net), "segments": segments, "train_seconds": seconds,
               "tune_seconds": tuned, "config_hash": h, "chain_train_seconds": info["train_seconds"],
               "chain_tune_seconds": info["tune_seconds"]}
    write_json(run_dir / "summary.json", summary)
    seg_models = tuple(f"segments/{k:02d}-{name}/model" for k, (name, _, _) in enumerate(plan))
    return finish(run_dir, summary, keep_intermediate, intermediate=seg_models)  # ends with a barrier
