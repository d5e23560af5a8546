#!/usr/bin/env bash
# Does the documented Kaggle/Colab install leave the image's own packages alone?
#   bash scripts/check_image_install.sh      (about 3-5 minutes; needs PyPI; writes /tmp/rb-image-check)
# Builds a scratch venv that looks like a GPU image: older numpy, pandas, scikit-learn, matplotlib and
# pillow from PyPI, and stand-ins for torch 2.6.0 / torchvision 0.21.0 (importable modules with real
# distribution metadata: pip decides from the metadata; a real CUDA torch is several GB), then runs
# `RB_NO_VENV=1 bash scripts/setup.sh` in it and compares the versions before and after.
set -euo pipefail
cd "$(dirname "$0")/.."
V=${RB_IMAGE_VENV:-/tmp/rb-image-check}
rm -rf "$V"
python3 -m venv "$V"
IMAGE="numpy==1.26.4 pandas==2.2.3 scikit-learn==1.5.2 matplotlib==3.9.2 pillow==10.4.0"
"$V/bin/python" -m pip -q --disable-pip-version-check install $IMAGE 2> >(grep -v "is ignored" >&2)
site=$("$V/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
for pv in torch:2.6.0 torchvision:0.21.0; do
  name=${pv%%:*}; ver=${pv##*:}
  mkdir -p "$site/$name" "$site/$name-$ver.dist-info"
  echo "__version__ = '$ver'  # stand-in for the image's build (scripts/check_image_install.sh)" > "$site/$name/__init__.py"
  printf 'Metadata-Version: 2.1\nName: %s\nVersion: %s\n' "$name" "$ver" > "$site/$name-$ver.dist-info/METADATA"
  echo pip > "$site/$name-$ver.dist-info/INSTALLER"
  printf '%s/__init__.py,,\n%s-%s.dist-info/METADATA,,\n' "$name" "$name" "$ver" > "$site/$name-$ver.dist-info/RECORD"
done
freeze() { "$V/bin/python" -m pip --disable-pip-version-check list --format=freeze 2>/dev/null | grep -iE '^(torch|torchvision|numpy|pandas|scikit-learn|matplotlib|pillow)==' | sort; }
freeze > "$V/before.txt"
RB_NO_VENV=1 PYTHON="$V/bin/python" bash scripts/setup.sh
freeze > "$V/after.txt"
echo "image packages before / after:"; paste "$V/before.txt" "$V/after.txt"
"$V/bin/python" -c "import papermill, av, sacrebleu, roadbuddy_utils; from importlib.metadata import version as v; print(\"project stack:\", {p: v(p) for p in (\"transformers\", \"peft\", \"accelerate\", \"bitsandbytes\", \"opencv-python-headless\")})"
if diff -q "$V/before.txt" "$V/after.txt" >/dev/null; then echo "OK: none of the image's packages changed"; else echo "CHANGED:"; diff "$V/before.txt" "$V/after.txt"; exit 1; fi
