"""FLOP counting as in KroneckerBERT Eq. 7: multiplications plus additions of the matrix products, biases excluded.

Dense y = W x with W (m, n): (2n − 1)·m per token. At 128 tokens this gives BERT-base's 21.7 GFLOPs of Table 1
(linear layers of the encoder only), and the KB21 row's 1.40 GFLOPs with the kron counting below.
"""


def dense_flops(m: int, n: int) -> int:
    return (2 * n - 1) * m


def kron_flops(m1: int, n1: int, m2: int, n2: int, rank: int = 1) -> int:
    """Cheaper of the two association orders of A X Bᵀ, per token (Eq. 7 for rank 1).

    A (X Bᵀ): (2n2 − 1)·m2·n1 + (2n1 − 1)·m2·m1;  (A X) Bᵀ: (2n1 − 1)·n2·m1 + (2n2 − 1)·m2·m1.
    A sum of r products fuses the sum into the second contraction: its length n1 (or n2) becomes r·n1 (r·n2).
    """
    a_first = (2 * n1 - 1) * n2 * rank * m1 + (2 * rank * n2 - 1) * m2 * m1
    b_first = (2 * n2 - 1) * rank * m2 * n1 + (2 * rank * n1 - 1) * m2 * m1
    return min(a_first, b_first)
