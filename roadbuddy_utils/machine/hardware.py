"""The machine a run is on, and the loading / training settings that follow it.

    from roadbuddy_utils.machine import hardware
    hardware.describe()                                   # env, GPUs (capability, GiB), RAM, CPU: JSON-safe
    s = hardware.resolve_settings({"dtype": dtype, "quantization": quantization}, preset="auto", model_size_hint=model)
    s = hardware.preset("t4x2", model_size_hint="8B", task="train")   # plan for a machine you are not on

Precision follows the compute capability, never ``torch.cuda.is_bf16_supported()`` (True on a T4,
where bf16 is emulated, slowly): ``dtype: auto`` is bfloat16 from 8.0 (A100, A30, RTX 3090, L4,
H100), float16 on 7.x (T4 7.5, V100 7.0), float32 on the CPU. ``attn_implementation: auto`` is
FlashAttention-2 only from 8.0 with the ``flash_attn`` package and a 16-bit dtype, else SDPA.
Below 7.0 (P100) Kaggle's torch has no kernels: a clear error instead of a CUDA failure later.

Presets (``preset``): from the detected GPUs (or a named profile: cpu, t4, t4x2, 24gb, a100) and a
model size, the settings that fit: 16-bit on one GPU when the weights fit, ``device_map: auto``
over several GPUs for inference, else 4-bit (QLoRA when training); ``engine``: the vLLM engine's
tensor-parallel size and memory reservation on that machine (``engine_defaults``, which the engine
client's "auto" values come from). ``resolve_settings`` lets any explicit value (not None / "auto")
win over the preset.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

QUANTIZATIONS = ("none", "8bit", "4bit")
MODEL_KEYS = ("dtype", "attn_implementation", "device_map", "quantization")  # ModelConfig fields a preset sets
TRAIN_KEYS = ("dtype", "quantization", "bf16", "fp16", "optim", "gradient_checkpointing")  # TrainConfig fields
DEFAULT_SIZE_B = 8.3  # parameters (billions) assumed without a size hint: the project's 7-8 B models
GIB = 2 ** 30


# ---------------------------------------------------------------------------------------------- memory helpers
def is_oom(err: BaseException) -> bool:
    import torch

    return isinstance(err, torch.OutOfMemoryError) or "out of memory" in str(err).lower()


def free_memory():
    """Hand cached GPU blocks back after an out-of-memory error or a released model (on a CPU,
    reference counting has already freed the tensors; a full gc pass there only costs time)."""
    import gc

    import torch

    if torch.cuda.is_available():
        gc.collect()
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------------------------- detection
@dataclass
class GPU:
    name: str
    capability: tuple[int, int]  # CUDA compute capability (7, 5) for a T4
    total_gib: float
    free_gib: float | None = None  # None when it could not be read

    @property
    def bf16_native(self) -> bool:
        return tuple(self.capability) >= (8, 0)


@dataclass
class Machine:
    env: str  # kaggle | colab | local
    gpus: list[GPU] = field(default_factory=list)
    ram_total_gib: float = 0.0
    ram_available_gib: float = 0.0
    cpu: str = ""
    cores: int = 1

    @property
    def capability(self) -> tuple[int, int] | None:
        """The lowest compute capability among the GPUs (what every layer of a spread model gets), or None."""
        return min((tuple(g.capability) for g in self.gpus), default=None)


def detect_env(environ=None) -> str:
    """``kaggle`` (KAGGLE_KERNEL_RUN_TYPE or /kaggle/input), ``colab`` (COLAB_RELEASE_TAG, COLAB_GPU or
    ``google.colab`` importable) or ``local``."""
    import importlib.util

    env = os.environ if environ is None else environ
    if env.get("KAGGLE_KERNEL_RUN_TYPE") or Path("/kaggle/input").is_dir():
        return "kaggle"
    if env.get("COLAB_RELEASE_TAG") or env.get("COLAB_GPU"):
        return "colab"
    try:
        if importlib.util.find_spec("google.colab") is not None:
            return "colab"
    except (ImportError, ValueError):  # no "google" namespace package at all
        pass
    return "local"


def detect_gpus() -> list[GPU]:
    """CUDA GPUs torch sees (free memory from the driver; reading it opens a context on each GPU)."""
    import torch

    if not torch.cuda.is_available():
        return []
    gpus = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        try:
            free = round(torch.cuda.mem_get_info(i)[0] / GIB, 2)
        except RuntimeError:  # e.g. a GPU this torch build has no kernels for
            free = None
        gpus.append(GPU(p.name, (p.major, p.minor), round(p.total_memory / GIB, 2), free))
    return gpus


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _cgroup_limit() -> tuple[float | None, float | None]:
    """The container's memory limit and current use in bytes (Kaggle / Colab run in containers whose
    /proc/meminfo shows the whole host), or (None, None) without a limit."""
    for limit_path, used_path in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                  ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                   "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        limit, used = _read(limit_path), _read(used_path)
        if limit and limit.isdigit() and int(limit) < 2 ** 60:  # "max" or a huge number: no limit
            return float(limit), float(used) if used and used.isdigit() else None
    return None, None


def ram_gib() -> tuple[float, float]:
    """Host RAM (total, available) in GiB: psutil when installed, else /proc/meminfo; capped by the cgroup."""
    try:
        import psutil

        vm = psutil.virtual_memory()
        total, avail = float(vm.total), float(vm.available)
    except ImportError:
        info = {}
        for line in (_read("/proc/meminfo") or "").splitlines():
            key, _, rest = line.partition(":")
            if rest.split():
                info[key] = float(rest.split()[0]) * 1024
        total, avail = info.get("MemTotal", 0.0), info.get("MemAvailable", info.get("MemFree", 0.0))
    limit, used = _cgroup_limit()
    if limit is not None:
        total = min(total, limit) if total else limit
        if used is not None:
            avail = min(avail, max(0.0, limit - used))
    return round(total / GIB, 2), round(avail / GIB, 2)


def cpu_info() -> tuple[str, int]:
    """CPU model name and the cores this process may use (its affinity, not the host's count)."""
    import platform

    name = next((l.split(":", 1)[1].strip() for l in (_read("/proc/cpuinfo") or "").splitlines()
                 if l.startswith("model name")), None) or platform.processor() or platform.machine()
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return name, cores


def detect() -> Machine:
    """The machine this process runs on."""
    total, avail = ram_gib()
    name, cores = cpu_info()
    return Machine(detect_env(), detect_gpus(), total, avail, name, cores)


def describe(machine: Machine | None = None) -> dict:
    """JSON-safe description for run configs and manifests: the machine plus the library versions
    that decide what runs on it (torch, CUDA, bitsandbytes, flash_attn)."""
    import importlib.metadata as md
    import platform

    import torch

    m = machine or detect()
    d = asdict(m)
    for g in d["gpus"]:
        g["capability"] = list(g["capability"])

    def version(pkg):
        try:
            return md.version(pkg)
        except md.PackageNotFoundError:
            return None

    return d | {"os": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
                "cuda": torch.version.cuda,
                "torch_arch_list": torch.cuda.get_arch_list() if torch.cuda.is_available() else [],
                "bitsandbytes": version("bitsandbytes"), "flash_attn": version("flash_attn"),
                "transformers": version("transformers")}


def device_capability(device=None, device_map=None) -> tuple[int, int] | None:
    """Compute capability of the GPU a model runs on (the lowest of its GPUs with ``device_map``), None on a CPU."""
    import torch

    if not torch.cuda.is_available():
        return None
    if isinstance(device_map, dict):
        devs = [torch.device(v) for v in device_map.values() if v not in ("cpu", "disk")]
        idx = sorted({d.index or 0 for d in devs if d.type == "cuda"})
    elif device_map is not None:  # "auto", "balanced", ...: every visible GPU ("cpu": none)
        idx = [] if device_map == "cpu" else list(range(torch.cuda.device_count()))
    else:
        device = torch.device(device or "cuda")
        idx = [device.index or 0] if device.type == "cuda" else []
    return min((torch.cuda.get_device_capability(i) for i in idx), default=None)


# ---------------------------------------------------------------------------------------------- decisions
class UnsupportedGPU(RuntimeError):
    """A GPU the current torch build has no kernels for (P100 on Kaggle's image)."""


def check_gpu(capability: tuple[int, int] | None, name: str = "this GPU") -> None:
    """Raise before any weights are read when the GPU is below compute capability 7.0."""
    if capability is not None and tuple(capability) < (7, 0):
        raise UnsupportedGPU(
            f"{name} (compute capability {capability[0]}.{capability[1]}) is not supported: Kaggle's current torch "
            "build has no sm_60 kernels (the first CUDA operation fails). Choose 'GPU T4 x2' as the accelerator "
            "(Kaggle: Settings > Accelerator), or run on the CPU with device='cpu'.")


def _cap(capability) -> str:
    return f"{capability[0]}.{capability[1]}"


def resolve_dtype(requested: str | None, capability: tuple[int, int] | None) -> str:
    """The dtype name to load weights in: ``auto`` -> bfloat16 from 8.0, float16 below, float32 on the CPU
    (``capability`` None). An explicit bfloat16 below 8.0 is kept, with a warning that it is emulated."""
    requested = requested or "auto"
    if requested not in ("auto", "bfloat16", "float16", "float32"):
        raise ValueError(f"dtype must be auto, bfloat16, float16 or float32, got {requested!r}")
    if requested == "auto":
        if capability is None:
            return "float32"
        return "bfloat16" if tuple(capability) >= (8, 0) else "float16"
    if requested == "bfloat16" and capability is not None and tuple(capability) < (8, 0):
        warnings.warn(f"dtype bfloat16 on a GPU of compute capability {_cap(capability)}: bfloat16 is only emulated "
                      "below 8.0 (slow); use dtype float16 or auto", stacklevel=2)
    return requested


def flash_attn_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("flash_attn") is not None


def resolve_attn(requested: str | None, capability: tuple[int, int] | None, dtype: str | None = None,
                 flash_available: bool | None = None) -> str | None:
    """The attention implementation: ``auto`` -> flash_attention_2 where it runs (GPU >= 8.0, the
    flash_attn package, a 16-bit dtype), else sdpa; None keeps the library default; an explicit
    flash_attention_2 where it cannot run is an error (it would fail inside the model)."""
    if requested is None:
        return None
    flash = flash_attn_available() if flash_available is None else flash_available
    half = dtype in (None, "float16", "bfloat16")
    ampere = capability is not None and tuple(capability) >= (8, 0)
    if requested == "auto":
        return "flash_attention_2" if ampere and flash and half else "sdpa"
    if requested == "flash_attention_2" and not (ampere and flash):
        where = "the CPU" if capability is None else f"a GPU of compute capability {_cap(capability)}"
        why = "FlashAttention-2 needs a GPU of compute capability >= 8.0" if not ampere else \
            "the flash_attn package is not installed (pip install flash-attn --no-build-isolation)"
        raise ValueError(f"attn_implementation flash_attention_2 on {where}: {why}; use 'sdpa' or 'auto'")
    return requested


def check_quantization(quantization: str, capability: tuple[int, int] | None, bnb_available: bool | None = None):
    """Raise (before any weights are read) when ``quantization`` cannot run here."""
    import importlib.util

    if quantization not in QUANTIZATIONS:
        raise ValueError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    if quantization == "none":
        return
    if not (importlib.util.find_spec("bitsandbytes") is not None if bnb_available is None else bnb_available):
        raise ImportError(f"quantization={quantization!r} needs bitsandbytes: pip install bitsandbytes==0.50.2 "
                          "(or set quantization: none)")
    if quantization == "8bit" and capability is not None and tuple(capability) < (7, 5):
        raise ValueError(f"quantization 8bit (LLM.int8) needs a GPU of compute capability >= 7.5 (Turing), this one "
                         f"is {_cap(capability)}; use quantization 4bit, or float16 over several GPUs")


def train_precision(bf16, fp16, capability: tuple[int, int] | None) -> dict:
    """Mixed-precision flags for the Trainer: ``auto`` -> bf16 where native (>= 8.0), fp16 on 7.x,
    neither on the CPU; explicit True/False win (both True is an error)."""
    auto = resolve_dtype("auto", capability)
    b = auto == "bfloat16" if bf16 in ("auto", None) else bool(bf16)
    f = (auto == "float16" and not b) if fp16 in ("auto", None) else bool(fp16)
    if b and f:
        raise ValueError("bf16 and fp16 are both on: choose one (or leave both 'auto')")
    if b and capability is not None and tuple(capability) < (8, 0):
        warnings.warn(f"bf16 training on compute capability {_cap(capability)} is emulated (slow); use fp16 or auto",
                      stacklevel=2)
    if f and capability is None:
        raise ValueError("fp16 mixed precision needs a GPU; leave fp16 'auto' (or False) on the CPU")
    return {"bf16": b, "fp16": f}


def resolve_optim(requested: str | None, quantization: str, on_cuda: bool, bnb_available: bool | None = None) -> str:
    """``auto`` -> paged_adamw_8bit for a quantized model on CUDA with bitsandbytes (8-bit paged optimizer
    states: no out-of-memory spikes), else adamw_torch_fused (the Trainer's own default; bitsandbytes'
    paged optimizers need CUDA)."""
    import importlib.util

    if requested not in (None, "auto"):
        return requested
    bnb = importlib.util.find_spec("bitsandbytes") is not None if bnb_available is None else bnb_available
    return "paged_adamw_8bit" if quantization != "none" and on_cuda and bnb else "adamw_torch_fused"


# ---------------------------------------------------------------------------------------------- presets
def _gpu(name, cap, gib, n=1):
    return [GPU(name, cap, gib, gib) for _ in range(n)]


PROFILES = {  # machines one can plan for without being on them (sizes as torch reports them)
    "cpu": Machine("local", [], 16.0, 12.0, "cpu", 4),
    "t4": Machine("colab", _gpu("Tesla T4", (7, 5), 14.74), 12.7, 11.0, "cpu", 2),
    "t4x2": Machine("kaggle", _gpu("Tesla T4", (7, 5), 14.74, 2), 31.0, 29.0, "cpu", 4),
    "24gb": Machine("local", _gpu("NVIDIA GeForce RTX 3090", (8, 6), 23.56), 64.0, 60.0, "cpu", 16),
    "a100": Machine("local", _gpu("NVIDIA A100-SXM4-80GB", (8, 0), 79.15), 128.0, 120.0, "cpu", 16),
}


def parse_size(hint) -> float:
    """Parameters in billions from a number (8.3), "8B" or a model id ("Qwen/Qwen2.5-VL-7B-Instruct");
    unknown (None, tiny:..., no size in the name) -> the project's default 8.3."""
    if isinstance(hint, (int, float)) and not isinstance(hint, bool):
        return float(hint)
    if isinstance(hint, str):
        if hint.startswith("tiny:"):
            return 0.001
        m = re.findall(r"(?<![\d.])(\d+(?:\.\d+)?)\s*[bB](?![a-zA-Z])", hint)
        if m:
            return float(m[-1])
    return DEFAULT_SIZE_B


def _weights_gib(size_b: float, bits: int) -> float:
    # 4-bit keeps embeddings, vision tower and lm_head in 16 bit: about 15 % of a VLM stays at 2 bytes
    per = 2.0 if bits == 16 else 0.15 * 2 + 0.85 * bits / 8
    return size_b * 1e9 * per / GIB


def preset(name: str = "auto", model_size_hint=None, task: str = "infer", machine: Machine | None = None) -> dict:
    """Loading (and training) settings for a machine: ``name`` is ``auto`` (the detected machine, or
    ``machine``) or a profile of ``PROFILES``. Returns ``dtype``, ``attn_implementation``,
    ``device_map``, ``quantization``, ``bf16``, ``fp16``, ``optim``, ``gradient_checkpointing`` and
    ``why`` (one sentence). Training keeps the whole model on each GPU (one process per GPU)."""
    return _preset_for(_machine_for(name, machine), parse_size(model_size_hint), task)


def _machine_for(name: str, machine: Machine | None) -> Machine:
    if name == "auto":
        return machine or detect()
    if name not in PROFILES:
        raise ValueError(f"unknown hardware preset {name!r}; choose auto or one of {sorted(PROFILES)}")
    return PROFILES[name]


ENGINE_GPU_UTILIZATION = 0.90  # vLLM's share of each GPU (its own default); the rest: CUDA context, other processes
ENGINE_CPU_SHARE = 0.25  # vLLM on the CPU reserves this share of all RAM (its default 0.92 failed on 24 GiB)


def engine_defaults(n_gpus: int, ram_total_gib: float = 0.0, ram_available_gib: float | None = None) -> dict:
    """The serving engine's settings that follow the machine (``EngineConfig``'s "auto" and the ``engine`` entry
    of the presets): ``tensor_parallel_size`` = every GPU (1 on the CPU), ``gpu_memory_utilization`` 0.90 on GPUs;
    on the CPU the share of RAM vLLM reserves (and refuses to start unless that much is free now): 0.25, less when
    other processes hold memory (80 % of what is free), ``enforce_eager`` there (no CUDA graphs)."""
    if n_gpus:
        return {"tensor_parallel_size": n_gpus, "gpu_memory_utilization": ENGINE_GPU_UTILIZATION,
                "enforce_eager": False}
    avail = ram_total_gib if ram_available_gib is None else ram_available_gib
    share = round(max(0.02, min(ENGINE_CPU_SHARE, 0.8 * avail / ram_total_gib)), 3) if ram_total_gib else ENGINE_CPU_SHARE
    return {"tensor_parallel_size": 1, "gpu_memory_utilization": share, "enforce_eager": True}


def machine_engine_defaults(m: Machine) -> dict:
    return engine_defaults(len(m.gpus), m.ram_total_gib, m.ram_available_gib)


def _preset_for(m: Machine, size: float, task: str) -> dict:
    if task not in ("infer", "train"):
        raise ValueError(f"task must be 'infer' or 'train', got {task!r}")
    for g in m.gpus:
        check_gpu(g.capability, g.name)
    cap = m.capability
    dtype = resolve_dtype("auto", cap)
    out = {"dtype": dtype, "attn_implementation": resolve_attn("auto", cap, dtype), "device_map": None,
           "quantization": "none", **train_precision("auto", "auto", cap), "gradient_checkpointing": False}
    if not m.gpus:
        why = "no GPU: float32 on the CPU"
    else:
        one = min(g.total_gib for g in m.gpus) * 0.9  # 10 % for the CUDA context and fragmentation
        margin = 4.0 if task == "train" else 1.5  # activations (and LoRA states) beside the weights
        w16, w4 = _weights_gib(size, 16), _weights_gib(size, 4)
        gpus = f"{len(m.gpus)} x {m.gpus[0].name} ({_cap(cap)})"
        if w16 + margin <= one:
            why = f"{size:g} B in {dtype} ({w16:.1f} GiB) fits one of {gpus}"
            out["gradient_checkpointing"] = task == "train" and w16 > one / 2
        elif task == "infer" and len(m.gpus) > 1 and w16 + margin * len(m.gpus) <= one * len(m.gpus):
            why = f"{size:g} B in {dtype} ({w16:.1f} GiB) spread over {gpus} with device_map auto"
            out["device_map"] = "auto"
        else:
            out |= {"quantization": "4bit", "gradient_checkpointing": task == "train"}
            spread = task == "infer" and len(m.gpus) > 1 and w4 + margin > one
            out["device_map"] = "auto" if spread else None
            why = (f"{size:g} B in {dtype} ({w16:.1f} GiB) does not fit {gpus}: 4-bit ({w4:.1f} GiB)"
                   + (" spread with device_map auto" if spread else "") + (" = QLoRA" if task == "train" else ""))
            if w4 + margin > one * (len(m.gpus) if spread else 1):
                warnings.warn(f"{size:g} B does not fit {gpus} even in 4-bit ({w4:.1f} GiB): expect out-of-memory",
                              stacklevel=3)
    out["optim"] = resolve_optim("auto", out["quantization"], bool(m.gpus), bnb_available=True)
    out["engine"] = machine_engine_defaults(m)  # backend vllm: EngineConfig's "auto" values
    return out | {"why": why}


def _unset(v) -> bool:
    return v is None or v == "auto"


def resolve_settings(explicit: dict | None = None, preset: str = "auto", model_size_hint=None, task: str = "infer",
                     machine: Machine | None = None) -> dict:
    """The preset's settings with every explicit value (anything but None / "auto") winning; keys the
    preset does not know pass through; ``preset: none`` returns ``explicit`` unchanged. An explicit
    dtype is checked against the GPU (bfloat16 below 8.0 warns)."""
    explicit = dict(explicit or {})
    if preset in (None, "none", "off"):
        return explicit
    m = _machine_for(preset, machine)
    out = _preset_for(m, parse_size(model_size_hint), task)
    out |= {k: v for k, v in explicit.items() if not _unset(v) or k not in out}
    if not _unset(explicit.get("dtype")):
        resolve_dtype(out["dtype"], m.capability)
    return out
