"""`kronbench smoke-assets --out DIR`: stand-ins for the paper-scale downloads, small and offline.

- `DIR/hub/`: a Hugging Face hub cache (`HF_HUB_CACHE=DIR/hub`, `HF_HUB_OFFLINE=1`) holding bert-base-uncased,
  gpt2 and distilgpt2 at their pinned commits: real configs and tokenizers, random fp32 weights (`smoke.hub`).
- `DIR/data/`: every task of config/paper.yaml in its official layout, a few dozen rows per split of real text
  with synthetic labels (`data.source: local`, `data.data_dir: DIR/data`); see `smoke.glue`, `.squad`, `.ood`, `.lm`.

Why: the paper-scale pipeline (readers, tokenizers, heads, the DAG) can then run end to end on a machine without
a network, and the files are the same shape as the real ones, which can replace them one by one.

Idempotent: each unit (a model snapshot, a GLUE task directory, a json file, ...) is written whole and atomically
(`kronbench.atomic`) and skipped when it exists, so a rerun rewrites nothing, a killed run resumes, and a real
download put in place of a unit is never touched.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path

from kronbench import atomic
from kronbench.errors import KronbenchError

PARTS = ("hub", "data")
MIN_ROWS = 6  # STS-B cycles six grades, MNLI three classes: fewer rows could not be balanced


def data_units(rows: int, eval_rows: int) -> dict:
    """path under DIR/data -> a function returning its text (a file) or {relative path: text} (a directory)."""
    from kronbench.smoke import glue, lm, ood, squad

    units = {name: (lambda f=f: f(rows, eval_rows)) for name, f in glue.UNITS.items()}
    units.update(squad.units(rows, eval_rows))
    units["final"] = lambda: ood.paws(rows, eval_rows)
    units["aclImdb"] = lambda: ood.imdb(rows, eval_rows)
    units["heuristics_evaluation_set.txt"] = lambda: ood.hans(eval_rows)
    units["dev"] = lambda: ood.advglue(eval_rows)  # AdvGLUE's dev.zip unpacks to dev/dev.json
    wikitext = functools.cache(lambda: lm.wikitext(rows, eval_rows))  # one pass for both WikiText dirs
    units["wikitext-103-raw"] = lambda: wikitext()["wikitext-103-raw"]
    units["wikitext-2-raw"] = lambda: wikitext()["wikitext-2-raw"]
    units["lambada_test.jsonl"] = lambda: lm.lambada(eval_rows)
    return units


def smoke_assets(out: str | os.PathLike, rows: int = 40, eval_rows: int = 24, gpt2_bpe: str | None = None,
                 parts: tuple[str, ...] = PARTS, log=print) -> dict:
    """Write what is missing under `out`; {"hub": {repo: status}, "data": {unit: status}, "seconds": float},
    status "written" or "kept"."""
    from kronbench.smoke import hub

    start = time.perf_counter()
    if min(rows, eval_rows) < MIN_ROWS:
        raise KronbenchError(f"--rows {rows} / --eval-rows {eval_rows}: at least {MIN_ROWS} each (STS-B cycles six "
                             f"grades and every split is balanced over its classes)")
    bad = sorted(set(parts) - set(PARTS))
    if bad or not parts:
        raise KronbenchError(f"--only {','.join(bad or parts)}: choose among {', '.join(PARTS)}")
    out = Path(out)
    result: dict = {}
    if "hub" in parts:  # checked first: a missing BPE download should not cost a data build before failing
        bpe = hub.check_gpt2_bpe(gpt2_bpe or hub.GPT2_BPE_DEFAULT)
        result["hub"] = hub.write_hub(out / "hub", bpe, log=log)
    if "data" in parts:
        result["data"] = write_data(out / "data", rows, eval_rows, log=log)
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def write_data(root: Path, rows: int, eval_rows: int, log=print) -> dict[str, str]:
    status = {}
    for rel, build in data_units(rows, eval_rows).items():
        target = root / rel
        if target.exists():
            status[rel] = "kept"
            continue
        content = build()
        if isinstance(content, str):
            atomic.write_text(target, content)
        else:
            with atomic.directory(target) as tmp:
                for name, text in content.items():
                    path = tmp / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text, encoding="utf-8")
                atomic.open_permissions(tmp)
        status[rel] = "written"
    log(f"smoke-assets: {root}: {sum(v == 'written' for v in status.values())} written, "
        f"{sum(v == 'kept' for v in status.values())} kept")
    return status
