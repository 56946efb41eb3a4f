"""Compression specs: which module families get which Kronecker shape, and the papers' presets.

A spec maps module families to settings:
    embedding: {n: 8}                        # word embedding X (v, d) ≈ A (v, d/n) ⊗ B (1, n)
    attention: {a_shape: [384, 384]}         # W_Q, W_K, W_V, W_O, each its own A ⊗ B
    ffn_in:    {a_shape: [8, 2]}             # A (m1, n1) in weight order (out, in), like nn.Linear.weight
    ffn_out:   {a_shape: [2, 8]}             # W2 takes W1's shape swapped (KroneckerBERT §3.3)
    layers:    all                           # default for every family: all | odd | even | [0, 2, 5]
    attention: {a_shape: {self_attn.q_proj: [24, 24], self_attn.k_proj: [8, 24], ...}}
                                             # one shape per module of the block, where the dims differ (GQA)
Per family: `a_shape` (or `n` for the embedding) or `cf` (choose a shape for that compression factor), `rank`
(number of summed Kronecker products), `layers`. A family that is absent stays dense. `rank: auto` with `cf`
(preset `cf=<x>,rank=auto`) lets compress pick the shape and rank, a sum of r smaller products within cf's budget,
with the lowest error on calibration text (kronbench.models.calibrate.choose_shapes).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from kronbench.errors import KronbenchError
from kronbench.kron.shapes import divisors

FAMILIES = ("embedding", "attention", "ffn_in", "ffn_out")

# KroneckerBERT Table 1, as printed: (n1, m1) pairs, input side first; W2 uses W1's pair swapped. "#sums" is read as
# applying to the linear layers only (the embedding stays one product): with it KB5 counts ≈45 M, not the paper's
# 20 M (docs/sources.md §1.3: that row is ambiguous); summing 4 embedding products as well would give 51 M.
TABLE_1 = {
    "kb8": {"attention": (384, 384), "ffn": (2, 8), "embedding_n": 8, "sums": 1},
    "kb21": {"attention": (48, 384), "ffn": (2, 16), "embedding_n": 16, "sums": 1},
    "kb5": {"attention": (384, 384), "ffn": (384, 384), "embedding_n": 12, "sums": 4},
}


@dataclass(frozen=True)
class FamilySpec:
    a_shape: tuple[int, int] | dict[str, tuple[int, int]] | None = None  # or per module path in the block
    n: int | None = None
    cf: float | None = None
    rank: int | str = 1     # or "auto" (with cf): compress chooses shape and rank
    layers: str | tuple[int, ...] = "all"


@dataclass(frozen=True)
class Spec:
    name: str
    families: dict[str, FamilySpec] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {"name": self.name}
        for fam, fs in self.families.items():
            out[fam] = {k: _plain(v) for k, v in asdict(fs).items() if v is not None}
        return out

    @classmethod
    def from_dict(cls, d: dict, where: str = "spec") -> "Spec":
        d = dict(d)
        name = str(d.pop("name", "custom"))
        default_layers = d.pop("layers", "all")
        unknown = set(d) - set(FAMILIES)
        if unknown:
            raise KronbenchError(f"{where}: unknown key(s) {sorted(unknown)}; valid keys: name, layers, "
                                 f"{', '.join(FAMILIES)}")
        families = {}
        for fam, v in d.items():
            if not isinstance(v, dict):
                raise KronbenchError(f"{where}: {fam} must be a mapping like {{a_shape: [m1, n1], rank: 1}}")
            bad = set(v) - {"a_shape", "n", "cf", "rank", "layers"}
            if bad:
                raise KronbenchError(f"{where}: {fam} has unknown key(s) {sorted(bad)}; valid: a_shape, n, cf, "
                                     f"rank, layers")
            layers = v.get("layers", default_layers)
            rank = v.get("rank", 1)
            if rank == "auto" and (v.get("cf") is None or fam == "embedding"):
                raise KronbenchError(f"{where}: {fam}.rank: auto chooses shape and rank for a cf budget; it needs "
                                     f"cf (not a_shape/n) and a linear family, not the embedding")
            a_shape = v.get("a_shape")
            if isinstance(a_shape, dict):
                if not a_shape or not all(isinstance(x, (list, tuple)) and len(x) == 2 for x in a_shape.values()):
                    raise KronbenchError(f"{where}: {fam}.a_shape as a mapping takes module path -> [m1, n1], got "
                                         f"{a_shape!r}")
                a_shape = {str(k): tuple(int(i) for i in x) for k, x in a_shape.items()}
            elif a_shape is not None:
                a_shape = tuple(a_shape)
            families[fam] = FamilySpec(
                a_shape=a_shape,
                n=v.get("n"), cf=v.get("cf"), rank=rank if rank == "auto" else int(rank),
                layers=layers if isinstance(layers, str) else tuple(int(i) for i in layers))
            if fam == "embedding" and families[fam].a_shape is not None:
                raise KronbenchError(f"{where}: embedding takes n (B is 1 × n) or cf, not a_shape")
            if fam != "embedding" and families[fam].n is not None:
                raise KronbenchError(f"{where}: {fam} takes a_shape or cf, not n (n is for the embedding)")
            if sum(x is not None for x in (v.get("a_shape"), v.get("n"), v.get("cf"))) != 1:
                raise KronbenchError(f"{where}: {fam} needs exactly one of a_shape/n or cf")
        return cls(name, families)


def _plain(v):
    """A spec value as YAML/JSON writes it: tuples as lists, at any depth."""
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    return list(v) if isinstance(v, tuple) else v


def _from_table_1(name: str) -> Spec:
    row = TABLE_1[name]
    (an1, am1), (fn1, fm1) = row["attention"], row["ffn"]
    r = row["sums"]
    return Spec(name, {
        "embedding": FamilySpec(n=row["embedding_n"]),
        "attention": FamilySpec(a_shape=(am1, an1), rank=r),  # (n1, m1) → a_shape (m1, n1)
        "ffn_in": FamilySpec(a_shape=(fm1, fn1), rank=r),
        "ffn_out": FamilySpec(a_shape=(fn1, fm1), rank=r),  # W2 = (A1 ⊗ B1)ᵀ-shaped: A swapped
    })


def _cf(x: float, layers="all", rank=1) -> dict[str, FamilySpec]:
    return {fam: FamilySpec(cf=x, layers=layers, rank=1 if fam == "embedding" else rank) for fam in FAMILIES}


PRESETS = {
    **{name: (lambda name=name: _from_table_1(name)) for name in TABLE_1},
    # KnGPT2 (secondary source, docs/sources.md §2.2): embedding and the odd layers at 2×, LM head tied to the embedding.
    # "Odd" = 0-based indices 1, 3, 5, …: the paper's wording does not say which; the count is the same.
    "kngpt2": lambda: Spec("kngpt2", {"embedding": FamilySpec(cf=2),
                                      **{f: FamilySpec(cf=2, layers="odd") for f in FAMILIES[1:]}}),
    # KnGPT2's recipe on a Llama-family decoder (issue 22): the same families at the same 2×, odd layers only.
    "knllama": lambda: Spec("knllama", {"embedding": FamilySpec(cf=2),
                                        **{f: FamilySpec(cf=2, layers="odd") for f in FAMILIES[1:]}}),
}


def get_spec(preset) -> Spec:
    """A preset name, `cf=<x>`, a dict, or a path to a .yaml/.json spec file."""
    if isinstance(preset, Spec):
        return preset
    if isinstance(preset, dict):
        return Spec.from_dict(preset)
    if preset in PRESETS:
        return PRESETS[preset]()
    if isinstance(preset, str) and preset.startswith("cf="):
        value, _, option = preset[3:].partition(",")
        try:
            x = float(value)
        except ValueError:
            x = 0.0
        if not x > 1 or option not in ("", "rank=auto"):
            raise KronbenchError(f"preset {preset!r}: use cf=<x> with x > 1 (e.g. cf=8), or cf=<x>,rank=auto")
        return Spec(preset, _cf(x, rank="auto" if option else 1))
    if isinstance(preset, str) and preset.endswith((".yaml", ".yml", ".json")):
        import yaml

        try:
            with open(preset) as f:
                return Spec.from_dict(yaml.safe_load(f) or {}, where=preset)
        except OSError as e:
            raise KronbenchError(f"cannot read spec file {preset}: {e.strerror}") from None
    raise KronbenchError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}, cf=<x>, or a spec .yaml/.json")


def choose_a_shape(m: int, n: int, cf: float) -> tuple[int, int]:
    """A (m1, n1) for a rank-1 A ⊗ B whose compression m·n / (m1·n1 + m2·n2) is closest to cf (log scale).

    Ties (within 1 %) go to the most square factors, which approximate typical weights best in our NKP tests.
    """
    best = None
    for m1 in divisors(m):
        for n1 in divisors(n):
            params = m1 * n1 + (m // m1) * (n // n1)
            miss = round(abs(math.log(m * n / params / cf)), 2)
            skew = abs(math.log(m1 / n1)) + abs(math.log((m // m1) / (n // n1)))
            key = (miss, skew, -m1 * n1)
            if best is None or key < best[0]:
                best = (key, (m1, n1))
    return best[1]


def choose_n(d: int, cf: float) -> int:
    """Embedding B is 1 × n: compression ≈ n, so the divisor of d closest to cf (log scale)."""
    return min((k for k in divisors(d) if k > 1), key=lambda k: (abs(math.log(k / cf)), k))
