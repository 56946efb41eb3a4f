"""Fit Kronecker factors to a layer's outputs, not its weights: min ‖Y − (Σ_k A_k ⊗ B_k) X‖_F by alternating
least squares, from second moments of the calibration inputs alone (no token ever kept).

NKP (kronbench.kron.nkp) minimises ‖W − Ŵ‖_F: every input direction counts alike. A layer only ever sees the
directions its inputs span, and on real models those are few and uneven, so the output error ‖(W − Ŵ)X‖ is what a
student pays for. With the inputs' moments

    S = Σ_t x_t x_tᵀ (n × n)      C = Σ_t x_t y_tᵀ (n × m)      yy = Σ_t ‖y_t‖²

(y_t = W x_t, or the teacher's output where the student's inputs have drifted), the error is
    e(Ŵ) = yy − 2 tr(Ŵ C) + tr(Ŵ S Ŵᵀ).
With A fixed, Ŵ x = vec(Σ_k A_k X B_kᵀ) is linear in B, and vice versa, so each half-step is one closed-form solve
of an (r·n2)² or (r·n1)² system (X is x viewed as (n1, n2), row-major; kronbench.kron.linear). The Gram matrices
are contractions of S with AᵀA or BᵀB: O(r²·n²) per step, whatever the number of tokens.

Ridge: S + δI and C + δWᵀ add δ‖W − Ŵ‖_F² (δ = ridge · tr(S)/n), which keeps directions the calibration text never
visits near the weight, and at δ → ∞ gives NKP back. Starting from NKP and never increasing e + δ‖W − Ŵ‖² means
the fitted calibration error can never exceed NKP's (e_fit + δ w_fit ≤ e_nkp + δ w_nkp and w_nkp ≤ w_fit).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from kronbench.kron.nkp import kron_sum


@dataclass
class Moments:
    """Second moments of a layer's calibration inputs x (n) and targets y (m), float64, summed over tokens."""
    sxx: torch.Tensor    # (n, n)  Σ x xᵀ
    sxy: torch.Tensor    # (n, m)  Σ x yᵀ
    yy: float            # Σ ‖y‖²
    tokens: int

    @classmethod
    def of(cls, x: torch.Tensor, y: torch.Tensor) -> "Moments":
        """From one batch of inputs (…, n) and targets (…, m): products in their dtype, sums kept in float64."""
        x, y = x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1])
        return cls((x.T @ x).double(), (x.T @ y).double(), float((y.double() ** 2).sum()), x.shape[0])

    def __add__(self, other: "Moments") -> "Moments":
        return Moments(self.sxx + other.sxx, self.sxy + other.sxy, self.yy + other.yy, self.tokens + other.tokens)


def output_error(w_hat: torch.Tensor, m: Moments) -> float:
    """Relative output error ‖Y − Ŵ X‖ / ‖Y‖ from the moments; Ŵ (m, n) dense."""
    w = w_hat.double()
    e = m.yy - 2 * float((w * m.sxy.T).sum()) + float(((w @ m.sxx) * w).sum())
    return max(e, 0.0) ** 0.5 / max(m.yy, 1e-300) ** 0.5


def weight_error(w_hat: torch.Tensor, w: torch.Tensor) -> float:
    """Relative weight error ‖W − Ŵ‖_F / ‖W‖_F."""
    return float(torch.linalg.norm(w.double() - w_hat.double()) / torch.linalg.norm(w.double()))


def _solve(g: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    jitter = 1e-12 * float(g.diagonal().mean().abs()) + 1e-300  # keeps a rank-deficient Gram (r > 1) solvable
    return torch.linalg.solve(g + jitter * torch.eye(g.shape[0], dtype=g.dtype), rhs)


def _b_step(a, s4, c4):
    """B (r, m2, n2) minimising e for fixed A (r, m1, n1)."""
    r, _, n1 = a.shape
    n2, m2 = s4.shape[1], c4.shape[3]
    ata = torch.einsum("kij,liJ->kljJ", a, a)                                   # A_kᵀ A_l   (r, r, n1, n1)
    g = torch.einsum("kljJ,jqJQ->kqlQ", ata, s4).reshape(r * n2, r * n2)      # (r·n2, r·n2)
    rhs = torch.einsum("kij,jqip->kqp", a, c4).reshape(r * n2, m2)             # (r·n2, m2)
    return _solve(g, rhs).reshape(r, n2, m2).transpose(1, 2)


def _a_step(b, s4, c4, yy: float):
    """A (r, m1, n1) minimising e for fixed B (r, m2, n2), and e there: yy − 2⟨A, rhs⟩ + ⟨A, G A⟩ = yy − ⟨A, rhs⟩."""
    r = b.shape[0]
    n1, m1 = s4.shape[0], c4.shape[2]
    btb = torch.einsum("kpq,lpQ->klqQ", b, b)                                   # B_kᵀ B_l   (r, r, n2, n2)
    g = torch.einsum("klqQ,jqJQ->kjlJ", btb, s4).reshape(r * n1, r * n1)      # (r·n1, r·n1)
    rhs = torch.einsum("kpq,jqip->kji", b, c4).reshape(r * n1, m1)             # (r·n1, m1)
    a = _solve(g, rhs)                                                           # G a = rhs, so ⟨a, G a⟩ = ⟨a, rhs⟩
    err = max(yy - float((a * rhs).sum()), 0.0) ** 0.5 / max(yy, 1e-300) ** 0.5
    return a.reshape(r, n1, m1).transpose(1, 2), err


def _balance(a, b):
    """Rescale each pair so ‖A_k‖ = ‖B_k‖ (A_k ⊗ B_k unchanged): keeps the Gram systems well conditioned."""
    s = (a.flatten(1).norm(dim=1) / b.flatten(1).norm(dim=1).clamp_min(1e-300)).clamp_min(1e-300).sqrt()
    return a / s[:, None, None], b * s[:, None, None]


def fit_kronecker(weight: torch.Tensor, moments: Moments, a: torch.Tensor, b: torch.Tensor, ridge: float = 1e-2,
                  iters: int = 30, tol: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Refine A (r, m1, n1), B (r, m2, n2) (from NKP) to the outputs `moments` describe; W (m, n) is the layer's
    dense weight, the ridge's anchor. Returns A, B (the weight's dtype) and {"iters", "start", "fit"}: the
    calibration output error before and after. Deterministic: float64 solves, no randomness."""
    r, m1, n1 = a.shape
    _, m2, n2 = b.shape
    w = weight.detach().double()
    delta = ridge * float(moments.sxx.diagonal().mean())
    reg = Moments(moments.sxx + delta * torch.eye(n1 * n2, dtype=torch.float64), moments.sxy + delta * w.T,
                  moments.yy + delta * float((w * w).sum()), moments.tokens)
    s4 = reg.sxx.reshape(n1, n2, n1, n2)
    c4 = reg.sxy.reshape(n1, n2, m1, m2)
    a, b = a.detach().double(), b.detach().double()
    start = best = output_error(kron_sum(a, b), reg)
    best_ab, done = (a, b), 0
    for done in range(1, iters + 1):
        b = _b_step(a, s4, c4)
        a, err = _a_step(b, s4, c4, reg.yy)
        a, b = _balance(a, b)
        if err < best:
            improved = best - err
            best, best_ab = err, (a, b)
            if improved < tol * start:
                break
        else:  # exact solves never increase it; a rise is round-off at the optimum
            break
    a, b = best_ab
    info = {"iters": done, "objective_start": start, "objective_fit": best}
    return a.to(weight.dtype).contiguous(), b.to(weight.dtype).contiguous(), info
