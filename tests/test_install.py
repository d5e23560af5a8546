"""The Kaggle/Colab install (``RB_NO_VENV=1 bash scripts/setup.sh``) leaves the image's packages alone.

The full check installs into a scratch image-like venv (``bash scripts/check_image_install.sh``, minutes,
needs PyPI); these tests check the decisions it is made of.
"""
import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("image_requirements", REPO / "scripts/image_requirements.py")
ir = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ir)
REQS = (REPO / "requirements.txt").read_text().splitlines()
KAGGLE_LIKE = {"torch": "2.6.0+cu124", "torchvision": "0.21.0+cu124", "numpy": "1.26.4", "pandas": "2.2.3",
               "scikit-learn": "1.5.2", "matplotlib": "3.9.2", "Pillow": "10.4.0", "opencv-python": "4.10.0.84",
               "transformers": "4.44.0", "tqdm": "4.66.5", "PyYAML": "6.0.2"}


def _names(lines):
    return {ir.norm(l.split("==")[0]) for l in lines}


def test_image_packages_are_kept_at_their_versions():
    pinned, loose, keep = ir.plan(REQS, KAGGLE_LIKE)
    for p in ir.PROTECTED:
        assert p not in _names(pinned) and p not in _names(loose)
    assert {"torch==2.6.0+cu124", "numpy==1.26.4", "pandas==2.2.3", "pillow==10.4.0", "opencv-python==4.10.0.84"} <= set(keep)
    assert "opencv-python-headless" not in _names(pinned)  # the image's cv2 serves
    assert {"tqdm==4.66.5", "pyyaml==6.0.2"} <= set(keep)  # whatever else the image has stays too


def test_model_stack_is_upgraded_to_its_pins_and_missing_packages_added():
    pinned, loose, _ = ir.plan(REQS, KAGGLE_LIKE)
    assert "transformers==5.23.0" in pinned and "transformers==5.23.0" in loose
    assert "peft==0.21.2" in pinned and "papermill" in _names(pinned) and "papermill" in loose  # loose: unpinned


def test_an_image_without_torch_is_refused_with_the_fix():
    with pytest.raises(SystemExit, match="no torch in this image"):
        ir.plan(REQS, {"numpy": "1.26.4"})


def test_setup_never_installs_torch_on_an_image():
    setup = (REPO / "scripts/setup.sh").read_text()
    image_branch = setup[setup.index('if [ -n "${RB_NO_VENV:-}" ]; then\n  # The image'):setup.index("else\n  if ! ")]
    assert "requirements-torch.txt" not in image_branch and "image_requirements.py" in image_branch
    assert '-c "$tmp/keep.txt"' in image_branch
