"""Shape arithmetic of Kronecker factors, torch-free: config validation (kronbench.models.presets) imports it
without loading torch (kronbench.kron's package names load lazily)."""


def divisors(k: int) -> list[int]:
    """Every d with k % d == 0: the possible factor sizes m1 of a dimension m = m1 · m2."""
    return [d for d in range(1, k + 1) if k % d == 0]
