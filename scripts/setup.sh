#!/usr/bin/env bash
# Install what is missing, idempotently (a second run takes a second).
# torch/torchvision: kept if they import together (Kaggle/Colab); otherwise the pinned pair from
# requirements-torch.txt. Everything else: requirements.txt (pinned), then this package (editable).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
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
want=$(cat requirements.txt requirements-torch.txt pyproject.toml | sha1sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$PY" -c 'import roadbuddy_utils, torch, torchvision' 2>/dev/null; then
  exit 0
fi
pip() { "$PY" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
if ! "$PY" -c 'import torch, torchvision' 2>/dev/null; then
  echo "[setup] installing torch + torchvision (requirements-torch.txt)"
  pip install -r requirements-torch.txt
fi
echo "[setup] installing requirements.txt"
pip install -r requirements.txt
pip install --no-deps -e .
echo "$want" > "$stamp" 2>/dev/null || true
echo "[setup] done"
