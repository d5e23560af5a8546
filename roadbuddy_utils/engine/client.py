"""vLLM as a second answering backend, behind the model wrapper's own interface.

    vlm = load_vlm(ModelConfig("tiny:qwen2_5_vl"), backend="vllm")     # or backend="hf" (VLM.load)
    vlm.answer(examples, "likelihood")          # same lines, same letters scored, from the engine
    vlm.close()                                 # the engine process stops (also at exit)

How the project talks to the engine, and why: vLLM runs in its own environment (``bash scripts/setup.sh
--engine`` makes ``.venv-engine``; on GPUs it pins its own torch and transformers, which cannot share the
project's), in a worker process that this module starts and stops (``worker.py``: a vLLM ``LLM`` serving
this process over a local authenticated socket). Not the OpenAI-compatible HTTP server, because letter
scoring must see exactly the frames (and frame times) the HF path sees: the HTTP API takes a video as a
file or URL and decodes and samples it itself, while the offline ``LLM`` takes the decoded frames with
their metadata. The prompts are rendered here by the same code as the HF path (``VLM.render`` /
``chat_render``: the same chat template, the same choices and notes), so both backends score the same text.

Scoring is vLLM's ``SamplingParams(max_tokens=1, logprob_token_ids=[offered letters])``: the raw
log-probabilities of exactly those tokens, softmaxed over the letters as the HF forward pass does.
"""
from __future__ import annotations

import atexit
import json
import math
import os
import secrets
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..common.files import REPO
from ..machine import hardware
from ..models.config import FAMILIES, ModelConfig, fit_pixels
from ..models.engine_plan import default_max_model_len
from ..models.tiny import is_tiny, resolve_model_id
from ..models.vlm import VLM, _image_array, _metadata

BACKENDS = ("hf", "vllm")
# Letter-score parity with the HF path measured on the CPU build (tests/test_engine.py, tiny models): what a run
# records, and a warning where it is not reached.
PARITY = {"qwen": "within 1e-4 (video, images, text)", "internvl": "within 1e-4 (frames as images, text)",
          "qwen3": "not reached: video letter scores differ by 3.5e-3 from transformers 5.23 (vLLM 0.32, CPU)"}


class EngineError(RuntimeError):
    """The engine could not start (missing environment, unsupported model, out of memory) or failed a request;
    the message says what to do."""

    def __init__(self, message: str, engine_start: bool = False):
        super().__init__(message)
        self.engine_start = engine_start  # the engine never came up: callers with a smaller model fall back


@dataclass
class EngineConfig:
    """vLLM's settings (``auto`` follows the machine: ``hardware.py``); recorded in run_config.json."""

    python: str | None = None  # the engine environment's python (None: .venv-engine/bin/python in the repository)
    dtype: str = "auto"  # auto: float32 on the CPU, the hardware's 16-bit type on a GPU
    # auto (tensor_parallel_size, gpu_memory_utilization, enforce_eager): hardware.engine_defaults, as the presets
    tensor_parallel_size: int | str = "auto"  # auto: every visible GPU (1 on the CPU)
    gpu_memory_utilization: float | str = "auto"  # auto: 0.90 on a GPU; on the CPU its share of RAM (<= 0.25)
    max_model_len: int | None = None  # None: the model's own limit, at most 8192 (a clip's prompt is ~1-3 k)
    max_num_seqs: int = 16
    enable_prefix_caching: bool = True  # the questions of one clip share its frames: computed once
    enforce_eager: bool | str = "auto"  # auto: eager on the CPU (no CUDA graphs there)
    seed: int = 0
    start_timeout_s: float = 600.0
    preflight: bool = True  # on a GPU: the engine's memory plan first, refusing (before any process) what cannot fit
    extra: dict = field(default_factory=dict)  # any other LLM(...) argument, e.g. pipeline_parallel_size

    def settings(self, model_path: str, cfg: ModelConfig, lora_rank: int | None, machine=None) -> dict:
        from transformers import AutoConfig

        machine = machine or hardware.detect()
        auto = hardware.machine_engine_defaults(machine)
        s = {"model": model_path, "tokenizer": model_path, "seed": self.seed,
             "max_model_len": self.max_model_len or default_max_model_len(AutoConfig.from_pretrained(model_path)),
             "max_num_seqs": self.max_num_seqs, "enable_prefix_caching": self.enable_prefix_caching,
             "dtype": hardware.resolve_dtype(cfg.dtype if self.dtype == "auto" else self.dtype, machine.capability),
             "tensor_parallel_size": auto["tensor_parallel_size"] if self.tensor_parallel_size == "auto"
             else int(self.tensor_parallel_size),
             "gpu_memory_utilization": auto["gpu_memory_utilization"] if self.gpu_memory_utilization == "auto"
             else float(self.gpu_memory_utilization),
             "enforce_eager": auto["enforce_eager"] if self.enforce_eager == "auto" else bool(self.enforce_eager),
             "limit_mm_per_prompt": {"image": 64, "video": 1}}
        if cfg.quantization == "4bit":
            s["quantization"] = "bitsandbytes"
        if lora_rank:
            s |= {"enable_lora": True, "max_lora_rank": lora_rank, "max_loras": 1}
        return s | dict(self.extra)


# LLM(...) arguments the engine plan does not model: with any of them its verdict is recorded, never enforced
UNPLANNED = ("pipeline_parallel_size", "distributed_executor_backend", "kv_cache_memory_bytes", "cpu_offload_gb",
             "kv_cache_dtype", "quantization", "num_gpu_blocks_override")


def preflight(path: str, cfg: ModelConfig, ecfg: EngineConfig, settings: dict, machine) -> dict | None:
    """The engine's memory plan (``models.engine_plan``) for these settings on ``machine``. On a CUDA machine a
    model that cannot fit (or a tensor-parallel size vLLM refuses) raises ``EngineError(engine_start=True)`` with the
    plan's suggestion before any process is spawned, so 06 falls back at once; on the CPU, or with settings the
    plan does not model, the plan is only recorded. Returns the plan's dict (or ``{"error": ...}``)."""
    from ..models.checkpoint import PlanInputError
    from ..models.engine_plan import engine_plan

    if not ecfg.preflight:
        return None
    enforce = bool(machine.gpus) and not set(ecfg.extra) & set(UNPLANNED)
    try:
        plan = engine_plan(path, machine, dtype=settings["dtype"], n_frames=cfg.n_frames, max_pixels=cfg.max_pixels,
                           quantization="4bit" if settings.get("quantization") == "bitsandbytes" else "none",
                           tensor_parallel_size=settings["tensor_parallel_size"],
                           gpu_memory_utilization=settings["gpu_memory_utilization"],
                           max_model_len=settings["max_model_len"], max_num_seqs=settings["max_num_seqs"],
                           enforce_eager=settings["enforce_eager"],
                           max_num_batched_tokens=settings.get("max_num_batched_tokens"))
    except PlanInputError as e:
        if enforce:
            raise EngineError(f"{cfg.model} cannot start through the engine: {e}", engine_start=True) from e
        return {"error": str(e)}
    except Exception as e:  # noqa: BLE001 - a planner failure never stops an engine vLLM may well start
        return {"error": f"the engine plan failed: {type(e).__name__}: {e}"}
    if enforce and not plan.fits:
        raise EngineError(f"{cfg.model} does not fit the engine on this machine ({', '.join(plan.devices)}): "
                          f"{plan.suggestion or '; '.join(plan.reasons)} [the memory plan: python -m roadbuddy_utils "
                          f"plan --backend vllm --model {path}; engine preflight: false starts it anyway]",
                          engine_start=True)
    return plan.to_dict()


def engine_config(spec) -> EngineConfig:
    """An ``EngineConfig`` from None, a dict (a notebook's ``engine`` parameter) or itself."""
    if isinstance(spec, EngineConfig):
        return spec
    known = set(EngineConfig.__dataclass_fields__)
    spec = dict(spec or {})
    unknown = sorted(set(spec) - known)
    if unknown:
        raise ValueError(f"engine settings {unknown} are not known; known: {sorted(known)}")
    return EngineConfig(**spec)


def engine_python(cfg: EngineConfig) -> Path:
    """The engine environment's interpreter, or an error saying how to make it."""
    py = Path(cfg.python) if cfg.python else REPO / ".venv-engine" / "bin" / "python"
    if not py.exists():
        raise EngineError(f"no engine environment at {py}: create it with `bash scripts/setup.sh --engine` "
                          "(vLLM in its own environment, about 4 minutes), or set backend: hf")
    return py


def _lora(adapter_path: str | None) -> tuple[dict | None, int | None]:
    """The adapter as the engine serves it (per request), and the rank the engine must allow."""
    if not adapter_path:
        return None, None
    conf = json.loads((Path(adapter_path) / "adapter_config.json").read_text(encoding="utf-8"))
    if conf.get("modules_to_save"):
        raise EngineError(f"{adapter_path}: the adapter also trains {conf['modules_to_save']} fully "
                          "(modules_to_save), which vLLM's LoRA cannot serve; export a merged model "
                          "(04's export_merged) and serve that folder as the model, or use backend: hf")
    rank = int(conf.get("r") or 8)
    allowed = [8, 16, 32, 64, 128, 256, 320, 512]
    return {"name": "adapter", "id": 1, "path": str(Path(adapter_path).resolve())}, next(a for a in allowed if a >= rank)


class EngineVLM(VLM):
    """The wrapper's interface (``answer``, ``letter_scores``, ``generate``, ``chat_letter_scores``,
    ``chat_generate``; ``render`` and the prompt code inherited) answered by a vLLM engine process."""

    @classmethod
    def start(cls, cfg: ModelConfig, engine=None) -> "EngineVLM":
        from transformers import AutoConfig, AutoProcessor

        ecfg = engine_config(engine)
        path = resolve_model_id(cfg.model)
        model_type = AutoConfig.from_pretrained(path).model_type
        if model_type not in FAMILIES:
            raise ValueError(f"{cfg.model}: model_type {model_type!r} is not supported; supported: {sorted(FAMILIES)}")
        lora, rank = _lora(cfg.adapter_path)
        machine = hardware.detect()
        settings = ecfg.settings(path, cfg, rank, machine)
        memory_plan = preflight(path, cfg, ecfg, settings, machine)  # a GPU too small stops here, nothing spawned
        processor = AutoProcessor.from_pretrained(path)
        processor.tokenizer.padding_side = "left"
        vlm = cls(None, processor, cfg, FAMILIES[model_type], path)
        vlm.letter_ids = vlm._letter_ids()
        vlm._lora, vlm._settings, vlm._engine_cfg, vlm._memory_plan = lora, settings, ecfg, memory_plan
        if vlm.family == "qwen3":
            import warnings

            warnings.warn(f"{cfg.model} through the engine: {PARITY[vlm.family]}", stacklevel=2)
        vlm._launch(engine_python(ecfg))
        return vlm

    # ------------------------------------------------------------------ the engine process
    def _launch(self, python: Path) -> None:
        from multiprocessing.connection import Client

        self._dir = tempfile.mkdtemp(prefix="rb-engine-")
        sock = os.path.join(self._dir, "engine.sock")
        key = secrets.token_hex(16)
        self._log = Path(self._dir) / "engine.log"
        env = os.environ | {"RB_ENGINE_AUTHKEY": key, "PYTHONPATH": str(REPO)}
        with open(self._log, "w") as log:
            self._proc = subprocess.Popen([str(python), "-m", "roadbuddy_utils.engine.worker", "--address", sock,
                                           "--settings", json.dumps(self._settings)], stdout=log,
                                          stderr=subprocess.STDOUT, env=env, cwd=str(REPO))
        deadline = time.monotonic() + self._engine_cfg.start_timeout_s
        while not os.path.exists(sock):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._fail("the engine process did not start")
            time.sleep(0.2)
        self._conn = Client(sock, family="AF_UNIX", authkey=key.encode())
        while not self._conn.poll(1.0):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self._fail("the engine did not finish loading the model")
        msg = self._conn.recv()
        if not msg.get("ok"):
            self._fail(f"the engine could not load {self.cfg.model}: {msg.get('error')}")
        self.engine_version = self._call({"op": "info"})["vllm"]
        atexit.register(self.close)

    def _fail(self, what: str):
        tail = self._log.read_text(errors="replace")[-3000:] if self._log.exists() else ""
        self.close()
        raise EngineError(f"{what} (settings {self._settings}); engine log {self._log}:\n{tail}", engine_start=True)

    def _call(self, msg: dict):
        self._conn.send(msg)
        reply = self._conn.recv()
        if not reply.get("ok"):
            raise EngineError(f"engine request {msg['op']!r} failed: {reply.get('error')}")
        return reply["result"]

    def close(self) -> None:
        """Stop the engine process (idempotent)."""
        proc = getattr(self, "_proc", None)
        if proc is None or proc.poll() is not None:
            return
        try:
            conn = getattr(self, "_conn", None)
            if conn is None:  # still loading (a failed start): nothing to ask, stop it
                raise OSError("no connection")
            conn.send({"op": "stop"})
            conn.recv()
            proc.wait(timeout=60)
        except (OSError, EOFError, subprocess.TimeoutExpired):
            proc.terminate()  # the worker's own exit shuts vLLM's engine processes down
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # ------------------------------------------------------------------ what the wrapper reports
    @property
    def device(self):
        return "engine"

    def _dtype_name(self) -> str:
        return self._settings["dtype"]

    def describe(self) -> dict:
        d = asdict(self.cfg) | {"family": self.family, "path": self.path, "tiny_random": is_tiny(self.cfg.model)}
        d["note"] = ("tiny randomly initialised model: chance-level answers until trained" if d["tiny_random"]
                     and not self.cfg.adapter_path else None)
        d["resolved"] = {"dtype": self._dtype_name(), "quantization": self.cfg.quantization,
                         "attn_implementation": None}
        d["backend"] = {"name": "vllm", "version": self.engine_version, "settings": self._settings,
                        "parity_with_hf": PARITY[self.family], "memory_plan": getattr(self, "_memory_plan", None)}
        return d

    # ------------------------------------------------------------------ requests
    def _video_request(self, ex, lang, choices) -> dict:
        r = {"prompt": self.render(ex, lang, choices), "lora": self._lora}
        if ex.frames is None or not len(ex.frames):
            return r
        frames = fit_pixels(ex.frames, self.cfg.max_pixels)
        if self.family == "internvl":  # one image per frame, one tile each, as the HF path
            r["multi_modal_data"] = {"image": list(frames)}
            r["mm_processor_kwargs"] = {"crop_to_patches": False}
        else:  # one video with the clip's true fps and frame indices (Qwen's timestamps and positions)
            meta = _metadata(ex, frames) | {"video_backend": "opencv", "do_sample_frames": False}
            r["multi_modal_data"] = {"video": [(frames, meta)]}
            r["mm_processor_kwargs"] = {"do_sample_frames": False}
        return r

    def _chat_request(self, system, segments) -> dict:
        images = [_image_array(v, self.cfg.max_pixels) for kind, v in segments if kind == "image"]
        r = {"prompt": self.chat_render(system, segments), "lora": self._lora}
        if images:
            r["multi_modal_data"] = {"image": images}
            if self.family == "internvl":
                r["mm_processor_kwargs"] = {"crop_to_patches": False}
        return r

    def _scores(self, requests: list[dict], letters_per) -> list[dict | str]:
        for r, letters in zip(requests, letters_per):
            r["letter_ids"] = [self.letter_ids[l] for l in letters]
        out = []
        for lp, letters in zip(self._call({"op": "score", "requests": requests}), letters_per):
            vals = [lp.get(self.letter_ids[l], -math.inf) for l in letters]
            if not all(math.isfinite(v) for v in vals):
                out.append(f"the engine returned non-finite letter log-probabilities {vals}")
                continue
            m = max(vals)
            e = [math.exp(v - m) for v in vals]
            out.append({l: round(x / sum(e), 6) for l, x in zip(letters, e)})
        return out

    def _letter_rows(self, examples, lang: str = "vi", choices=None) -> list[dict | str]:
        letters_per = [[l for l, _ in (ex.item.choices if choices is None else choices[k])]
                       for k, ex in enumerate(examples)]
        reqs = [self._video_request(ex, lang, None if choices is None else choices[k]) for k, ex in enumerate(examples)]
        return self._scores(reqs, letters_per)

    def generate(self, examples, lang: str = "vi", max_new_tokens: int = 16) -> list[str]:
        reqs = [self._video_request(ex, lang, None) | {"max_tokens": max_new_tokens} for ex in examples]
        return self._call({"op": "generate", "requests": reqs})

    def chat_letter_scores(self, prompts, letters) -> list[dict]:
        from ..models.vlm import _finite_or_raise

        return _finite_or_raise(self._scores([self._chat_request(s, segs) for s, segs in prompts], letters))

    def chat_generate(self, prompts, max_new_tokens: int = 64, do_sample: bool = False, temperature: float = 0.7,
                      top_p: float = 0.9) -> list[str]:
        if do_sample:
            raise EngineError("sampled generation is not offered through the engine backend (greedy only)")
        reqs = [self._chat_request(s, segs) | {"max_tokens": max_new_tokens} for s, segs in prompts]
        return self._call({"op": "generate", "requests": reqs})


def load_vlm(cfg: ModelConfig, backend: str = "hf", engine=None) -> VLM:
    """The answering model: ``hf`` (transformers in this process) or ``vllm`` (the engine process)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return VLM.load(cfg) if backend == "hf" else EngineVLM.start(cfg, engine)
