#!/usr/bin/env bash
# Road Buddy quickstart.
#   ./run.sh demo   install what is missing, generate the demo data, run every notebook (demo profile)
#   ./run.sh test   install what is missing, run the test suite (what CI runs)
#   ./run.sh brief  the brief-event demo: what question-aware frame selection buys (CPU, ~20 min)
#   ./run.sh kaggle run every notebook with the kaggle profile (real data and weights)
# Uses ./.venv (created on first use) unless RB_NO_VENV=1 (Kaggle/Colab: use the preinstalled torch).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
if [ -z "${RB_NO_VENV:-}" ]; then PY=.venv/bin/python; else PY=${PYTHON:-python3}; fi
cmd=${1:-}
shift || true
case "$cmd" in
  demo)   exec "$PY" -m roadbuddy_utils run --profile demo "$@" ;;
  brief)  exec "$PY" -m roadbuddy_utils run --profile brief "$@" ;;
  kaggle) exec "$PY" -m roadbuddy_utils run --profile kaggle "$@" ;;
  test)   exec "$PY" -m pytest -q "$@" ;;
  *) echo "usage: ./run.sh demo|test|brief|kaggle [args]" >&2; exit 2 ;;
esac
