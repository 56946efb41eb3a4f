"""The KD pre-training corpus tokenised once (`kronbench tokenize-corpus`), read by every KD pre-training job.

`distill-pretrain` and `baseline-distil` tokenise the corpus's train split themselves unless given
`--tokens FILE`; on WikiText-103 (~120 M tokens) that is the same long tokenisation in every job and seed.
`tokenize_corpus` writes what they build from it, for one tokenizer, into one `.npz`:

    format      what the file holds                                         the runs' data.format
    blocks      `blocks`: (n, block_size) token ids, as lm_features cuts    blocks (the default)
    sentences   `ids`, `lengths`, `counts`: each text's tokenised           sentence_pairs (the pairs are drawn
                sentences, flat (features.sentence_docs)                    with each run's seed, from these)

Next to it `<stem>.json`, the manifest: the corpus (task, sha256 of its train.parquet), the tokenizer (name,
revision, fingerprint), format, block size, wrap, counts and the sha256 of the `.npz`. Each file is written
atomically, the manifest last. `load_blocks` / `load_sentences` check all of it against the run that reads it, so
a stale or foreign file fails with the command that rewrites it instead of training on other tokens.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

import kronbench
from kronbench import atomic
from kronbench.data.features import corpus_id_pieces, read_split, sentence_docs, task_of
from kronbench.errors import KronbenchError
from kronbench.models.families import get_family

FORMATS = ("blocks", "sentences")
JOIN = "\n\n"  # between texts, as lm_features joins them


# ------------------------------------------------------------------------------------------------- writing
def tokenize_corpus(data_dir, tokenizer: str, out, block_size: int = 128, fmt: str = "blocks") -> dict:
    """Tokenise the train split of the prepared LM corpus `data_dir` with `tokenizer` (a model name or dir: the
    tokenizer of that model) into `out` (.npz) and its manifest (`out` with .json); returns the manifest."""
    if fmt not in FORMATS:
        raise KronbenchError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.suffix != ".npz":
        raise KronbenchError(f"--out {out}: name the file <name>.npz (its manifest is written beside it as .json)")
    task = task_of(data_dir)
    if task.kind != "lm":
        raise KronbenchError(f"tokenize-corpus needs a prepared LM corpus; {data_dir} holds {task.name} ({task.kind})")
    tok, family, source = load_tokenizer(tokenizer)
    texts = [r["text"] for r in read_split(data_dir, "train")]
    wrap = not get_family(family).causal  # BERT's blocks are [CLS] ... [SEP]; a decoder's are plain text
    arrays = _blocks(tok, texts, block_size, wrap) if fmt == "blocks" else _sentences(tok, texts)
    with atomic.file(out) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)
    manifest = {"corpus": task.name, "corpus_sha256": _sha256(Path(data_dir) / "train.parquet"),
                "tokenizer": {"name": tokenizer, "kind": source["kind"], "revision": source.get("revision"),
                              "fingerprint": fingerprint(tok)},
                "format": fmt, "block_size": block_size if fmt == "blocks" else None,
                "wrap": wrap if fmt == "blocks" else None, "join": JOIN if fmt == "blocks" else None,
                "count": int(len(arrays["blocks"] if fmt == "blocks" else arrays["lengths"])),
                "tokens": int(arrays["blocks"].size if fmt == "blocks" else arrays["ids"].size),
                "file": out.name, "sha256": _sha256(out), "created_by": f"kronbench {kronbench.__version__}"}
    atomic.write_text(manifest_path(out), json.dumps(manifest, indent=2) + "\n")
    return manifest


def _blocks(tok, texts: list[str], block_size: int, wrap: bool) -> dict[str, np.ndarray]:
    """lm_features' blocks as one array; cut with numpy, so the corpus's ids are not held twice as lists."""
    ids = np.concatenate([np.asarray(p, np.int32) for p in corpus_id_pieces(tok, texts, JOIN)])  # ≥ 1 piece
    inner = block_size - 2 if wrap else block_size
    if len(ids) < inner:
        raise KronbenchError(f"LM corpus has {len(ids)} tokens, fewer than one block of {inner}")  # as lm_features
    blocks = ids[: len(ids) // inner * inner].reshape(-1, inner)
    if wrap:
        ends = np.full((len(blocks), 1), tok.sep_token_id)
        blocks = np.hstack([np.full((len(blocks), 1), tok.cls_token_id), blocks, ends])
    return {"blocks": blocks.astype(_dtype(tok))}


def _sentences(tok, texts: list[str]) -> dict[str, np.ndarray]:
    docs = sentence_docs(tok, texts)
    sentences = [s for d in docs for s in d]
    flat = [t for s in sentences for t in s]
    return {"ids": np.asarray(flat, dtype=_dtype(tok)), "lengths": np.asarray([len(s) for s in sentences], np.int64),
            "counts": np.asarray([len(d) for d in docs], np.int64)}


def _dtype(tok) -> type:
    return np.uint16 if len(tok) <= 2**16 else np.int32  # BERT 30 k, GPT-2 50 k: half the bytes of int32


# ------------------------------------------------------------------------------------------------- reading
def load_blocks(path, data_dir, tokenizer, block_size: int, wrap: bool) -> list[dict]:
    """lm_features(tokenizer, train texts of data_dir, block_size, wrap=wrap), read from a tokenize-corpus file."""
    arrays = _load(path, data_dir, tokenizer, {"format": "blocks", "block_size": block_size, "wrap": wrap})
    return [{"input_ids": b, "attention_mask": [1] * len(b), "labels": b} for b in arrays["blocks"].tolist()]


def load_sentences(path, data_dir, tokenizer) -> list[list[list[int]]]:
    """sentence_docs(tokenizer, train texts of data_dir), read from a tokenize-corpus file (format sentences)."""
    arrays = _load(path, data_dir, tokenizer, {"format": "sentences"})
    ids, ends, docs, start = arrays["ids"].tolist(), np.cumsum(arrays["lengths"]).tolist(), [], 0
    sentences = [ids[e - n:e] for e, n in zip(ends, arrays["lengths"].tolist())]
    for n in arrays["counts"].tolist():
        docs.append(sentences[start:start + n])
        start += n
    return docs


def _load(path, data_dir, tokenizer, want: dict) -> dict[str, np.ndarray]:
    path = Path(path)
    manifest = _manifest(path)
    fix = (f"rewrite it with `kronbench tokenize-corpus --data {data_dir} --tokenizer <the run's model> "
           + (f"--block-size {want['block_size']}`" if want["format"] == "blocks" else "--format sentences`")
           + " (the workflow's rule tokenize_corpus), or drop --tokens")
    have = {"corpus": manifest.get("corpus"), "corpus_sha256": manifest.get("corpus_sha256"),
            "fingerprint": manifest.get("tokenizer", {}).get("fingerprint"), **{k: manifest.get(k) for k in want}}
    need = {"corpus": task_of(data_dir).name, "corpus_sha256": _sha256(Path(data_dir) / "train.parquet"),
            "fingerprint": fingerprint(tokenizer), **want}
    differ = "; ".join(f"{k} {have[k]!r}, this run needs {need[k]!r}" for k in need if have[k] != need[k])
    if differ:
        raise KronbenchError(f"--tokens {path}: made for another run ({differ}); {fix}")
    if _sha256(path) != manifest.get("sha256"):
        raise KronbenchError(f"--tokens {path}: its sha256 is not the one in {manifest_path(path)} (a damaged or "
                             f"half-copied file); {fix}")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def _manifest(path: Path) -> dict:
    meta = manifest_path(path)
    if not path.is_file() or not meta.is_file():
        raise KronbenchError(f"--tokens {path}: {'no such file' if not path.is_file() else f'{meta} not found'}; "
                             f"write both with `kronbench tokenize-corpus ... --out {path}`")
    return json.loads(meta.read_text(encoding="utf-8"))


def manifest_path(path) -> Path:
    return Path(path).with_suffix(".json")


# ----------------------------------------------------------------------------------------------- tokenizers
def load_tokenizer(name: str):
    """(tokenizer, family, source) of a model name, dir or `hub-id@revision`, without loading its weights; the pad
    token is set as checkpoints.load sets it, so the fingerprint equals that of the tokenizer a run loads."""
    import transformers

    from kronbench.models.registry import family_of
    from kronbench.models.sources import load_kwargs, resolve_source

    source = resolve_source(name)
    where = load_kwargs(source)
    try:
        tok = transformers.AutoTokenizer.from_pretrained(source["path"], **where)
        config = transformers.AutoConfig.from_pretrained(source["path"], **where)
    except OSError as e:
        raise KronbenchError(f"could not load the tokenizer of {name!r} from {source['path']}: {e}") from None
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    return tok, family_of(config), source


def fingerprint(tok) -> str:
    """sha256 of what makes a tokenizer tokenise: its serialised pipeline (vocabulary, merges, normaliser, added
    tokens), without the truncation and padding state a call leaves behind."""
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:  # a slow tokenizer: its vocabulary and special tokens
        spec = {"vocab": sorted(tok.get_vocab().items()), "special": tok.special_tokens_map}
    else:
        spec = json.loads(backend.to_str())
        spec.pop("truncation", None)
        spec.pop("padding", None)
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def _sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
