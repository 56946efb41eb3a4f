"""`kronbench bench-kron`: dense nn.Linear vs KroneckerLinear forward time for the presets' shapes (BERT-base dims).

fp32, no grad, warm-up then the median of `repeats`; the Kronecker kernel is the one `orders.choose` picks (timed
once per shape and cached, like in training). Then the whole BertModel forward, dense vs kb8, batch 16 × seq 128.
"""

from __future__ import annotations

import copy
import platform

import torch

from kronbench.kron import orders
from kronbench.kron.flops import dense_flops, kron_flops
from kronbench.kron.linear import KERNELS, KroneckerLinear
from kronbench.kron.orders import time_ms
from kronbench.models.counting import count_flops
from kronbench.models.registry import build_base
from kronbench.models.surgery import PATHS, compress


def preset_shapes(presets: list[str]) -> list[dict]:
    """Distinct (m, n, a_shape, rank) of the presets' linear layers on BERT-base, named preset.family."""
    shapes: dict[tuple, dict] = {}
    for preset in presets:
        model = build_base("bert-base-uncased")
        compress(model, preset, init="random")
        block = model.encoder.layer[0]
        for fam in ("attention", "ffn_in", "ffn_out"):
            mod = block.get_submodule(PATHS["bert"][fam][0])
            if isinstance(mod, KroneckerLinear):
                key = (mod.out_features, mod.in_features, mod.a_shape, mod.rank)
                shapes.setdefault(key, {"name": f"{preset}.{fam}", "m": key[0], "n": key[1],
                                        "a_shape": list(key[2]), "rank": key[3]})
    return list(shapes.values())


def bench_kron(presets=("kb8", "kb21"), tokens: int = 2048, repeats: int = 20, threads: int | None = None,
               encoder: bool = True) -> list[dict]:
    if threads:
        torch.set_num_threads(threads)
    setup = f"{platform.machine()} cpu, {torch.get_num_threads()} threads, fp32, torch {torch.__version__}"
    rows = []
    gen = torch.Generator().manual_seed(0)
    for s in preset_shapes(list(presets)):
        m, n, (m1, n1), r = s["m"], s["n"], s["a_shape"], s["rank"]
        x = torch.randn(tokens, n, generator=gen)
        dense = torch.nn.Linear(n, m)
        kron = KroneckerLinear(n, m, (m1, n1), r)
        with torch.no_grad():
            order = orders.choose(m1, n1, m // m1, n // n1, r, tokens, x.dtype, x.device, KERNELS)  # as forward does
            dense_ms = time_ms(lambda: dense(x), repeats, warmup=3)
            kron_ms = time_ms(lambda: kron(x), repeats, warmup=3)
        rows.append({**s, "tokens": tokens, "dense_ms": dense_ms, "kron_ms": kron_ms, "speedup": dense_ms / kron_ms,
                     "flop_ratio": dense_flops(m, n) / kron_flops(m1, n1, m // m1, n // n1, r), "order": order,
                     "setup": setup})
    if encoder:
        rows.append(bench_encoder("kb8", repeats=max(3, repeats // 4), setup=setup))
    return rows


def bench_encoder(preset: str = "kb8", batch: int = 16, seq: int = 128, repeats: int = 5, setup: str = "") -> dict:
    dense = build_base("bert-base-uncased").eval()
    kron = copy.deepcopy(dense)
    compress(kron, preset, init="random")
    ids = torch.randint(0, dense.config.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        dense_ms = time_ms(lambda: dense(input_ids=ids), repeats, warmup=1)
        kron_ms = time_ms(lambda: kron(input_ids=ids), repeats, warmup=2)
    return {"name": f"encoder-{preset}", "batch": batch, "seq": seq, "dense_ms": dense_ms, "kron_ms": kron_ms,
            "speedup": dense_ms / kron_ms, "flop_ratio": count_flops(dense, seq) / count_flops(kron, seq),
            "setup": setup}

