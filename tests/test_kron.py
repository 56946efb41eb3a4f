"""Kronecker numerics: NKP optimality, every contraction kernel against torch.kron, Linear and Conv1D layouts."""

import pytest
import torch
from transformers.pytorch_utils import Conv1D

from kronbench.errors import KronbenchError
from kronbench.kron import (KERNELS, KroneckerConcat, KroneckerEmbedding, KroneckerLinear, kron_flops, kron_sum,
                            nearest_kronecker, rearrange)
from kronbench.kron import orders


def test_full_rank_reconstructs_exactly():
    w = torch.randn(12, 20, dtype=torch.float64)
    a, b = nearest_kronecker(w, (3, 4), rank=min(3 * 4, 4 * 5))
    assert a.shape == (12, 3, 4) and b.shape == (12, 4, 5)
    torch.testing.assert_close(kron_sum(a, b), w, atol=1e-12, rtol=0)


def test_single_product_is_recovered():
    a0, b0 = torch.randn(1, 6, 4, dtype=torch.float64), torch.randn(1, 2, 8, dtype=torch.float64)
    a, b = nearest_kronecker(kron_sum(a0, b0), (6, 4))
    torch.testing.assert_close(kron_sum(a, b), kron_sum(a0, b0))


@pytest.mark.parametrize("rank", [1, 2, 5])
def test_nkp_error_is_the_dropped_singular_values(rank):
    w = torch.randn(24, 18, dtype=torch.float64)
    a, b = nearest_kronecker(w, (4, 6), rank)
    s = torch.linalg.svdvals(rearrange(w, (4, 6)))
    err = torch.linalg.norm(w - kron_sum(a, b))
    torch.testing.assert_close(err, s[rank:].square().sum().sqrt())
    # √σ split: both factors carry the same Frobenius norm per product
    torch.testing.assert_close(a.flatten(1).norm(dim=1), b.flatten(1).norm(dim=1))
    for _ in range(5):  # and no random pair of factors does better
        ra, rb = torch.randn_like(a), torch.randn_like(b)
        scale = (kron_sum(ra, rb) * w).sum() / kron_sum(ra, rb).square().sum()  # best scalar multiple
        assert torch.linalg.norm(w - scale * kron_sum(ra, rb)) > err


def test_rearrangement_layout():
    w = torch.arange(4 * 6, dtype=torch.float64).view(4, 6)  # a_shape (2, 3): blocks of 2 × 2
    r = rearrange(w, (2, 3))
    assert r.shape == (6, 4)
    torch.testing.assert_close(r[1], w[0:2, 2:4].reshape(-1))  # row i1·n1 + j1 = block (0, 1)
    torch.testing.assert_close(r[3], w[2:4, 0:2].reshape(-1))  # block (1, 0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("rank", [1, 3])
@pytest.mark.parametrize("kernel", sorted(KERNELS))
def test_every_kernel_matches_dense_kron(kernel, rank, dtype):
    torch.manual_seed(0)
    layer = KroneckerLinear(20, 12, (3, 4), rank=rank, dtype=dtype, order=kernel)
    torch.nn.init.normal_(layer.bias)
    x = torch.randn(2, 7, 20, dtype=dtype, requires_grad=True)
    x_ref = x.detach().clone().requires_grad_(True)
    a_ref, b_ref = layer.A.detach().clone().requires_grad_(True), layer.B.detach().clone().requires_grad_(True)
    ref = x_ref @ kron_sum(a_ref, b_ref).T + layer.bias.detach()
    y = layer(x)
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-12, "rtol": 1e-12}
    torch.testing.assert_close(y, ref, **tol)
    grad = torch.randn_like(y)
    y.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, x_ref.grad, **tol)
    torch.testing.assert_close(layer.A.grad, a_ref.grad, **tol)
    torch.testing.assert_close(layer.B.grad, b_ref.grad, **tol)


def test_from_linear_and_conv1d_agree():
    torch.manual_seed(0)
    lin = torch.nn.Linear(16, 24)
    conv = Conv1D(24, 16)  # GPT-2 layout: weight stored (in, out)
    with torch.no_grad():
        conv.weight.copy_(lin.weight.T)
        conv.bias.copy_(lin.bias)
    x = torch.randn(5, 16)
    torch.testing.assert_close(conv(x), lin(x))
    k_lin = KroneckerLinear.from_linear(lin, (4, 4), rank=4 * 4)  # full rank: exact
    k_conv = KroneckerLinear.from_linear(conv, (4, 4), rank=16)
    torch.testing.assert_close(k_lin(x), lin(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(k_conv(x), conv(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(k_conv.to_dense(), lin.weight, atol=1e-5, rtol=1e-5)


def test_fused_qkv_split():
    conv = Conv1D(3 * 8, 8)
    fused = KroneckerConcat.from_linear(conv, (2, 2), rank=4, splits=3)  # full rank per part
    x = torch.randn(3, 8)
    torch.testing.assert_close(fused(x), conv(x), atol=1e-5, rtol=1e-5)
    assert fused.flops(10) == 3 * 10 * kron_flops(2, 2, 4, 4, rank=4)


def test_embedding_paper_form_and_nkp():
    emb = torch.nn.Embedding(50, 16)
    k = KroneckerEmbedding.from_embedding(emb, n=4)
    assert k.A.shape == (1, 50, 4) and k.B.shape == (1, 1, 4)  # A: v × d/n lookup, B: 1 × n
    ids = torch.randint(0, 50, (3, 5))
    torch.testing.assert_close(k(ids), k.to_dense()[ids])
    full = KroneckerEmbedding.from_embedding(emb, n=4, rank=4)  # rank = n: exact
    torch.testing.assert_close(full(ids), emb(ids), atol=1e-5, rtol=1e-5)


def test_flops_eq7():
    # KB21 attention, (n1, m1) = (48, 384): A (384, 48), B (2, 16). Eq. 7 picks A (X Bᵀ).
    assert kron_flops(384, 48, 2, 16) == (2 * 16 - 1) * 2 * 48 + (2 * 48 - 1) * 2 * 384
    layer = KroneckerLinear(768, 768, (384, 48))
    assert layer.flops(128) == 128 * 75936


def test_bad_shapes_and_ranks_name_the_choices():
    with pytest.raises(KronbenchError, match=r"does not divide.*choices"):
        nearest_kronecker(torch.randn(12, 20), (5, 4))
    with pytest.raises(KronbenchError, match=r"rank must be in 1..4"):
        nearest_kronecker(torch.randn(12, 20), (6, 10), rank=5)  # R is (60 × 4)
    with pytest.raises(KronbenchError, match="must divide"):
        KroneckerEmbedding(10, 16, n=3)


def test_order_choice_is_cached_and_forceable(tmp_path, monkeypatch):
    monkeypatch.setenv("KRONBENCH_CACHE", str(tmp_path))
    monkeypatch.setattr(orders, "_memory", {})
    monkeypatch.setattr(orders, "_loaded", False)
    choice = orders.choose(4, 4, 4, 4, 1, 100, torch.float32, torch.device("cpu"), KERNELS)
    assert choice in KERNELS
    saved = (tmp_path / "kron_orders.json").read_text()
    assert choice in saved and "N128" in saved  # 100 tokens share the 128 bucket
    monkeypatch.setattr(orders, "measure", lambda *a, **k: pytest.fail("re-timed a cached shape"))
    assert orders.choose(4, 4, 4, 4, 1, 120, torch.float32, torch.device("cpu"), KERNELS) == choice
    monkeypatch.setenv("KRONBENCH_KRON_ORDER", "einsum")
    assert orders.choose(4, 4, 4, 4, 1, 120, torch.float32, torch.device("cpu"), KERNELS) == "einsum"
    monkeypatch.setenv("KRONBENCH_KRON_ORDER", "nope")
    with pytest.raises(KronbenchError, match="not a kernel"):
        orders.choose(4, 4, 4, 4, 1, 120, torch.float32, torch.device("cpu"), KERNELS)


def test_kernel_timing_buckets_are_capped():
    from kronbench.kron.orders import token_bucket

    assert [token_bucket(n) for n in (1, 16, 17, 1000, 2048, 2049, 8192, 10**6)] == [16, 16, 32, 1024, 2048, 2048,
                                                                                     2048, 2048]
