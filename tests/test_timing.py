"""kronbench.timing: the round-robin timer's ratio, interval and noise flag."""

import math
import os
import subprocess
import sys
import time

import pytest

from kronbench import timing


def test_known_two_to_one_pair():
    """Sleeps cost what they say whatever else runs, so the measured ratio must be the true one."""
    c = timing.compare({"a": lambda: time.sleep(0.004), "b": lambda: time.sleep(0.008)}, reference="a", threads=1,
                       min_rounds=7, max_seconds=3)
    assert 1.8 <= c.rows["b"]["vs_reference"] <= 2.2, c.rows
    assert c.rows["a"]["vs_reference"] == 1.0
    assert 3.6 < c.rows["a"]["median_ms"] < 6 and c.rows["b"]["repeats"] == c.rounds >= 7
    assert len(c.samples["a"]) == c.rounds


def test_round_robin_rotates_the_order():
    order = []
    timing.compare({k: (lambda k=k: order.append(k)) for k in "abc"}, warmup=0, min_rounds=3, max_rounds=3,
                   threads=1)
    assert order == list("abcbcacab")


def test_median_ci_and_iqr():
    xs = list(range(1, 101))
    lo, hi = timing.median_ci(xs)
    assert lo < 50.5 < hi and 38 <= lo and hi <= 62  # ±1.96·√100/2 ≈ ±10 ranks
    assert timing.median_ci([3.0, 4.0]) == (-math.inf, math.inf)  # too few rounds for any interval
    assert timing.iqr([1, 2, 3, 4, 5]) == 2.0


def test_wide_interval_is_noisy():
    """Alternating 1 ms / 9 ms costs: the median's interval cannot reach ±3 % in 8 rounds."""
    state = {"n": 0}

    def jumpy():
        state["n"] += 1
        time.sleep(0.001 if state["n"] % 2 else 0.009)
    c = timing.compare({"x": jumpy}, threads=1, warmup=0, min_rounds=8, max_rounds=8)
    assert c.rows["x"]["noisy"] and c.noisy and any("target" in r for r in c.reasons)


@pytest.mark.skipif(not os.path.exists("/proc/stat"), reason="the load probe reads /proc/stat (Linux)")
def test_noise_flag_on_under_load_and_off_without():
    """A CPU burner beside a timing that claims every core is flagged; the same timing alone is not. The timed
    work sleeps, so only the probe (not the interval) can tell the two apart."""
    cores = os.cpu_count()
    fns = {"a": lambda: time.sleep(0.01), "b": lambda: time.sleep(0.02)}
    quiet = timing.compare(fns, threads=cores, min_rounds=10, max_seconds=2)
    burner = subprocess.Popen([sys.executable, "-c", "while 1: pass"])
    try:
        time.sleep(0.3)
        loaded = timing.compare(fns, threads=cores, min_rounds=10, max_seconds=2)
    finally:
        burner.kill()
        burner.wait()
    assert loaded.other_load > 0.5 and loaded.noisy and "other processes used" in loaded.reasons[0]
    assert quiet.other_load < quiet.load_limit and not quiet.noisy, quiet.reasons


def test_load_limit_leaves_free_cores_to_others():
    assert timing.load_threshold(threads=2, cores=2) == 0.25
    assert timing.load_threshold(threads=2, cores=16) == 14.25
