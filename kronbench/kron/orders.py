"""Pick the fastest Kronecker contraction kernel per shape by timing, once, and remember it.

FLOP counts do not predict CPU time here: for A 384×384 ⊗ B 2×2 a batched order is ~10× slower than one large GEMM
with the same FLOPs. So each (shape, rank, dtype, device, threads, token bucket) is timed once, and the winner is
kept in memory and in a JSON file (`$KRONBENCH_CACHE/kron_orders.json`, default `~/.cache/kronbench/`). The file
also makes runs reproducible: kernels differ in float rounding, and a rerun on the same machine reuses the
recorded choice instead of re-timing (timings can flip between near-equal kernels).

`KRONBENCH_KRON_ORDER=<kernel>` forces one kernel everywhere (e.g. for bit-exact comparisons across machines).
"""

from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

import torch

_memory: dict[str, str] = {}
_loaded = False


def cache_path() -> Path:
    root = os.environ.get("KRONBENCH_CACHE") or Path.home() / ".cache" / "kronbench"
    return Path(root) / "kron_orders.json"


def token_bucket(tokens: int) -> int:
    """Round up to a power of two in [16, 2048]: a handful of timings cover every batch shape. Beyond 2048 tokens
    the GEMMs are saturated and the ranking holds, while timing at 8192 tokens (an LM evaluation batch through
    a tied 8192-word Kronecker head) cost minutes on a fresh cache."""
    return min(max(16, 1 << max(0, tokens - 1).bit_length()), 2048)


def _key(m1, n1, m2, n2, r, bucket, dtype, device) -> str:
    dev = device.type if isinstance(device, torch.device) else str(device)
    return f"{m1}x{n1}|{m2}x{n2}|r{r}|N{bucket}|{str(dtype).removeprefix('torch.')}|{dev}|t{torch.get_num_threads()}"


def _load() -> None:
    global _loaded
    _loaded = True
    try:
        _memory.update(json.loads(cache_path().read_text()))
    except (OSError, ValueError):
        pass  # no cache yet, or unreadable: re-time


def _save() -> None:
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        merged = {}
        try:
            merged = json.loads(path.read_text())  # keep entries other processes wrote meanwhile
        except (OSError, ValueError):
            pass
        merged.update(_memory)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(merged, indent=0, sort_keys=True))
        tmp.replace(path)
    except OSError:
        pass  # a read-only home only costs re-timing next run


def time_ms(fn, repeats: int = 5, warmup: int = 1, reduce=statistics.median) -> float:
    """Median (or `reduce`) wall time of fn() in milliseconds, synchronising CUDA when present."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        samples.append((time.perf_counter() - t0) * 1e3)
    return reduce(samples)


def measure(m1, n1, m2, n2, r, tokens, dtype, device, kernels, repeats: int = 3) -> dict[str, float]:
    """Best-of-`repeats` forward time (ms) of every kernel on random data of this shape.

    The minimum, not the median: a kernel is as fast as its best run, and other processes only ever add time.
    """
    g = torch.Generator().manual_seed(0)
    x = torch.randn(tokens, n1, n2, generator=g).to(device=device, dtype=dtype)
    # Factors require grad, like the parameters they stand for: some torch paths depend on it.
    a = torch.randn(r, m1, n1, generator=g).to(device=device, dtype=dtype).requires_grad_()
    b = torch.randn(r, m2, n2, generator=g).to(device=device, dtype=dtype).requires_grad_()
    with torch.no_grad():
        return {name: time_ms(lambda k=k: k(x, a, b), repeats, warmup=1, reduce=min) for name, k in kernels.items()}


def choose(m1, n1, m2, n2, r, tokens, dtype, device, kernels) -> str:
    forced = os.environ.get("KRONBENCH_KRON_ORDER")
    if forced:
        if forced not in kernels:
            from kronbench.errors import KronbenchError
            raise KronbenchError(f"KRONBENCH_KRON_ORDER={forced!r} is not a kernel; choose one of {sorted(kernels)}")
        return forced
    if not _loaded:
        _load()
    bucket = token_bucket(tokens)
    key = _key(m1, n1, m2, n2, r, bucket, dtype, device)
    if key not in _memory:
        times = measure(m1, n1, m2, n2, r, bucket, dtype, device, kernels)
        _memory[key] = min(times, key=times.get)
        _save()
    return _memory[key]
