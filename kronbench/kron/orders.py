"""Pick the fastest Kronecker contraction kernel per shape by timing, once, and remember it.

FLOP counts do not predict CPU time here: for A 384×384 ⊗ B 2×2 a batched order is ~10× slower than one large GEMM
with the same FLOPs. So each (CPU or GPU model, shape, rank, dtype, device, threads, token bucket) is timed once,
and the choice is kept in memory and in a JSON file (`$KRONBENCH_CACHE/kron_orders.json`, default
`~/.cache/kronbench/`). The file also makes runs reproducible: kernels differ in float rounding, and a rerun on the
same machine reuses the recorded choice instead of re-timing (timings can flip between near-equal kernels).

Noise must not pick the kernel. A burner on a 2-core machine turned kernel times into multiples of the scheduler's
4 ms slice, and a choice made then was kept for good (kb21 attention 0.88x dense instead of 4.6x). So the kernels
are timed interleaved (`timing.compare`: a slow-down hits every kernel of a round alike; a 3-round screen first
drops those over 2x the fastest, so the contenders get enough rounds), and the *default* stays
unless a challenger beats it beyond the measured spread (`decide`). The default is the FLOP-cheapest kernel on a
fresh tune, or the cached one when `revalidate` (bench-kron) re-times it. The key names the CPU model and its ISA
flags (or the GPU): a home shared by cluster nodes with different CPUs keeps one choice per CPU.

A cache entry: {"kernel", "default", "margin", "spread", "medians_ms", "noisy", "when"}. An entry timed under
load (`noisy`) is reused like any other, for reproducibility; `kronbench bench-kron` on a quiet machine re-validates
it. Entries of the older format (a bare kernel name, no CPU in the key) are ignored and re-timed.

`KRONBENCH_KRON_ORDER=<kernel>` forces one kernel everywhere (e.g. for bit-exact comparisons across machines);
`KRONBENCH_KRON_ORDER=flops` takes each shape's FLOP-cheaper default untimed (ci/paper-smoke.sh: a 2-step stage
should not spend a minute timing a 768 x 50257 tied head).
Seconds spent timing are counted (`tune_seconds()`), so training can report them apart from train_seconds.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import platform
import time
from pathlib import Path

import torch

from kronbench import timing

_memory: dict[str, dict] = {}
_loaded = False
_tuned = 0.0  # seconds this process spent timing kernels

# Timing budget per shape: a 2048-token BERT-base shape tunes in ~1-3 s; tiny shapes stop at the target CI.
TUNE = {"warmup": 1, "min_rounds": 5, "max_rounds": 500, "target": 0.03, "max_seconds": 2.5}
SCREEN_ROUNDS, SCREEN_RATIO = 3, 2.0  # a first pass drops kernels over 2x the fastest (typically 3-4 of the 6)
MIN_MARGIN = 0.05     # a challenger must be at least 5 % faster than the default ...
LOADED_MARGIN = 0.20  # ... and 20 % (or twice the spread) while other processes took our cores
# Ties in FLOPs (kernels of one association order): one-GEMM variants first, then batched ones, einsum last.
PREFERENCE = ("ax_b.gemm", "a_xb.gemm", "ax_b.t", "ax_b.bmm", "a_xb.bmm", "einsum")


def cache_root() -> Path:
    """kronbench's cache directory: $KRONBENCH_CACHE, default ~/.cache/kronbench (kernel choices, dequantised GGUF)."""
    return Path(os.environ.get("KRONBENCH_CACHE") or Path.home() / ".cache" / "kronbench")


def cache_path() -> Path:
    return cache_root() / "kron_orders.json"


def tune_seconds() -> float:
    """Seconds this process has spent timing kernels (fresh tunes and re-validations)."""
    return _tuned


def token_bucket(tokens: int) -> int:
    """Round up to a power of two in [16, 2048]: a handful of timings cover every batch shape. Beyond 2048 tokens
    the GEMMs are saturated and the ranking holds, while timing at 8192 tokens (an LM evaluation batch through
    a tied 8192-word Kronecker head) cost minutes on a fresh cache."""
    return min(max(16, 1 << max(0, tokens - 1).bit_length()), 2048)


@functools.lru_cache(maxsize=None)
def _cpu_identity() -> str:
    model = ""
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Hardware", "cpu model") and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    model = model or platform.processor() or platform.machine() or "cpu"
    # the flags that change which GEMM code runs; the rest (and their order) would only split the cache
    isa = sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "f16c", "sse4", "asimd", "sve", "neon")))
    return f"{model} #{hashlib.sha1(' '.join(isa).encode()).hexdigest()[:8]}" if isa else model


def cpu_identity(device=None) -> str:
    """What the kernels run on: the GPU's name on CUDA, else the CPU model plus a hash of its SIMD/matrix flags
    (VMs often report a bare 'Intel(R) Xeon(R) Processor', which AVX-512 and AMX then tell apart)."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    if dev.type == "cuda":
        return torch.cuda.get_device_name(dev)
    return _cpu_identity()


def _key(m1, n1, m2, n2, r, bucket, dtype, device) -> str:
    dev = device.type if isinstance(device, torch.device) else str(device)
    cpu = cpu_identity(device).replace("|", "/")
    return (f"{cpu}|{m1}x{n1}|{m2}x{n2}|r{r}|N{bucket}|{str(dtype).removeprefix('torch.')}|{dev}"
            f"|t{torch.get_num_threads()}")


def _load() -> None:
    global _loaded
    _loaded = True
    try:
        saved = json.loads(cache_path().read_text())
    except (OSError, ValueError):
        return  # no cache yet, or unreadable: re-time
    if isinstance(saved, dict):
        _memory.update({k: v for k, v in saved.items() if isinstance(v, dict) and "kernel" in v})


def _save() -> None:
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        merged = {}
        try:
            merged = json.loads(path.read_text())  # keep entries other processes wrote meanwhile
        except (OSError, ValueError):
            pass
        merged = {k: v for k, v in merged.items() if isinstance(v, dict)}  # drop old bare-name entries
        merged.update(_memory)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(merged, indent=0, sort_keys=True))
        tmp.replace(path)
    except OSError:
        pass  # a read-only home only costs re-timing next run


def order_flops(m1, n1, m2, n2, r) -> dict[str, int]:
    """FLOPs per token of the two association orders (kron/flops.py's terms): (A X) Bᵀ and A (X Bᵀ)."""
    return {"ax_b": (2 * n1 - 1) * n2 * r * m1 + (2 * r * n2 - 1) * m2 * m1,
            "a_xb": (2 * n2 - 1) * r * m2 * n1 + (2 * r * n1 - 1) * m2 * m1}


def flop_default(m1, n1, m2, n2, r, kernels) -> str:
    """The kernel a fresh tune starts from: the cheaper association order, then PREFERENCE. einsum may take
    either order, so it counts the cheaper one and comes last among equals."""
    flops = order_flops(m1, n1, m2, n2, r)
    cheapest = min(flops.values())
    rank = {name: i for i, name in enumerate(PREFERENCE)}
    return min(kernels, key=lambda k: (flops.get(k.split(".")[0], cheapest), rank.get(k, len(rank)), k))


def measure(m1, n1, m2, n2, r, tokens, dtype, device, kernels, default: str) -> tuple[timing.Comparison, dict]:
    """Every kernel's forward on random data of this shape, timed round-robin: a screening pass of
    SCREEN_ROUNDS, then the kernels within SCREEN_RATIO of the fastest, and `default` always, until their medians
    are within ±target or the rest of `TUNE`'s budget is spent. Returns that comparison and the screened-out
    kernels' medians (ms).

    The screen is what makes the budget affordable: at 2048 tokens the slow kernels take 30-90 ms a call against
    5-20 ms for the good ones, so a round of all six leaves a dozen rounds in 2.5 s and ±20-45 % intervals;
    without them the contenders get 50-100 rounds. A 2x gap is beyond what interleaved timing misreads, and
    a contender wrongly dropped under load only ever leaves the default in place."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, n1, n2, generator=g).to(device=device, dtype=dtype)
    # Factors require grad, like the parameters they stand for: some torch paths depend on it.
    a = torch.randn(r, m1, n1, generator=g).to(device=device, dtype=dtype).requires_grad_()
    b = torch.randn(r, m2, n2, generator=g).to(device=device, dtype=dtype).requires_grad_()
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else None
    fns = {name: (lambda k=k: k(x, a, b)) for name, k in kernels.items()}
    threads = torch.get_num_threads()
    with torch.no_grad():
        screen = timing.compare(fns, warmup=TUNE["warmup"], min_rounds=SCREEN_ROUNDS, max_rounds=SCREEN_ROUNDS,
                                threads=threads, sync=sync)
        best = min(row["median_ms"] for row in screen.rows.values())
        out = {k: round(row["median_ms"], 4) for k, row in screen.rows.items()
               if k != default and row["median_ms"] > SCREEN_RATIO * best}
        budget = {**TUNE, "warmup": 0, "max_seconds": max(0.0, TUNE["max_seconds"] - screen.seconds)}
        return timing.compare({k: f for k, f in fns.items() if k not in out}, sync=sync, threads=threads,
                              **budget), out


def decide(cmp: timing.Comparison, default: str, screened: dict | None = None) -> dict:
    """Keep `default` unless a challenger's median·(1 + margin) is below the default's median.

    margin = max(MIN_MARGIN, spread), spread = √(h_default² + h_challenger²) with h the medians' relative 95 % CI
    half-widths (`ci_rel`), i.e. the half-width of their difference, so near-equal kernels never flip on noise;
    while other processes used our cores (`other_load` over the limit), margin = max(LOADED_MARGIN, 2 × that).
    Among challengers that pass, the fastest wins. Returns the cache entry; `screened` (kernels dropped before
    the comparison, with their screening medians) only adds to its medians_ms.
    """
    rows = cmp.rows
    loaded = cmp.other_load is not None and cmp.other_load > cmp.load_limit
    base = rows[default]

    def margin_of(name):
        spread = math.hypot(base["ci_rel"], rows[name]["ci_rel"])
        margin = max(MIN_MARGIN, spread)
        return (max(LOADED_MARGIN, 2 * margin) if loaded else margin), spread

    challengers = sorted((k for k in rows if k != default), key=lambda k: rows[k]["median_ms"])
    winner, (margin, spread) = default, (margin_of(challengers[0]) if challengers else (MIN_MARGIN, 0.0))
    for name in challengers:
        m, s = margin_of(name)
        if rows[name]["median_ms"] * (1 + m) < base["median_ms"]:
            winner, margin, spread = name, m, s
            break
    return {"kernel": winner, "default": default, "margin": _finite(margin), "spread": _finite(spread),
            "medians_ms": {**(screened or {}), **{k: round(v["median_ms"], 4) for k, v in rows.items()}},
            "noisy": cmp.noisy,
            "when": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _finite(v: float) -> float | None:
    return round(v, 4) if math.isfinite(v) else None  # JSON has no inf (one sample's CI is unbounded)


def _tune(m1, n1, m2, n2, r, bucket, dtype, device, kernels, default: str) -> dict:
    global _tuned
    t0 = time.perf_counter()
    try:
        cmp, screened = measure(m1, n1, m2, n2, r, bucket, dtype, device, kernels, default)
        return decide(cmp, default, screened)
    finally:
        _tuned += time.perf_counter() - t0


def _forced(kernels, shape=None) -> str | None:
    forced = os.environ.get("KRONBENCH_KRON_ORDER")
    if forced == "flops" and shape is not None:
        return flop_default(*shape, kernels)
    if forced and forced not in kernels:
        from kronbench.errors import KronbenchError
        raise KronbenchError(f"KRONBENCH_KRON_ORDER={forced!r} is not a kernel; choose one of {sorted(kernels)}")
    return forced or None


def choose(m1, n1, m2, n2, r, tokens, dtype, device, kernels) -> str:
    forced = _forced(kernels, (m1, n1, m2, n2, r))
    if forced:
        return forced
    if not _loaded:
        _load()
    bucket = token_bucket(tokens)
    key = _key(m1, n1, m2, n2, r, bucket, dtype, device)
    entry = _memory.get(key)
    if entry is None or entry.get("kernel") not in kernels:
        _memory[key] = _tune(m1, n1, m2, n2, r, bucket, dtype, device, kernels,
                             flop_default(m1, n1, m2, n2, r, kernels))
        _save()
    return _memory[key]["kernel"]


def revalidate(m1, n1, m2, n2, r, tokens, dtype, device, kernels) -> dict:
    """Re-time the cached choice (the incumbent) against the other kernels and keep the cache's entry unless a
    challenger wins by the margin. Returns the entry plus `revalidated`: kept, replaced, tuned (no entry yet)
    or forced (KRONBENCH_KRON_ORDER; nothing timed)."""
    forced = _forced(kernels, (m1, n1, m2, n2, r))
    if forced:
        return {"kernel": forced, "revalidated": "forced"}
    if not _loaded:
        _load()
    bucket = token_bucket(tokens)
    key = _key(m1, n1, m2, n2, r, bucket, dtype, device)
    old = _memory.get(key)
    incumbent = old["kernel"] if old and old.get("kernel") in kernels else None
    entry = _tune(m1, n1, m2, n2, r, bucket, dtype, device, kernels,
                  incumbent or flop_default(m1, n1, m2, n2, r, kernels))
    status = "tuned" if incumbent is None else "kept" if entry["kernel"] == incumbent else "replaced"
    _memory[key] = entry  # kept or not, the entry now holds the latest (quiet, one hopes) evidence
    _save()
    return {**entry, "revalidated": status}
