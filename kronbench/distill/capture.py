"""One forward pass of a BERT, GPT-2 or Llama, with everything intermediate-layer KD matches (KroneckerBERT §3.5.1).

Hidden states and attention probabilities come from Hugging Face's own `output_hidden_states` /
`output_attentions`. The pre-softmax attention scores O = QKᵀ/√d_k of KroneckerBERT Eq. 9 (TinyBERT's attention
target) are not returned by transformers, so forward hooks keep the query and key projections' outputs and we form
O ourselves; no modeling code is forked. A rotary family (Llama) rotates Q and K with the (cos, sin) the model passes
its attention module, through the modeling file's own `apply_rotary_pos_emb`, and grouped-query attention's K heads
are repeated to the query heads as the model's `repeat_kv` does, so O is per query head. The hooks sit on the
projection modules, so they work the same on dense models and on students after `compress` (where those modules are
`KroneckerLinear` / `KroneckerConcat`).

The teacher's forward is the caller's to wrap in `torch.no_grad()`; the student's keeps its autograd graph.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from accelerate.utils import extract_model_from_parallel
from torch import Tensor, nn

from kronbench.errors import KronbenchError
from kronbench.models.families import FAMILIES
from kronbench.models.registry import family_of

# Batch keys passed to the model; labels stay out, losses are computed in kronbench.distill.losses.
MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids")


@dataclass
class Features:
    """What ILKD needs from one forward pass. L = number of layers, H = heads, d = hidden size."""

    embeddings: Tensor  # (B, T, d) embedding-layer output = hidden_states[0]
    hidden: list[Tensor]  # L × (B, T, d) block outputs = hidden_states[1:]; GPT-2's last one is after ln_f
    qk: list[tuple[Tensor, Tensor, float]]  # L × (Q, K, scaling), Q and K (B, H, T, d_k): O = Q Kᵀ · scaling
    attentions: list[Tensor] | None  # L × (B, H, T, T) softmax probabilities as HF returns them (after dropout)
    logits: Tensor | None  # (B, T, V) LM heads, (B, C) classification heads, None for a bare BertModel
    token_mask: Tensor  # (B, T) bool, True for real tokens, False for padding
    allowed: Tensor  # (B, 1, T, T) bool, True where query i sees key j: key not padded (and j ≤ i if causal)
    causal: bool  # GPT-2 (or a BERT decoder): causal attention, next-token LM loss
    output: object = None  # the model's own output (QA heads: start_logits / end_logits)
    _scores: list[Tensor] | None = field(default=None, repr=False)

    @property
    def scores(self) -> list[Tensor]:
        """L × (B, H, T, T) pre-softmax O = QKᵀ · scaling (KroneckerBERT Eq. 9), 0 where `allowed` is False.

        Formed on first use: the score MSE of a bidirectional model never needs them (losses.attention_score_mse
        works on d_k × d_k Gram matrices), and at T = 128 they are the largest tensors of a step."""
        if self._scores is None:
            self._scores = [(q @ k.transpose(-1, -2) * c).masked_fill(~self.allowed, 0.0) for q, k, c in self.qk]
        return self._scores


def attention_allowed(token_mask: Tensor, causal: bool) -> Tensor:
    """(B, 1, T, T) bool: the positions the model's attention mask leaves visible (padded keys hidden; causal)."""
    b, t = token_mask.shape
    allowed = token_mask[:, None, None, :].expand(b, 1, t, t)  # (B, 1, T, T): every query sees the real keys
    if causal:
        allowed = allowed & torch.ones(t, t, dtype=torch.bool, device=token_mask.device).tril()
    return allowed


def capture(model: nn.Module, batch: Mapping[str, Tensor], attentions: bool = True) -> Features:
    """Run `model` on `batch` and collect `Features`.

    Works for BertModel and its task heads (BertForMaskedLM, BertForSequenceClassification, …) and for
    GPT2LMHeadModel / GPT2ForSequenceClassification. `attentions=True` needs `attn_implementation="eager"`
    (transformers 5's default sdpa returns no attention probabilities); the scores come from hooks and work with any
    attention implementation, so `attentions=False` lets the losses run on sdpa.

    `model` may be the training loop's distributed wrapper (DDP): config and hooks come from the model inside it,
    the forward runs through the wrapper so its gradient sync fires.
    """
    net = extract_model_from_parallel(model)
    family = family_of(net.config)
    if attentions and net.config._attn_implementation != "eager":
        raise KronbenchError(f"capture(attentions=True) needs eager attention, the model uses "
                             f"{net.config._attn_implementation!r}: build it with attn_implementation='eager' or "
                             f"call model.set_attn_implementation('eager')")
    inputs = {k: batch[k] for k in MODEL_INPUTS if k in batch}
    ids = inputs["input_ids"]
    token_mask = inputs.get("attention_mask", torch.ones_like(ids)).bool()  # (B, T)
    causal = FAMILIES[family].causal or bool(net.config.is_decoder)
    allowed = attention_allowed(token_mask, causal)

    attn_modules, kept, handles = _hook_projections(net, family)
    try:
        out = model(**inputs, output_hidden_states=True, output_attentions=attentions)
    finally:
        for h in handles:
            h.remove()
    qk = [_queries_keys(attn, family, k) for attn, k in zip(attn_modules, kept)]
    return Features(embeddings=out.hidden_states[0], hidden=list(out.hidden_states[1:]), qk=qk,
                    attentions=list(out.attentions) if attentions else None, logits=getattr(out, "logits", None),
                    token_mask=token_mask, allowed=allowed, causal=causal, output=out)


def _hook_projections(model: nn.Module, family: str):
    """Forward hooks keeping each layer's query/key projection outputs, (B, T, H·d_k) (GPT-2: fused [Q | K | V]),
    and for a rotary family the (cos, sin) position embeddings its attention module is called with."""
    f = FAMILIES[family]
    layers = model.base_model.get_submodule(f.layers)
    attn_modules, kept, handles = [], [], []
    for layer in layers:
        store: dict[str, Tensor] = {}
        attn = layer.get_submodule(f.self_attention)
        if f.fused_qkv is None:
            q, k = f.query_key
            projections = {"q": attn.get_submodule(q), "k": attn.get_submodule(k)}
        else:
            projections = {"qkv": layer.get_submodule(f.fused_qkv)}
        for name, module in projections.items():
            handles.append(module.register_forward_hook(_keeper(store, name)))
        if f.rotary:
            handles.append(attn.register_forward_pre_hook(_rotary_keeper(store), with_kwargs=True))
        attn_modules.append(attn)
        kept.append(store)
    return attn_modules, kept, handles


def _keeper(store: dict, name: str):
    def hook(module, args, output):
        store[name] = output

    return hook


def _rotary_keeper(store: dict):
    def hook(module, args, kwargs):
        store["rotary"] = kwargs["position_embeddings"]  # (cos, sin), each (B, T, d_k)

    return hook


def _queries_keys(attn: nn.Module, family: str, kept: dict[str, Tensor]) -> tuple[Tensor, Tensor, float]:
    """(Q, K, scaling) of one layer, Q and K (B, H, T, d_k), so that O = Q Kᵀ · scaling (KroneckerBERT Eq. 9).

    `attn.scaling` is the model's own factor, 1/√d_k (GPT-2 configs with scale_attn_by_inverse_layer_idx also
    divide by layer + 1), so softmax(O + mask) is exactly the model's attention.
    """
    d_k = getattr(attn, FAMILIES[family].heads[1])
    if "qkv" in kept:
        q, k, _ = kept["qkv"].split(attn.split_size, dim=-1)
    else:
        q, k = kept["q"], kept["k"]
    b, t, _ = q.shape
    q = q.view(b, t, -1, d_k).transpose(1, 2)  # (B, H, T, d_k)
    k = k.view(b, t, -1, d_k).transpose(1, 2)  # (B, H_kv, T, d_k); H_kv < H under grouped-query attention
    if "rotary" in kept:
        cos, sin = kept["rotary"]
        q, k = sys.modules[type(attn).__module__].apply_rotary_pos_emb(q, k, cos, sin)
    if k.shape[1] != q.shape[1]:  # GQA: KV head j serves query heads j·g .. (j+1)·g − 1 (transformers' repeat_kv)
        k = k.repeat_interleave(q.shape[1] // k.shape[1], dim=1)  # (B, H, T, d_k)
    return q, k, attn.scaling
