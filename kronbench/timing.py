"""Timings as comparisons: several callables timed round-robin in one process, with their spread and a noise flag.

    cmp = compare({"teacher": f, "kb8": g}, reference="teacher", threads=2)
    cmp.rows["kb8"]   # {"median_ms", "iqr_ms", "repeats", "ci_rel", "vs_reference", "noisy"}

Why interleaved: a machine that slows down (another process, thermal limits, a busy neighbour on the node) slows
every candidate of the same round alike, so ratios measured round by round survive load that shifts absolute
times 2-10x. Each round starts one position later (A B C, B C A, C A B) so no candidate always runs after the
same one. Rounds continue until the 95 % confidence interval of every median is within ±`target` (an order-
statistic interval: no normality assumed) or `max_seconds` / `max_rounds` is reached.

A result is `noisy` when its interval missed the target, or when other processes used CPU our threads needed
(`/proc/stat` busy time minus this process's CPU time, over the timed span: it counts niced burners and VM steal,
which load average does not separate from our own threads). Anchors: torch.utils.benchmark's adaptive repeats and
IQR, pytest-benchmark's rounds.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

Z95 = 1.96


MIN_CI_SAMPLES = 5  # below this even the full range covers the median less than 94 % of the time: no interval


def median_ci(samples: list[float]) -> tuple[float, float]:
    """Distribution-free 95 % interval of the median: the order statistics at ranks n/2 ∓ 1.96·√n/2; (-inf, inf)
    for fewer than MIN_CI_SAMPLES samples."""
    xs, n = sorted(samples), len(samples)
    if n < MIN_CI_SAMPLES:
        return -math.inf, math.inf
    lo = max(1, math.floor((n - Z95 * math.sqrt(n)) / 2))
    hi = min(n, math.ceil((n + Z95 * math.sqrt(n)) / 2 + 1))
    return xs[lo - 1], xs[hi - 1]


def iqr(samples: list[float]) -> float:
    if len(samples) < 2:
        return 0.0
    q = statistics.quantiles(samples, n=4, method="inclusive")
    return q[2] - q[0]


def _proc_busy_seconds() -> float | None:
    """Seconds of CPU time all processes used since boot (user+nice+system+irq+softirq+steal), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class LoadProbe:
    """Cores' worth of CPU used by *other* processes (and the hypervisor) between start() and stop()."""

    def start(self) -> LoadProbe:
        self.busy, self.mine, self.wall = _proc_busy_seconds(), time.process_time(), time.perf_counter()
        return self

    def stop(self) -> float | None:
        """The lower bound: /proc/stat counts whole clock ticks (10 ms), so over a short span the reading is
        coarse; two ticks are given back rather than calling a 50 ms comparison loaded on rounding alone."""
        busy, mine, wall = _proc_busy_seconds(), time.process_time(), time.perf_counter()
        if busy is None or self.busy is None or wall <= self.wall:
            return None
        slack = 2 / os.sysconf("SC_CLK_TCK")
        return max(0.0, ((busy - self.busy) - (mine - self.mine) - slack) / (wall - self.wall))


def load_threshold(threads: int, cores: int | None = None) -> float:
    """Other processes may use the cores we leave free, plus a quarter core of background (daemons, the
    workflow's own polling), before our timing counts as disturbed."""
    cores = cores or os.cpu_count() or 1
    return max(0, cores - threads) + 0.25


@dataclass
class Comparison:
    rows: dict[str, dict]
    rounds: int
    seconds: float
    other_load: float | None          # cores used by other processes while timing (None: unknown, e.g. macOS)
    load_limit: float
    threads: int
    reasons: list[str] = field(default_factory=list)  # why results are noisy, if they are
    samples: dict[str, list[float]] = field(default_factory=dict)  # ms per round, in round order

    @property
    def noisy(self) -> bool:
        return any(r["noisy"] for r in self.rows.values())


def compare(fns: dict[str, Callable[[], object]], *, reference: str | None = None, warmup: int = 2,
            min_rounds: int = 5, max_rounds: int = 1000, target: float = 0.03, max_seconds: float = 60.0,
            threads: int | None = None, sync: Callable[[], object] | None = None,
            probe: LoadProbe | None = None) -> Comparison:
    """Time every fn round-robin; per name the median and IQR (ms), repeats, the interval's relative half-width
    `ci_rel`, the median of per-round ratios to `reference` (`vs_reference`) and `noisy`."""
    if not fns:
        raise ValueError("compare: nothing to time")
    if reference is not None and reference not in fns:
        raise ValueError(f"compare: reference {reference!r} is not one of {sorted(fns)}")
    if min_rounds < 1 or max_rounds < min_rounds or warmup < 0:
        raise ValueError(f"compare: need 1 <= min_rounds <= max_rounds and warmup >= 0 (got {min_rounds}, "
                         f"{max_rounds}, {warmup})")
    if threads is None:
        import torch
        threads = torch.get_num_threads()
    sync = sync or (lambda: None)
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    sync()
    samples: dict[str, list[float]] = {n: [] for n in names}
    probe = (probe or LoadProbe()).start()
    t_start = time.perf_counter()
    rounds = 0
    while True:
        k = rounds % len(names)
        for name in names[k:] + names[:k]:
            t0 = time.perf_counter()
            fns[name]()
            sync()
            samples[name].append((time.perf_counter() - t0) * 1e3)
        rounds += 1
        elapsed = time.perf_counter() - t_start
        if rounds >= max_rounds or (rounds >= min_rounds and (elapsed >= max_seconds or _all_within(samples,
                                                                                                     target))):
            break
    other = probe.stop()
    limit = load_threshold(threads)
    loaded = other is not None and other > limit
    reasons = [f"other processes used {other:.2f} cores (limit {limit:.2f} with {threads} threads on "
               f"{os.cpu_count()} cores)"] if loaded else []
    rows = {}
    for name in names:
        xs = samples[name]
        med = statistics.median(xs)
        lo, hi = median_ci(xs)
        ci_rel = (hi - lo) / 2 / med if med > 0 and math.isfinite(hi - lo) else math.inf
        row = {"median_ms": med, "iqr_ms": iqr(xs), "repeats": len(xs), "ci_rel": ci_rel,
               "noisy": loaded or ci_rel > target}
        if reference is not None:
            row["vs_reference"] = statistics.median(a / b for a, b in zip(xs, samples[reference]) if b > 0)
        rows[name] = row
        if not math.isfinite(ci_rel):
            reasons.append(f"{name}: {len(xs)} rounds, too few for an interval (>= {MIN_CI_SAMPLES})")
        elif ci_rel > target:
            reasons.append(f"{name}: median ±{100 * ci_rel:.1f} % after {len(xs)} rounds (target ±"
                           f"{100 * target:.0f} %)")
    return Comparison(rows, rounds, time.perf_counter() - t_start, other, limit, threads, reasons, samples)


def _all_within(samples: dict[str, list[float]], target: float) -> bool:
    for xs in samples.values():
        lo, hi = median_ci(xs)
        med = statistics.median(xs)
        if med <= 0 or (hi - lo) / 2 / med > target:
            return False
    return True
