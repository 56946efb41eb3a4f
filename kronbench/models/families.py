"""The model-family registry: where each architecture keeps the modules kronbench compresses, prunes and reads.

One record per transformers `model_type`. Paths are relative to the base model (BertModel, GPT2Model, LlamaModel)
and, for the per-block entries, to one block. Adding a family is one record here (plus its loss presets in
kronbench.distill.losses); surgery, ROSITA pruning, ILKD capture and checkpoint loading read the record.
"""

from __future__ import annotations

from dataclasses import dataclass

from kronbench.errors import KronbenchError


@dataclass(frozen=True)
class Family:
    name: str                  # = config.model_type
    layers: str                # the ModuleList of transformer blocks
    embedding: str             # token embedding (Kronecker-factored by presets with an embedding entry)
    attention: tuple           # per block: the attention projections compressed together (Q, K, V, O)
    ffn_in: tuple              # per block: d -> I
    ffn_out: tuple             # per block: I -> d
    self_attention: str        # per block: the self-attention module (heads, head size)
    attn_out: str              # per block: the H·dh -> d output projection
    fused_qkv: str | None      # per block: one module holding [Q | K | V] side by side (GPT-2's c_attn), or None
    query_key: tuple | None    # on self_attention: the (Q, K) projections when not fused
    conv1d: bool               # projections are transformers Conv1D (weight (in, out)) instead of nn.Linear
    causal: bool               # attention masks the future
    heads: tuple               # attribute names of (number of heads, head size) on self_attention; no head count
                               # attribute (None) where the model has none (Llama: H = Q width / head size)
    rotary: bool               # Q and K are rotated by the positions the model passes (RoPE) before QKᵀ
    classes: dict              # head -> transformers class name
    lm_preset: str             # KD pre-training loss preset (kronbench.distill.losses.PRESETS)
    task_preset: str           # task ILKD loss preset


FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("bert", layers="encoder.layer", embedding="embeddings.word_embeddings",
           attention=("attention.self.query", "attention.self.key", "attention.self.value",
                      "attention.output.dense"),
           ffn_in=("intermediate.dense",), ffn_out=("output.dense",), self_attention="attention.self",
           attn_out="attention.output.dense", fused_qkv=None, query_key=("query", "key"), conv1d=False,
           causal=False, heads=("num_attention_heads", "attention_head_size"), rotary=False,
           classes={"base": "BertModel", "sequence_classification": "BertForSequenceClassification",
                    "question_answering": "BertForQuestionAnswering", "masked_lm": "BertForMaskedLM"},
           lm_preset="kroneckerbert_pretrain", task_preset="kroneckerbert"),
    Family("gpt2", layers="h", embedding="wte", attention=("attn.c_attn", "attn.c_proj"),
           ffn_in=("mlp.c_fc",), ffn_out=("mlp.c_proj",), self_attention="attn", attn_out="attn.c_proj",
           fused_qkv="attn.c_attn", query_key=None, conv1d=True, causal=True, heads=("num_heads", "head_dim"),
           rotary=False,
           classes={"base": "GPT2Model", "sequence_classification": "GPT2ForSequenceClassification",
                    "causal_lm": "GPT2LMHeadModel", "question_answering": "GPT2ForQuestionAnswering"},
           lm_preset="kngpt2", task_preset="kngpt2_task"),
    # Llama (SmolLM2, and the Llama-shaped decoders): grouped-query attention (K/V narrower than Q, so a cf resolves
    # to one shape per projection), SwiGLU (gate and up both d -> I), RMSNorm, rotary positions.
    Family("llama", layers="layers", embedding="embed_tokens",
           attention=("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"),
           ffn_in=("mlp.gate_proj", "mlp.up_proj"), ffn_out=("mlp.down_proj",), self_attention="self_attn",
           attn_out="self_attn.o_proj", fused_qkv=None, query_key=("q_proj", "k_proj"), conv1d=False, causal=True,
           heads=(None, "head_dim"), rotary=True,
           classes={"base": "LlamaModel", "sequence_classification": "LlamaForSequenceClassification",
                    "causal_lm": "LlamaForCausalLM", "question_answering": "LlamaForQuestionAnswering"},
           lm_preset="knllama", task_preset="knllama_task"),
)}


def get_family(model_type: str) -> Family:
    if model_type not in FAMILIES:
        raise KronbenchError(f"model_type {model_type!r} is not supported; kronbench compresses "
                             f"{', '.join(repr(f) for f in FAMILIES)} architectures (add a record to "
                             f"kronbench/models/families.py to extend)")
    return FAMILIES[model_type]
