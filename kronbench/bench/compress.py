"""`kronbench bench-compress`: the compress stage's time with NKP and with the data-aware init (issue 21: MiniLM
cf=8 within 2 minutes on 2 cores), timed round-robin in one process after a warm-up round (kronbench.timing).

Each round runs the stage as the workflow does (`kronbench.distill.stages.compress`: load, NKP, calibration text,
the fit, the held-out error report, the save) once per init into a scratch directory. A `kronbench compress`
command adds its interpreter start and imports on top: `startup_s`, timed once in a fresh interpreter.
Minutes per round mean few rounds (default 3): too few for a confidence interval, so the row says `noisy` with that
reason; each round's time is kept (`*_samples_s`) so the spread is there to read.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from kronbench import timing
from kronbench.kron import orders


def startup_seconds() -> float:
    """A fresh interpreter importing what `kronbench compress` imports before it starts work."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import kronbench.cli, kronbench.distill.stages, transformers"],
                   check=True, capture_output=True)
    return time.perf_counter() - t0


def bench_compress(model: str = "minilm-l6", preset: str = "cf=8", data: str | None = None, rounds: int = 3,
                   warmup: int = 1, threads: int | None = None, calibration: dict | None = None) -> dict:
    """Seconds per compress stage, init nkp (with its held-out error report) vs activation, median of `rounds`."""
    from kronbench.distill.stages import compress

    if threads:
        torch.set_num_threads(threads)
    startup = startup_seconds()
    with tempfile.TemporaryDirectory(prefix="bench-compress-") as tmp:
        def stage(init):
            return lambda: compress(model, preset, Path(tmp) / init, init=init, data=data, calibration=calibration)

        cmp = timing.compare({"nkp": stage("nkp"), "activation": stage("activation")}, reference="nkp",
                             warmup=warmup, min_rounds=rounds, max_rounds=rounds, max_seconds=0)
    row = {"model": model, "preset": preset, "data": str(data), "calibration": calibration or {},
           "startup_s": round(startup, 2), "rounds": cmp.rounds}
    for name, r in cmp.rows.items():
        row[f"{name}_s"] = round(r["median_ms"] / 1e3, 2)
        row[f"{name}_iqr_s"] = round(r["iqr_ms"] / 1e3, 2)
        row[f"{name}_samples_s"] = [round(x / 1e3, 2) for x in cmp.samples[name]]
    row["activation_vs_nkp"] = round(cmp.rows["activation"]["vs_reference"], 3)
    row["command_s"] = round(row["activation_s"] + startup, 2)  # what `kronbench compress --init activation` takes
    row["noisy"], row["reasons"] = cmp.noisy, cmp.reasons
    row["setup"] = (f"{orders.cpu_identity()}, {torch.get_num_threads()} threads, torch {torch.__version__}, "
                    f"median of {cmp.rounds} rounds after {warmup} warm-up")
    return row
