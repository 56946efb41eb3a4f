"""KroneckerLinear: y = (Σ_k A_k ⊗ B_k) x + b without ever forming the dense matrix (KroneckerBERT Eq. 6).

Row-major identity used throughout: with x viewed as X (n1, n2), (A ⊗ B) x = vec(A · X · Bᵀ), a (m1, m2) result.
A · X · Bᵀ can be associated two ways, (A X) Bᵀ or A (X Bᵀ) — the two terms of Eq. 7 — and each left
multiplication by A can run as one batched matmul over tokens or, after a transpose, as one large GEMM. On CPU the
kernels differ by up to 10× for the same FLOPs, so `orders.choose` times them per shape once and caches the winner.
Every step is an explicit 2-D GEMM or a bmm: `torch.matmul`'s 2-D @ 3-D broadcasting takes a path ~5× slower when
an operand requires grad (as parameters do), even under no_grad.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from kronbench.kron import orders
from kronbench.kron.flops import dense_flops, kron_flops
from kronbench.kron.nkp import check_a_shape, kron_sum, nearest_kronecker


# Each kernel maps X (N, n1, n2) and the factors A (r, m1, n1), B (r, m2, n2) to Y (N, m1·m2).
def _ax_b_bmm(x, a, b):
    n, (r, m1, n1), (_, m2, n2) = x.shape[0], a.shape, b.shape
    t = torch.bmm(a.reshape(r * m1, n1).expand(n, r * m1, n1), x)  # (N, r·m1, n2): batched over tokens
    t = t.reshape(n, r, m1, n2).transpose(1, 2).reshape(n * m1, r * n2)  # (N·m1, r·n2); a view when r == 1
    return (t @ b.transpose(1, 2).reshape(r * n2, m2)).view(n, m1 * m2)  # one GEMM, already in output layout


def _ax_b_gemm(x, a, b):
    n, (r, m1, n1), (_, m2, n2) = x.shape[0], a.shape, b.shape
    t = a.reshape(r * m1, n1) @ x.transpose(0, 1).reshape(n1, n * n2)  # (r·m1, N·n2): one GEMM
    t = t.view(r, m1, n, n2).permute(2, 1, 0, 3).reshape(n * m1, r * n2)  # (N·m1, r·n2)
    return (t @ b.transpose(1, 2).reshape(r * n2, m2)).view(n, m1 * m2)


def _ax_b_t(x, a, b):
    # For a large A and a tiny B (KB8 attention: A 384×384, B 2×2): transpose x's two inner axes (cheap, local),
    # so the A step is one GEMM with a wide output; the tiny B step then runs batched over tokens.
    n, (r, m1, n1), (_, m2, n2) = x.shape[0], a.shape, b.shape
    t = x.transpose(1, 2).reshape(n * n2, n1) @ a.reshape(r * m1, n1).T  # (N·n2, r·m1): one GEMM
    t = t.view(n, n2, r, m1).transpose(1, 2).reshape(n, r * n2, m1)  # (N, r·n2, m1)
    y = torch.bmm(b.transpose(0, 1).reshape(m2, r * n2).expand(n, m2, r * n2), t)  # (N, m2, m1)
    return y.transpose(1, 2).reshape(n, m1 * m2)


def _a_xb_bmm(x, a, b):
    n, (r, m1, n1), (_, m2, n2) = x.shape[0], a.shape, b.shape
    t = x.reshape(n * n1, n2) @ b.reshape(r * m2, n2).T  # (N·n1, r·m2): one GEMM
    t = t.view(n, n1, r, m2).transpose(1, 2).reshape(n, r * n1, m2)  # (N, r·n1, m2)
    a_flat = a.transpose(0, 1).reshape(m1, r * n1)
    return torch.bmm(a_flat.expand(n, m1, r * n1), t).view(n, m1 * m2)  # batched over tokens


def _a_xb_gemm(x, a, b):
    n, (r, m1, n1), (_, m2, n2) = x.shape[0], a.shape, b.shape
    t = x.reshape(n * n1, n2) @ b.reshape(r * m2, n2).T  # (N·n1, r·m2)
    t = t.view(n, n1, r, m2).permute(2, 1, 0, 3).reshape(r * n1, n * m2)  # (r·n1, N·m2)
    y = a.transpose(0, 1).reshape(m1, r * n1) @ t  # (m1, N·m2): one GEMM
    return y.view(m1, n, m2).transpose(0, 1).reshape(n, m1 * m2)


def _einsum(x, a, b):
    return torch.einsum("kij,njq,kpq->nip", a, x, b).reshape(x.shape[0], -1)


# Names: association order, then how the left multiplication by A runs ("bmm": batched over tokens; "gemm": one
# GEMM after moving tokens to the columns; "t": one GEMM after swapping x's inner axes, B step batched).
KERNELS = {"ax_b.bmm": _ax_b_bmm, "ax_b.gemm": _ax_b_gemm, "ax_b.t": _ax_b_t, "a_xb.bmm": _a_xb_bmm,
           "a_xb.gemm": _a_xb_gemm, "einsum": _einsum}


def kron_matmul(x: torch.Tensor, a: torch.Tensor, b: torch.Tensor, order: str = "auto") -> torch.Tensor:
    """(…, n1·n2) → (…, m1·m2): x @ (Σ_k A_k ⊗ B_k)ᵀ with the given kernel (or the cached fastest)."""
    r, m1, n1 = a.shape
    _, m2, n2 = b.shape
    lead = x.shape[:-1]
    x3 = x.reshape(-1, n1, n2)  # (N, n1, n2)
    if order == "auto":
        order = orders.choose(m1, n1, m2, n2, r, x3.shape[0], x.dtype, x.device, KERNELS)
    return KERNELS[order](x3, a, b).view(*lead, m1 * m2)


class KroneckerLinear(nn.Module):
    """Drop-in for nn.Linear (and HF GPT-2 Conv1D) with weight W = Σ_k A_k ⊗ B_k, W (out, in) = (m1·m2, n1·n2).

    a_shape = (m1, n1) is A's shape in weight order (out, in). The paper's Table 1 lists (n1, m1), input first;
    presets convert. Parameters: A (rank, m1, n1), B (rank, m2, n2), bias (out).
    """

    def __init__(self, in_features: int, out_features: int, a_shape, rank: int = 1, bias: bool = True,
                 order: str = "auto", device=None, dtype=None):
        super().__init__()
        m1, n1, m2, n2 = check_a_shape((out_features, in_features), a_shape, "KroneckerLinear")
        self.in_features, self.out_features, self.rank = in_features, out_features, rank
        self.order = order
        kw = {"device": device, "dtype": dtype}
        # std(A)·std(B)·√r = 1/√in keeps the dense-equivalent weight at nn.Linear's scale for training from scratch.
        self.A = nn.Parameter(torch.randn(rank, m1, n1, **kw) / math.sqrt(n1) / rank**0.25)
        self.B = nn.Parameter(torch.randn(rank, m2, n2, **kw) / math.sqrt(n2) / rank**0.25)
        self.bias = nn.Parameter(torch.zeros(out_features, **kw)) if bias else None

    @property
    def a_shape(self) -> tuple[int, int]:
        return tuple(self.A.shape[1:])

    @classmethod
    def from_linear(cls, module: nn.Module, a_shape, rank: int = 1, order: str = "auto") -> "KroneckerLinear":
        """NKP-initialise from an nn.Linear (weight (out, in)) or a GPT-2 Conv1D (weight stored (in, out))."""
        weight = dense_weight(module)
        out_features, in_features = weight.shape
        layer = cls(in_features, out_features, a_shape, rank, bias=module.bias is not None, order=order,
                    device=weight.device, dtype=weight.dtype)
        a, b = nearest_kronecker(weight, a_shape, rank)
        with torch.no_grad():
            layer.A.copy_(a)
            layer.B.copy_(b)
            if module.bias is not None:
                layer.bias.copy_(module.bias)
        return layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = kron_matmul(x, self.A, self.B, self.order)  # a fresh tensor: adding the bias in place saves a pass
        return y if self.bias is None else y.add_(self.bias)

    def to_dense(self) -> torch.Tensor:
        """The equivalent dense (out, in) weight. For tests and analysis only."""
        return kron_sum(self.A, self.B)

    def flops(self, tokens: int = 1) -> int:
        """Eq. 7: multiply-adds of the cheaper association order, biases excluded, for `tokens` tokens."""
        r, m1, n1 = self.A.shape
        _, m2, n2 = self.B.shape
        return tokens * kron_flops(m1, n1, m2, n2, r)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, a_shape={self.a_shape}, "
                f"b_shape={tuple(self.B.shape[1:])}, rank={self.rank}, bias={self.bias is not None}, "
                f"order={self.order}")


class KroneckerConcat(nn.Module):
    """Several KroneckerLinear side by side, outputs concatenated: GPT-2's fused c_attn = [W_Q; W_K; W_V].

    KroneckerBERT decomposes W_Q, W_K and W_V separately (§3.3); GPT-2 stores them as one Conv1D, so we split it.
    """

    def __init__(self, parts: list[KroneckerLinear]):
        super().__init__()
        self.parts = nn.ModuleList(parts)
        self.in_features = parts[0].in_features
        self.out_features = sum(p.out_features for p in parts)

    @classmethod
    def from_linear(cls, module: nn.Module, a_shape, rank: int = 1, splits: int = 3, order: str = "auto"):
        weight = dense_weight(module)  # (splits·d, d)
        bias = module.bias
        parts = []
        for w, b in zip(weight.chunk(splits, 0), bias.chunk(splits, 0) if bias is not None else [None] * splits):
            lin = nn.Linear(w.shape[1], w.shape[0], bias=b is not None, device=w.device, dtype=w.dtype)
            with torch.no_grad():
                lin.weight.copy_(w)
                if b is not None:
                    lin.bias.copy_(b)
            parts.append(KroneckerLinear.from_linear(lin, a_shape, rank, order))
        return cls(parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([p(x) for p in self.parts], dim=-1)

    def to_dense(self) -> torch.Tensor:
        return torch.cat([p.to_dense() for p in self.parts], dim=0)

    def flops(self, tokens: int = 1) -> int:
        return sum(p.flops(tokens) for p in self.parts)


def dense_weight(module: nn.Module) -> torch.Tensor:
    """(out, in) weight of an nn.Linear or a transformers Conv1D (which stores (in, out) and has `nf`)."""
    if isinstance(module, nn.Linear):
        return module.weight
    if hasattr(module, "nf") and getattr(module, "weight", None) is not None:  # transformers.pytorch_utils.Conv1D
        return module.weight.T
    raise TypeError(f"expected nn.Linear or transformers Conv1D, got {type(module).__name__}")


def linear_flops(module: nn.Module, tokens: int = 1) -> int:
    """Eq. 7 counting for any linear-like module (dense: (2n − 1)·m per token)."""
    if hasattr(module, "flops"):
        return module.flops(tokens)
    m, n = dense_weight(module).shape
    return tokens * dense_flops(m, n)
