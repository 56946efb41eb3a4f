"""Nearest Kronecker product (Van Loan & Pitsianis 1993), as KroneckerBERT §3.4 uses it to initialise students.

For W (m × n) and A (m1 × n1), B (m2 × n2) with m = m1·m2, n = n1·n2, the rearrangement R(W) stacks the
vectorised m2 × n2 blocks of W as rows, so that ‖W − Σ_k A_k ⊗ B_k‖_F = ‖R(W) − Σ_k vec(A_k) vec(B_k)ᵀ‖_F.
The truncated SVD of R(W) is therefore the optimal rank-r sum of Kronecker products (Eckart–Young).
"""

from __future__ import annotations

import torch

from kronbench.errors import KronbenchError
from kronbench.kron.shapes import divisors


def check_a_shape(shape: tuple[int, int], a_shape, what: str = "weight") -> tuple[int, int, int, int]:
    """Validate A's shape (m1, n1) against a (m, n) matrix; return (m1, n1, m2, n2)."""
    m, n = shape
    try:
        m1, n1 = (int(v) for v in a_shape)
    except (TypeError, ValueError):
        raise KronbenchError(f"{what}: a_shape must be two integers (m1, n1), got {a_shape!r}") from None
    if m1 < 1 or n1 < 1 or m % m1 or n % n1:
        raise KronbenchError(
            f"{what} ({m} out × {n} in): a_shape ({m1}, {n1}) does not divide it. m1 must divide {m} "
            f"(choices {divisors(m)}) and n1 must divide {n} (choices {divisors(n)})."
        )
    return m1, n1, m // m1, n // n1


def rearrange(weight: torch.Tensor, a_shape: tuple[int, int]) -> torch.Tensor:
    """R(W): (m, n) → (m1·n1, m2·n2); row i1·n1 + j1 is the vectorised block W[i1·m2:(i1+1)·m2, j1·n2:(j1+1)·n2]."""
    m1, n1, m2, n2 = check_a_shape(tuple(weight.shape), a_shape)
    return weight.reshape(m1, m2, n1, n2).permute(0, 2, 1, 3).reshape(m1 * n1, m2 * n2)


def nearest_kronecker(weight: torch.Tensor, a_shape, rank: int = 1,
                      row_weights: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return A (r, m1, n1) and B (r, m2, n2) minimising ‖W − Σ_k A_k ⊗ B_k‖_F, √σ_k split between the factors.

    `weight` is (out, in) like an nn.Linear weight. Computed in float64 (the SVD of a tall-thin R is cheap) and
    returned in the weight's dtype. `row_weights` (m1,) > 0 weighs the m2-row blocks of W (an embedding's words,
    m2 = 1): minimises Σ_i w_i ‖W_i − Ŵ_i‖², exactly, by the SVD of diag(√w) R (the weight repeats over A's
    columns, so it scales R's rows).
    """
    m1, n1, m2, n2 = check_a_shape(tuple(weight.shape), a_shape)
    max_rank = min(m1 * n1, m2 * n2)
    if not 1 <= rank <= max_rank:
        raise KronbenchError(
            f"rank {rank} is invalid for a ({weight.shape[0]} × {weight.shape[1]}) weight with a_shape ({m1}, {n1}): "
            f"the rearranged matrix is ({m1 * n1} × {m2 * n2}), so rank must be in 1..{max_rank}."
        )
    r = rearrange(weight.detach().to(torch.float64), (m1, n1))  # (m1·n1, m2·n2)
    scale = None
    if row_weights is not None:
        if row_weights.shape != (m1,) or not bool((row_weights > 0).all()):
            raise KronbenchError(f"row_weights: need {m1} positive weights (one per row of A), got "
                                 f"{tuple(row_weights.shape)}")
        scale = row_weights.detach().to(torch.float64).sqrt().repeat_interleave(n1)[:, None]  # (m1·n1, 1)
        r = r * scale
    u, s, vh = torch.linalg.svd(r, full_matrices=False)
    root = s[:rank].sqrt()
    u = u[:, :rank] if scale is None else u[:, :rank] / scale
    a = (u * root).T.reshape(rank, m1, n1)
    b = (vh[:rank] * root[:, None]).reshape(rank, m2, n2)
    return a.to(weight.dtype).contiguous(), b.to(weight.dtype).contiguous()


def kron_sum(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Σ_k A_k ⊗ B_k as a dense (m1·m2, n1·n2) matrix. Reference and tests only: layers never call this."""
    (_, m1, n1), (_, m2, n2) = a.shape, b.shape
    # (A ⊗ B)[i·m2 + p, j·n2 + q] = A[i, j]·B[p, q]; an einsum, because torch.kron's internal view fails on the
    # odd strides a solve leaves on size-1 dims
    return torch.einsum("kij,kpq->ipjq", a, b).reshape(m1 * m2, n1 * n2)
