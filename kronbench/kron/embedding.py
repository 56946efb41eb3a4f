"""KroneckerEmbedding: the word embedding X (v × d) ≈ Σ_k A_k ⊗ B_k in KroneckerBERT's form (§3.3).

A (v × d/n) is a lookup table and B (1 × n) a row vector, so word i's embedding is A_i ⊗ B: O(d) per word and
no dense (v × d) table. With rank r > 1 the sum runs over r such pairs.
"""

from __future__ import annotations

import torch
from torch import nn

from kronbench.errors import KronbenchError
from kronbench.kron.flops import kron_flops
from kronbench.kron.linear import kron_matmul
from kronbench.kron.nkp import divisors, kron_sum, nearest_kronecker


class KroneckerEmbedding(nn.Module):
    def __init__(self, num_embeddings: int, embedding_dim: int, n: int, rank: int = 1, padding_idx=None,
                 device=None, dtype=None):
        super().__init__()
        if n < 1 or embedding_dim % n:
            raise KronbenchError(f"KroneckerEmbedding: n={n} must divide the embedding dim {embedding_dim} "
                                 f"(choices {divisors(embedding_dim)})")
        self.num_embeddings, self.embedding_dim, self.n, self.rank = num_embeddings, embedding_dim, n, rank
        self.padding_idx = padding_idx
        kw = {"device": device, "dtype": dtype}
        self.A = nn.Parameter(torch.randn(rank, num_embeddings, embedding_dim // n, **kw) / rank**0.25)
        self.B = nn.Parameter(torch.randn(rank, 1, n, **kw) / rank**0.25)

    @classmethod
    def from_embedding(cls, module: nn.Embedding, n: int, rank: int = 1) -> "KroneckerEmbedding":
        v, d = module.weight.shape
        emb = cls(v, d, n, rank, module.padding_idx, device=module.weight.device, dtype=module.weight.dtype)
        a, b = nearest_kronecker(module.weight, (v, d // n), rank)  # X (v, d) = A (v, d/n) ⊗ B (1, n)
        with torch.no_grad():
            emb.A.copy_(a)
            emb.B.copy_(b)
        return emb

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        rows = self.A[:, input_ids]  # (r, *ids, d/n)
        out = rows.unsqueeze(-1) * self.B.view(self.rank, *([1] * input_ids.dim()), 1, self.n)  # (r, *ids, d/n, n)
        return out.sum(0).flatten(-2)  # (*ids, d)

    def as_linear_weight_matmul(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden @ Xᵀ without forming X: the tied output projection (GPT-2 lm_head, BERT MLM decoder)."""
        return kron_matmul(hidden, self.A, self.B)

    def to_dense(self) -> torch.Tensor:
        return kron_sum(self.A, self.B)

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, n={self.n}, rank={self.rank}"


class TiedHead(nn.Module):
    """Output projection tied to a structured input embedding E (GPT-2 lm_head, BERT MLM decoder): logits =
    h @ Eᵀ (+ bias), E never formed; a subclass says how (`logits`). The embedding keeps its own parameters."""

    def __init__(self, embedding: nn.Module, bias: torch.Tensor | None = None):
        super().__init__()
        self.embedding = [embedding]  # a list hides it from nn.Module, so its parameters are counted once
        self.in_features, self.out_features = embedding.embedding_dim, embedding.num_embeddings
        self.bias = nn.Parameter(bias.detach().clone()) if bias is not None else None

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = self.logits(hidden)
        return logits if self.bias is None else logits + self.bias


class TiedKroneckerHead(TiedHead):
    """Tied to a KroneckerEmbedding: logits = h @ Xᵀ (+ bias), sharing A and B with the embedding."""

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.embedding[0].as_linear_weight_matmul(hidden)

    def flops(self, tokens: int = 1) -> int:
        e = self.embedding[0]
        return tokens * kron_flops(e.num_embeddings, e.embedding_dim // e.n, 1, e.n, e.rank)
