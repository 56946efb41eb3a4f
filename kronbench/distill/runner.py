"""The run directory of a training stage: train, then write model/, config.json and summary.json (last: it marks
the stage done), with the config hash and the lineage every result row carries.

Every training stage (kronbench.distill.stages, kronbench.baselines.stages) ends in `run_stage`; the config hash is
what `evaluate` reads back into the rows' provenance.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from torch import nn

from kronbench import atomic
from kronbench.data.features import Collator
from kronbench.distill.loop import LoopConfig, finish, is_main, train, unwrap
from kronbench.models import checkpoints


def config_hash(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:12]


def write_json(path: Path, obj: dict) -> None:
    """Written by the main process only; callers that read it back on every process pass a `barrier()` first."""
    if is_main():
        atomic.write_text(path, json.dumps(obj, indent=2, default=str) + "\n")


def collator(tokenizer) -> Collator:
    return Collator(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0)


def run_stage(model: nn.Module, tokenizer, dataset, objective, cfg: LoopConfig, run_dir: Path, stage: str,
              info: dict, config: dict, teacher: nn.Module | None = None, extra: dict | None = None,
              extra_seconds: float = 0.0, keep_intermediate: bool = False) -> dict:
    """Train, then write model/, config.json and summary.json (last: it marks the stage done), then delete the
    checkpoints unless `keep_intermediate` (loop.finish).

    `extra` adds summary keys; `extra_seconds` is work outside the loop (ROSITA's pruning) counted as training."""
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / "config.json", config)
    torch.manual_seed(cfg.seed)
    summary = train(model, objective, dataset, collator(tokenizer), cfg, run_dir, stage, teacher=teacher)
    if summary.get("interrupted"):
        return summary
    model = unwrap(model)
    seconds = round(summary["train_seconds"] + extra_seconds, 2)
    lineage = [*info.pop("lineage", []), {"stage": stage, "config_hash": config_hash(config),
                                          "train_seconds": seconds, "tune_seconds": summary["tune_seconds"]}]
    info = chain_info(info, stage, cfg.seed, config_hash(config), lineage)
    if is_main():
        checkpoints.save(model.eval(), tokenizer, run_dir / "model", info)
    summary.update(config_hash=config_hash(config), chain_train_seconds=info["train_seconds"],
                   chain_tune_seconds=info["tune_seconds"], **(extra or {}))
    write_json(run_dir / "summary.json", summary)
    return finish(run_dir, summary, keep_intermediate)  # ends with a barrier: model/, summary.json are there for all


def chain_info(info: dict, stage: str, seed: int, config_hash: str, lineage: list[dict]) -> dict:
    """The saved model's run info (kronbench_run.json): its stage, seed and config hash, and the lineage of every
    stage behind it with their summed seconds (what the rows' train_seconds and tune_seconds report)."""
    return {**info, "stage": stage, "seed": seed, "config_hash": config_hash, "lineage": lineage,
            "train_seconds": round(sum(x["train_seconds"] for x in lineage), 2),
            "tune_seconds": lineage_tune_seconds(lineage)}


def lineage_tune_seconds(lineage: list[dict]) -> float:
    """Kernel tuning seconds of a lineage (kron/orders.py); entries written before it was counted add 0."""
    return round(sum(x.get("tune_seconds") or 0.0 for x in lineage), 2)
