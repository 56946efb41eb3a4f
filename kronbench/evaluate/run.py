"""`kronbench evaluate-task` / `evaluate-lm`: a checkpoint on a prepared task split -> result rows (one per metric).

Rows follow the schema in the README (model, method, preset, task, split, seed, metric, value, params,
params_no_head, flops, latency_*, train_seconds, tune_seconds, config_hash, git_sha, versions, protocol,
source_task, chance, chance_se: the split's all-majority score and no-information spread, metrics.chance_levels;
eval_device: where it was scored, "cpu" or "cuda (<GPU name>)", see kronbench.evaluate.device).
Identity (model, method, preset, seed) comes from the checkpoint's kronbench_run.json unless given;
`train_seconds` sums the stages behind the checkpoint (its lineage), `tune_seconds` the one-off Kronecker kernel
timing those stages did (not in train_seconds). Latency is not timed here: one job per model family times every
checkpoint side by side (kronbench.evaluate.latency) and `gather` puts its figures into the rows.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from pathlib import Path

import torch

from kronbench import atomic
from kronbench.data.features import Collator, encode, read_split, task_of
from kronbench.distill.runner import config_hash
from kronbench.errors import KronbenchError
from kronbench.evaluate.device import device_name, resolve_device
from kronbench.models import checkpoints


@functools.cache
def git_sha() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        sha = out.stdout.strip() if out.returncode == 0 else None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, timeout=5, cwd=Path(__file__).resolve().parent).stdout.strip()
        return f"{sha}-dirty" if sha and dirty else sha
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    import importlib.metadata as md

    import kronbench

    out = {"kronbench": kronbench.__version__}
    for dist in ("torch", "transformers", "datasets", "tokenizers", "accelerate"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    return out


@torch.no_grad()
def predict(model, batches, device="cpu") -> list:
    """Argmax class ids (or the regression value) per example; batches go to the model's `device`."""
    out = []
    for batch in batches:
        inputs = {k: v.to(device) for k, v in batch.items() if k != "labels"}
        logits = model(**inputs).logits  # (B, C)
        out += (logits[:, 0] if logits.shape[-1] == 1 else logits.argmax(-1)).tolist()
    return out


def _batches(features: list[dict], collate, batch_size: int):
    for i in range(0, len(features), batch_size):
        yield collate(features[i:i + batch_size])


@torch.no_grad()
def score(model, tokenizer, task, data_dir, split: str, batch_size: int = 32, protocol: str | None = None,
          device="auto") -> dict:
    """{metric: value} of `model` on one prepared split of `task` (the task's own metrics), on `device`
    (resolve_device: auto = the GPU when there is one)."""
    from kronbench.evaluate import metrics

    records = read_split(data_dir, split)
    device = resolve_device(device)
    model.to(device).eval()
    if task.kind == "lm":
        from kronbench.evaluate.lm import perplexity

        protocols = task.protocols or {}
        if protocol not in protocols:
            raise KronbenchError(f"task {task.name}: protocol {protocol!r} unknown; its protocols: "
                                 f"{', '.join(protocols) or 'none'} (see {task.path})")
        out = perplexity(model, tokenizer, [r["text"] for r in records], protocols[protocol], batch_size=batch_size,
                         device=device)
        # how the protocol was applied to this model (window/stride resolved from its context), kept in the row
        windowing = {k: out[k] for k in ("window", "stride", "windows", "tokens")}
        return {"perplexity": out["perplexity"], "windowing": {**windowing, "join": protocols[protocol]["join"]}}
    if task.kind == "span_qa":
        from kronbench.data.qa_features import encode_qa
        from kronbench.evaluate.qa import postprocess

        feats = encode_qa(records, tokenizer, max_length=task.max_length, train=False)
        keys = ("input_ids", "attention_mask", "token_type_ids")
        collate = Collator(tokenizer.pad_token_id)
        starts, ends = [], []
        for i in range(0, len(feats), batch_size):
            chunk = [{k: f[k] for k in keys if k in f} for f in feats[i:i + batch_size]]
            o = model(**{k: v.to(device) for k, v in collate(chunk).items()})
            starts += list(o.start_logits.float().cpu().numpy())
            ends += list(o.end_logits.float().cpu().numpy())
        answers = postprocess(records, feats, starts, ends, v2="NoAns_exact_match" in task.metrics)
        return metrics.compute(task, answers, records)
    if any(r["label"] == -1 or r["label"] != r["label"] for r in records):
        raise KronbenchError(f"{task.name} split {split!r} is unlabelled (GLUE test labels are hidden); evaluate "
                             f"on 'validation' or submit predictions to the GLUE server")
    feats = encode(task, records, tokenizer)
    preds = predict(model, _batches(feats, Collator(tokenizer.pad_token_id or 0), batch_size), device)
    return metrics.compute(task, preds, records)


def evaluate_task(checkpoint: str, data_dir, split: str = "validation", meta: dict | None = None,
                  device="auto") -> list[dict]:
    """Rule evaluate_task: rows of a classification, regression or span-QA checkpoint on one split."""
    if task_of(data_dir).kind == "lm":
        raise KronbenchError(f"{data_dir}: an LM task; score it with evaluate-lm (a protocol names its split)")
    return evaluate(checkpoint, data_dir, split, meta=meta, device=device)


def evaluate_lm(checkpoint: str, data_dir, split: str = "test", protocol: str | None = None,
                meta: dict | None = None, device="auto") -> list[dict]:
    """Rule evaluate_lm: perplexity rows of a checkpoint under one protocol of an LM task (default: its first)."""
    if task_of(data_dir).kind != "lm":
        raise KronbenchError(f"{data_dir}: not an LM task; score it with evaluate-task")
    return evaluate(checkpoint, data_dir, split, protocol, meta=meta, device=device)


def evaluate(checkpoint: str, data_dir, split: str = "validation", protocol: str | None = None,
             meta: dict | None = None, seq: int = 128, device="auto") -> list[dict]:
    """Result rows of `checkpoint` on one split, scored on `device` (auto | cpu | cuda[:N], resolve_device).
    `meta` overrides identity keys (model, method, preset, seed)."""
    from kronbench.evaluate import metrics
    from kronbench.models.counting import count_flops, count_params, count_params_no_embedding, count_params_no_head

    task = task_of(data_dir)
    device = resolve_device(device)  # before loading: a missing GPU fails in a second, naming evaluate.device
    model, tok = checkpoints.load(checkpoint)
    info = {**(checkpoints.run_info(checkpoint) if os.path.isdir(checkpoint) else {}), **(meta or {})}
    if task.kind == "lm" and protocol is None:
        protocol = next(iter(task.protocols or {"": None}))
    values = score(model, tok, task, data_dir, split, protocol=protocol, device=device)
    windowing = values.pop("windowing", None)  # LM rows: the protocol as applied (window, stride, tokens scored)
    eval_cfg = {"checkpoint_hash": info.get("config_hash"), "task": task.name, "split": split,
                "protocol": protocol}
    base = {"model": info.get("model", checkpoint), "method": info.get("method", "teacher"),
            "preset": info.get("preset"), "task": task.name, "split": split, "seed": info.get("seed", 0),
            "params": count_params(model), "params_no_head": count_params_no_head(model),
            "flops": count_flops(model, seq), "latency_ms": None, "latency_setup": None,
            "train_seconds": info.get("train_seconds"), "tune_seconds": info.get("tune_seconds"),
            "config_hash": config_hash(eval_cfg), "git_sha": git_sha(), "versions": versions(),
            "protocol": protocol, "source_task": info.get("task") if info.get("task") != task.name else None,
            "label": info.get("label"), "lineage": [x["config_hash"] for x in info.get("lineage", [])],
            "init": next((x.get("init", "nkp") for x in info.get("lineage", []) if x.get("stage") == "compress"), None),
            "base": getattr(model.config, "kronbench_base", None), **data_provenance(data_dir, split),
            "eval_device": device_name(device),
            **({"windowing": windowing, "params_no_embedding": count_params_no_embedding(model)} if windowing else {})}
    chance = {} if task.kind in ("span_qa", "lm") else metrics.chance_levels(task, read_split(data_dir, split))
    return [{**base, "metric": m, "value": v, **chance.get(m, {"chance": None, "chance_se": None})}
            for m, v in values.items() if not m.endswith("total")]


def data_provenance(data_dir, split: str) -> dict:
    """Where the scored split came from: `data_source` ('hub:nyu-mll/glue/mnli@<commit>', 'local:<dir>',
    'embedded'; the commit is the one resolved when the split was prepared) and the sha256 of its parquet."""
    m = json.loads((Path(data_dir) / "manifest.json").read_text())
    prov = m.get("provenance") or {}
    hub = prov.get("hub") or {}
    if m.get("source") == "hub":
        rev = hub.get("resolved_revision") or hub.get("revision")
        where = "/".join(x for x in (hub.get("path"), hub.get("name")) if x)
        source = f"hub:{where}" + (f"@{rev}" if rev else "")
    elif m.get("source") == "local":
        source = f"local:{(prov.get('local') or {}).get('data_dir', '')}"
    else:
        source = m.get("source")  # embedded, or None for a hand-written test manifest
    return {"data_source": source, "data_sha256": m.get("sha256", {}).get(f"{split}.parquet")}


def write_rows(rows: list[dict], path) -> Path:
    """JSONL, atomically (a rerun replaces the file whole)."""
    return atomic.write_text(path, "".join(json.dumps(r, default=str) + "\n" for r in rows))
