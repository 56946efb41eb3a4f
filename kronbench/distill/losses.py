"""Intermediate-layer KD losses (ILKD) and their weighted sum, on `Features` from `kronbench.distill.capture`.

Terms (config names), each a function below that cites its source:

| name       | function              | source                                   | mean over                      |
|------------|-----------------------|------------------------------------------|--------------------------------|
| `emb_mse`  | `embedding_mse`       | KroneckerBERT §3.5.1 L_Emb; KnGPT2       | real tokens × d                |
| `att_mse`  | `attention_score_mse` | KroneckerBERT Eq. 9 L_Att; TinyBERT      | H × visible (query, key) pairs |
| `att_kl`   | `attention_kl`        | KnGPT2 L_Att (secondary, docs/sources.md §2.2) | H × real query rows            |
| `hid_mse`  | `hidden_mse`          | KroneckerBERT L_FFN; KnGPT2; TinyBERT    | real tokens × d                |
| `logit_kd` | `logit_kd`            | Hinton 2015; KB L_Logit; DistilBERT      | examples, or real tokens       |
| `ce`       | `hard_label_loss`     | KroneckerBERT L_Student                  | examples                       |
| `lm`       | `lm_loss`             | KB stage-1 MLM; DistilBERT α_mlm/α_clm   | tokens with label ≠ −100       |
| `cos`      | `hidden_cosine`       | DistilBERT α_cos                         | real tokens, last layer        |

The per-layer terms (`att_*`, `hid_mse`) are summed over the mapped layers (KroneckerBERT's Σ_l), not averaged.
Padding never counts: a padded token, key or query row adds nothing and is not counted in any mean (`lm` follows
its labels instead: −100 is ignored).
Everything is computed in float32, whatever the model's dtype.

`normalize=True` (default off) divides every MSE term, per layer, by the teacher's mean square over the same
positions: a relative error, O(1) for an unrelated student whatever the feature scale. Without it the raw
MSEs differ by orders of magnitude between embeddings, scores and deep GPT-2 hidden states (which grow with depth),
and the largest swamps the rest (measured on the embedded default: NKP students stayed near chance). It is our
addition, not in either paper.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from kronbench.distill.capture import Features
from kronbench.errors import KronbenchError

TERMS = ("emb_mse", "att_mse", "att_kl", "hid_mse", "logit_kd", "ce", "lm", "cos")

# Weight presets, one per paper. KroneckerBERT Eq. 14 is an unweighted sum (stage 2; stage 1 swaps `ce` for MLM,
# NSP is not implemented). KnGPT2's α1..α4 are unknown (docs/sources.md §2.2): 1 is a placeholder. DistilBERT's README
# command uses α_ce 5, α_mlm 2, α_cos 1 with temperature 2.
PRESETS: dict[str, dict[str, float]] = {
    "kroneckerbert": {"emb_mse": 1.0, "att_mse": 1.0, "hid_mse": 1.0, "logit_kd": 1.0, "ce": 1.0},
    "kroneckerbert_pretrain": {"emb_mse": 1.0, "att_mse": 1.0, "hid_mse": 1.0, "logit_kd": 1.0, "lm": 1.0},
    "kngpt2": {"emb_mse": 1.0, "att_kl": 1.0, "hid_mse": 1.0, "lm": 1.0},
    # KnGPT2 task stage (fine-tuning with ILKD): the pre-training terms with the task's CE and logit KD for lm
    "kngpt2_task": {"emb_mse": 1.0, "att_kl": 1.0, "hid_mse": 1.0, "logit_kd": 1.0, "ce": 1.0},
    # KnGPT2's recipe on a Llama-family decoder (issue 22): KroneckerBERT's score MSE (Eq. 9) per query head under
    # grouped-query attention in place of the KL on probabilities, and logit KD, exact with the teacher's tokenizer
    "knllama": {"emb_mse": 1.0, "att_mse": 1.0, "hid_mse": 1.0, "logit_kd": 1.0, "lm": 1.0},
    "knllama_task": {"emb_mse": 1.0, "att_mse": 1.0, "hid_mse": 1.0, "logit_kd": 1.0, "ce": 1.0},
    "distilbert": {"logit_kd": 5.0, "lm": 2.0, "cos": 1.0},
}


class NonFiniteLossError(FloatingPointError):
    """A loss term is NaN or inf. `term` names it; the training loop adds the stage and step."""

    def __init__(self, term: str, value: float):
        super().__init__(f"loss term {term!r} is {value}")
        self.term = term


# --------------------------------------------------------------------------------------------- layer maps
def resolve_layer_map(spec: str | Sequence[int], n_student: int, n_teacher: int) -> list[tuple[int, int]]:
    """(student layer, teacher layer) pairs, 0-based block indices, used by every per-layer term.

    - "identity": l ← l. KroneckerBERT and KnGPT2 keep the teacher's depth (docs/sources.md §1.1).
    - "uniform": l ← l·k + k − 1 with k = n_teacher / n_student, the last teacher block of each group of k. This is
      TinyBERT's attention rule (i·k + k − 1). Its hidden rule, i·k over hidden_states with the embedding output at
      0, picks the same teacher block for student block l (hidden_states[l + 1] ← hidden_states[(l + 1)·k]); its
      pair 0 ← 0 is our separate `emb_mse` term.
    - a list: student block l ← spec[l], one teacher index per student block.
    """
    if spec == "identity":
        if n_student != n_teacher:
            raise KronbenchError(f"layer_map 'identity' needs equal depths, got student {n_student} and teacher "
                                 f"{n_teacher} layers; use 'uniform' or a list")
        return [(l, l) for l in range(n_student)]
    if spec == "uniform":
        if n_teacher % n_student:
            raise KronbenchError(f"layer_map 'uniform' needs the teacher depth ({n_teacher}) to be a multiple of the "
                                 f"student depth ({n_student}); give a list")
        k = n_teacher // n_student
        return [(l, l * k + k - 1) for l in range(n_student)]
    if isinstance(spec, str):
        raise KronbenchError(f"layer_map {spec!r}: use 'identity', 'uniform' or a list of teacher layer indices")
    spec = list(spec)
    if len(spec) != n_student or not all(isinstance(j, int) and 0 <= j < n_teacher for j in spec):
        raise KronbenchError(f"layer_map {spec}: give {n_student} teacher layer indices (one per student layer), "
                             f"each in 0..{n_teacher - 1}")
    return list(enumerate(spec))


# --------------------------------------------------------------------------------------------- helpers
def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of x over the entries where `mask` (broadcast to x's shape) is True."""
    mask = mask.expand_as(x)
    return torch.where(mask, x, 0.0).sum() / mask.sum()


def masked_mse(student: Tensor, teacher: Tensor, mask: Tensor, normalize: bool = False) -> Tensor:
    """Mean of (s − t)² over `mask`; with `normalize`, divided by the teacher's mean square over `mask`."""
    s, t = student.float(), teacher.float()
    mse = masked_mean((s - t).pow(2), mask)
    return mse / masked_mean(t.pow(2), mask).clamp_min(1e-12) if normalize else mse


def score_mask(feats: Features) -> Tensor:
    """(B, 1, T, T) bool: key visible to the query (padding, causal) and the query row itself a real token."""
    return feats.allowed & feats.token_mask[:, None, :, None]


def attention_log_probs(scores: Tensor, allowed: Tensor) -> Tensor:
    """log softmax(O + mask) over keys, (B, H, T, T). Hidden keys get the dtype's minimum, as transformers does."""
    scores = scores.float()
    return scores.masked_fill(~allowed, torch.finfo(scores.dtype).min).log_softmax(dim=-1)


# --------------------------------------------------------------------------------------------- terms
def embedding_mse(student: Features, teacher: Features, normalize: bool = False) -> Tensor:
    """L_Emb = MSE(E^S, E^T) on the embedding-layer output (KroneckerBERT §3.5.1; KnGPT2).

    Mean over real tokens × d.
    """
    return masked_mse(student.embeddings, teacher.embeddings, student.token_mask[..., None], normalize)


def hidden_mse(student: Features, teacher: Features, pairs: list[tuple[int, int]], normalize: bool = False) -> Tensor:
    """L_FFN = Σ_l MSE(H_l^S, H_m(l)^T) on block outputs (KroneckerBERT §3.5.1; KnGPT2 L_Hid; TinyBERT).

    Per layer: mean over real tokens × d. TinyBERT averages over padded tokens too; we leave them out.
    """
    mask = student.token_mask[..., None]  # (B, T, 1)
    return sum(masked_mse(student.hidden[i], teacher.hidden[j], mask, normalize) for i, j in pairs)


def attention_score_mse(student: Features, teacher: Features, pairs: list[tuple[int, int]],
                        normalize: bool = False) -> Tensor:
    """L_Att = Σ_l MSE(O_l^S, O_m(l)^T) on pre-softmax scores O = QKᵀ/√d_k (KroneckerBERT Eq. 9; TinyBERT).

    Per layer: mean over H × the visible (query, key) pairs of real query rows. Hidden keys (padding, and the future
    under a causal mask) and padded query rows contribute 0 and are not counted. TinyBERT zeroes the masked scores
    but still divides by B·H·T·T.
    Bidirectional models take the exact Gram form (`_score_sq_error`) and never form the (B, H, T, T) scores.
    """
    if student.causal:  # the causal mask is not a product of a query mask and a key mask: explicit scores
        mask = score_mask(student)  # (B, 1, T, T)
        return sum(masked_mse(student.scores[i], teacher.scores[j], mask, normalize) for i, j in pairs)
    real = student.token_mask[:, None, :, None].float()  # (B, 1, T, 1): real query rows = visible keys here
    n = student.token_mask.sum(dim=1).float()  # (B,) real tokens
    count = (n * n).sum() * student.qk[0][0].shape[1]  # H × visible pairs
    total = 0.0
    for i, j in pairs:
        err, ref = _score_sq_error(student.qk[i], teacher.qk[j], real)
        total = total + (err / ref.clamp_min(1e-12) if normalize else err / count)
    return total


def _score_sq_error(s_qk, t_qk, real: Tensor) -> tuple[Tensor, Tensor]:
    """(Σ (O^S − O^T)², Σ (O^T)²) over the visible pairs, from d_k × d_k Gram matrices.

    With padded rows of Q and K zeroed, ‖c_s Q_s K_sᵀ − c_t Q_t K_tᵀ‖²_F = c_s²⟨Q_sᵀQ_s, K_sᵀK_s⟩
    − 2 c_s c_t⟨Q_sᵀQ_t, K_sᵀK_t⟩ + c_t²⟨Q_tᵀQ_t, K_tᵀK_t⟩ per (example, head) (expand the square; tr(XY) =
    tr(YX)): T×d_k² products instead of T²×d_k ones and no (B, H, T, T) tensors. Exact up to rounding; the
    difference is clamped at 0, where rounding could push a near-perfect match below it.
    """
    (qs, ks, cs), (qt, kt, ct) = s_qk, t_qk
    qs, ks = qs.float() * real, ks.float() * real  # (B, H, T, d_s)
    qt, kt = qt.float() * real, kt.float() * real  # (B, H, T, d_t)
    gram = lambda a, b: a.transpose(-1, -2) @ b  # noqa: E731  (B, H, d_a, d_b)
    tt = ct * ct * (gram(qt, qt) * gram(kt, kt)).sum()
    st = cs * ct * (gram(qs, qt) * gram(ks, kt)).sum()
    ss = cs * cs * (gram(qs, qs) * gram(ks, ks)).sum()
    return (ss - 2 * st + tt).clamp_min(0.0), tt


def attention_kl(student: Features, teacher: Features, pairs: list[tuple[int, int]]) -> Tensor:
    """L_Att = Σ_l KL(A_m(l)^T ‖ A_l^S) on attention distributions (KnGPT2, from a secondary source, §2.2).

    Per (head, query row), KL over the visible keys; per layer, mean over H × real query rows. The source writes
    KL(Att^S, Att^T); we take the usual KD direction, teacher as the target. The distributions are recomputed from
    the scores rather than read from `Features.attentions`: transformers returns those after attention dropout, and
    log-softmax is exact where the log of a tiny probability is not.
    """
    allowed, rows = student.allowed, student.token_mask[:, None, :]  # (B, 1, T, T), (B, 1, T)
    total = 0.0
    for i, j in pairs:
        log_s = attention_log_probs(student.scores[i], allowed)  # (B, H, T, T)
        log_t = attention_log_probs(teacher.scores[j], allowed)  # (B, H, T, T)
        kl = torch.where(allowed, log_t.exp() * (log_t - log_s), 0.0).sum(dim=-1)  # (B, H, T)
        total = total + masked_mean(kl, rows)
    return total


def logit_kd(student_logits: Tensor, teacher_logits: Tensor, temperature: float = 1.0,
             token_mask: Tensor | None = None, form: str = "kl", t_squared: bool = True) -> Tensor:
    """Soft-target KD on the prediction layer (Hinton et al. 2015; KroneckerBERT L_Logit, form not given there).

    p^τ = softmax(z / τ). form="kl": KL(p_T^τ ‖ p_S^τ); form="soft_ce": −Σ p_T^τ log p_S^τ (TinyBERT, ROSITA);
    the two differ by the teacher's entropy, so their gradients agree. Summed over classes per prediction, then
    the mean over predictions: examples for (B, C) logits, real tokens (`token_mask`) for (B, T, V) LM logits
    (DistilBERT).
    `t_squared` multiplies by τ² so the gradient scale does not shrink as τ grows (Hinton; DistilBERT). TinyBERT's
    soft CE also divides by C and has no τ²; ROSITA uses τ = 1. Regression heads (one output, HF's
    num_labels == 1): MSE(z_S, z_T) as in TinyBERT, τ unused.
    """
    s, t = student_logits.float(), teacher_logits.float()
    if s.shape[-1] == 1:
        return F.mse_loss(s, t)
    log_s = (s / temperature).log_softmax(dim=-1)
    log_t = (t / temperature).log_softmax(dim=-1)
    if form == "kl":
        per_pred = F.kl_div(log_s, log_t, log_target=True, reduction="none").sum(dim=-1)  # (B,) or (B, T)
    elif form == "soft_ce":
        per_pred = -(log_t.exp() * log_s).sum(dim=-1)
    else:
        raise KronbenchError(f"logit KD form {form!r}: use 'kl' or 'soft_ce'")
    loss = per_pred.mean() if token_mask is None else masked_mean(per_pred, token_mask)
    return loss * temperature**2 if t_squared else loss


def hard_label_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """L_Student (KroneckerBERT Eq. 14): CE with the gold labels; MSE for a regression head (one output, STS-B).

    Mean over the labelled examples (label −100 marks unlabelled transfer-set rows). Sequence-level logits (B, C)
    only: token labels go to `lm_loss`.
    """
    if logits.dim() != 2:
        raise KronbenchError(f"'ce' is the sequence-level task loss on (B, C) logits, got {tuple(logits.shape)}; "
                             f"use 'lm' for token labels")
    if logits.shape[-1] == 1:
        return F.mse_loss(logits.float().squeeze(-1), labels.float())
    labelled = labels != -100  # unlabelled transfer-set rows (kronbench.distill.stages.transfer_dataset)
    if not labelled.any():
        return logits.float().sum() * 0.0  # a batch of transfer rows only: no CE, a graph for backward
    return F.cross_entropy(logits.float()[labelled], labels[labelled])


def lm_loss(logits: Tensor, labels: Tensor, causal: bool) -> Tensor:
    """MLM (BERT) or next-token CLM (GPT-2) cross-entropy, mean over the tokens whose label is not −100.

    Causal: position t predicts labels[t + 1], labels being the input ids as in HF's GPT2LMHeadModel.
    """
    if logits.dim() != 3:
        raise KronbenchError(f"'lm' needs token logits (B, T, V), got {tuple(logits.shape)}: a task head? use 'ce'")
    if causal:
        logits, labels = logits[:, :-1], labels[:, 1:]
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=-100)


def hidden_cosine(student: Features, teacher: Features) -> Tensor:
    """DistilBERT's α_cos term: 1 − cos(h^S, h^T) on the last layer's hidden states, mean over real tokens."""
    cos = F.cosine_similarity(student.hidden[-1].float(), teacher.hidden[-1].float(), dim=-1)  # (B, T)
    return masked_mean(1.0 - cos, student.token_mask)


# --------------------------------------------------------------------------------------------- combiner
def ilkd_loss(student: Features, teacher: Features | None, batch: Mapping[str, Tensor],
              weights: Mapping[str, float], layer_map: str | Sequence[int] = "identity",
              temperature: float = 1.0, *, normalize: bool = False,
              kd_form: str = "kl", t_squared: bool = True) -> tuple[Tensor, dict[str, Tensor]]:
    """Σ_name weights[name] · term(name) (KroneckerBERT Eq. 14 with weights; `PRESETS` holds the papers' choices).

    Terms with weight 0 are not computed. `teacher` may be None when only `ce` / `lm` are weighted. Returns the
    total (with its graph) and the unweighted terms, detached, for logging. Raises NonFiniteLossError naming the
    first NaN/inf term.
    """
    unknown = sorted(set(weights) - set(TERMS))
    if unknown:
        raise KronbenchError(f"unknown loss terms {unknown}; known: {', '.join(TERMS)}")
    active = {name: float(w) for name, w in weights.items() if w}
    if not active:
        raise KronbenchError(f"loss weights {dict(weights)} give every term weight 0")
    pairs = None
    if teacher is not None:
        if teacher.token_mask.shape != student.token_mask.shape:
            raise KronbenchError(f"student and teacher saw different batch shapes: {tuple(student.token_mask.shape)} "
                                 f"vs {tuple(teacher.token_mask.shape)}")
        pairs = resolve_layer_map(layer_map, len(student.hidden), len(teacher.hidden))
    elif set(active) - {"ce", "lm"}:
        raise KronbenchError(f"terms {sorted(set(active) - {'ce', 'lm'})} need teacher features")
    if student.logits is None and set(active) & {"logit_kd", "ce", "lm"}:
        raise KronbenchError("logit_kd, ce and lm need a model with a head (the bare BertModel has no logits)")
    terms = {}
    for name in active:
        match name:
            case "emb_mse":
                terms[name] = embedding_mse(student, teacher, normalize)
            case "att_mse":
                terms[name] = attention_score_mse(student, teacher, pairs, normalize)
            case "att_kl":
                terms[name] = attention_kl(student, teacher, pairs)
            case "hid_mse":
                terms[name] = hidden_mse(student, teacher, pairs, normalize)
            case "logit_kd":
                mask = student.token_mask if student.logits.dim() == 3 else None
                terms[name] = logit_kd(student.logits, teacher.logits, temperature, mask, kd_form, t_squared)
            case "ce":
                terms[name] = hard_label_loss(student.logits, batch["labels"])
            case "lm":
                terms[name] = lm_loss(student.logits, batch["labels"], student.causal)
            case "cos":
                terms[name] = hidden_cosine(student, teacher)
    total = sum(active[name] * value for name, value in terms.items())
    check_finite(total, terms)
    return total, {name: value.detach() for name, value in terms.items()}


def check_finite(total: Tensor, terms: Mapping[str, Tensor]) -> None:
    """Raise NonFiniteLossError naming the first NaN/inf term; one device sync when all is well."""
    if torch.isfinite(total):
        return
    for name, value in terms.items():
        if not torch.isfinite(value):
            raise NonFiniteLossError(name, value.item())
    raise NonFiniteLossError("total", total.item())  # finite terms whose weighted sum overflowed
