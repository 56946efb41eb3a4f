"""A stage's model directory: weights + config + tokenizer + `kronbench_run.json` (what made it), written atomically.

Dense models use `save_pretrained`; Kronecker students and ROSITA-pruned models use `surgery.save_compressed`
(config.json + one safetensors file: save_pretrained's tied-weight bookkeeping does not know a pruned model's
factorized embedding and its tied output head). `load` tells the kinds apart by `kronbench_spec` (Kronecker) or
`kronbench_pruned` (pruned, see kronbench.models.pruning) in config.json, so every stage and the evaluate commands
take any kind of directory.

`kronbench_run.json` records the stage, the base model, method/preset/seed and the chain of stages behind the
checkpoint (`lineage`), whose train seconds add up to a result row's `train_seconds`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from torch import nn

from kronbench import atomic
from kronbench.errors import KronbenchError
from kronbench.models.families import FAMILIES

RUN_INFO = "kronbench_run.json"


def save(model: nn.Module, tokenizer, out_dir: str | os.PathLike, info: dict) -> Path:
    """Write model, tokenizer and run info to `out_dir` via a temp dir + rename (never half-written)."""
    from kronbench.models.surgery import save_compressed, spec_of

    with atomic.directory(out_dir) as tmp:
        if spec_of(model) is not None or pruned_shape(model) is not None:
            save_compressed(model, tmp, tokenizer)
        else:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        (tmp / RUN_INFO).write_text(json.dumps(info, indent=2, default=str) + "\n")
    return Path(out_dir)


def run_info(path: str | os.PathLike) -> dict:
    """The checkpoint's run info; {} for a model kronbench did not write (hub id, embedded MiniLM)."""
    f = Path(path) / RUN_INFO
    return json.loads(f.read_text()) if f.is_file() else {}


def is_compressed(path: str | os.PathLike) -> bool:
    return _config_has(path, "kronbench_spec")


def is_pruned(path: str | os.PathLike) -> bool:
    return _config_has(path, "kronbench_pruned")


def _config_has(path: str | os.PathLike, key: str) -> bool:
    cfg = Path(path) / "config.json"
    return cfg.is_file() and json.loads(cfg.read_text()).get(key) is not None


def pruned_shape(model: nn.Module) -> dict | None:
    """The ROSITA-pruned shape recorded in the model's config (`kronbench_pruned`), None for an unpruned model."""
    return getattr(model.config, "kronbench_pruned", None)


def load_pruned(path: str | os.PathLike) -> nn.Module:
    """A pruned checkpoint: the class named in config.json built from the config (eager attention), given the
    pruned shapes by `rosita.restructure`, then model.safetensors loaded strictly."""
    import transformers
    from safetensors.torch import load_model

    from kronbench.models.pruning import restructure

    path = Path(path)
    config = transformers.AutoConfig.from_pretrained(path)
    arch = (config.architectures or [None])[0]
    if not hasattr(transformers, str(arch)):
        raise KronbenchError(f"{path / 'config.json'}: a pruned checkpoint needs a transformers class in "
                             f"'architectures' (found {arch!r})")
    config._attn_implementation = "eager"
    model = getattr(transformers, arch)(config)
    restructure(model)
    load_model(model, str(path / "model.safetensors"), strict=True)
    return model.eval()


def load(name: str, head: str | None = None, num_labels: int | None = None):
    """(model, tokenizer) from a checkpoint directory, hub id or embedded name.

    `head=None` keeps the class the checkpoint was saved with; a head name (see sources.HEADS) loads the weights
    into that class (a new head is initialised randomly, as from_pretrained does).
    """
    import transformers

    from kronbench.models import sources

    if is_pruned(name):
        model = load_pruned(name)
    elif is_compressed(name):
        from kronbench.models.surgery import load_compressed

        model = load_compressed(name)
    else:
        if head is None:
            head = _head_of(name)
        return sources.load_model(name, head=head, num_labels=num_labels)
    if head is not None and type(model).__name__ != _class_for(model.config, head):
        model = swap_head(model, head, num_labels)
    tokenizer = transformers.AutoTokenizer.from_pretrained(name)
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.train(), tokenizer


def _head_of(name: str) -> str:
    """The head a checkpoint was saved with, from its config's `architectures`: a directory's config.json, or the
    Hub checkpoint's (bert-base-uncased is BertForMaskedLM, so its MLM head comes along for KD pre-training's lm
    and logit terms); "base" when there is none to read."""
    import transformers

    from kronbench.models.sources import HEADS, load_kwargs, resolve_source

    cfg = Path(name) / "config.json"
    if cfg.is_file():
        arch = (json.loads(cfg.read_text()).get("architectures") or [""])[0]
    else:
        try:
            src = resolve_source(name)
            arch = (transformers.AutoConfig.from_pretrained(src["path"], **load_kwargs(src)).architectures
                    or [""])[0]
        except (OSError, KronbenchError):
            return "base"  # the load itself reports a missing source, with the fix
    for head, suffix in (("sequence_classification", "ForSequenceClassification"),
                         ("question_answering", "ForQuestionAnswering"), ("causal_lm", "LMHeadModel"),
                         ("causal_lm", "ForCausalLM"), ("masked_lm", "ForMaskedLM")):
        if arch.endswith(suffix):
            return head
    assert "base" in HEADS
    return "base"


_CLASSES = {name: f.classes for name, f in FAMILIES.items()}  # head -> class name, per family


def _class_for(config, head: str) -> str:
    from kronbench.models.registry import family_of

    family = family_of(config)
    if head not in _CLASSES[family]:
        raise KronbenchError(f"head {head!r} is not available for {family} models; use one of "
                             f"{', '.join(_CLASSES[family])}")
    return _CLASSES[family][head]


def swap_head(model: nn.Module, head: str, num_labels: int | None = None) -> nn.Module:
    """The same backbone (dense, Kronecker or pruned) under another head class; the new head is randomly initialised.

    Used to turn a KD-pretrained student (BertModel / GPT2LMHeadModel) into a task model whose head the task stage
    then copies from the fine-tuned teacher (KroneckerBERT §3.4).
    """
    import copy

    import transformers

    from kronbench.models.surgery import kroneckerize, spec_of

    config = copy.deepcopy(model.config)
    if num_labels is not None:
        config.num_labels = num_labels
    new = getattr(transformers, _class_for(config, head))(config)
    spec = spec_of(model)
    if spec is not None:
        kroneckerize(new, spec, init="random")
    if getattr(config, "kronbench_pruned", None) is not None:
        from kronbench.models.pruning import restructure

        restructure(new)
    missing, _ = new.base_model.load_state_dict(model.base_model.state_dict(), strict=False)
    if missing and not all(k.startswith("pooler.") for k in missing):
        raise KronbenchError(f"backbone weights did not fit the {head} model: missing {missing[:5]}")
    return new
