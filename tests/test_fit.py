"""Kronecker factors fitted to a layer's outputs (kronbench.kron.fit) and frequency-weighted NKP."""

import numpy as np
import pytest
import torch

from kronbench.errors import KronbenchError
from kronbench.kron.fit import Moments, fit_kronecker, output_error, weight_error
from kronbench.kron.nkp import kron_sum, nearest_kronecker


def _inputs(n: int, tokens: int = 2000, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(n, n, generator=g, dtype=torch.float64) * torch.logspace(0, -3, n, dtype=torch.float64)
    return torch.randn(tokens, n, generator=g, dtype=torch.float64) @ mix.T  # anisotropic, like real activations


def test_exactly_kronecker_weights_are_fitted_exactly_even_from_a_random_start():
    g = torch.Generator().manual_seed(1)
    f64 = {"generator": g, "dtype": torch.float64}
    a, b = torch.randn(2, 4, 6, **f64), torch.randn(2, 8, 5, **f64)
    w = kron_sum(a, b)  # (32, 30)
    x = _inputs(30)
    m = Moments.of(x, x @ w.T)
    a0, b0 = nearest_kronecker(w, (4, 6), 2)
    assert output_error(kron_sum(a0, b0), m) < 1e-9  # NKP is exact here
    start = torch.randn(2, 4, 6, **f64), torch.randn(2, 8, 5, **f64)
    a1, b1, info = fit_kronecker(w, m, *start, ridge=0.0, iters=300, tol=0.0)
    assert info["objective_start"] > 0.5
    assert output_error(kron_sum(a1, b1), m) < 1e-4
    assert weight_error(kron_sum(a1, b1), w) < 1e-3


@pytest.mark.parametrize("rank", [1, 3])
def test_fit_never_exceeds_nkp_on_the_calibration_set_and_beats_it_on_skewed_inputs(rank):
    g = torch.Generator().manual_seed(2)
    w = torch.randn(24, 36, generator=g, dtype=torch.float64)
    x = _inputs(36)
    m = Moments.of(x, x @ w.T)
    a0, b0 = nearest_kronecker(w, (4, 6), rank)
    nkp = output_error(kron_sum(a0, b0), m)
    for ridge in (0.0, 1e-2, 1.0, 100.0):
        a, b, _ = fit_kronecker(w, m, a0, b0, ridge=ridge)
        assert output_error(kron_sum(a, b), m) <= nkp + 1e-12
    a, b, _ = fit_kronecker(w, m, a0, b0, ridge=1e-3)
    assert output_error(kron_sum(a, b), m) < 0.9 * nkp


def test_output_error_from_moments_matches_the_direct_computation():
    g = torch.Generator().manual_seed(3)
    w, w_hat = torch.randn(6, 8, generator=g, dtype=torch.float64), torch.randn(6, 8, generator=g, dtype=torch.float64)
    x = _inputs(8, 50)
    y = x @ w.T
    direct = float(torch.linalg.norm(y - x @ w_hat.T) / torch.linalg.norm(y))
    assert output_error(w_hat, Moments.of(x[:20], y[:20]) + Moments.of(x[20:], y[20:])) == pytest.approx(direct)


def test_fit_is_deterministic():
    w = torch.randn(12, 12, generator=torch.Generator().manual_seed(4))
    x = _inputs(12).float()
    m = Moments.of(x, x @ w.T)
    a0, b0 = nearest_kronecker(w, (3, 4), 2)
    one, two = fit_kronecker(w, m, a0, b0), fit_kronecker(w, m, a0, b0)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])
    assert one[0].dtype == torch.float32


def test_frequency_weighted_nkp_is_the_weighted_optimum():
    g = torch.Generator().manual_seed(5)
    emb = torch.randn(50, 16, generator=g, dtype=torch.float64)  # 50 words, d = 16, B is 1 × 4
    weights = torch.rand(50, generator=g, dtype=torch.float64) ** 4 + 1e-3  # a few frequent words

    def werr(a, b):
        return float((weights * ((emb - kron_sum(a, b)) ** 2).sum(1)).sum())

    plain = nearest_kronecker(emb, (50, 4), 2)
    fitted = nearest_kronecker(emb, (50, 4), 2, row_weights=weights)
    assert werr(*fitted) < werr(*plain)
    # the weighted SVD solution is optimal: no perturbation of it lowers the weighted error
    for s in range(5):
        gen = torch.Generator().manual_seed(10 + s)
        a = fitted[0] + 1e-3 * torch.randn(fitted[0].shape, generator=gen, dtype=torch.float64)
        b = fitted[1] + 1e-3 * torch.randn(fitted[1].shape, generator=gen, dtype=torch.float64)
        assert werr(a, b) >= werr(*fitted)
    # equal weights give NKP back
    same = nearest_kronecker(emb, (50, 4), 2, row_weights=torch.full((50,), 0.3, dtype=torch.float64))
    assert torch.allclose(kron_sum(*same), kron_sum(*plain), atol=1e-10)


def test_row_weights_must_match_the_rows_and_be_positive():
    emb = torch.randn(10, 8)
    with pytest.raises(KronbenchError, match="10 positive weights"):
        nearest_kronecker(emb, (10, 2), row_weights=torch.ones(9))
    with pytest.raises(KronbenchError, match="positive"):
        nearest_kronecker(emb, (10, 2), row_weights=torch.zeros(10))


def test_fit_on_shapes_with_size_one_factors():
    """KnGPT2's cf=2 gives B (2, 1): the solves leave odd strides on size-1 dims (torch.kron's view failed)."""
    w = torch.randn(8, 6, generator=torch.Generator().manual_seed(6))
    x = _inputs(6).float()
    m = Moments.of(x, x @ w.T)
    for a_shape in ((4, 6), (8, 3)):
        a0, b0 = nearest_kronecker(w, a_shape, 1)
        a, b, _ = fit_kronecker(w, m, a0, b0)
        assert output_error(kron_sum(a, b), m) <= output_error(kron_sum(a0, b0), m) + 1e-9
        ref = sum(np.kron(a[k].numpy(), b[k].numpy()) for k in range(a.shape[0]))
        assert torch.allclose(kron_sum(a, b), torch.from_numpy(ref))
