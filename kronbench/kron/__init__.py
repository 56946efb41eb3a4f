"""Kronecker-factored layers (KroneckerBERT §3.3–3.4), pure PyTorch.

The names below load on first use (PEP 562), so importing the torch-free kronbench.kron.shapes (config validation
in the workflow) does not import torch.
"""

import importlib

_WHERE = {"KroneckerEmbedding": "embedding", "TiedHead": "embedding", "TiedKroneckerHead": "embedding", "dense_flops": "flops",
          "kron_flops": "flops", "KERNELS": "linear", "KroneckerConcat": "linear", "KroneckerLinear": "linear",
          "kron_matmul": "linear", "kron_sum": "nkp", "nearest_kronecker": "nkp", "rearrange": "nkp"}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'kronbench.kron' has no attribute {name!r}")
    return getattr(importlib.import_module(f"kronbench.kron.{_WHERE[name]}"), name)
