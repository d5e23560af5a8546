"""The serving engine's side: a vLLM ``LLM`` in the engine's own environment (``.venv-engine``), answering the
project's requests over a local authenticated socket (``multiprocessing.connection``).

    .venv-engine/bin/python -m roadbuddy_utils.engine.worker --address /tmp/rb-engine.sock --settings '{...}'

Started and stopped by ``client.EngineVLM`` (never by hand); it imports vLLM, numpy and the standard library
only (the project's own stack lives in the other environment). One request at a time, batched by the client:

* ``score``: ``[{prompt, multi_modal_data, mm_processor_kwargs, letter_ids, lora}]`` -> per request
  ``{token_id: logprob}`` of exactly the offered letters at the answer position (``SamplingParams(max_tokens=1,
  logprob_token_ids=...)``: the raw log-probabilities, which softmaxed over the letters equal the HF forward
  pass's letter probabilities);
* ``generate``: the same requests with ``max_tokens`` -> greedy texts;
* ``info``: vLLM's version and the settings it started with; ``stop``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback


def _engine(settings: dict):
    from vllm import LLM

    kw = {k: v for k, v in settings.items() if k not in ("model", "lora_modules")}
    return LLM(model=settings["model"], **kw)


def _lora(request: dict):
    from vllm.lora.request import LoRARequest

    lora = request.get("lora")
    return LoRARequest(lora["name"], int(lora["id"]), lora["path"]) if lora else None


def _inputs(requests: list[dict]) -> list[dict]:
    out = []
    for r in requests:
        x = {"prompt": r["prompt"]}
        if r.get("multi_modal_data"):
            x["multi_modal_data"] = r["multi_modal_data"]
        if r.get("mm_processor_kwargs"):
            x["mm_processor_kwargs"] = r["mm_processor_kwargs"]
        out.append(x)
    return out


def handle(llm, msg: dict):
    from vllm import SamplingParams

    op = msg["op"]
    if op == "info":
        import vllm

        return {"vllm": vllm.__version__, "pid": os.getpid()}
    reqs = msg["requests"]
    loras = [_lora(r) for r in reqs]
    if op == "score":
        params = [SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=list(r["letter_ids"])) for r in reqs]
        outs = llm.generate(_inputs(reqs), params, lora_request=loras if any(loras) else None, use_tqdm=False)
        return [{int(t): float(lp.logprob) for t, lp in o.outputs[0].logprobs[0].items()} for o in outs]
    if op == "generate":
        params = [SamplingParams(max_tokens=int(r["max_tokens"]), temperature=0.0) for r in reqs]
        outs = llm.generate(_inputs(reqs), params, lora_request=loras if any(loras) else None, use_tqdm=False)
        return [o.outputs[0].text for o in outs]
    raise ValueError(f"unknown op {op!r}")


def main(argv=None) -> int:
    from multiprocessing.connection import Listener

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--address", required=True, help="a Unix socket path the client connects to")
    ap.add_argument("--settings", required=True, help="vLLM LLM(...) arguments as JSON (model first)")
    args = ap.parse_args(argv)
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # terminate(): a normal exit, vLLM shuts its processes down
    authkey = os.environ.pop("RB_ENGINE_AUTHKEY", "").encode() or None
    settings = json.loads(args.settings)
    with Listener(args.address, family="AF_UNIX", authkey=authkey) as listener:
        print("READY-TO-LOAD", flush=True)
        with listener.accept() as conn:
            try:
                llm = _engine(settings)
            except BaseException as e:  # the client reports it (out of memory, unsupported model, ...)
                conn.send({"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})
                return 1
            conn.send({"ok": True})
            while True:
                try:
                    msg = conn.recv()
                except EOFError:
                    return 0
                if msg.get("op") == "stop":
                    conn.send({"ok": True})
                    return 0
                try:
                    conn.send({"ok": True, "result": handle(llm, msg)})
                except BaseException as e:  # noqa: BLE001 - one bad request never kills the engine
                    conn.send({"ok": False, "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()})


if __name__ == "__main__":
    sys.exit(main())
