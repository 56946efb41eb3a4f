"""Test-wide settings: never touch the Hugging Face hub (each failed lookup retries for ~25 s otherwise)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("KRONBENCH_CACHE", os.path.join(os.path.dirname(__file__), "..", ".cache", "tests"))

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
# config/tiny.yaml: training and evaluate jobs on 1 thread (config threads), compare_latency on all --cores (2); the
# SLURM run gives its jobs the same threads where it matters (tests/test_slurm.py), so rows compare key by key.
TINY = ["all_tables", "all_figures", "--configfile", "config/tiny.yaml", "--config"]  # + key=value overrides


@pytest.fixture(scope="session")
def tiny_local(tmp_path_factory):
    """config/tiny.yaml run once locally (--cores 2): (results dir, tables dir, the finished process). Shared by the
    end-to-end test and the SLURM test's rows comparison."""
    base = tmp_path_factory.mktemp("tiny-local")
    res, tab = base / "results", base / "tables"
    p = subprocess.run([str(SNAKEMAKE), "--cores", "2", *TINY, f"results_dir={res}", f"tables_dir={tab}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)  # HF_*_OFFLINE set above
    return res, tab, p


@pytest.fixture
def fresh_kernel_cache(tmp_path, monkeypatch):
    """An empty Kronecker kernel cache in tmp_path, nothing in memory, no forced kernel: the cache file's path."""
    from kronbench.kron import orders

    monkeypatch.setenv("KRONBENCH_CACHE", str(tmp_path))
    monkeypatch.delenv("KRONBENCH_KRON_ORDER", raising=False)
    monkeypatch.setattr(orders, "_memory", {})
    monkeypatch.setattr(orders, "_loaded", False)
    return tmp_path / "kron_orders.json"


def pick(table, **keys):
    """The one row of a table (DataFrame) with these column values."""
    sel = table
    for k, v in keys.items():
        sel = sel[sel[k] == v]
    assert len(sel) == 1, (keys, sel)
    return sel.iloc[0]
