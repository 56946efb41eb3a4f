"""`kronbench bench-kron`: dense nn.Linear vs KroneckerLinear forward time for the presets' shapes (BERT-base dims).

fp32, no grad. Per shape, the cached kernel choice is first re-validated (`orders.revalidate`: re-timed against the
other kernels, replaced only if a challenger wins beyond the measured spread), so the benchmark measures, and
repairs, what training uses. Then dense and Kronecker are timed interleaved (`timing.compare`): `speedup` is the
median of per-round dense/kron ratios, which survives a machine slowing down mid-run; rows whose medians missed
their ±3 % interval, or ran while other processes took our cores, are marked `noisy`. Then the whole BertModel
forward, dense vs kb8, batch 16 × seq 128.
"""

from __future__ import annotations

import copy

import torch

from kronbench import timing
from kronbench.kron import orders
from kronbench.kron.flops import dense_flops, kron_flops
from kronbench.kron.linear import KERNELS, KroneckerLinear
from kronbench.models.counting import count_flops
from kronbench.models.registry import build_base
from kronbench.models.surgery import PATHS, kroneckerize


def preset_shapes(presets: list[str]) -> list[dict]:
    """Distinct (m, n, a_shape, rank) of the presets' linear layers on BERT-base, named preset.family."""
    shapes: dict[tuple, dict] = {}
    for preset in presets:
        model = build_base("bert-base-uncased")
        kroneckerize(model, preset, init="random")
        block = model.encoder.layer[0]
        for fam in ("attention", "ffn_in", "ffn_out"):
            mod = block.get_submodule(PATHS["bert"][fam][0])
            if isinstance(mod, KroneckerLinear):
                key = (mod.out_features, mod.in_features, mod.a_shape, mod.rank)
                shapes.setdefault(key, {"name": f"{preset}.{fam}", "m": key[0], "n": key[1],
                                        "a_shape": list(key[2]), "rank": key[3]})
    return list(shapes.values())


def setup_string() -> str:
    return (f"{orders.cpu_identity()} ({torch.backends.cpu.get_cpu_capability()}), {torch.get_num_threads()} "
            f"threads, fp32, torch {torch.__version__}")


def _timed(dense_fn, kron_fn, **kw) -> tuple[dict, timing.Comparison]:
    """dense vs kron round-robin: the row's time keys, and the comparison (for its noise reasons)."""
    cmp = timing.compare({"dense": dense_fn, "kron": kron_fn}, reference="kron", **kw)
    d, k = cmp.rows["dense"], cmp.rows["kron"]
    return {"dense_ms": d["median_ms"], "kron_ms": k["median_ms"], "speedup": d["vs_reference"],
            "dense_iqr_ms": d["iqr_ms"], "kron_iqr_ms": k["iqr_ms"], "repeats": cmp.rounds,
            "noisy": cmp.noisy}, cmp


def bench_kron(presets=("kb8", "kb21"), tokens: int = 2048, repeats: int = 20, threads: int | None = None,
               encoder: bool = True, max_seconds: float = 10.0) -> list[dict]:
    """One row per distinct shape (+ the encoder row). `repeats` is the least number of rounds; rounds go on
    until both medians are within ±3 % or `max_seconds` per comparison have passed. Each row's `reasons` says
    why it is noisy, if it is."""
    if threads:
        torch.set_num_threads(threads)
    setup = setup_string()
    rows = []
    gen = torch.Generator().manual_seed(0)
    for s in preset_shapes(list(presets)):
        m, n, (m1, n1), r = s["m"], s["n"], s["a_shape"], s["rank"]
        x = torch.randn(tokens, n, generator=gen)
        dense = torch.nn.Linear(n, m)
        kron = KroneckerLinear(n, m, (m1, n1), r)
        with torch.no_grad():
            check = orders.revalidate(m1, n1, m // m1, n // n1, r, tokens, x.dtype, x.device, KERNELS)
            order = orders.choose(m1, n1, m // m1, n // n1, r, tokens, x.dtype, x.device, KERNELS)  # as forward does
            times, cmp = _timed(lambda: dense(x), lambda: kron(x), warmup=3, min_rounds=repeats,
                                max_seconds=max_seconds)
        rows.append({**s, "tokens": tokens, **times,
                     "flop_ratio": dense_flops(m, n) / kron_flops(m1, n1, m // m1, n // n1, r), "order": order,
                     "revalidated": check["revalidated"], "reasons": cmp.reasons, "setup": setup})
    if encoder:
        rows.append(bench_encoder("kb8", repeats=max(3, repeats // 4), setup=setup, max_seconds=max_seconds))
    return rows


def bench_encoder(preset: str = "kb8", batch: int = 16, seq: int = 128, repeats: int = 5, setup: str = "",
                  max_seconds: float = 10.0) -> dict:
    dense = build_base("bert-base-uncased").eval()
    kron = copy.deepcopy(dense)
    kroneckerize(kron, preset, init="random")
    ids = torch.randint(0, dense.config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        kron(input_ids=ids)  # kernel choices (a fresh cache tunes here) stay out of the timed rounds
        times, cmp = _timed(lambda: dense(input_ids=ids), lambda: kron(input_ids=ids), warmup=1,
                            min_rounds=repeats, max_seconds=max_seconds)
    return {"name": f"encoder-{preset}", "batch": batch, "seq": seq, **times,
            "flop_ratio": count_flops(dense, seq) / count_flops(kron, seq), "reasons": cmp.reasons,
            "setup": setup or setup_string()}
