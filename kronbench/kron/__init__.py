"""Kronecker-factored layers (KroneckerBERT §3.3–3.4), pure PyTorch."""

from kronbench.kron.embedding import KroneckerEmbedding, TiedKroneckerHead
from kronbench.kron.flops import dense_flops, kron_flops
from kronbench.kron.linear import KERNELS, KroneckerConcat, KroneckerLinear, kron_matmul
from kronbench.kron.nkp import kron_sum, nearest_kronecker, rearrange

__all__ = ["KERNELS", "KroneckerConcat", "KroneckerEmbedding", "KroneckerLinear", "TiedKroneckerHead",
           "dense_flops", "kron_flops", "kron_matmul", "kron_sum", "nearest_kronecker", "rearrange"]
