"""The training loop every stage shares: teacher fine-tuning, LM pre-training, KD pre-training, task ILKD.

A small loop of our own on top of `accelerate` (device placement, DDP under torchrun, bf16/fp16 on a
GPU) rather than a `Trainer` subclass: the teacher forward, feature capture and ILKD terms sit in one readable
`objective`, and resuming is exact.

Determinism and resume. The data order of epoch e is a permutation from its own generator seeded with (seed, e),
and a resumed epoch skips the batches already seen, so no global RNG is consumed by data loading. Checkpoints
(every `checkpoint_every` steps, written to a temp dir and renamed) hold model, optimizer, scheduler and every RNG
state (accelerate's `save_state`) plus the step. Dropout therefore draws the same masks after a resume, and a run
stopped at any checkpoint and rerun ends with the same weights as an uninterrupted one (tests/test_stages.py,
tests/test_distributed.py).
Objectives that need randomness (MLM masking) take it from `step_generator(seed, step)`, never the global RNG.

Several processes (`torchrun --nproc_per_node N`; on a machine without CUDA they meet over gloo). `batch_size` is
per process; the N processes take consecutive batches of the epoch's order, so a step sees the same examples as one
process with batch_size × N. The LR schedule counts optimizer steps, the logged terms are means over processes, and
only the main process writes the log and checkpoints (stages use `is_main` / `barrier` for their files).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from kronbench import atomic
from kronbench.distill.losses import NonFiniteLossError
from kronbench.errors import KronbenchError

# objective(student, batch, step) -> (total loss with graph, {term: detached value})
Objective = Callable[[nn.Module, dict, int], tuple[Tensor, dict]]


@dataclass
class LoopConfig:
    lr: float = 5e-5
    epochs: float = 1.0  # fractional epochs are allowed (e.g. 0.5 of a large corpus)
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 32  # per process
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 0
    checkpoint_every: int = 100  # steps; 0 = only at the end
    keep_checkpoints: int = 1
    log_every: int = 10
    precision: str = "auto"  # auto = bf16 on a GPU that has it, fp16 on other GPUs, fp32 on CPU
    stop_after: int | None = None  # stop (as if interrupted) after this step; for tests and the resume check
    extra: dict = field(default_factory=dict)  # stage-specific settings, logged with the config

    @classmethod
    def from_dict(cls, d: dict, where: str = "train config") -> "LoopConfig":
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise KronbenchError(f"{where}: unknown key(s) {unknown}; valid keys: {', '.join(sorted(known))}")
        return cls(**d)


def step_generator(seed: int, step: int) -> torch.Generator:
    """A generator for step-local randomness (MLM masks) that does not depend on what ran before."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def seed_everything(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _precision(choice: str) -> str:
    if choice != "auto":
        return choice
    if not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases, LayerNorms and Kronecker factors' biases (BERT's recipe)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.dim() < 2 or "LayerNorm" in name or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train(model: nn.Module, objective: Objective, dataset: list[dict], collate, cfg: LoopConfig,
          run_dir: str | os.PathLike, stage: str, teacher: nn.Module | None = None) -> dict:
    """Train `model` in place on `dataset` with `objective`; returns a summary (steps, train_seconds, last loss).

    train_seconds leaves out `tune_seconds`, the one-off timing of Kronecker kernels for shapes the kernel cache
    has not seen (kron/orders.py): the first job on a fresh cache would otherwise count minutes that a rerun
    does not spend.

    `run_dir` receives `log.jsonl` and `checkpoints/`; if it holds a checkpoint from an interrupted run of the
    same config, training resumes from it. A NaN/inf loss stops with an error naming stage, step and term.
    """
    from accelerate import Accelerator
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from kronbench.kron import orders

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if not dataset:
        raise KronbenchError(f"stage {stage}: the training set is empty")
    seed_everything(cfg.seed)
    acc = Accelerator(mixed_precision=_precision(cfg.precision), cpu=not torch.cuda.is_available())
    world = acc.num_processes
    steps_per_epoch = max(1, len(dataset) // (cfg.batch_size * world))  # last partial batch dropped
    total = cfg.max_steps or max(1, math.ceil(cfg.epochs * steps_per_epoch))
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total), total)
    # not prepared: accelerate would step it once per process per optimizer step, ending the schedule after 1/N
    model, optimizer = acc.prepare(model, optimizer)
    acc.register_for_checkpointing(scheduler)  # saved and restored with the checkpoint all the same
    if teacher is not None:
        teacher = teacher.to(acc.device).eval().requires_grad_(False)

    ckpt_root = run_dir / "checkpoints"
    config = {k: v for k, v in asdict(cfg).items() if k != "stop_after"}  # what must match to resume
    state = {"step": 0, "train_seconds": 0.0, "tune_seconds": 0.0, "config": config}
    last = _latest_checkpoint(ckpt_root)
    if last is not None:
        saved = json.loads((last / "state.json").read_text())
        if saved["config"] != state["config"]:
            raise KronbenchError(f"stage {stage}: {last} was written with another config; delete {ckpt_root} to "
                                 f"start over (changed: {_diff(saved['config'], state['config'])})")
        acc.load_state(str(last))
        state = saved
        acc.print(f"[{stage}] resuming from {last.name} (step {state['step']}/{total})")
    if acc.is_main_process:
        _truncate_log(run_dir / "log.jsonl", state["step"])

    step = state["step"]
    # wall time since t0 = train + tune seconds, both carried over from the checkpoint on a resume
    tune0 = orders.tune_seconds() - state.get("tune_seconds", 0.0)
    t0 = time.perf_counter() - state["train_seconds"] - state.get("tune_seconds", 0.0)
    tuned = lambda: orders.tune_seconds() - tune0  # noqa: E731
    trained = lambda: time.perf_counter() - t0 - tuned()  # noqa: E731
    bar = tqdm(total=total, initial=step, desc=stage, disable=not acc.is_local_main_process,
               mininterval=1.0 if sys.stderr.isatty() else 30.0, dynamic_ncols=True)
    model.train()
    running: dict[str, float] = {}
    while step < total:
        epoch, in_epoch = divmod(step, steps_per_epoch)
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(cfg.seed * 7919 + epoch))
        order = order[in_epoch * cfg.batch_size * world:steps_per_epoch * cfg.batch_size * world].tolist()
        # a private generator: DataLoader would otherwise draw its base seed from the global RNG
        loader = acc.prepare_data_loader(DataLoader(dataset, batch_size=cfg.batch_size, sampler=order,
                                                    collate_fn=collate, generator=torch.Generator()))
        for batch in loader:
            with acc.autocast():
                try:
                    loss, terms = objective(model, batch, step)
                except NonFiniteLossError as e:
                    raise KronbenchError(f"stage {stage}: step {step + 1}: loss term {e.term!r} is not finite "
                                         f"({e}); lower lr (now {cfg.lr}) or the term's weight") from None
            acc.backward(loss)
            if cfg.grad_clip:
                acc.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            if not acc.optimizer_step_was_skipped:  # an fp16 overflow skips the update, and so the LR step
                scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bar.update(1)
            for k, v in {"loss": loss.detach(), **terms}.items():
                running[k] = running.get(k, 0.0) + float(v)
            if step % cfg.log_every == 0 or step == total:
                n = cfg.log_every if step % cfg.log_every == 0 else step % cfg.log_every
                # each process saw its share of the global batch: log the mean over processes
                means = acc.reduce(torch.tensor(list(running.values()), dtype=torch.float64, device=acc.device) / n,
                                   "mean")
                row = {"stage": stage, "step": step, "epoch": round(step / steps_per_epoch, 4),
                       "lr": scheduler.get_last_lr()[0], **dict(zip(running, means.tolist())),
                       "seconds": round(trained(), 2)}
                running = {}
                bar.set_postfix(loss=f"{row['loss']:.4f}")
                if acc.is_main_process:
                    with open(run_dir / "log.jsonl", "a") as f:
                        f.write(json.dumps(row) + "\n")
            done = step == total
            stop = cfg.stop_after is not None and step >= cfg.stop_after
            if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or stop:
                state.update(step=step, train_seconds=trained(), tune_seconds=tuned())
                _save_checkpoint(acc, ckpt_root, state, cfg.keep_checkpoints)
            if done or stop:
                break
        if cfg.stop_after is not None and step >= cfg.stop_after and step < total:
            bar.close()
            return {"stage": stage, "steps": step, "total_steps": total, "interrupted": True}
    bar.close()
    acc.wait_for_everyone()
    return {"stage": stage, "steps": step, "total_steps": total, "epochs": round(step / steps_per_epoch, 4),
            "train_seconds": round(trained(), 2), "tune_seconds": round(tuned(), 2), "processes": world,
            "precision": acc.mixed_precision, "device": str(acc.device)}


def unwrap(model: nn.Module) -> nn.Module:
    """The model itself inside a distributed (DDP, FSDP) or compiled wrapper: read attributes and save from this,
    run the forward through the wrapper (DDP's gradient sync is hooked to the wrapper's forward)."""
    from accelerate.utils import extract_model_from_parallel

    return extract_model_from_parallel(model)


def processes():
    """accelerate's state of this launch (process_index, num_processes, ...), set up as `train`'s Accelerator sets
    it up, whichever comes first: without CUDA, processes started by torchrun train together over gloo."""
    from accelerate import PartialState

    return PartialState(cpu=not torch.cuda.is_available())


def is_main() -> bool:
    """True on the one process that writes a stage's files (rank 0 of a distributed launch; always without one)."""
    return processes().is_main_process


def barrier() -> None:
    """Wait for every process (a no-op without a distributed launch): what the main process wrote is there after."""
    processes().wait_for_everyone()


def finish(run_dir: str | os.PathLike, summary: dict, keep: bool = False,
           intermediate: tuple[str, ...] = ("checkpoints",)) -> dict:
    """Once the stage's model/ and summary.json are written: delete its `intermediate` paths (under run_dir; the
    resumable checkpoints by default) unless `keep`, and add what went, or stayed, to summary.json
    (`intermediate`). Returns the summary as rewritten (the main process's; the others get it unchanged)."""
    barrier()  # every process is past its last checkpoint; model/ and summary.json are written
    if is_main():
        run_dir = Path(run_dir)
        summary = {**summary, "intermediate": drop_intermediate(run_dir, intermediate, keep)}
        atomic.write_text(run_dir / "summary.json", json.dumps(summary, indent=2, default=str) + "\n")
    barrier()
    return summary


def drop_intermediate(run_dir: Path, paths, keep: bool) -> dict:
    """{"deleted": [...], "bytes_freed": n} (or {"kept": [...], "bytes": n}) for the existing `paths` under run_dir.
    Deletes only after model/ and summary.json are synced: a crash then loses nothing a rerun needs. Each path is
    renamed aside first, so a deletion cut short never leaves a half checkpoint or segment model to resume from."""
    found = [p for p in paths if (run_dir / p).exists()]
    size = sum(_bytes(run_dir / p) for p in found)
    if keep:
        return {"kept": found, "bytes": size}
    if found:
        _sync(run_dir / "model", run_dir / "summary.json")
    left = 0
    for p in found:
        gone = run_dir / p
        aside = gone.with_name(f".{gone.name}.deleting")
        shutil.rmtree(aside, ignore_errors=True)  # a deletion cut short before
        os.rename(gone, aside)
        shutil.rmtree(aside, ignore_errors=True)
        left += _bytes(aside) if aside.exists() else 0
    return {"deleted": found, "bytes_freed": size - left}


def _bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _sync(*paths: Path) -> None:
    """fsync files (every file of a directory) and their directories, so they are on disk, not only in the cache."""
    for path in paths:
        if not path.exists():
            continue
        files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
        dirs = {f.parent for f in files} | {path.parent} | ({path} if path.is_dir() else set())
        for f in [*files, *sorted(dirs)]:
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _latest_checkpoint(root: Path) -> Path | None:
    done = sorted(p for p in root.glob("step-*") if (p / "state.json").is_file()) if root.is_dir() else []
    return done[-1] if done else None


def _save_checkpoint(acc, root: Path, state: dict, keep: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step-{state['step']:08d}"
    tmp = root / f".{final.name}.tmp"
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    acc.wait_for_everyone()
    acc.save_state(str(tmp))
    if acc.is_main_process:
        (tmp / "state.json").write_text(json.dumps(state, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        older = sorted(p for p in root.glob("step-*") if p != final)
        for old in older[:max(0, len(older) - (keep - 1))]:
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()


def _truncate_log(path: Path, step: int) -> None:
    """Keep the log lines up to the resumed step, so a resumed run's log equals an uninterrupted one's."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
    atomic.write_text(path, "".join(ln + "\n" for ln in lines))


def _diff(a: dict, b: dict) -> str:
    return ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))
