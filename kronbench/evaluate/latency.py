"""Inference latency as one comparison per model family: every checkpoint timed round-robin in one process.

    plan = [{"key": "minilm-l6|teacher|cls", "checkpoint": ".../model", "teacher": "minilm-l6|teacher|cls"}, ...]
    out = compare_latency(plan, batch_size=16, seq_len=128)   # {"entries": {key: {...}}, "setup": "...", ...}

Timed separately, minutes apart in different jobs, the same teacher got 1431 and 1496 ms and identical students
153-2251 ms on a machine with one niced process beside them (issue 18). Here the teacher and every student and
baseline that take the same input (random ids (batch, seq), a mask of ones, BERT's zero segment ids) are loaded
together and timed A B C, B C A, ... (kronbench.timing.compare) until each median's 95 % interval is within
±`target`, so a slow spell slows every model alike and `latency_vs_teacher` is a ratio measured in the same rounds.
`torch.inference_mode`, eval mode, no KV cache; on CUDA each forward is synchronized and the GPU is named.
"""

from __future__ import annotations

import inspect
import json
import math
import os
import platform
import statistics

import torch

from kronbench import atomic
from kronbench.errors import KronbenchError
from kronbench.evaluate.device import device_name, resolve_device
from kronbench.rows import LATENCY
from kronbench.timing import compare

DTYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


def _inputs(model, batch_size: int, seq_len: int, device) -> dict:
    config = model.config
    context = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
    if context and seq_len > context:
        raise KronbenchError(f"seq_len={seq_len} exceeds the model context ({context} positions): use seq_len <= "
                             f"{context}")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, config.vocab_size, (batch_size, seq_len), generator=g)  # (B, T)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if getattr(config, "type_vocab_size", 0):  # BERT: segment ids (GPT-2 would embed them with wte instead)
        inputs["token_type_ids"] = torch.zeros_like(ids)
    if "use_cache" in inspect.signature(model.forward).parameters:
        inputs["use_cache"] = False  # time the forward, not building a KV cache
    return {k: v.to(device) if torch.is_tensor(v) else v for k, v in inputs.items()}


def head_of(task_kind: str) -> str:
    """The head a task's checkpoints carry: "lm", "qa" (span QA) or "cls" (classification and regression)."""
    return {"lm": "lm", "span_qa": "qa"}.get(task_kind, "cls")


def latency_key(model: str, method: str, preset: str | None, head: str) -> str:
    """One timed checkpoint: every task with this head shares its backbone, so rows of all of them use it."""
    return f"{model}|{method}-{preset}|{head}" if preset else f"{model}|{method}|{head}"


def cpu_name() -> str:
    """The CPU model as /proc/cpuinfo names it (timings differ ~3x between the CPUs this project meets)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def where_timed(device: torch.device, threads: int) -> str:
    """The device part of a latency setup: 'cuda (<GPU name>)', or 'cpu (<CPU model>), <n> threads'."""
    return device_name(device) if device.type == "cuda" else f"cpu ({cpu_name()}), {threads} threads"


def compare_models(models: dict, *, teachers: dict | None = None, batch_size: int = 16, seq_len: int = 128,
                   device="cpu", threads: int | None = None, target: float = 0.03, max_seconds: float = 120.0,
                   min_rounds: int = 5, warmup: int = 2) -> dict:
    """{"entries": {name: {latency_ms, latency_iqr_ms, latency_repeats, latency_noisy, latency_vs_teacher}},
    "setup": str, "reasons": [...], "rounds", "seconds", "other_load"}. `teachers` maps a name to the name it is
    compared with (itself for a teacher); names without one get latency_vs_teacher None."""
    if batch_size < 1 or seq_len < 1 or min_rounds < 1 or warmup < 0:
        raise KronbenchError(f"latency needs batch_size, seq_len, min_rounds >= 1 and warmup >= 0; got "
                             f"batch_size={batch_size}, seq_len={seq_len}, min_rounds={min_rounds}, warmup={warmup}")
    teachers = teachers or {}
    for name, t in teachers.items():
        if t is not None and t not in models:
            raise KronbenchError(f"latency: {name}'s teacher {t!r} is not among the timed models ({sorted(models)})")
    device = resolve_device(device)  # auto | cpu | cuda[:N], as evaluate.device
    cuda = device.type == "cuda"
    old_threads = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        fns, dtypes = {}, set()
        for name, model in models.items():
            model.to(device).eval()
            inputs = _inputs(model, batch_size, seq_len, device)
            dtypes.add(DTYPES.get(next(model.parameters()).dtype, "?"))
            fns[name] = lambda m=model, x=inputs: m(**x)
        with torch.inference_mode():
            cmp = compare(fns, warmup=warmup, min_rounds=min_rounds, target=target, max_seconds=max_seconds,
                          threads=torch.get_num_threads(),
                          sync=(lambda: torch.cuda.synchronize(device)) if cuda else None)
        n_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(old_threads)
    entries = {}
    for name, r in cmp.rows.items():
        t = teachers.get(name)
        vs = (statistics.median(a / b for a, b in zip(cmp.samples[name], cmp.samples[t])) if t is not None
              else None)
        entries[name] = {"latency_ms": round(r["median_ms"], 3), "latency_iqr_ms": round(r["iqr_ms"], 3),
                         "latency_repeats": r["repeats"], "latency_ci_rel": round(r["ci_rel"], 4) if math.isfinite(r["ci_rel"]) else None,
                         "latency_noisy": r["noisy"], "latency_vs_teacher": None if vs is None else round(vs, 4)}
    setup = (f"{where_timed(device, n_threads)}, batch {batch_size} x seq {seq_len}, {'/'.join(sorted(dtypes))}, "
             f"median of {cmp.rounds} round-robin rounds over {len(models)} models, target ±{100 * target:.0f} %, "
             f"torch {torch.__version__}")
    return {"entries": entries, "setup": setup, "reasons": cmp.reasons, "rounds": cmp.rounds,
            "seconds": round(cmp.seconds, 2),
            "other_load": None if cmp.other_load is None else round(cmp.other_load, 3)}


def compare_latency(plan: list[dict], out=None, seed: int | None = None, **kw) -> dict:
    """Load every checkpoint of `plan` ({key, checkpoint, teacher}), time them together, write JSON to `out`
    (with `seed`: `kronbench gather` gives each row the entry of its key and seed)."""
    from kronbench.models import checkpoints
    from kronbench.models.sources import is_path

    keys = [p.get("key") for p in plan]
    if not plan or None in keys or len(set(keys)) != len(keys):
        raise KronbenchError("latency plan: give a non-empty list of {key, checkpoint, teacher} with distinct keys")
    models = {}
    for p in plan:
        # A run's model dir must exist; a base model is a Hub id (gpt2@<commit>) or embedded name, loaded as such
        if is_path(p["checkpoint"]) and not os.path.exists(p["checkpoint"]):
            raise KronbenchError(f"latency plan {p['key']}: no checkpoint at {p['checkpoint']}; run the stage that "
                                 "writes it first")
        models[p["key"]], _ = checkpoints.load(p["checkpoint"])
    result = compare_models(models, teachers={p["key"]: p.get("teacher") for p in plan}, **kw)
    result.update(seed=seed, checkpoints={p["key"]: p["checkpoint"] for p in plan})
    if out is not None:
        atomic.write_text(out, json.dumps(result, indent=1, sort_keys=True) + "\n")
    return result


def read_latency(paths) -> dict[tuple, dict]:
    """{(seed, key): row fields incl. latency_setup} from latency JSON files; a key timed twice for one seed
    keeps its first file's entry (a teacher is timed in every job it is the reference of)."""
    table = {}
    for path in paths:
        try:
            data = json.loads(open(path, encoding="utf-8").read())
            entries, setup, seed = data["entries"], data["setup"], data["seed"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise KronbenchError(f"{path}: not a latency file of `kronbench compare-latency` ({e}); rerun compare_latency")
        for key, e in entries.items():
            table.setdefault((seed, key), {**{k: e.get(k) for k in LATENCY}, "latency_setup": setup})
    return table


def measure_latency(model, batch_size: int = 16, seq_len: int = 128, device="cpu", threads: int | None = None,
                    **kw) -> dict:
    """One model alone: {"latency_ms", "latency_iqr_ms", ..., "latency_setup"}. Prefer compare_models: a lone
    timing has nothing to be compared with in the same rounds."""
    out = compare_models({"model": model}, batch_size=batch_size, seq_len=seq_len, device=device, threads=threads,
                         **kw)
    return {**{k: v for k, v in out["entries"]["model"].items() if k != "latency_vs_teacher"},
            "latency_setup": out["setup"]}
