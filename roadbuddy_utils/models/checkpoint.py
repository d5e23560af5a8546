"""What the memory planner reads: a checkpoint's config files (no weights, no tokenizer) and a GPU list.

    ck = read_checkpoint("tests/fixtures/configs/Qwen2.5-VL-7B-Instruct")   # a folder, a hub id or tiny:<family>
    gpus = parse_gpus("15GiB,15GiB")                                       # or "auto", "cpu", "24GB", "2x15GiB"

A folder needs only ``config.json`` and the processor's ``preprocessor_config.json`` /
``processor_config.json`` / ``video_preprocessor_config.json``. A hub id is read from the local
Hugging Face cache; only when it is not there is the hub asked, after a 3-second reachability probe
(the hub client retries for about 25 s before failing offline). An unsupported ``model_type``, a
folder without ``config.json`` or an unreachable hub stop with one ``PlanInputError`` naming the fix.
"""
from __future__ import annotations

import json
import os
import re
import socket
from dataclasses import dataclass
from pathlib import Path

GIB = 2 ** 30
GPUS_FORM = ("'auto', 'cpu' (or 'none'), or a comma list of memory sizes such as '15GiB,15GiB', '24GB', '80GiB' "
             "(GB = 10^9 bytes, GiB = 2^30; '2x15GiB' repeats)")
_SIZE = re.compile(r"^(?:(\d+)\s*[x*]\s*)?(\d+(?:\.\d+)?)\s*(GiB|GB|MiB|MB)$", re.IGNORECASE)
_UNIT = {"gib": 2 ** 30, "gb": 10 ** 9, "mib": 2 ** 20, "mb": 10 ** 6}
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", "video_preprocessor_config.json")


class PlanInputError(ValueError):
    """A model, GPU list or setting the planner cannot use (the message names the cause and the fix)."""


# ---------------------------------------------------------------------------------------------- checkpoints
@dataclass
class Checkpoint:
    source: str  # the folder or hub id the files came from
    config: object
    processor: dict  # merged processor settings (image, video and processor configs)
    notes: list


def read_checkpoint(model: str) -> Checkpoint:
    """Config + processor settings of a hub id, a local folder or ``tiny:<family>``; an unsupported
    family or unreadable files stop here with one message."""
    from .tiny import resolve_model_id

    path = Path(resolve_model_id(model))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise PlanInputError(f"{model}: folder {path} has no config.json; copy the checkpoint's config.json and "
                                 f"its processor configs ({', '.join(PROCESSOR_FILES)}) there (no weights needed)")
        _check_family(json.loads((path / "config.json").read_text(encoding="utf-8")).get("model_type"), model)
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(path)
        files = {name: path / name for name in PROCESSOR_FILES if (path / name).is_file()}
        source = str(path.resolve())
    elif path.exists() or str(model).startswith((".", "/", "~")) or str(model).count("/") > 1:
        raise PlanInputError(f"{model}: not a checkpoint folder and not a hub id of the form org/name; pass a "
                             "folder holding config.json and its processor configs, or an id like Qwen/Qwen3-VL-8B-Instruct")
    else:
        config, files = _hub_files(model)
        _check_family(config.model_type, model)
        source = model
    processor, notes = {"video": {}}, []
    for name, p in files.items():  # one flat dict of image settings, the video processor's under "video"
        d = json.loads(Path(p).read_text(encoding="utf-8"))
        if not name.startswith("video"):  # the video file's sizes (pixels over all frames) stay under "video"
            processor.update({k: v for k, v in d.items() if k not in ("image_processor", "video_processor")})
            processor.update(d.get("image_processor", {}))  # transformers 5 nests both in processor_config.json
        processor["video"].update(d if name.startswith("video") else d.get("video_processor", {}))
    if not files:
        notes.append(f"no processor config found for {model}: token counts use the family defaults")
    return Checkpoint(source, config, processor, notes)


def _check_family(model_type, model):
    from .config import FAMILIES

    if model_type not in FAMILIES:
        raise PlanInputError(f"{model}: model_type {model_type!r} is not supported; supported: {sorted(FAMILIES)}")


def _hub_files(model_id: str):
    """Config and processor files of a hub id: the local HF cache first, the hub if it answers."""
    from transformers import AutoConfig
    from transformers.utils import cached_file

    local = True
    try:
        config = AutoConfig.from_pretrained(model_id, local_files_only=True)
    except Exception as cache_err:  # noqa: BLE001 - any failure means "not in the cache"
        reason = _hub_unreachable()
        if reason:  # the hub client would retry for ~25 s before saying the same
            raise PlanInputError(
                f"{model_id}: its config.json is not in the local Hugging Face cache and the hub is unreachable "
                f"({reason}). Fix: download the config files where the hub is reachable (huggingface-cli download "
                f"{model_id} config.json {' '.join(PROCESSOR_FILES)} --local-dir DIR) and pass --model DIR") from cache_err
        local = False
        try:
            config = AutoConfig.from_pretrained(model_id)
        except Exception as err:  # noqa: BLE001
            raise PlanInputError(f"{model_id}: cannot read its config from the hub ({str(err).splitlines()[0]}). "
                                 "Fix: check the id, or pass a folder holding config.json and its processor "
                                 "configs") from err
    files = {}
    for name in PROCESSOR_FILES:
        try:
            p = cached_file(model_id, name, local_files_only=local, _raise_exceptions_for_missing_entries=False)
        except Exception:  # noqa: BLE001 - a missing processor file only loses the exact token count
            p = None
        if p:
            files[name] = p
    return config, files


def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the hub cannot be reached (offline mode, DNS, refused), or None when it answers a TCP connect."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        return "HF_HUB_OFFLINE is set"
    host = re.sub(r"^https?://", "", os.environ.get("HF_ENDPOINT", "https://huggingface.co")).split("/")[0]
    try:
        socket.create_connection((host.split(":")[0], 443), timeout=timeout).close()
    except OSError as e:
        return f"{host}: {e}"
    return None


def family_of(config) -> str:
    """The prompt family (``models.FAMILIES``) of a config already checked by ``read_checkpoint``."""
    from .config import FAMILIES

    return FAMILIES[config.model_type]


# ---------------------------------------------------------------------------------------------- GPUs
@dataclass
class Device:
    name: str  # "cuda:0" / "cpu"; ``label`` is what people call it
    total_bytes: int
    capability: tuple[int, int] | None = None
    label: str = ""

    @property
    def gib(self) -> float:
        return self.total_bytes / GIB


def parse_gpus(spec) -> list[Device]:
    """``auto`` (detected), ``cpu`` / ``none`` (no GPU), or sizes: "15GiB,15GiB", "24GB", "2x15GiB"."""
    if isinstance(spec, list):
        return spec
    text = str(spec if spec is not None else "auto").strip()
    if text.lower() == "auto":
        return detect_gpus()
    if text.lower() in ("cpu", "none", ""):
        return []
    out = []
    for part in text.split(","):
        m = _SIZE.match(part.strip())
        if not m:
            raise PlanInputError(f"--gpus {spec!r}: cannot read {part.strip()!r}; expected {GPUS_FORM}")
        n, num, unit = int(m.group(1) or 1), float(m.group(2)), m.group(3)
        for _ in range(n):
            out.append(Device(f"cuda:{len(out)}", int(num * _UNIT[unit.lower()]), None, f"{num:g} {unit}"))
    if not out or any(d.total_bytes <= 0 for d in out):
        raise PlanInputError(f"--gpus {spec!r}: sizes must be positive; expected {GPUS_FORM}")
    return out


def detect_gpus() -> list[Device]:
    """The GPUs of this machine, free memory as capacity (``hardware.detect``: one place for the machine)."""
    from ..machine import hardware

    gpus = [(g.name, g.free_gib if g.free_gib is not None else g.total_gib, tuple(g.capability))
            for g in hardware.detect().gpus]
    return [Device(f"cuda:{i}", int(gib * GIB), cap, name) for i, (name, gib, cap) in enumerate(gpus)]
